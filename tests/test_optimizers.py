"""Optimizers, NumPy and torch: 20-step trajectories against ``torch.optim`` in float64, and the
properties the chapter states.

* every ``numpy_impl.optimizers`` class (SGD with momentum / Nesterov / weight decay, AdaGrad,
  RMSProp plain / centred / with momentum, Adam with and without AMSGrad and L2, AdamW) and its
  ``torch_impl.optimizers`` twin take the same 20 steps as ``torch.optim.SGD``, ``Adagrad``,
  ``RMSprop``, ``Adam``, ``AdamW`` on the same gradients: fixed random gradients, and the
  gradients of a non-convex function of the parameters, which feed the state back in;
* the torch twins work with parameter groups, ``zero_grad``, LR schedulers and ``fit``;
* a whole MLP trained by ``fit`` with each NumPy optimizer has the history of the torch MLP
  trained with the ``torch.optim`` one;
* properties: Adam's and AdaGrad's first step moves every coordinate by lr (bias correction),
  RMSProp's by lr / sqrt(1 - alpha); momentum's step under a constant gradient tends to
  lr g / (1 - mu); AdamW's decay with zero gradient is (1 - lr wd)^t; the two momentum
  conventions agree while lr is constant and not after it changes; gradient descent on a
  quadratic converges for lr < 2 / L and diverges above;
* updates are in place, leave the gradients alone and keep float32 parameters float32;
* gradient clipping: ``clip_grad_norm`` (NumPy, on a dict of arrays) and its torch twin scale the
  gradients exactly as ``torch.nn.utils.clip_grad_norm_`` (float64, several max_norm and
  norm_type, gradients above and below the limit, a non-finite norm) and return the same
  pre-clip norm; Hypothesis properties: the clipped norm is min(norm, max_norm) (up to the 1e-6
  in the denominator), the direction is kept, nothing below the limit moves.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.numpy_impl import optimizers as O
from course_lib.numpy_impl.mlp import MLP
from course_lib.torch_impl import optimizers as TO
from course_lib.torch_impl import schedules as TS
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

#: (our class name, keyword arguments, torch.optim class): every configuration that is compared.
CASES = [
    ("SGD", dict(lr=0.05), torch.optim.SGD),
    ("SGD", dict(lr=0.02, momentum=0.9), torch.optim.SGD),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True), torch.optim.SGD),
    ("SGD", dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.05), torch.optim.SGD),
    ("AdaGrad", dict(lr=0.1), torch.optim.Adagrad),
    (
        "AdaGrad",
        dict(lr=0.2, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1),
        torch.optim.Adagrad,
    ),
    ("RMSProp", dict(lr=0.01), torch.optim.RMSprop),
    ("RMSProp", dict(lr=0.005, alpha=0.9, weight_decay=0.01), torch.optim.RMSprop),
    ("RMSProp", dict(lr=0.005, alpha=0.9, momentum=0.7, centered=True), torch.optim.RMSprop),
    ("Adam", dict(lr=0.01), torch.optim.Adam),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.01), torch.optim.Adam),
    ("Adam", dict(lr=0.02, amsgrad=True), torch.optim.Adam),
    ("AdamW", dict(lr=0.01), torch.optim.AdamW),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True), torch.optim.AdamW),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw, _ in CASES]
STEPS = 20


def start(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "s": np.array(0.7)}


def loss_grads(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gradients that depend on the parameters, of sum(W^2 / 4 - cos W) + sum(b^2) + s^4 / 4 +
    sum(W[:, 0] * b[0]): a non-convex landscape with bounded curvature that couples W and b."""
    gW = 0.5 * p["W"] + np.sin(p["W"])
    gW[:, 0] += p["b"][0]
    gb = 2 * p["b"]
    gb[0] += p["W"][:, 0].sum()
    return {"W": gW, "b": gb, "s": p["s"] ** 3}


def torch_run(cls, kw, params, grad_fn, steps=STEPS):
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = cls(list(tp.values()), **kw)
    traj = []
    for _ in range(steps):
        grads = grad_fn({k: t.detach().numpy() for k, t in tp.items()})
        for k, t in tp.items():
            t.grad = torch.tensor(np.asarray(grads[k]))
        opt.step()
        traj.append({k: t.detach().numpy().copy() for k, t in tp.items()})
    return traj


def numpy_run(opt, params, grad_fn, steps=STEPS):
    params = {k: v.copy() for k, v in params.items()}
    traj = []
    for _ in range(steps):
        opt.step(params, grad_fn(params))
        traj.append({k: v.copy() for k, v in params.items()})
    return traj


def fixed_gradients(seed: int = 1):
    """Gradients drawn in advance: the same sequence whatever the parameters are."""
    rng = np.random.default_rng(seed)
    seq = iter([{k: rng.normal(size=np.shape(v)) for k, v in start().items()} for _ in range(STEPS)])
    return lambda _params: next(seq)


def assert_same_trajectory(ours, ref, rtol=1e-11, atol=1e-13):
    assert len(ours) == len(ref) == STEPS
    for t, (a, b) in enumerate(zip(ours, ref, strict=True)):
        for k in b:
            assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"step {t + 1}, {k}")


# ------------------------------------------------------------------- trajectories vs torch.optim


@pytest.mark.parametrize("name, kw, torch_cls", CASES, ids=IDS)
@pytest.mark.parametrize("grads", ["fixed", "of-the-parameters"])
def test_numpy_trajectory_equals_torch_optim(name, kw, torch_cls, grads):
    make = fixed_gradients if grads == "fixed" else (lambda: loss_grads)
    ours = numpy_run(getattr(O, name)(**kw), start(), make())
    ref = torch_run(torch_cls, kw, start(), make())
    assert_same_trajectory(ours, ref)
    assert not np.allclose(ours[-1]["W"], start()["W"]), "the parameters must have moved"


@pytest.mark.parametrize("name, kw, torch_cls", CASES, ids=IDS)
@pytest.mark.parametrize("grads", ["fixed", "of-the-parameters"])
def test_torch_impl_trajectory_equals_torch_optim(name, kw, torch_cls, grads):
    make = fixed_gradients if grads == "fixed" else (lambda: loss_grads)
    ours = torch_run(getattr(TO, name), kw, start(), make())
    ref = torch_run(torch_cls, kw, start(), make())
    assert_same_trajectory(ours, ref)


def test_a_wrong_rule_is_caught():
    """The comparison can fail: Adam without bias correction leaves torch's path at once."""

    class NoCorrection(O.Adam):
        def update(self, w, g, state):
            m = state.setdefault("m", np.zeros_like(w))
            v = state.setdefault("v", np.zeros_like(w))
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g * g
            w -= self.lr * m / (np.sqrt(v) + self.eps)

    ours = numpy_run(NoCorrection(lr=0.01), start(), fixed_gradients())
    ref = torch_run(torch.optim.Adam, dict(lr=0.01), start(), fixed_gradients())
    with pytest.raises(AssertionError):
        assert_same_trajectory(ours, ref)


def test_torch_twins_with_groups_zero_grad_state_dict_and_a_scheduler():
    torch.manual_seed(0)
    w1, w2 = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    pa = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    pb = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05, "weight_decay": 0.0}]  # noqa: E731
    ours, ref = (
        TO.AdamW(groups(pa), lr=0.01, weight_decay=0.1),
        torch.optim.AdamW(groups(pb), lr=0.01, weight_decay=0.1),
    )
    s_ours, s_ref = (
        TS.exponential_decay(ours, 0.5, 10),
        torch.optim.lr_scheduler.ExponentialLR(ref, 0.5 ** (1 / 10)),
    )
    for t in range(15):
        for opt, ps in ((ours, pa), (ref, pb)):
            opt.zero_grad()
            loss = ((ps[0] - 1.0) ** 2).sum() + (ps[1] ** 4).sum() + torch.sin(ps[0]).sum() * t
            loss.backward()
            opt.step()
        s_ours.step()
        s_ref.step()
        for a, b in zip(pa, pb, strict=True):
            assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(ours.param_groups[1]["lr"], ref.param_groups[1]["lr"], rtol=1e-12)
    state = ours.state_dict()
    assert state["state"][0]["step"] == 15 and "exp_avg_sq" in state["state"][1]


# ------------------------------------------------------------------------- a whole MLP via fit


FIT_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), torch.optim.SGD),
    ("AdaGrad", dict(lr=0.05), torch.optim.Adagrad),
    ("RMSProp", dict(lr=0.003, alpha=0.9), torch.optim.RMSprop),
    ("Adam", dict(lr=0.005), torch.optim.Adam),
    ("AdamW", dict(lr=0.005, weight_decay=0.05), torch.optim.AdamW),
]


@pytest.mark.parametrize("name, kw, torch_cls", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_with_each_optimizer_gives_the_torch_history(name, kw, torch_cls):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 2.0, size=(3, 5))
    y = rng.integers(0, 3, size=150)
    X = centers[y] + rng.normal(size=(150, 5))
    np_model = MLP([5, 8, 8, 3], "tanh", rng=1, batchnorm=True)
    th_model = TorchMLP(np_model.sizes, "tanh", dtype=torch.float64, batchnorm=True)
    th_model.load_numpy_params(np_model.params, np_model.buffers)
    opts = getattr(O, name)(**kw), torch_cls(th_model.parameters(), **kw)
    h_np = fit(np_model, X, y, epochs=3, batch_size=16, optimizer=opts[0], X_val=X[:40], y_val=y[:40], rng=2)
    h_th = fit(th_model, X, y, epochs=3, batch_size=16, optimizer=opts[1], X_val=X[:40], y_val=y[:40], rng=2)
    assert_allclose(h_np.train_loss, h_th.train_loss, rtol=1e-10)
    assert_allclose(h_np.val_loss, h_th.val_loss, rtol=1e-10)
    assert h_np.train_loss[-1] < h_np.train_loss[0], "training must make progress"


# ---------------------------------------------------------------------------------- properties

gradients = arrays(np.float64, st.integers(1, 8), elements=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3))


@settings(max_examples=50, deadline=None)
@given(g=gradients, lr=st.floats(1e-4, 1.0))
def test_first_adaptive_steps_are_lr_in_every_coordinate(g, lr):
    """Bias correction: Adam's first step is lr * sign(g) whatever |g| is; AdaGrad's too;
    RMSProp (no correction) moves lr / sqrt(1 - alpha)."""
    for opt, expected in (
        (O.Adam(lr=lr, eps=0.0), lr),
        (O.AdaGrad(lr=lr, eps=0.0), lr),
        (O.RMSProp(lr=lr, alpha=0.99, eps=0.0), lr / np.sqrt(0.01)),
    ):
        w = {"w": np.zeros_like(g)}
        opt.step(w, {"w": g})
        assert_allclose(w["w"], -expected * np.sign(g), rtol=1e-12, err_msg=type(opt).__name__)


@settings(max_examples=30, deadline=None)
@given(mu=st.floats(0.0, 0.95), g=st.floats(-5, 5).filter(lambda v: abs(v) > 1e-3))
def test_momentum_step_tends_to_lr_g_over_1_minus_mu(mu, g):
    opt, w = O.SGD(lr=0.1, momentum=mu), {"w": np.zeros(1)}
    n = 400
    for _ in range(n):
        before = w["w"].copy()
        opt.step(w, {"w": np.array([g])})
    step = (w["w"] - before)[0]
    assert_allclose(step, -0.1 * g * (1 - mu**n) / (1 - mu), rtol=1e-9)
    assert_allclose(step, -0.1 * g / (1 - mu), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(lr=st.floats(1e-4, 0.1), wd=st.floats(1e-3, 1.0), w0=st.floats(-10, 10))
def test_adamw_decay_with_zero_gradient_is_geometric(lr, wd, w0):
    opt, w = O.AdamW(lr=lr, weight_decay=wd), {"w": np.array([w0])}
    for _ in range(10):
        opt.step(w, {"w": np.zeros(1)})
    assert_allclose(w["w"], w0 * (1 - lr * wd) ** 10, rtol=1e-12, atol=1e-300)


def test_coupled_l2_in_adam_is_rescaled_but_adamw_decay_is_not():
    """Adam divides its L2 term by sqrt(v_hat): a weight with large gradients is barely decayed and a
    weight with none is pulled by lr per step; AdamW shrinks both by the same factor 1 - lr wd."""
    noise = np.random.default_rng(0).normal(0, 100, size=100)

    def decay(cls):
        """How much lower each weight ends with weight_decay=0.1 than without, on the same gradients."""
        ends = []
        for wd in (0.1, 0.0):
            opt, p = cls(lr=0.01, weight_decay=wd), {"noisy": np.array([1.0]), "quiet": np.array([1.0])}
            for n in noise:
                opt.step(p, {"noisy": np.array([n]), "quiet": np.array([0.0])})
            ends.append(p)
        return {k: ends[1][k][0] - ends[0][k][0] for k in ends[0]}

    adam, adamw = decay(O.Adam), decay(O.AdamW)
    assert_allclose(adamw["quiet"], 1 - 0.999**100, rtol=1e-9)  # exactly (1 - lr wd)^t
    assert 0.08 < adamw["noisy"] < 0.1  # about the same for the noisy weight
    assert adam["noisy"] < 0.02 * adamw["noisy"]  # coupled L2 is drowned by the large v_hat
    assert adam["quiet"] > 5 * adamw["quiet"]  # ... and magnified where v_hat is tiny


def test_the_two_momentum_conventions_agree_until_the_learning_rate_changes():
    """torch: v = mu v + g, w -= lr v. Keras/Sutskever: u = mu u - lr g, w += u."""
    rng = np.random.default_rng(3)
    gs = rng.normal(size=(30, 4))

    def keras(lrs):
        w, u, out = np.zeros(4), np.zeros(4), []
        for g, lr in zip(gs, lrs, strict=True):
            u = 0.9 * u - lr * g
            w = w + u
            out.append(w.copy())
        return np.array(out)

    def torch_form(lrs):
        opt, p, out = O.SGD(lr=0.0, momentum=0.9), {"w": np.zeros(4)}, []
        for g, lr in zip(gs, lrs, strict=True):
            opt.lr = lr
            opt.step(p, {"w": g})
            out.append(p["w"].copy())
        return np.array(out)

    constant = np.full(30, 0.1)
    assert_allclose(torch_form(constant), keras(constant), rtol=1e-12, atol=1e-14)
    dropped = np.where(np.arange(30) < 15, 0.1, 0.01)
    after = torch_form(dropped)[15:] - keras(dropped)[15:]
    assert np.abs(after).max() > 1e-2  # torch rescales the whole velocity at once


@pytest.mark.parametrize("factor, converges", [(0.5, True), (1.9, True), (2.1, False), (3.0, False)])
def test_gradient_descent_on_a_quadratic_converges_below_2_over_L(factor, converges):
    H = np.diag([4.0, 1.0])  # L = 4
    opt, p = O.SGD(lr=factor / 4.0), {"w": np.array([1.0, 1.0])}
    for _ in range(200):
        opt.step(p, {"w": H @ p["w"]})
    assert (np.linalg.norm(p["w"]) < 1e-3) == converges


# ------------------------------------------------------------------------------- housekeeping


@pytest.mark.parametrize("name", ["SGD", "AdaGrad", "RMSProp", "Adam", "AdamW"])
def test_updates_are_in_place_keep_float32_and_leave_grads_alone(name):
    kw = {"momentum": 0.9} if name in ("SGD", "RMSProp") else {}
    opt = getattr(O, name)(lr=0.01, **kw)
    params = {"W": np.ones((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}
    ids = {k: id(v) for k, v in params.items()}
    grads = {"W": np.full((2, 3), 0.5, dtype=np.float32), "b": np.full(3, -1.0, dtype=np.float32)}
    for _ in range(3):
        opt.step(params, grads)
    assert {k: id(v) for k, v in params.items()} == ids
    assert all(v.dtype == np.float32 for v in params.values())
    assert_array_equal(grads["W"], 0.5)
    assert not np.array_equal(params["W"], 1.0)


def test_a_parameter_without_gradient_is_left_alone():
    params = {"a": np.ones(2), "frozen": np.ones(2)}
    O.Adam(lr=0.1).step(params, {"a": np.ones(2)})
    assert_array_equal(params["frozen"], 1.0)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="Nesterov"):
        O.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        TO.SGD([torch.zeros(1, requires_grad=True)], nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        TO.Adam([torch.zeros(1, requires_grad=True)], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="learning rate"):
        TO.RMSProp([torch.zeros(1, requires_grad=True)], lr=-1.0)


def test_registry_names_every_optimizer():
    assert set(O.OPTIMIZERS) == set(TO.OPTIMIZERS) == {"sgd", "adagrad", "rmsprop", "adam", "adamw"}
    for key, cls in O.OPTIMIZERS.items():
        assert TO.OPTIMIZERS[key].__name__ == cls.__name__


# ------------------------------------------------------------------------------ gradient clipping


def clip_problem(seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(size=(4, 5)) * scale,
        "b1": rng.normal(size=5) * scale,
        "alpha1": np.array(0.3 * scale),  # a 0-d parameter (PReLU's slope)
        "W2": rng.normal(size=(5, 3)) * scale,
    }


def torch_clipped(grads: dict[str, np.ndarray], max_norm: float, norm_type: float, clip=None):
    """(total, clipped gradients) from ``clip`` (default torch.nn.utils.clip_grad_norm_) on copies."""
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = torch.tensor(g.copy())
    total = (clip or torch.nn.utils.clip_grad_norm_)(params, max_norm, norm_type=norm_type)
    return total.item(), {k: p.grad.numpy() for k, p in zip(grads, params, strict=True)}


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 5.0, 100.0])
def test_clip_grad_norm_equals_torch(max_norm, norm_type):
    grads = clip_problem()
    want_total, want = torch_clipped(grads, max_norm, norm_type)
    twin_total, twin = torch_clipped(grads, max_norm, norm_type, clip=TO.clip_grad_norm)
    total = O.clip_grad_norm(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert_allclose(total, want_total, rtol=1e-15)
    assert_allclose(twin_total, want_total, rtol=1e-15)
    for k, g in grads.items():
        assert_allclose(g, want[k], rtol=1e-15, atol=0, err_msg=k)
        assert_allclose(twin[k], want[k], rtol=1e-15, atol=0, err_msg=k)
    if max_norm < want_total:  # the comparison has teeth: these were clipped
        assert not np.allclose(grads["W1"], clip_problem()["W1"])
    else:
        assert_array_equal(grads["W1"], clip_problem()["W1"])


def test_clip_grad_norm_is_in_place_and_keeps_float32():
    grads = {k: v.astype(np.float32) for k, v in clip_problem(1, scale=10.0).items()}
    ids = {k: id(v) for k, v in grads.items()}
    total = O.clip_grad_norm(grads, 1.0)
    assert total > 1.0
    assert {k: id(v) for k, v in grads.items()} == ids and all(v.dtype == np.float32 for v in grads.values())
    assert np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())) == pytest.approx(
        1.0, rel=1e-5
    )


def test_a_non_finite_norm_is_torchs_nan_or_an_error():
    grads = clip_problem(2)
    grads["b1"][0] = np.nan
    want_total, want = torch_clipped(grads, 1.0, 2.0)
    total = O.clip_grad_norm(grads, 1.0)
    assert np.isnan(total) and np.isnan(want_total)
    assert np.all(np.isnan(grads["W1"])) and np.all(np.isnan(want["W1"]))  # every gradient scaled by NaN
    grads = clip_problem(2)
    grads["W2"][0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite|cannot be clipped"):
        O.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    params = [torch.zeros(2, requires_grad=True)]
    params[0].grad = torch.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="cannot be clipped"):
        TO.clip_grad_norm(params, 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_bad_arguments():
    with pytest.raises(ValueError, match="max_norm"):
        O.clip_grad_norm(clip_problem(), -1.0)
    with pytest.raises(TypeError, match="float arrays in place"):
        O.clip_grad_norm({"a": [1.0, 2.0]}, 1.0)
    with pytest.raises(TypeError, match="float arrays in place"):
        O.clip_grad_norm({"a": np.arange(3)}, 1.0)
    assert O.clip_grad_norm({}, 1.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    g=arrays(np.float64, st.integers(1, 12), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    h=arrays(np.float64, (2, 3), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    max_norm=st.floats(1e-3, 1e3),
)
def test_clipped_norm_is_the_smaller_of_norm_and_max_norm_and_the_direction_is_kept(g, h, max_norm):
    grads = {"g": g.copy(), "h": h.copy()}
    norm = np.sqrt(np.sum(g * g) + np.sum(h * h))
    total = O.clip_grad_norm(grads, max_norm)
    assert_allclose(total, norm, rtol=1e-12, atol=1e-300)
    after = np.sqrt(np.sum(grads["g"] ** 2) + np.sum(grads["h"] ** 2))
    # the 1e-6 in max_norm / (norm + 1e-6) leaves the clipped norm a hair below max_norm
    assert after <= max_norm * (1 + 1e-12)
    if max_norm / (norm + 1e-6) < 1.0:  # clipped (a norm just under max_norm is, by a hair)
        assert_allclose(after, max_norm * norm / (norm + 1e-6), rtol=1e-10)
    else:
        assert_array_equal(grads["g"], g)
        assert_array_equal(grads["h"], h)
    scale = after / norm if norm > 0 else 1.0  # one factor for every entry: the direction is kept
    assert_allclose(grads["g"], g * scale, rtol=1e-12, atol=1e-300)
    assert_allclose(grads["h"], h * scale, rtol=1e-12, atol=1e-300)
