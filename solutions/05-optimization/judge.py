"""Judge of assignment 05 (optimizers, schedules, batch norm): every graded part, decided outside
the student's kernel.

Each part checks the visible examples of its test cell, then hidden inputs drawn from ``rng``
(seeded by the student's id: every student gets other numbers) plus the fixed edge cases the old
hidden tests planted. The references are computed here: 20-step trajectories of ``torch.optim``
(SGD with and without Nesterov, Adam) on fixed gradients, with a learning rate that changes every
step (where PyTorch's momentum form and Keras's part ways) and gradients small enough that the
place of Adam's epsilon matters; PyTorch's schedulers and ``F.batch_norm``; the course's
``cosine_decay_restarts`` where PyTorch has no equivalent (``m_mul``, a float ``t_mul``). Whole
trajectories run in one probe each (the kernel loops, feeding the student's outputs back in, and
snapshots every step), so a part costs a few probes, not hundreds. See
``course_lib/grading/judge.py`` for how a part talks to the kernel.
"""

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.grading.judge import Judge, close, floats, unchanged
from course_lib.numpy_impl.schedules import cosine_decay_restarts as reference_restarts

judge = Judge(
    "05-optimization",
    # What the assignment asks students to write: the grading kernel's course_lib lacks these
    # modules (and the MLP, which needs layers: the demonstration is not run when grading).
    forbidden=[
        "course_lib.numpy_impl.optimizers",
        "course_lib.numpy_impl.schedules",
        "course_lib.numpy_impl.layers",
    ],
    not_run=["demo"],  # trains the course's MLP (absent from the grading kernel); nothing graded uses it
)

#: Every probe snapshots what the student's function returned at once (deep copies), so a later
#: call that modifies an earlier result in place cannot change what the judge sees for that step.
SNAP = "from copy import deepcopy as __snap\n"


def pair(value, what):
    assert isinstance(value, (tuple, list)) and len(value) == 2, (
        f"{what} must return a pair (new_w, new_state/new_velocity), got {type(value).__name__}"
    )
    return value


# --- 1-2. SGD with momentum, and Nesterov ------------------------------------------------------

VISIBLE_MOMENTUM = SNAP + """
w0, g = np.array([1.0, -2.0]), np.array([0.5, 1.0])
w1, v1 = __snap(momentum_step(w0, g, np.zeros(2), lr=0.1, momentum=0.9, nesterov=nesterov))
__w1_arg, __v1_arg = __snap(w1), __snap(v1)
w2, v2 = __snap(momentum_step(__w1_arg, g, __v1_arg, lr=0.1, momentum=0.9, nesterov=nesterov))
__half = __snap(momentum_step(np.zeros(1), np.ones(1), np.ones(1), lr=1.0, momentum=0.5)[0])
"""

TRAJECTORY_MOMENTUM = SNAP + """
__w, __v, __ws, __vs = w0.copy(), np.zeros_like(w0), [], []
for __i in range(len(grads)):
    __w, __v = momentum_step(__w, grads[__i], __v, lr=float(lrs[__i]), momentum=mu, nesterov=nesterov)
    __ws.append(__snap(__w))
    __vs.append(__snap(__v))
"""

MOMENTUM_ARGUMENTS = {"w_in": np.ones(3), "g_in": np.full(3, 2.0), "v_in": np.full(3, 0.5)}
ARGUMENTS_MOMENTUM = SNAP + """
momentum_step(w_in, g_in, v_in, lr=0.1, momentum=0.9, nesterov=nesterov)
__plain = __snap(momentum_step(np.ones(2), np.ones(2), np.zeros(2), lr=0.1, momentum=0.0)[0])
__heavy = __snap(momentum_step(np.ones(3), np.ones(3), np.ones(3), lr=0.1, momentum=0.9)[0])
__nest = __snap(momentum_step(np.ones(3), np.ones(3), np.ones(3), lr=0.1, momentum=0.9, nesterov=True)[0])
"""


def torch_sgd(w0, grads, lrs, mu, nesterov):
    """The weights after each step of ``torch.optim.SGD`` (float64), the rate set before each."""
    p = torch.tensor(w0.copy(), requires_grad=True)
    opt = torch.optim.SGD([p], lr=float(lrs[0]), momentum=mu, nesterov=nesterov)
    out = []
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = float(lr)
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def momentum_trajectory(k, w0, grads, lrs, mu, nesterov):
    got = k.run(TRAJECTORY_MOMENTUM, {"w0": w0, "grads": grads, "lrs": lrs, "mu": mu, "nesterov": nesterov},
                ["__ws", "__vs"])  # fmt: skip
    return got["__ws"], got["__vs"]


@judge.part("test_momentum", answers=["momentum_step"])
def _(k, rng):
    got = k.run(VISIBLE_MOMENTUM, {"nesterov": False}, ["w1", "v1", "w2", "v2", "w0", "g", "__v1_arg", "__half"])
    close(got["v1"], [0.5, 1.0], 1e-12, 0,
          f"from v = 0 the first velocity is the gradient itself, [0.5, 1.0]; got {got['v1']}. PyTorch's "
          "form adds g, it does not scale it by (1 - momentum) or by -lr", "new_velocity")  # fmt: skip
    close(got["w1"], [0.95, -2.1], 1e-12, 0, f"w1 = w0 - lr * v1 = [0.95, -2.1]; got {got['w1']}", "new_w")
    close(got["v2"], [0.95, 1.9], 1e-12, 0, f"v2 = 0.9 * v1 + g = [0.95, 1.9]; got {got['v2']}", "new_velocity")
    close(got["w2"], [0.855, -2.29], 1e-12, 0, f"w2 = w1 - lr * v2 = [0.855, -2.29]; got {got['w2']}", "new_w")
    untouched = (unchanged(got["w0"], [1.0, -2.0]) and unchanged(got["g"], [0.5, 1.0])
                 and unchanged(got["__v1_arg"], got["v1"]))  # fmt: skip
    assert untouched, "momentum_step must not modify its arguments in place: return new arrays"
    close(got["__half"], [-1.5], 1e-5, 1e-8,
          "with v = 1, g = 1 and momentum 0.5 the new velocity is 1.5, so w moves by -lr * 1.5")  # fmt: skip

    lr0 = float(rng.uniform(0.02, 0.1))
    for mu in (0.5, 0.9, 0.99):
        w0, grads = rng.normal(size=(4, 3)), rng.normal(size=(20, 4, 3))
        lrs = lr0 * 0.8 ** np.arange(20)  # a schedule: the two momentum forms part ways here
        ws, _ = momentum_trajectory(k, w0, grads, lrs, mu, False)
        ref = torch_sgd(w0, grads, lrs, mu, nesterov=False)
        assert isinstance(ws, list) and len(ws) == 20, "momentum_step must return (new_w, new_velocity)"
        for step in range(20):
            close(ws[step], ref[step], 1e-10, 1e-12,
                  f"step {step + 1} (momentum {mu}, learning rate decaying every step) differs from "
                  "torch.optim.SGD: is the velocity v = momentum * v + g, with lr applied only to the step?",
                  "new_w")  # fmt: skip

    args = k.run(ARGUMENTS_MOMENTUM, {"nesterov": False, **MOMENTUM_ARGUMENTS}, ["__plain", *MOMENTUM_ARGUMENTS])
    assert all(unchanged(args[n], v) for n, v in MOMENTUM_ARGUMENTS.items()), "do not modify the arguments"
    close(args["__plain"], [0.9, 0.9], 1e-12, 0, "momentum 0 is plain gradient descent", "new_w")


@judge.part("test_nesterov", answers=["momentum_step"])
def _(k, rng):
    got = k.run(VISIBLE_MOMENTUM, {"nesterov": True}, ["w1", "v1", "w2", "v2"])
    close(got["v1"], [0.5, 1.0], 1e-12, 0, "Nesterov keeps the same velocity v = momentum * v + g", "new_velocity")
    close(got["w1"], [0.905, -2.19], 1e-12, 0,
          f"the first Nesterov step is w0 - lr * (g + 0.9 * v1) = w0 - 0.1 * 1.9 * g = [0.905, -2.19]; "
          f"got {got['w1']}", "new_w")  # fmt: skip
    close(got["w2"], [0.7695, -2.461], 1e-12, 0,
          f"second step: v2 = [0.95, 1.9] and w2 = w1 - lr * (g + 0.9 * v2) = [0.7695, -2.461]; got "
          f"{got['w2']}. Use the new velocity in the step, not the old one", "new_w")  # fmt: skip
    floats(got["v2"], (2,), "new_velocity")

    lr0 = float(rng.uniform(0.01, 0.05))
    for mu in (0.8, 0.95):
        w0, grads = rng.normal(size=7), rng.normal(size=(20, 7))
        lrs = np.where(np.arange(20) < 10, lr0, lr0 / 10)  # a step decay halfway
        ws, _ = momentum_trajectory(k, w0, grads, lrs, mu, True)
        ref = torch_sgd(w0, grads, lrs, mu, nesterov=True)
        assert isinstance(ws, list) and len(ws) == 20, "momentum_step must return (new_w, new_velocity)"
        for step in range(20):
            close(ws[step], ref[step], 1e-10, 1e-12,
                  f"Nesterov step {step + 1} (momentum {mu}) differs from torch.optim.SGD(nesterov=True)",
                  "new_w")  # fmt: skip

    args = k.run(ARGUMENTS_MOMENTUM, {"nesterov": True, **MOMENTUM_ARGUMENTS}, ["__heavy", "__nest", *MOMENTUM_ARGUMENTS])
    assert all(unchanged(args[n], v) for n, v in MOMENTUM_ARGUMENTS.items()), "do not modify the arguments"
    heavy, nest = floats(args["__heavy"], (3,), "new_w"), floats(args["__nest"], (3,), "new_w")
    assert not np.allclose(heavy, nest), "nesterov=True must change the step"


# --- 3-4. Adam -----------------------------------------------------------------------------------

VISIBLE_ADAM_FIRST = SNAP + """
g = np.array([1e-3, -50.0, 2.0])
w1, state1 = __snap(adam_step(np.zeros(3), g, adam_state(g), lr=0.01))
"""

HIDDEN_ADAM_FIRST = SNAP + """
__firsts = [__snap(adam_step(np.ones(__g.shape), __g, adam_state(__g), lr=0.3, betas=__b, eps=0.0))
            for __g in gs for __b in betas]
__w1, __s1 = __snap(__firsts[-1])
__second = __snap(adam_step(__w1, gs[-1], __s1, lr=0.3, betas=betas[-1], eps=0.0))
"""

VISIBLE_ADAM = SNAP + """
__w = np.array([0.5, -1.0, 2.0])
__state = adam_state(__w)
__ws = []
for __grad in ([1.0, -2.0, 0.5], [0.5, -1.0, -0.5], [2.0, 0.0, -0.5]):
    __w, __state = adam_step(__w, np.array(__grad), __state, lr=0.1)
    __ws.append(__snap(__w))
__state = __snap(__state)
"""

TRAJECTORY_ADAM = SNAP + """
__w, __s, __ws = w0.copy(), adam_state(w0), []
for __i in range(len(grads)):
    __w, __s = adam_step(__w, grads[__i], __s, lr=lr, betas=betas)
    __ws.append(__snap(__w))
__s = __snap(__s)
"""

ADAM_ARGUMENTS = {"w_in": np.ones(4), "g_in": np.full(4, 3.0)}
ARGUMENTS_ADAM = """
adam_step(w_in, g_in, adam_state(w_in), lr=0.1)
"""


def state_t(state):
    return state.get("t") if isinstance(state, dict) else None


def torch_adam(w0, grads, lr, betas, eps=1e-8):
    p = torch.tensor(w0.copy(), requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    out = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


@judge.part("test_adam_first_step", answers=["adam_step"])
def _(k, rng):
    got = k.run(VISIBLE_ADAM_FIRST, outputs=["w1", "state1"])
    g, w1, state1 = np.array([1e-3, -50.0, 2.0]), got["w1"], got["state1"]
    assert isinstance(state1, dict) and state_t(state1) == 1, (
        f"after one step the state must hold t = 1, got {state1}"
    )
    close(w1, [-0.01, 0.01, -0.01], 1e-4, 0,
          f"Adam's first step must be lr * sign(g) = [-0.01, 0.01, -0.01] whatever the size of g; got {w1}. "
          "Without the bias correction m_1 = 0.1 g and v_1 = 0.001 g^2 make it about 3.16 * lr: divide m by "
          "1 - beta1^t and v by 1 - beta2^t, with t = 1 at the first step", "new_w")  # fmt: skip
    moments = "the state keeps the *uncorrected* averages m and v (the correction is applied to the step only)"
    assert "m" in state1 and "v" in state1, (
        f"the state is {{'t': ..., 'm': ..., 'v': ...}}; got the keys {sorted(map(str, state1))}"
    )
    close(state1["m"], 0.1 * g, 1e-12, 0, moments, "state['m']")
    close(state1["v"], 0.001 * g**2, 1e-12, 1e-8, moments, "state['v']")  # the visible cell's tolerances

    scales = (1e-6, 1.0, 1e4)
    gs = [rng.normal(size=(5, 4)) * scale for scale in scales]
    betas = [(0.9, 0.999), (0.5, 0.9)]
    got = k.run(HIDDEN_ADAM_FIRST, {"gs": gs, "betas": betas}, ["__firsts", "__second"])
    assert isinstance(got["__firsts"], list) and len(got["__firsts"]) == len(gs) * len(betas)
    for index, step in enumerate(got["__firsts"]):
        scale, beta, grad = scales[index // 2], betas[index % 2], gs[index // 2]
        w, s = pair(step, "adam_step")
        close(w, 1.0 - 0.3 * np.sign(grad), 1e-12, 1e-12,
              f"the first step must be exactly lr * sign(g) with eps = 0 (gradients of size {scale}, betas {beta})",
              "new_w")  # fmt: skip
        assert state_t(s) == 1, f"after one step the state must hold t = 1, got t = {state_t(s)!r}"
    w1 = np.asarray(got["__firsts"][-1][0], dtype=np.float64)
    w2, s2 = pair(got["__second"], "adam_step")
    message = "with the same gradient twice, the corrected averages are g and g^2 again: the second step is lr * sign(g) too"
    assert state_t(s2) == 2, message + f" (and t = 2 after two steps, got {state_t(s2)!r})"
    close(w2, w1 - 0.3 * np.sign(gs[-1]), 1e-12, 0, message, "new_w")


@judge.part("test_adam", answers=["adam_step"])
def _(k, rng):
    got = k.run(VISIBLE_ADAM, outputs=["__ws", "__state"])
    expected = [[0.400000001, -0.9000000005, 1.900000002], [0.3067820383, -0.8067820372, 1.90526316],
                [0.2158734027, -0.7347242815, 1.945484561]]  # fmt: skip
    for step, w in enumerate(got["__ws"]):
        close(w, expected[step], 1e-8, 1e-10, f"after step {step + 1} w should be {expected[step]}, got {w}", "new_w")
    state = got["__state"]
    assert state_t(state) == 3, f"three steps taken: t = 3, got {state_t(state)!r}"
    assert "m" in state, "the state is {'t': ..., 'm': ..., 'v': ...}"
    close(state["m"], [0.326, -0.252, -0.0545], 1e-10, 0,
          f"m is the moving average 0.9 m + 0.1 g (uncorrected): [0.326, -0.252, -0.0545]; got {state['m']}",
          "state['m']")  # fmt: skip

    for lr, betas, scale in ((1e-3, (0.9, 0.999), 1.0), (0.05, (0.8, 0.99), 1e-7), (0.01, (0.9, 0.999), 1e3)):
        w0 = rng.normal(size=(6, 3))
        grads = rng.normal(size=(20, 6, 3)) * scale  # 1e-7: where eps inside or outside the root matters
        got = k.run(TRAJECTORY_ADAM, {"w0": w0, "grads": grads, "lr": lr, "betas": betas}, ["__ws", "__s"])
        ref = torch_adam(w0, grads, lr, betas)
        assert isinstance(got["__ws"], list) and len(got["__ws"]) == 20
        for step in range(20):
            close(got["__ws"][step], ref[step], 1e-9, 1e-12,
                  f"step {step + 1} (lr {lr}, betas {betas}, gradients of size {scale}) differs from "
                  "torch.optim.Adam: check the bias correction and that eps is added after the square root",
                  "new_w")  # fmt: skip
        assert state_t(got["__s"]) == 20, f"after 20 steps the state must hold t = 20, got {state_t(got['__s'])!r}"
    args = k.run(ARGUMENTS_ADAM, ADAM_ARGUMENTS, list(ADAM_ARGUMENTS))
    assert all(unchanged(args[n], v) for n, v in ADAM_ARGUMENTS.items()), "do not modify w or g"


# --- 5-6. Schedules ------------------------------------------------------------------------------

VISIBLE_EXPONENTIAL = """
__v = [exponential_decay(0, 0.1, 0.5, 10), exponential_decay(10, 0.1, 0.5, 10), exponential_decay(5, 0.1, 0.5, 10),
       exponential_decay(19, 0.1, 0.5, 10, staircase=True), exponential_decay(100, 0.1, 0.5, 10),
       exponential_decay(99, 0.1, 0.5, 10), exponential_decay(14, 1.0, 0.5, 10, staircase=True),
       exponential_decay(3, 2.0, 0.9, 2.5)]
"""

SCHEDULE = "__rates = [exponential_decay(__t, lr0, rate, steps, staircase=staircase) for __t in range(n)]"


def torch_rates(make_scheduler, lr0, n):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr0)
    sched = make_scheduler(opt)
    rates = []
    for _ in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def is_float(value):
    return isinstance(value, float)  # np.float64 is a float too


@judge.part("test_exponential_decay", answers=["exponential_decay"])
def _(k, rng):
    v = k.run(VISIBLE_EXPONENTIAL, outputs=["__v"])["__v"]
    assert is_float(v[0]), f"return a Python float, got {type(v[0]).__name__}"
    assert np.isclose(v[0], 0.1, rtol=1e-12), f"at step 0 the rate is lr0 = 0.1, got {v[0]}"
    assert is_float(v[1]) and np.isclose(v[1], 0.05, rtol=1e-12), "after decay_steps steps: lr0 * decay_rate"
    assert is_float(v[2]) and np.isclose(v[2], 0.1 * 0.5**0.5, rtol=1e-12), (
        f"halfway through the first period the smooth rate is 0.1 * 0.5^0.5 = {0.1 * 0.5**0.5:.6f}, got "
        f"{v[2]!r}. (0.1 / (1 + 0.5 * 0.5) would be inverse-time decay)"
    )
    assert is_float(v[3]) and np.isclose(v[3], 0.05, rtol=1e-12), (
        "with staircase the exponent is floor(19 / 10) = 1: 0.05 until step 20"
    )
    assert is_float(v[4]) and is_float(v[5]) and v[4] < v[5], "the smooth rate falls at every step"
    assert is_float(v[6]) and np.isclose(v[6], 0.5, rtol=1e-12), "staircase floors 1.4 to 1"
    assert is_float(v[7]) and np.isclose(v[7], 2.0 * 0.9**1.2, rtol=1e-12), "decay_steps may be a float"

    lr0, rate, steps = float(rng.uniform(0.05, 1.0)), float(rng.uniform(0.5, 0.95)), int(rng.integers(3, 13))
    for staircase in (False, True):
        if staircase:
            ref = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=steps, gamma=rate), lr0, 100)
        else:
            ref = torch_rates(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=rate ** (1 / steps)), lr0, 100)
        got = k.run(SCHEDULE, {"lr0": lr0, "rate": rate, "steps": steps, "staircase": staircase, "n": 100},
                    ["__rates"])["__rates"]  # fmt: skip
        for t, (value, want) in enumerate(zip(got, ref)):
            assert is_float(value) and np.isclose(value, want, rtol=1e-10, atol=0), (
                f"step {t}, staircase={staircase} (lr0 {lr0:.4f}, decay_rate {rate:.4f}, decay_steps {steps}): "
                f"expected {want:.8f}, got {value!r}"
            )


VISIBLE_RESTARTS = """
__v = [cosine_decay_restarts(0, 0.1, 10), cosine_decay_restarts(5, 0.1, 10), cosine_decay_restarts(10, 0.1, 10),
       cosine_decay_restarts(20, 0.1, 10), cosine_decay_restarts(30, 0.1, 10, m_mul=0.5),
       cosine_decay_restarts(5, 0.1, 10, alpha=0.2), cosine_decay_restarts(9, 0.1, 10)]
"""

RESTARTS = """
__rates = [cosine_decay_restarts(__t, lr0, T0, t_mul=t_mul, m_mul=m_mul, alpha=alpha) for __t in range(n)]
"""


@judge.part("test_cosine_restarts", answers=["cosine_decay_restarts"])
def _(k, rng):
    v = k.run(VISIBLE_RESTARTS, outputs=["__v"])["__v"]
    assert is_float(v[0]), "return a Python float"
    assert np.isclose(v[0], 0.1, rtol=1e-12), "the first cycle starts at lr0"
    assert is_float(v[1]) and np.isclose(v[1], 0.05, rtol=1e-12), "halfway through cycle 0: 0.1 * (1 + cos(pi/2)) / 2"
    assert is_float(v[2]) and np.isclose(v[2], 0.1, rtol=1e-12), "step 10 starts cycle 1: back to 0.1"
    assert is_float(v[3]) and np.isclose(v[3], 0.05, rtol=1e-12), (
        f"cycle 1 lasts 10 * 2 = 20 steps (steps 10 to 29), so step 20 is halfway: 0.05; got {v[3]!r}. "
        "Each cycle is t_mul times longer than the last"
    )
    assert is_float(v[4]) and np.isclose(v[4], 0.025, rtol=1e-12), "step 30 starts cycle 2, whose peak is m_mul^2 * lr0 = 0.025"
    assert is_float(v[5]) and np.isclose(v[5], 0.1 * (0.2 + 0.8 * 0.5), rtol=1e-12), (
        "alpha is the floor as a fraction of lr0: lr0 * (alpha + (1 - alpha) * cosine part)"
    )
    assert is_float(v[6]) and v[6] < v[2], "the rate jumps up at a restart"

    lr0 = float(rng.uniform(0.1, 0.5))
    torch_cases = ((int(rng.integers(5, 10)), 1, 0.0), (int(rng.integers(3, 7)), 2, float(rng.uniform(0.05, 0.2))),
                   (int(rng.integers(3, 6)), 3, 0.0))  # fmt: skip
    for T0, tmul, alpha in torch_cases:
        ref = torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            o, T_0=T0, T_mult=tmul, eta_min=alpha * lr0), lr0, 150)  # fmt: skip
        got = k.run(RESTARTS, {"lr0": lr0, "T0": T0, "t_mul": float(tmul), "m_mul": 1.0, "alpha": alpha, "n": 150},
                    ["__rates"])["__rates"]  # fmt: skip
        for t, (value, want) in enumerate(zip(got, ref)):
            assert is_float(value) and np.isclose(value, want, rtol=1e-9, atol=1e-12), (
                f"step {t} (T0={T0}, t_mul={tmul}, alpha={alpha:.3f}): expected {want:.8f} as "
                f"CosineAnnealingWarmRestarts, got {value!r}"
            )
    reference_cases = ((10, 1.5, 0.7, 0.05), (3, 2.0, 0.5, 0.3), (20, 1.0, 0.9, 0.0),
                       (int(rng.integers(4, 15)), float(rng.uniform(1.1, 2.5)), float(rng.uniform(0.4, 0.95)),
                        float(rng.uniform(0.0, 0.3))))  # fmt: skip
    for T0, tmul, mmul, alpha in reference_cases:
        ref = reference_restarts(np.arange(300), 0.5, T0, tmul, mmul, alpha)
        got = k.run(RESTARTS, {"lr0": 0.5, "T0": T0, "t_mul": tmul, "m_mul": mmul, "alpha": alpha, "n": 300},
                    ["__rates"])["__rates"]  # fmt: skip
        for t, (value, want) in enumerate(zip(got, ref)):
            assert is_float(value) and np.isclose(value, want, rtol=1e-9, atol=1e-12), (
                f"step {t} (T0={T0}, t_mul={tmul:.3f}, m_mul={mmul:.3f}, alpha={alpha:.3f}): expected "
                f"{want:.8f}, got {value!r}"
            )


# --- 7-8. Batch normalization --------------------------------------------------------------------

VISIBLE_BN_TRAIN = SNAP + """
x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 14.0]])
running = {"mean": np.zeros(2), "var": np.ones(2)}
out = __snap(batchnorm_forward(x, np.array([1.0, 2.0]), np.array([0.0, -1.0]), running, train=True))
running = __snap(running)
"""

HIDDEN_BN_TRAIN = SNAP + """
__running = {"mean": np.zeros(len(gamma)), "var": np.ones(len(gamma))}
__outs, __runs = [], []
for __x in xs:
    __outs.append(__snap(batchnorm_forward(__x, gamma, beta, __running, True, momentum=m, eps=eps)))
    __runs.append(__snap(__running))
"""


def running_of(value, D, what):
    assert isinstance(value, dict) and "mean" in value and "var" in value, (
        f"running must stay a dict with the arrays 'mean' and 'var' {what}"
    )
    return floats(value["mean"], (D,), "running['mean']"), floats(value["var"], (D,), "running['var']")


@judge.part("test_batchnorm_train", answers=["batchnorm_forward"])
def _(k, rng):
    got = k.run(VISIBLE_BN_TRAIN, outputs=["out", "running", "x"])
    out = floats(got["out"], (4, 2), "out")
    expected = np.array([[-3.0, -6.0], [-1.0, -2.0], [1.0, 2.0], [3.0, 6.0]]) / np.sqrt(np.array([5.0, 20.0]) + 1e-5)
    expected = expected * [1.0, 2.0] + [0.0, -1.0]
    assert np.allclose(out, expected, rtol=1e-10, atol=0), (
        "out = gamma * (x - mean) / sqrt(var + eps) + beta, with each column's own mean and biased variance "
        f"(divide by N); expected\n{expected}\ngot\n{out}"
    )
    mean, var = running_of(got["running"], 2, "after the update")
    assert np.allclose(mean, [0.4, 0.8], rtol=1e-12, atol=0), (
        f"running mean = 0.9 * 0 + 0.1 * [4, 8] = [0.4, 0.8]; got {mean}. momentum = 0.1 weighs the new batch"
    )
    assert np.allclose(var, [0.9 + 0.1 * 20 / 3, 0.9 + 0.1 * 80 / 3], rtol=1e-12, atol=0), (
        f"running var = 0.9 * 1 + 0.1 * unbiased variance [20/3, 80/3] = [1.5667, 3.5667]; got {var}"
    )
    assert unchanged(got["x"], [[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 14.0]]), "do not modify x"
    assert np.allclose(out.mean(axis=0), [0.0, -1.0], atol=1e-12), "each column of out has mean beta"

    D = 6
    for m, eps in ((0.1, 1e-5), (0.3, 1e-3)):
        gamma, beta = rng.uniform(0.5, 2.0, D), rng.normal(size=D)
        xs = [rng.normal(size=(8 + b, D)) * rng.uniform(0.5, 4, D) + rng.uniform(-3, 3, D) for b in range(5)]
        got = k.run(HIDDEN_BN_TRAIN, {"xs": xs, "gamma": gamma, "beta": beta, "m": m, "eps": eps},
                    ["__outs", "__runs"])  # fmt: skip
        rm, rv = torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)
        for b, x in enumerate(xs):
            ref = F.batch_norm(torch.tensor(x), rm, rv, torch.tensor(gamma), torch.tensor(beta), True, m, eps)
            close(got["__outs"][b], ref.numpy(), 1e-9, 1e-12,
                  f"batch {b + 1} (momentum {m}, eps {eps}): out differs from torch.nn.functional.batch_norm", "out")  # fmt: skip
            mean, var = running_of(got["__runs"][b], D, f"after batch {b + 1}")
            assert np.allclose(mean, rm.numpy(), rtol=1e-10, atol=1e-14), (
                f"after batch {b + 1}: the running mean differs from PyTorch's (momentum {m} weighs the new batch)"
            )
            assert np.allclose(var, rv.numpy(), rtol=1e-10, atol=1e-14), (
                f"after batch {b + 1}: the running variance differs from PyTorch's (it uses the unbiased variance)"
            )
    x = rng.normal(size=(50, 3)) * 10 + 5
    out = k.run("__o = batchnorm_forward(x, np.ones(3), np.zeros(3), {'mean': np.zeros(3), 'var': np.ones(3)}, True)",
                {"x": x}, ["__o"])["__o"]  # fmt: skip
    out = floats(out, (50, 3), "out")
    assert np.allclose(out.mean(axis=0), 0, atol=1e-10) and np.allclose(out.std(axis=0), 1, atol=1e-5), (
        "each column (feature) of the output has mean beta and standard deviation about gamma"
    )


VISIBLE_BN_EVAL = SNAP + """
running = {"mean": np.array([1.0, -2.0]), "var": np.array([4.0, 0.25])}
x = np.array([[3.0, -2.0], [1.0, -1.0], [-1.0, -3.0]])
out = __snap(batchnorm_forward(x, np.array([2.0, 1.0]), np.array([0.5, 0.0]), running, train=False, eps=0.0))
__kept = __snap(running)
one = __snap(batchnorm_forward(x[:1], np.array([2.0, 1.0]), np.array([0.5, 0.0]), running, train=False, eps=0.0))
"""

HIDDEN_BN_EVAL = SNAP + """
__out = __snap(batchnorm_forward(x, gamma, beta, running, False))
__after = __snap(running)
__rows = [__snap(batchnorm_forward(x[__i : __i + 1], gamma, beta, running, False)) for __i in range(len(x))]
"""


@judge.part("test_batchnorm_eval", answers=["batchnorm_forward"])
def _(k, rng):
    got = k.run(VISIBLE_BN_EVAL, outputs=["out", "__kept", "one"])
    expected = np.array([[2.5, 0.0], [0.5, 2.0], [-1.5, -2.0]])
    out = floats(got["out"], (3, 2), "out")
    assert np.allclose(out, expected, rtol=1e-12, atol=1e-12), (
        f"evaluation mode uses the running mean and variance, not the batch's: expected\n{expected}\ngot\n{out}"
    )
    kept = got["__kept"]
    assert isinstance(kept, dict) and unchanged(kept.get("mean"), [1.0, -2.0]) and unchanged(kept.get("var"), [4.0, 0.25]), (
        "evaluation mode must not change the running averages"
    )
    close(got["one"], expected[:1], 1e-12, 1e-12, "in evaluation mode one example alone gets the same output as in a batch", "out")

    D = 5
    running = {"mean": rng.normal(size=D), "var": rng.uniform(0.1, 3.0, D)}
    gamma, beta = rng.uniform(0.5, 2, D), rng.normal(size=D)
    x = rng.normal(size=(9, D)) * 3 + 1
    got = k.run(HIDDEN_BN_EVAL, {"x": x, "gamma": gamma, "beta": beta, "running": running},
                ["__out", "__after", "__rows"])  # fmt: skip
    ref = F.batch_norm(torch.tensor(x), torch.tensor(running["mean"]), torch.tensor(running["var"]),
                       torch.tensor(gamma), torch.tensor(beta), False, 0.1, 1e-5)  # fmt: skip
    out = close(got["__out"], ref.numpy(), 1e-10, 1e-12, "evaluation mode differs from F.batch_norm(training=False)", "out")
    mean, var = running_of(got["__after"], D, "in evaluation mode")
    assert np.array_equal(mean, running["mean"]) and np.array_equal(var, running["var"]), (
        "evaluation must not update running"
    )
    rows = [floats(r, (1, D), "out for one row") for r in got["__rows"]]
    assert len(rows) == len(x) and np.allclose(np.concatenate(rows), out, rtol=1e-12, atol=1e-12), (
        "in evaluation each row is normalized on its own"
    )


# --- 9. Batch normalization backward -------------------------------------------------------------

BACKWARD_BN = SNAP + """
__grads = __snap(batchnorm_backward(dout, (x, gamma, eps)))
"""


def reference_bn_backward(dout, x, gamma, eps):
    """The judge's own gradients of training-mode batch norm (float64), staged as the chain rule
    goes (through x_hat, the variance and the mean), not in the compact form the notebook shows."""
    n = x.shape[0]
    mu = x.mean(axis=0)
    centred = x - mu
    var = (centred**2).mean(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = centred * inv_std
    d_xhat = dout * gamma
    d_var = (d_xhat * centred).sum(axis=0) * -0.5 * inv_std**3
    d_mu = -(d_xhat * inv_std).sum(axis=0) + d_var * (-2.0 / n) * centred.sum(axis=0)
    dx = d_xhat * inv_std + d_var * 2.0 * centred / n + d_mu / n
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def three(value, what):
    assert isinstance(value, (tuple, list)) and len(value) == 3, (
        f"batchnorm_backward must return (dx, dgamma, dbeta){what}, got {type(value).__name__}"
    )
    return value


@judge.part("test_batchnorm_backward", answers=["batchnorm_backward"])
def _(k, rng):
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 14.0]])
    gamma = np.array([1.0, 2.0])
    dout = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0], [-1.0, 0.5]])
    got = k.run(BACKWARD_BN, {"dout": dout, "x": x, "gamma": gamma, "eps": 1e-5}, ["__grads"])
    dx, dgamma, dbeta = three(got["__grads"], "")
    ref = reference_bn_backward(dout, x, gamma, 1e-5)
    close(dbeta, ref[2], 1e-12, 0, f"dbeta = dout summed over the rows = [2, 0.5]; got {dbeta}", "dbeta")
    close(dgamma, ref[1], 1e-9, 0, f"dgamma = sum over the rows of dout * x_hat = [-1.78885, -0.22361]; got {dgamma}",
          "dgamma")  # fmt: skip
    close(dx, ref[0], 1e-9, 1e-12,
          "dx is wrong on the visible example: inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), with "
          "g = dout * gamma and the means over the rows (axis 0)", "dx")  # fmt: skip

    cases = [(8, 5, 1e-5, 1.0), (2, 3, 1e-5, 1.0), (32, 4, 1e-3, 50.0), (5, 7, 1e-5, 1e-2),
             (int(rng.integers(3, 40)), int(rng.integers(1, 9)), 1e-5, float(rng.uniform(0.1, 10.0)))]  # fmt: skip
    for n, d, eps, scale in cases:
        x = rng.normal(size=(n, d)) * scale * rng.uniform(0.5, 2.0, d) + rng.uniform(-3.0, 3.0, d) * scale
        gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
        dout = rng.normal(size=(n, d))
        got = k.run(BACKWARD_BN, {"dout": dout, "x": x, "gamma": gamma, "eps": eps}, ["__grads", "dout", "x"])
        assert unchanged(got["dout"], dout) and unchanged(got["x"], x), (
            "batchnorm_backward must not modify dout or the cache's x"
        )
        dx, dgamma, dbeta = three(got["__grads"], f" for x of shape {(n, d)}")
        ref_dx, ref_dgamma, ref_dbeta = reference_bn_backward(dout, x, gamma, eps)
        where = f"for x of shape {(n, d)} (eps {eps}, features of scale about {scale:.3g})"
        close(dbeta, ref_dbeta, 1e-10, 1e-12, f"dbeta is wrong {where}: the sum of dout over the rows", "dbeta")
        close(dgamma, ref_dgamma, 1e-8, 1e-10, f"dgamma is wrong {where}: sum over the rows of dout * x_hat",
              "dgamma")  # fmt: skip
        close(dx, ref_dx, 1e-7, 1e-9 * float(np.abs(ref_dx).max()),
              f"dx is wrong {where}: it must carry the two terms from the batch's mean and variance, "
              "each a mean over the rows of one column, and the factor gamma", "dx")  # fmt: skip
