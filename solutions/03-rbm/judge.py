"""Judge of assignment 03 (RBMs): every graded part, decided outside the student's kernel.

Each part checks the visible examples of its test cell and hidden inputs drawn from ``rng`` (seeded
by the student's id: every student gets other numbers and other random streams). The samplers'
outputs are compared bit for bit with the judge's own replay of the same Generator. Parts 4 and 5
are graded on their own: their probes run the student's function with the course's samplers in
place of the student's ``sample_h`` and ``sample_v`` (swapped in the student's namespace for the
call, restored in ``finally``). The grading kernel has no ``course_lib.numpy_impl.rbm`` (it
imports scipy, and it is what the assignment asks for), so the stand-ins are ``SAMPLERS``, NumPy
code sent with the probe and run here too, for the expected values. See
``course_lib/grading/judge.py`` for how a part talks to the kernel.
"""

import functools
import textwrap

import numpy as np

from course_lib.grading.judge import Judge, StudentError
from course_lib.numpy_impl import rbm as course_rbm

judge = Judge(
    "03-rbm",
    # What the assignment asks students to write (the RBM, and the DBN's greedy stacking): the
    # grading kernel's course_lib lacks them. The experiment's exact gradients need the RBM, so the
    # judge computes them (``experiment_provided``).
    forbidden=["course_lib.numpy_impl.rbm", "course_lib.numpy_impl.dbn"],
)

#: The course's samplers (``course_lib.numpy_impl.rbm.sample_hidden`` / ``sample_visible``: the
#: same signatures, the same single ``rng.random(p.shape)`` draw, the notebook's sigmoid).
SAMPLERS = """
def __course_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def __course_sample_h(v, W, b_h, rng):
    p = __course_sigmoid(v @ W + b_h)
    return p, (rng.random(p.shape) < p).astype(p.dtype)


def __course_sample_v(h, W, b_v, rng):
    p = __course_sigmoid(h @ W.T + b_v)
    return p, (rng.random(p.shape) < p).astype(p.dtype)
"""

#: ``body`` (instructor code) with the course's samplers in place of the student's.
SWAPPED = SAMPLERS + """
__yours = {__n: GLOBALS[__n] for __n in ("sample_h", "sample_v") if __n in GLOBALS}
GLOBALS["sample_h"], GLOBALS["sample_v"] = __course_sample_h, __course_sample_v
try:
{body}
finally:
    for __n in ("sample_h", "sample_v"):
        GLOBALS.pop(__n, None)
    GLOBALS.update(__yours)
"""


def swapped(body: str) -> str:
    return SWAPPED.replace("{body}", textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))


@functools.cache
def _samplers() -> dict:
    ns = {"np": np}
    exec(compile(SAMPLERS, "<judge samplers>", "exec"), ns)  # noqa: S102 - the judge's own code
    return ns


def sigmoid(x):
    return _samplers()["__course_sigmoid"](x)


def sample_h_ref(v, W, b_h, rng):
    return _samplers()["__course_sample_h"](v, W, b_h, rng)


def sample_v_ref(h, W, b_v, rng):
    return _samplers()["__course_sample_v"](h, W, b_v, rng)


def gen(rng) -> int:
    """A fresh seed for a Generator handed to the student's code (replayed here)."""
    return int(rng.integers(2**63))


def vetted(rng, deviation, limit=3.5, tries=50):
    """A seed for a statistical check: the first drawn from ``rng`` whose exact replay by the
    judge's reference deviates by less than ``limit`` (``deviation(seed)``), well inside the
    check's bound. A right answer, which draws exactly as the reference does, then passes for
    every student; a wrong one is still far off."""
    for _ in range(tries):
        seed = gen(rng)
        if np.max(deviation(seed)) < limit:
            return seed
    raise RuntimeError("no vetted seed: the judge's statistical check is too tight")


def binary(rng, size, rate=0.5):
    """Binary inputs: each entry 1.0 with probability ``rate``."""
    return (rng.random(size) < rate) * 1.0


def close(out, expected, what, rtol=1e-10, atol=1e-12):
    assert np.shape(out) == np.shape(expected), f"{what} must have shape {np.shape(expected)}, got {np.shape(out)}"
    assert np.allclose(np.asarray(out, dtype=float), expected, rtol=rtol, atol=atol), what


# --- 1. sample_h ---------------------------------------------------------------------------------

SAMPLE = """
__out = {f}({x}, W, {b}, rng)
__after = [{x}, W, {b}]
__rng = rng
"""


def sample(k, f, x, W, bias, seed):
    """``f(x, W, b, rng)`` in the kernel: (its output, the inputs after the call, the Generator
    after the call)."""
    xname, bname = ("v", "b_h") if f == "sample_h" else ("h", "b_v")
    code = SAMPLE.format(f=f, x=xname, b=bname)
    got = k.run(code, {xname: x, "W": W, bname: bias, "rng": np.random.default_rng(seed)},
                ["__out", "__after", "__rng"])  # fmt: skip
    out = got["__out"]
    assert isinstance(out, tuple) and len(out) == 2, (
        f"{f} must return the pair (p, sample), got {type(out).__name__}"
        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
    )
    assert all(np.array_equal(a, b) for a, b in zip(got["__after"], (x, W, bias))), (
        f"{f} must not modify its inputs"
    )
    return out, got["__rng"]


def check_sample_h(k, v, W, b_h, seed, what, p_msg, h_msg):
    (p_h, h), after = sample(k, "sample_h", v, W, b_h, seed)
    draws = np.random.default_rng(seed)
    p_ref, h_ref = sample_h_ref(v, W, b_h, draws)
    shape = (v.shape[0], W.shape[1])
    assert np.shape(p_h) == shape and np.shape(h) == shape, (
        f"p_h and h must have shape (N, H) = {shape}, got {np.shape(p_h)} and {np.shape(h)}"
    )
    assert np.allclose(np.asarray(p_h, dtype=float), p_ref, rtol=1e-10, atol=0), f"{p_msg} {what}"
    assert np.array_equal(h, h_ref), f"{h_msg} {what}"
    assert isinstance(after, np.random.Generator) and after.random() == draws.random(), (
        "sample_h must draw exactly N * H uniforms from rng (one rng.random(p_h.shape) call)"
    )


@judge.part("test_sample_h", answers=["sample_h"])
def _(k, rng):
    v = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=float)
    W = np.array([[0.5, -1.0, 0.3, 2.0], [2.0, 0.25, -0.7, -1.0], [-0.5, 1.5, 0.1, 0.4]])
    b_h = np.array([0.1, -0.2, 0.0, 0.3])
    check_sample_h(
        k, v, W, b_h, 11, "(the visible example, rng = np.random.default_rng(11))",
        "p_h should be sigmoid(v @ W + b_h)",
        "the sample is wrong: draw u = rng.random(p_h.shape) once, and set h = 1.0 where u < p_h "
        "(not u > p_h, not u <= 1 - p_h)",
    )  # fmt: skip
    N, D, H = (int(n) for n in rng.integers(3, 8, size=3))
    v_hid, W_hid, b_h_hid = binary(rng, (N, D)), rng.normal(0, 1.5, (D, H)), rng.normal(size=H)
    check_sample_h(
        k, v_hid, W_hid, b_h_hid, gen(rng), "on other inputs", "p_h is wrong",
        "the hidden sample is wrong: one u = rng.random(p_h.shape), h = 1.0 where u < p_h",
    )  # fmt: skip
    # Over many samples each unit is on with frequency p_h (moderate probabilities: the normal
    # approximation of the binomial holds). The stream is one whose exact replay passes with room
    # to spare, so a right answer passes for every student.
    n = 20000
    W_many, b_many = rng.normal(0, 0.5, (D, H)), 0.5 * b_h_hid
    p_many = sigmoid(v_hid[:1] @ W_many + b_many)[0]
    spread = np.sqrt((p_many * (1 - p_many) + 1e-3) / n)
    seed = vetted(rng, lambda s: np.abs(
        sample_h_ref(np.repeat(v_hid[:1], n, axis=0), W_many, b_many, np.random.default_rng(s))[1].mean(axis=0)
        - p_many) / spread)  # fmt: skip
    got = k.run("__out = sample_h(np.repeat(v[:1], n, axis=0), W, b_h, rng)",
                {"v": v_hid, "n": n, "W": W_many, "b_h": b_many, "rng": np.random.default_rng(seed)},
                ["__out"])["__out"]  # fmt: skip
    assert isinstance(got, tuple) and len(got) == 2 and np.shape(got[1]) == (n, H), (
        f"sample_h must return (p_h, h) with h of shape (N, H) = {(n, H)}"
    )
    freq = np.asarray(got[1], dtype=float).mean(axis=0)
    assert np.all(np.abs(freq - p_many) < 5 * spread), (
        "over many samples, each hidden unit must be on with frequency p_h"
    )


# --- 2. sample_v ---------------------------------------------------------------------------------


def check_sample_v(k, h, W, b_v, seed, what, p_msg, v_msg):
    (p_v, v), after = sample(k, "sample_v", h, W, b_v, seed)
    draws = np.random.default_rng(seed)
    p_ref, v_ref = sample_v_ref(h, W, b_v, draws)
    shape = (h.shape[0], W.shape[0])
    assert np.shape(p_v) == shape and np.shape(v) == shape, (
        f"p_v and v must have shape (N, D) = {shape}, got {np.shape(p_v)} and {np.shape(v)}"
    )
    assert np.allclose(np.asarray(p_v, dtype=float), p_ref, rtol=1e-10, atol=0), f"{p_msg} {what}"
    assert np.array_equal(v, v_ref), f"{v_msg} {what}"
    assert isinstance(after, np.random.Generator) and after.random() == draws.random(), (
        "sample_v must draw exactly N * D uniforms from the rng it is given (one rng.random(p_v.shape) "
        "call), never from NumPy's global random functions"
    )


@judge.part("test_sample_v", answers=["sample_v"])
def _(k, rng):
    h = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=float)
    W = np.array([[0.5, -1.0, 0.3, 2.0], [2.0, 0.25, -0.7, -1.0], [-0.5, 1.5, 0.1, 0.4]])
    b_v = np.array([-0.3, 0.2, 0.5])
    check_sample_v(
        k, h, W, b_v, 12, "(the visible example, rng = np.random.default_rng(12))",
        "p_v should be sigmoid(h @ W.T + b_v)",
        "the sample is wrong: one u = rng.random(p_v.shape), v = 1.0 where u < p_v, using the rng argument",
    )  # fmt: skip
    N, H, D = (int(n) for n in rng.integers(3, 8, size=3))
    h_hid, W_hid, b_v_hid = binary(rng, (N, H)), rng.normal(0, 1.5, (D, H)), rng.normal(size=D)
    check_sample_v(k, h_hid, W_hid, b_v_hid, gen(rng), "on other inputs", "p_v is wrong",
                   "the visible sample is wrong")  # fmt: skip


# --- 3. free_energy ------------------------------------------------------------------------------


#: The course's free energy (logaddexp: exact for any hidden input).
free_energy_ref = course_rbm.free_energy


def brute_force(v, W, b_v, b_h):
    every_h = course_rbm.all_states(W.shape[1])
    E = -(v @ b_v)[:, None] - (every_h @ b_h)[None, :] - v @ W @ every_h.T  # (N, 2^H)
    m = (-E).max(axis=1, keepdims=True)
    return -(m[:, 0] + np.log(np.exp(-E - m).sum(axis=1)))


STRICT_F = """
with np.errstate(over="raise", invalid="raise"):
    __F = free_energy(v, W, b_v, b_h)
"""


@judge.part("test_free_energy", answers=["free_energy"])
def _(k, rng):
    visible = np.random.default_rng(13)
    W, b_v, b_h = visible.normal(size=(3, 4)), visible.normal(size=3), visible.normal(size=4)
    v = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    F = k.call("free_energy", v, W, b_v, b_h)
    assert np.shape(F) == (3,), f"free_energy must return one value per row, shape (3,), got {np.shape(F)}"
    assert np.allclose(np.asarray(F, dtype=float), brute_force(v, W, b_v, b_h), rtol=1e-10, atol=1e-12), (
        "F(v) should equal -log sum_h exp(-E(v, h)) (the visible example). Check the signs: "
        "F = -v . b_v - sum_j log(1 + exp(b_h + v W)_j)"
    )
    N, D, H = int(rng.integers(3, 7)), int(rng.integers(4, 8)), int(rng.integers(3, 7))
    v_hid = binary(rng, (N, D))
    W_hid, b_v_hid, b_h_hid = rng.normal(0, 2, (D, H)), rng.normal(size=D), rng.normal(size=H)
    F_hid = k.call("free_energy", v_hid, W_hid, b_v_hid, b_h_hid)
    assert np.shape(F_hid) == (N,), f"free_energy must return shape (N,) = ({N},), got {np.shape(F_hid)}"
    expected = free_energy_ref(v_hid, W_hid, b_v_hid, b_h_hid)
    assert np.allclose(expected, brute_force(v_hid, W_hid, b_v_hid, b_h_hid), rtol=1e-10, atol=1e-12)
    assert np.allclose(np.asarray(F_hid, dtype=float), expected, rtol=1e-10, atol=1e-12), (
        "the free energy is wrong on other inputs"
    )
    big_v = np.ones((2, D))
    big_v[1] = 0.0
    W_big, b_h_big = 300 * W_hid, 200 * b_h_hid
    b_h_big[0] = 900.0  # a hidden input far above 709 for the zero row, whatever the weights
    try:
        F_big = k.run(STRICT_F, {"v": big_v, "W": W_big, "b_v": b_v_hid, "b_h": b_h_big}, ["__F"])["__F"]
    except StudentError as err:
        if err.type == "FloatingPointError":
            raise AssertionError(
                f"free_energy overflowed on large weights ({err.message}): log(1 + exp(a)) is np.logaddexp(0, a)"
            ) from None
        raise
    assert np.shape(F_big) == (2,) and np.allclose(
        np.asarray(F_big, dtype=float), free_energy_ref(big_v, W_big, b_v_hid, b_h_big), rtol=1e-10, atol=1e-9
    ), "with large weights (hidden inputs in the hundreds) the free energy must still be exact"


# --- 4. cd1_update -------------------------------------------------------------------------------


def cd1_ref(v0, W, b_v, b_h, lr, rng):
    p_h0, h0 = sample_h_ref(v0, W, b_h, rng)
    _, v1 = sample_v_ref(h0, W, b_v, rng)
    p_h1 = sigmoid(v1 @ W + b_h)
    positive, negative = v0.T @ p_h0, v1.T @ p_h1  # (D, H) each
    return (W + lr * (positive - negative) / len(v0), b_v + lr * (v0 - v1).mean(axis=0),
            b_h + lr * (p_h0 - p_h1).mean(axis=0))  # fmt: skip


CD1 = swapped("""
__out = cd1_update(v0, W, b_v, b_h, lr, rng)
__after = [v0, W, b_v, b_h]
""")


def cd1(k, v0, W, b_v, b_h, lr, seed):
    """The student's cd1_update with the course's samplers: its output, checked for shape and
    for leaving the inputs alone."""
    try:
        got = k.run(CD1, {"v0": v0, "W": W, "b_v": b_v, "b_h": b_h, "lr": lr, "rng": np.random.default_rng(seed)},
                    ["__out", "__after"])  # fmt: skip
    except StudentError as err:
        if err.type == "ValueError":
            raise AssertionError(
                f"cd1_update raised ValueError: {err.message.strip()}. Check the shapes: v0.T @ p_h0 is "
                "(D, N) x (N, H) = (D, H), like W"
            ) from None
        raise
    out = got["__out"]
    assert isinstance(out, tuple) and len(out) == 3, (
        f"cd1_update must return (W_new, b_v_new, b_h_new), got {type(out).__name__}"
    )
    assert all(np.array_equal(a, b) for a, b in zip(got["__after"], (v0, W, b_v, b_h))), (
        "cd1_update must not modify its inputs: return new arrays (W + lr * dW, not W += ...)"
    )
    shapes = (W.shape, b_v.shape, b_h.shape)
    assert tuple(np.shape(a) for a in out) == shapes, (
        f"the new parameters must keep the shapes (D, H), (D,), (H,) = {shapes}: got "
        f"{tuple(np.shape(a) for a in out)}"
    )
    return [np.asarray(a, dtype=float) for a in out]


def check_cd1(out, expected, what):
    W_new, b_v_new, b_h_new = out
    close(b_v_new, expected[1],
          f"b_v_new is wrong {what}: b_v + lr * mean(v0 - v1), with h0 drawn first and v1 second")  # fmt: skip
    close(b_h_new, expected[2], f"b_h_new is wrong {what}: b_h + lr * mean(p_h0 - p_h1), with probabilities, not samples")
    close(W_new, expected[0],
          f"W_new is wrong {what}: W + lr * (v0.T @ p_h0 - v1.T @ p_h1) / N, data term minus model term")  # fmt: skip


AVERAGED = swapped("__out = cd1_update(np.repeat(rows, copies, axis=0), W, b_v, b_h, 1.0, rng)")


@judge.part("test_cd1_update", answers=["cd1_update"], stand_ins=["sample_h", "sample_v"])
def _(k, rng):
    visible = np.random.default_rng(14)
    v0 = binary(visible, (5, 4))
    W, b_v, b_h = visible.normal(0.0, 0.5, size=(4, 3)), visible.normal(size=4), visible.normal(size=3)
    out = cd1(k, v0, W, b_v, b_h, 0.1, 15)
    check_cd1(out, cd1_ref(v0, W, b_v, b_h, 0.1, np.random.default_rng(15)), "(the visible example)")
    N, D, H = int(rng.integers(5, 10)), int(rng.integers(4, 8)), int(rng.integers(3, 7))
    v0_hid = binary(rng, (N, D), 0.4)
    W_hid, b_v_hid, b_h_hid = rng.normal(0.0, 1.0, size=(D, H)), rng.normal(size=D), rng.normal(size=H)
    lr, seed = float(rng.uniform(0.02, 0.2)), gen(rng)
    out = cd1(k, v0_hid, W_hid, b_v_hid, b_h_hid, lr, seed)
    check_cd1(out, cd1_ref(v0_hid, W_hid, b_v_hid, b_h_hid, lr, np.random.default_rng(seed)), "on other inputs")
    same = cd1(k, v0_hid, W_hid, b_v_hid, b_h_hid, 0.0, gen(rng))
    assert all(np.array_equal(a, b) for a, b in zip(same, (W_hid, b_v_hid, b_h_hid))), (
        "with lr = 0 the parameters must not change"
    )
    # Averaged over many copies of a few rows, the update of W is the expected CD-1 gradient.
    D6, copies = 6, 4000
    W6, b_v6, b_h6 = rng.normal(0.0, 0.7, size=(D6, H)), rng.normal(size=D6), rng.normal(size=H)
    rows = course_rbm.all_states(D6)[rng.choice(2**D6, size=6)]
    model = course_rbm.RBM(D6, H)
    model.W, model.b_v, model.b_h = W6, b_v6, b_h6
    expected = course_rbm.expected_cd_gradient(model, rows, 1)["W"]
    seed = vetted(rng, lambda s: np.abs(
        cd1_ref(np.repeat(rows, copies, axis=0), W6, b_v6, b_h6, 1.0, np.random.default_rng(s))[0] - W6 - expected
    ), limit=0.015)  # the check allows 0.03  # fmt: skip
    averaged = k.run(AVERAGED, {"rows": rows, "copies": copies, "W": W6, "b_v": b_v6, "b_h": b_h6,
                                "rng": np.random.default_rng(seed)}, ["__out"])["__out"]  # fmt: skip
    assert isinstance(averaged, tuple) and len(averaged) == 3 and np.shape(averaged[0]) == W6.shape, (
        "cd1_update must return (W_new, b_v_new, b_h_new), W_new of W's shape"
    )
    assert np.allclose(np.asarray(averaged[0], dtype=float) - W6, expected, rtol=0, atol=0.03), (
        "averaged over many rows, your update of W must equal the expected CD-1 gradient"
    )


# --- 5. greedy_pretrain --------------------------------------------------------------------------

GREEDY = swapped("""
__seen, __rng_ok = [], []


def __recording_trainer(data, n_hidden, rng):
    __seen.append(np.array(data, copy=True))
    __rng_ok.append(rng is __given)
    d = data.shape[1]
    W = np.cos(np.arange(d * n_hidden).reshape(d, n_hidden) + d)
    return W, np.linspace(-1.0, 1.0, d), np.linspace(0.5, -0.5, n_hidden)


__given = rng
__layers = greedy_pretrain(X, sizes, __recording_trainer, rng)
""")


def trainer_ref(d, n_hidden):
    """What the recording trainer returns for data with d columns."""
    W = np.cos(np.arange(d * n_hidden).reshape(d, n_hidden) + d)
    return W, np.linspace(-1.0, 1.0, d), np.linspace(0.5, -0.5, n_hidden)


def check_greedy(k, X, sizes, seed, what):
    got = k.run(GREEDY, {"X": X, "sizes": list(sizes), "rng": np.random.default_rng(seed)},
                ["__seen", "__rng_ok", "__layers"])  # fmt: skip
    seen, layers = got["__seen"], got["__layers"]
    L = len(sizes)
    assert len(seen) == L, f"train_rbm must be called once per hidden size ({L} {what}), not {len(seen)} times"
    assert isinstance(layers, list) and len(layers) == L, (
        f"greedy_pretrain must return a list of {L} (W, b_v, b_h) ({what})"
    )
    assert np.array_equal(seen[0], X), "the first RBM must be trained on X itself"
    assert all(got["__rng_ok"]), "pass train_rbm the rng greedy_pretrain was given"
    below = X  # what RBM i is trained on
    for i, n_hidden in enumerate(sizes):
        if i > 0:
            assert np.shape(seen[i]) == below.shape, (
                f"RBM {i + 1} must be trained on the (N, H{i}) = {below.shape} hidden layer of RBM {i} "
                f"({what}), got shape {np.shape(seen[i])}"
            )
            assert np.allclose(seen[i], below, rtol=1e-10, atol=1e-12), (
                f"wrong input for RBM {i + 1} ({what}): each RBM is trained on sigmoid(data @ W + b_h), the "
                "hidden probabilities of the one below it, not on binary samples, not with b_v"
            )
        W, b_v, b_h = trainer_ref(below.shape[1], n_hidden)
        assert isinstance(layers[i], (tuple, list)) and len(layers[i]) == 3 and all(
            np.array_equal(a, b) for a, b in zip(layers[i], (W, b_v, b_h))
        ), f"return the (W, b_v, b_h) that train_rbm gave for each layer, bottom layer first ({what})"
        below = sigmoid(below @ W + b_h)


@judge.part("test_greedy_pretrain", answers=["greedy_pretrain"], stand_ins=["sample_h", "sample_v"])
def _(k, rng):
    X = binary(np.random.default_rng(16), (6, 5))
    check_greedy(k, X, [4, 3], 17, "in the visible example")
    N, D = int(rng.integers(4, 9)), int(rng.integers(5, 9))
    sizes = [int(n) for n in rng.integers(2, 8, size=3)]
    check_greedy(k, rng.random((N, D)), sizes, gen(rng), f"for hidden sizes {sizes}")


# --- 6. the experiment ---------------------------------------------------------------------------

KS = (1, 2, 5, 10, 20)


def number(x):
    """``x`` as a float when it is a real number (a NumPy scalar or a one-element array included),
    else None: what crosses from the kernel may be anything."""
    if isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in "iuf":
        x = x.reshape(()).item()
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        return float(x)
    return None


def frobenius(a):
    return float(np.sqrt((a * a).sum()))


@functools.cache
def _experiment():
    """What the locked cell experiment_provided computes, with the course's RBM."""
    g = np.random.default_rng(0)
    model = course_rbm.RBM(6, 4, rng=0)
    model.W, model.b_v, model.b_h = g.normal(0.0, 2.5, size=(6, 4)), g.normal(size=6), g.normal(size=4)
    data = course_rbm.all_states(6)[g.choice(64, size=10)]  # the cell's X_tiny
    true_gradient = course_rbm.exact_gradient(model, data)["W"]
    return data, true_gradient, {k: course_rbm.expected_cd_gradient(model, data, k)["W"] for k in KS}


@judge.provide("experiment_provided")
def _():
    """The cell needs the course's RBM, which the grading kernel does not have: the judge computes
    (the same seeds, the same numbers) and hands the kernel the results."""
    X_tiny, exact, cd = _experiment()
    return {"X_tiny": X_tiny.copy(), "exact": exact.copy(), "cd": {k: g.copy() for k, g in cd.items()}}


@judge.part("test_experiment")
def _(k, rng):
    _, exact, cd = _experiment()
    values = k.run("__v = {n: GLOBALS.get(n) for n in ('rel_errors', 'cosine_cd1', 'smallest_k')}",
                   outputs=["__v"])["__v"]  # fmt: skip
    rel_errors, cosine_cd1, smallest_k = values["rel_errors"], values["cosine_cd1"], values["smallest_k"]
    assert isinstance(rel_errors, dict) and set(rel_errors) == set(KS), (
        "rel_errors must be a dict with one entry per k of cd: 1, 2, 5, 10, 20"
    )
    errors = {key: number(e) for key, e in rel_errors.items()}
    assert all(e is not None and np.isfinite(e) and e >= 0 for e in errors.values()), (
        "relative errors are non-negative numbers"
    )
    cosine = number(cosine_cd1)
    assert cosine is not None and -1.0 <= cosine <= 1.0, "cosine_cd1 must be a number in [-1, 1]"
    smallest = number(smallest_k)
    assert smallest in KS, "smallest_k must be one of the k of cd"
    want = {k_: frobenius(cd[k_] - exact) / frobenius(exact) for k_ in KS}
    for k_ in KS:
        assert np.isclose(errors[k_], want[k_], rtol=1e-6, atol=0), (
            f"rel_errors[{k_}] must be ||cd[k] - exact|| / ||exact|| (divide by the exact gradient's norm)"
        )
    cos = float((cd[1] * exact).sum()) / (frobenius(cd[1]) * frobenius(exact))
    assert np.isclose(cosine, cos, rtol=1e-6, atol=0), "cosine_cd1 must be <cd[1], exact> / (||cd[1]|| ||exact||)"
    first = min(k_ for k_ in KS if want[k_] < 0.01)
    assert smallest == first, "smallest_k must be the smallest k whose relative error is below 0.01"
