"""MultiSeedMLP and fit_seeds against their reference: S independent NumPy MLPs, float64.

* initialisation: member s's parameters and buffers equal ``MLP(sizes, ..., rng=seeds[s])``'s
  bit for bit, for several activations, initializers and options;
* ``loss_and_grads`` (with and without dropout Generators, batch norm before and after, layer
  norm, RMSNorm, residual skips, L1 + L2, PReLU, GELU, SiLU) equals every member's
  ``MLP.loss_and_grads`` to 1e-12, and so
  do the running averages it updates; evaluation methods and ``apply_constraints`` too;
* central differences of the batched loss (summed over the seeds) against its gradient;
* ``fit_seeds`` with 3 seeds equals 3 separate ``fit`` runs (parameters, buffers and every
  ``History`` field, to 1e-10) for SGD with momentum and a schedule, Adam with dropout and
  max-norm, batch norm, layer norm and RMSNorm with gradient clipping (each member clipped by its
  own norm), and one training set per member;
* a Hypothesis property: ``member(s).forward(x) == forward(x)[s]`` for random small nets;
* bad input gets a clear ValueError.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.data import load_digits
from course_lib.gradcheck import numerical_gradient, rel_error
from course_lib.numpy_impl import losses, regularization, schedules
from course_lib.numpy_impl.activations import ACTIVATIONS
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.multiseed import MultiSeedMLP
from course_lib.numpy_impl.optimizers import SGD, Adam, RMSProp, clip_grad_norm, clip_grad_norm_seeds
from course_lib.training import History, SeedHistory, fit, fit_seeds

SIZES = [6, 5, 5, 3]
SEEDS = [3, 1, 4]
S = len(SEEDS)
TOL = dict(rtol=1e-12, atol=1e-12)  # one step of the batched model against one MLP step
FIT_TOL = dict(rtol=0, atol=1e-10)  # whole training runs

CONFIGS = {
    "relu": {},
    "tanh-xavier-uniform": dict(activation="tanh", init="xavier_uniform"),
    "sigmoid-normal": dict(activation="sigmoid", init="normal:0.3"),
    "prelu-bn-before-residual": dict(activation="prelu", batchnorm=True, residual=True),
    "elu-bn-after": dict(activation="elu", batchnorm="after", bn_momentum=0.3),
    "leaky-l1-l2-maxnorm": dict(activation="leaky_relu", l1=1e-2, l2=1e-1, max_norm=1.0),
    "dropout": dict(dropout=[0.3, 0.5], input_dropout=0.2),
    "prelu-dropout-bn-after-l2": dict(activation="prelu", dropout=0.25, batchnorm="after", l2=1e-2),
    "gelu-layernorm": dict(activation="gelu", norm="layer"),
    "silu-rms-residual-eps": dict(activation="silu", norm="rms", residual=True, norm_eps=1e-3),
    "prelu-layernorm-dropout-l2": dict(activation="prelu", norm="layer", dropout=0.2, l2=1e-2),
}


def randomize(model: MultiSeedMLP, seed: int = 0) -> MultiSeedMLP:
    """Move every parameter and buffer away from its initial value (biases 0, gamma 1, ...), so that a
    mix-up of members or layers shows."""
    rng = np.random.default_rng(seed)
    for k, p in model.params.items():
        if k.startswith("alpha"):
            p[...] = rng.uniform(0.05, 0.5, size=p.shape)
        else:
            p += rng.normal(0, 0.3, size=p.shape)
    for k, b in model.buffers.items():
        b[...] = (
            rng.uniform(0.5, 2.0, size=b.shape) if k.startswith("running_var") else rng.normal(size=b.shape)
        )
    return model


def references(model: MultiSeedMLP, cfg: dict) -> list[MLP]:
    """S independent MLPs holding the model's members' values (copied by hand, not by ``member``)."""
    refs = []
    for s, seed in enumerate(model.seeds):
        ref = MLP(model.sizes, rng=seed, **cfg)
        for k in ref.params:
            ref.params[k][...] = model.params[k][s]
        for k in ref.buffers:
            ref.buffers[k][...] = model.buffers[k][s]
        refs.append(ref)
    return refs


def batch(B: int = 7, seed: int = 1, shared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (B,) if shared else (S, B)
    return rng.normal(size=(*shape, SIZES[0])), rng.integers(0, SIZES[-1], size=shape)


def mask_rngs(seed: int = 10) -> list[np.random.Generator]:
    return [np.random.default_rng(seed + s) for s in range(S)]


# ------------------------------------------------------------------------------ initialisation


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_init_equals_mlp_bit_for_bit(cfg):
    model = MultiSeedMLP(SIZES, SEEDS, **cfg)
    for s, seed in enumerate(SEEDS):
        ref = MLP(SIZES, rng=seed, **cfg)
        assert set(model.params) == set(ref.params) and set(model.buffers) == set(ref.buffers)
        for k, v in ref.params.items():
            assert model.params[k].shape == (S, *v.shape) and model.params[k].dtype == v.dtype
            assert_array_equal(model.params[k][s], v, err_msg=k)
        for k, v in ref.buffers.items():
            assert model.buffers[k].shape == (S, *v.shape)
            assert_array_equal(model.buffers[k][s], v, err_msg=k)
    assert model.n_seeds == S and model.n_layers == len(SIZES) - 1
    assert model.has_dropout == MLP(SIZES, **cfg).has_dropout


def test_seeds_as_an_array():
    model = MultiSeedMLP([4, 3, 2], np.arange(5, 8))
    for s, seed in enumerate(range(5, 8)):
        assert_array_equal(model.params["W2"][s], MLP([4, 3, 2], rng=seed).params["W2"])


def test_init_with_generators_and_float32():
    seeds = [np.random.default_rng(7), np.random.default_rng(8)]
    model = MultiSeedMLP([4, 3, 2], seeds, activation="tanh", dtype=np.float32)
    for s, seed in enumerate([7, 8]):
        ref = MLP([4, 3, 2], activation="tanh", rng=np.random.default_rng(seed), dtype=np.float32)
        for k, v in ref.params.items():
            assert model.params[k].dtype == np.float32
            assert_array_equal(model.params[k][s], v, err_msg=k)


def test_member_is_an_independent_copy():
    model = randomize(MultiSeedMLP(SIZES, SEEDS, batchnorm=True))
    m = model.member(1)
    assert isinstance(m, MLP)
    for k in m.params:
        assert_array_equal(m.params[k], model.params[k][1])
    for k in m.buffers:
        assert_array_equal(m.buffers[k], model.buffers[k][1])
    before = model.params["W1"].copy()
    m.params["W1"] += 1.0
    assert_array_equal(model.params["W1"], before)
    assert_array_equal(model.member(-1).params["W2"], model.params["W2"][-1])
    with pytest.raises(IndexError):
        model.member(S)


# ------------------------------------------------------------------------------ one step


@pytest.mark.parametrize("with_rngs", [True, False], ids=["rngs", "no-rngs"])
@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_loss_and_grads_equal_each_members(cfg, with_rngs):
    model = randomize(MultiSeedMLP(SIZES, SEEDS, **cfg))
    refs = references(model, cfg)
    x, y = batch()
    rngs = mask_rngs() if with_rngs else None
    out, grads = model.loss_and_grads(x, y, rngs)
    assert out.shape == (S,)
    for s, ref in enumerate(refs):
        loss, g = ref.loss_and_grads(x[s], y[s], rng=mask_rngs()[s] if with_rngs else None)
        assert_allclose(out[s], loss, **TOL)
        assert set(grads) == set(g) == set(ref.params)
        for k, v in g.items():
            assert grads[k].shape == model.params[k].shape
            assert_allclose(grads[k][s], v, **TOL, err_msg=k)
        for k, v in ref.buffers.items():  # the running averages moved the same way
            assert_allclose(model.buffers[k][s], v, **TOL, err_msg=k)
    if with_rngs and model.has_dropout:  # the masks were really drawn: other masks, other gradients
        _, other = model.loss_and_grads(x, y, mask_rngs(99), update_running=False)
        assert np.abs(other["W1"] - grads["W1"]).max() > 1e-3


@pytest.mark.parametrize(
    "cfg", [CONFIGS["dropout"], CONFIGS["prelu-bn-before-residual"]], ids=["dropout", "bn"]
)
def test_loss_and_grads_with_inputs_shared_by_the_members(cfg):
    model = randomize(MultiSeedMLP(SIZES, SEEDS, **cfg))
    refs = references(model, cfg)
    x, y = batch(shared=True)
    out, grads = model.loss_and_grads(x, y, mask_rngs())
    for s, ref in enumerate(refs):
        loss, g = ref.loss_and_grads(x, y, rng=mask_rngs()[s])
        assert_allclose(out[s], loss, **TOL)
        for k, v in g.items():
            assert_allclose(grads[k][s], v, **TOL, err_msg=k)


def test_update_running_false_leaves_the_buffers():
    model = randomize(MultiSeedMLP(SIZES, SEEDS, batchnorm="after"))
    before = {k: v.copy() for k, v in model.buffers.items()}
    model.loss_and_grads(*batch(), update_running=False)
    for k, v in before.items():
        assert_array_equal(model.buffers[k], v)
    model.loss_and_grads(*batch())
    assert not np.allclose(model.buffers["running_mean1"], before["running_mean1"])


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_evaluation_methods_equal_each_members(cfg):
    model = randomize(MultiSeedMLP(SIZES, SEEDS, **cfg))
    refs = references(model, cfg)
    x, y = batch(B=9)
    xs, ys = batch(B=9, shared=True)
    logits, loss, loss_train = model.forward(x), model.loss(x, y), model.loss(x, y, train=True)
    ce, acc = model.evaluate(xs, ys)
    hidden, norms = model.hidden_activations(x), model.gradient_norms(xs, ys)
    assert logits.shape == (S, 9, SIZES[-1]) and norms.shape == (S, model.n_layers)
    for s, ref in enumerate(refs):
        assert_allclose(logits[s], ref.forward(x[s]), **TOL)
        assert_allclose(model.forward(xs)[s], ref.forward(xs), **TOL)
        assert_allclose(loss[s], ref.loss(x[s], y[s]), **TOL)
        assert_allclose(loss_train[s], ref.loss(x[s], y[s], train=True), **TOL)
        assert_allclose(ce[s], losses.cross_entropy(ref.forward(xs), ys), **TOL)
        assert acc[s] == ref.accuracy(xs, ys) == model.accuracy(xs, ys)[s]
        assert_array_equal(model.predict(x)[s], ref.predict(x[s]))
        assert_allclose(model.penalty()[s], ref.penalty(), **TOL)
        assert_allclose(norms[s], ref.gradient_norms(xs, ys), **TOL)
        for h, h_ref in zip(hidden, ref.hidden_activations(x[s]), strict=True):
            assert_allclose(h[s], h_ref, **TOL)
    model.apply_constraints()
    for s, ref in enumerate(refs):
        ref.apply_constraints()
        for k, v in ref.params.items():
            assert_allclose(model.params[k][s], v, **TOL, err_msg=k)


def test_max_norm_is_enforced_per_member():
    model = MultiSeedMLP(SIZES, SEEDS, max_norm=1.5)
    model.params["W1"][0] *= 10.0  # member 0: every column too long; the others: some are, some not
    before = model.params["W1"].copy()
    model.apply_constraints()
    for s in range(S):
        assert_allclose(model.params["W1"][s], regularization.max_norm(before[s], 1.5), **TOL)
    assert_allclose(np.linalg.norm(model.params["W1"][0], axis=0), 1.5, rtol=1e-12)
    short = np.linalg.norm(before[1:], axis=1) <= 1.5  # (S - 1, H1)
    assert short.any() and not short.all()
    assert_array_equal(model.params["W1"][1:].transpose(0, 2, 1)[short], before[1:].transpose(0, 2, 1)[short])


# ------------------------------------------------------------------------------ gradient check

GRADCHECK = {
    "prelu-bn-before-residual-l1-l2": dict(
        activation="prelu", batchnorm=True, residual=True, l1=1e-2, l2=1e-1
    ),
    "sigmoid-bn-after": dict(activation="sigmoid", batchnorm="after"),
    "tanh-dropout": dict(activation="tanh", dropout=0.3, input_dropout=0.2),
    "gelu-layernorm-residual": dict(activation="gelu", norm="layer", residual=True),
    "tanh-rms-dropout": dict(activation="tanh", norm="rms", dropout=0.3),
}


@pytest.mark.parametrize("cfg", GRADCHECK.values(), ids=GRADCHECK.keys())
def test_batched_gradient_by_central_differences(cfg):
    """d (sum_s L_s) / d params against central differences; dropout masks fixed by reseeding."""
    model = randomize(MultiSeedMLP([3, 4, 4, 2], [0, 1], **cfg), seed=5)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, 6, 3)), rng.integers(0, 2, size=(2, 6))

    def fresh():
        return [np.random.default_rng(40 + s) for s in range(2)] if model.has_dropout else None

    def total_loss(_=None) -> float:
        logits = model.forward(x, fresh(), train=True)
        return sum(losses.cross_entropy(logits[s], y[s]) for s in range(2)) + model.penalty().sum()

    out, grads = model.loss_and_grads(x, y, fresh(), update_running=False)
    assert_allclose(out.sum(), total_loss(), rtol=1e-12)
    for name, p in model.params.items():
        num = numerical_gradient(total_loss, p, h=1e-5)
        assert rel_error(grads[name], num) < 1e-6, name


# ------------------------------------------------------------------------------ fit_seeds


@functools.cache
def digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits()
    return X[:240], y[:240], X[1000:1100], y[1000:1100]


FITS = {
    "sgd-nesterov-step-schedule": (
        dict(activation="tanh"),
        lambda: SGD(lr=0.1, momentum=0.9, nesterov=True),
        dict(schedule=functools.partial(schedules.exponential_decay, lr0=0.1, decay_rate=0.5, decay_steps=5)),
    ),
    "adam-dropout-maxnorm-epoch-schedule": (
        dict(dropout=0.3, input_dropout=0.1, max_norm=1.0),
        lambda: Adam(lr=3e-3),
        dict(
            schedule=functools.partial(schedules.cosine_decay, lr0=3e-3, decay_steps=3), schedule_unit="epoch"
        ),
    ),
    "batchnorm-sgd-weight-decay": (dict(batchnorm=True), lambda: SGD(lr=0.05, weight_decay=1e-3), {}),
    "prelu-bn-after-l1-l2-default-sgd": (
        dict(activation="prelu", batchnorm="after", l1=1e-4, l2=1e-3),
        lambda: None,
        dict(lr=0.05),
    ),
    "gelu-layernorm-adam-clip": (
        dict(activation="gelu", norm="layer"),
        lambda: Adam(lr=3e-3),
        dict(clip_grad_norm=0.5),
    ),
    "silu-rms-dropout-momentum-clip": (
        dict(activation="silu", norm="rms", dropout=0.2),
        lambda: SGD(lr=0.1, momentum=0.9),
        dict(clip_grad_norm=0.3),
    ),
}
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "batch_loss", "grad_norm")


def assert_fits_equal(model, hist, refs, ref_hists):
    assert isinstance(hist, SeedHistory) and hist.n_seeds == len(refs)
    for s, (ref, h) in enumerate(zip(refs, ref_hists, strict=True)):
        for k, v in ref.params.items():
            assert_allclose(model.params[k][s], v, **FIT_TOL, err_msg=k)
        for k, v in ref.buffers.items():
            assert_allclose(model.buffers[k][s], v, **FIT_TOL, err_msg=k)
        member = hist.member(s)
        assert isinstance(member, History)
        for name in HISTORY_FIELDS:
            got, want = getattr(member, name), getattr(h, name)
            assert len(got) == len(want), name
            assert_allclose(got, want, **FIT_TOL, err_msg=name)
        assert len(member.seconds) == len(h.seconds)


@pytest.mark.parametrize("case", FITS.values(), ids=FITS.keys())
def test_fit_seeds_equals_separate_fits(case):
    cfg, make_opt, kw = case
    X, y, Xv, yv = digits()
    sizes, seeds, data_seeds = [64, 16, 16, 10], [0, 1, 2], [10, 11, 12]
    run = dict(epochs=3, batch_size=50, X_val=Xv, y_val=yv, **kw)  # 240 rows: the last batch has 40
    model = MultiSeedMLP(sizes, seeds, **cfg)
    hist = fit_seeds(model, X, y, rngs=data_seeds, optimizer=make_opt(), **run)
    refs = [MLP(sizes, rng=seed, **cfg) for seed in seeds]
    ref_hists = [
        fit(ref, X, y, rng=r, optimizer=make_opt(), progress=False, **run)
        for ref, r in zip(refs, data_seeds, strict=True)
    ]
    assert_fits_equal(model, hist, refs, ref_hists)
    assert np.ptp(hist.final("train_loss")) > 1e-6  # the members differ: the comparison has teeth
    if "clip_grad_norm" in kw:  # the clipping bit, and each member has its own norms
        norms = hist.values("grad_norm")  # (epochs, S)
        assert norms.shape == (3, 3) and np.all(norms > kw["clip_grad_norm"])
        assert np.ptp(norms[-1]) > 1e-6
    else:
        assert hist.grad_norm == []


def test_clip_grad_norm_seeds_clips_each_member_by_its_own_norm():
    model = randomize(MultiSeedMLP(SIZES, SEEDS, norm="layer"))
    _, grads = model.loss_and_grads(*batch())
    grads["W1"][0] *= 100.0  # member 0 far above the limit; the others near it
    members = [{k: g[s].copy() for k, g in grads.items()} for s in range(S)]
    own = [np.sqrt(sum(np.sum(g * g) for g in m.values())) for m in members]
    max_norm = float(np.median(own))  # one member above, one at, one below the limit
    norms = clip_grad_norm_seeds(grads, max_norm)
    assert norms.shape == (S,)
    for s, m in enumerate(members):
        assert_allclose(norms[s], clip_grad_norm(m, max_norm), rtol=1e-14)
        assert_allclose(norms[s], own[s], rtol=1e-14)
        for k, g in m.items():
            assert_allclose(grads[k][s], g, rtol=1e-14, atol=0, err_msg=k)
    after = np.sqrt(sum(np.sum(g * g, axis=tuple(range(1, g.ndim))) for g in grads.values()))
    assert np.all(after <= max_norm * (1 + 1e-12))
    assert after[np.argmax(own)] == pytest.approx(max_norm, rel=1e-6)  # shrunk to the limit
    assert after[np.argmin(own)] == pytest.approx(min(own), rel=1e-14)  # left as it was


def test_fit_seeds_with_one_training_set_per_member():
    X, y, Xv, yv = digits()
    Xs = np.stack([X[:200], X[20:220], X[40:240]])  # (S, N, D)
    ys = np.stack([y[:200], y[20:220], y[40:240]])
    cfg = dict(batchnorm="after", dropout=0.2)
    sizes, seeds, data_seeds = [64, 16, 16, 10], [5, 6, 7], [np.random.default_rng(s) for s in (1, 2, 3)]
    run = dict(epochs=3, batch_size=64, X_val=Xv, y_val=yv)
    model = MultiSeedMLP(sizes, seeds, **cfg)
    hist = fit_seeds(model, Xs, ys, rngs=data_seeds, optimizer=RMSProp(lr=1e-3), **run)
    refs = [MLP(sizes, rng=seed, **cfg) for seed in seeds]
    ref_hists = [
        fit(
            ref,
            Xs[s],
            ys[s],
            rng=np.random.default_rng(s + 1),
            optimizer=RMSProp(lr=1e-3),
            progress=False,
            **run,
        )
        for s, ref in enumerate(refs)
    ]
    assert_fits_equal(model, hist, refs, ref_hists)


def test_fit_seeds_train_eval_subset_and_history_helpers():
    X, y, Xv, yv = digits()
    model = MultiSeedMLP([64, 16, 10], [0, 1, 2])
    hist = fit_seeds(
        model,
        X,
        y,
        rngs=[0, 1, 2],
        epochs=4,
        lr=0.1,
        X_val=Xv,
        y_val=yv,
        X_train_eval=X[:50],
        y_train_eval=y[:50],
    )
    assert_allclose(hist.final("train_acc"), model.accuracy(X[:50], y[:50]), rtol=0, atol=0)
    assert_allclose(hist.final("val_acc"), model.accuracy(Xv, yv), rtol=0, atol=0)
    v = hist.values("val_loss")
    assert v.shape == (4, 3)
    assert_allclose(hist.mean("val_loss"), v.sum(axis=1) / 3, rtol=1e-14)
    sd = np.sqrt(((v - v.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / 2)  # sample sd, ddof = 1
    assert_allclose(hist.sd("val_loss"), sd, rtol=1e-12)
    assert hist.epoch == [1, 2, 3, 4] and len(hist.seconds) == 4 and hist.total_seconds > 0
    assert hist.values("seconds").shape == (4, 3) and hist.lr == []
    with pytest.raises(ValueError, match="no lr"):
        hist.final("lr")
    with pytest.raises(ValueError, match="unknown field"):
        hist.mean("val_accuracy")
    one = fit_seeds(MultiSeedMLP([64, 10], [0]), X, y, rngs=[0], epochs=1, eval_train=False)
    assert one.train_acc == [] and one.val_acc == []
    with pytest.raises(ValueError, match="at least 2"):
        one.sd("train_loss")
    with pytest.raises(ValueError, match="X_val"):
        one.final("val_acc")


# ------------------------------------------------------------------------------ property


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_member_forward_equals_batched_forward(data):
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=2, max_size=5), label="sizes")
    seeds = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), label="seeds")
    activation = data.draw(st.sampled_from(sorted(ACTIVATIONS)), label="activation")
    batchnorm = data.draw(st.sampled_from([False, "before", "after"]), label="batchnorm")
    can_skip = any(sizes[i - 1] == sizes[i] for i in range(2, len(sizes) - 1))
    residual = can_skip and data.draw(st.booleans(), label="residual")
    n = data.draw(st.integers(2, 5), label="N")
    shared = data.draw(st.booleans(), label="shared inputs")
    model = randomize(
        MultiSeedMLP(sizes, seeds, activation=activation, batchnorm=batchnorm, residual=residual),
        seed=data.draw(st.integers(0, 2**16), label="params"),
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="x"))
    x = rng.normal(size=(n, sizes[0]) if shared else (len(seeds), n, sizes[0]))
    out, out_train = model.forward(x), model.forward(x, train=True)
    assert out.shape == (len(seeds), n, sizes[-1])
    for s in range(len(seeds)):
        xs = x if shared else x[s]
        assert_allclose(model.member(s).forward(xs), out[s], **TOL)
        assert_allclose(model.member(s).forward(xs, train=True), out_train[s], **TOL)


# ------------------------------------------------------------------------------ bad input


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        MultiSeedMLP(SIZES, [])
    with pytest.raises(ValueError, match="sequence"):
        MultiSeedMLP(SIZES, 3)
    with pytest.raises(ValueError, match="activation"):
        MultiSeedMLP(SIZES, SEEDS, activation="swish")
    with pytest.raises(ValueError, match="dropout"):
        MultiSeedMLP(SIZES, SEEDS, dropout=[0.1])


def test_bad_inputs_are_a_clear_error():
    model = MultiSeedMLP(SIZES, SEEDS, dropout=0.2)
    x, y = batch()
    with pytest.raises(ValueError, match=r"inputs of shape \(N, 6\)"):
        model.forward(x[..., :5])
    with pytest.raises(ValueError, match=r"\(3, N, 6\)"):
        model.forward(x[:2])
    with pytest.raises(ValueError, match="inputs of shape"):
        model.forward(x[0, 0])
    with pytest.raises(ValueError, match="one Generator per seed"):
        model.loss_and_grads(x, y, mask_rngs()[:2])
    with pytest.raises(TypeError, match="Generator"):
        model.loss_and_grads(x, y, [0, 1, 2])
    with pytest.raises(ValueError, match="labels must be integer class ids of shape"):
        model.loss_and_grads(x, y[:, :3])
    with pytest.raises(ValueError, match="dtype"):
        model.loss(x, y.astype(float))
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        model.accuracy(x, y + 3)


def test_bad_fit_seeds_arguments_are_a_clear_error():
    model = MultiSeedMLP([64, 8, 10], SEEDS)
    X, y, Xv, yv = digits()
    with pytest.raises(ValueError, match="one seed or Generator per member"):
        fit_seeds(model, X, y, rngs=[0, 1])
    with pytest.raises(ValueError, match=r"X must be \(N, D\)"):
        fit_seeds(model, np.stack([X, X]), y, rngs=[0, 1, 2])
    with pytest.raises(ValueError, match="y must be"):
        fit_seeds(model, X, y[:-1], rngs=[0, 1, 2])
    with pytest.raises(ValueError, match="X_val and y_val"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], X_val=Xv)
    with pytest.raises(ValueError, match="X_train_eval"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], y_train_eval=yv)
    with pytest.raises(TypeError, match="function of the step"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], schedule=0.1)
    with pytest.raises(ValueError, match="schedule_unit"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], schedule=lambda t: 0.1, schedule_unit="batch")
    with pytest.raises(ValueError, match="at least 1"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], epochs=0)
    with pytest.raises(TypeError, match="MultiSeedMLP"):
        fit_seeds(MLP([64, 8, 10]), X, y, rngs=[0])
    with pytest.raises(ValueError, match="clip_grad_norm"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], clip_grad_norm=0.0)
    with pytest.raises(ValueError, match="disagree"):
        MultiSeedMLP(SIZES, SEEDS, norm="rms", batchnorm=True)
    with pytest.raises(ValueError, match="no grad_norm was recorded.*clip_grad_norm"):
        fit_seeds(model, X, y, rngs=[0, 1, 2], epochs=1).final("grad_norm")
