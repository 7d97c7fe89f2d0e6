"""Penalties, max-norm and ensembles: gradient checks, torch autograd, Keras/scikit-learn rules.

* ``l1/l2/elastic_net/activity`` penalties: gradients by central differences (float64) and by
  torch autograd, on Hypothesis arrays; L1's subgradient is 0 at 0; the torch module agrees;
* ``max_norm``: short columns untouched (bit for bit), long ones rescaled to norm c along the
  same direction, idempotent, per column (unit) and not per row; torch's version and
  ``max_norm_linear_`` (rows of an ``nn.Linear``) agree, and so does ``torch.renorm`` up to its
  1e-7;
* the MLP with ``l1``/``l2``: its gradients pass the gradient check, match the torch MLP with
  its ``penalty()``, and ``apply_constraints`` bounds every unit after ``fit``;
* ensembles: averaging and voting against the rules of scikit-learn's ``VotingClassifier``.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.gradcheck import check_model_gradients, numerical_gradient
from course_lib.numpy_impl import ensembles as E
from course_lib.numpy_impl import regularization as R
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.optimizers import SGD
from course_lib.torch_impl import ensembles as TE
from course_lib.torch_impl import regularization as TR
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

SETTINGS = settings(max_examples=40, deadline=None)
LAMBDAS = st.floats(0.0, 3.0, allow_subnormal=False)  # torch's 0.5 * 5e-324 is 0, NumPy's 5e-324 is not


@st.composite
def matrices(draw, away_from_zero: bool = False):
    """(D, H) float64 matrices; entries at least 1e-3 from 0 when ``away_from_zero`` (L1's kink)."""
    shape = draw(st.tuples(st.integers(1, 5), st.integers(1, 5)))
    W = draw(hnp.arrays(np.float64, shape, elements=st.floats(-5, 5, allow_subnormal=False)))
    if away_from_zero:
        W = np.where(np.abs(W) < 1e-3, 0.5, W)
    return W


# ------------------------------------------------------------------------------------ penalties


@SETTINGS
@given(W=matrices(away_from_zero=True), lam=LAMBDAS)
def test_penalty_gradients_by_central_differences(W, lam):
    for penalty, grad in [(R.l2_penalty, R.l2_grad), (R.l1_penalty, R.l1_grad)]:
        numeric = numerical_gradient(lambda w, penalty=penalty: penalty(w, lam), W.copy(), h=1e-6)
        assert_allclose(grad(W, lam), numeric, rtol=1e-6, atol=1e-7)
    numeric = numerical_gradient(lambda w: R.elastic_net_penalty(w, lam, 0.3), W.copy(), h=1e-6)
    assert_allclose(R.elastic_net_grad(W, lam, 0.3), numeric, rtol=1e-6, atol=1e-7)


@SETTINGS
@given(W=matrices(), lam=LAMBDAS)
def test_penalties_match_torch_autograd(W, lam):
    for name in ("l1", "l2"):
        t = torch.tensor(W, requires_grad=True)
        value = getattr(TR, f"{name}_penalty")(t, lam)
        value.backward()
        # atol: products that fall into the subnormal range are rounded differently by the two libraries
        assert_allclose(getattr(R, f"{name}_penalty")(W, lam), value.item(), rtol=1e-12, atol=1e-12)
        # torch's d|w|/dw at 0 is 0, like sign(0): the same subgradient everywhere
        assert_allclose(getattr(R, f"{name}_grad")(W, lam), t.grad.numpy(), rtol=1e-12, atol=1e-300)
        assert_allclose(getattr(TR, f"{name}_grad")(torch.tensor(W), lam).numpy(), t.grad.numpy(),
                        rtol=1e-12, atol=1e-300)


def test_penalty_values_and_conventions():
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert R.l2_penalty(W, 0.1) == pytest.approx(0.05 * 14)  # (lam/2) sum W^2, not lam sum W^2
    assert_allclose(R.l2_grad(W, 0.1), 0.1 * W)  # lam W, not 2 lam W
    assert R.l1_penalty(W, 0.1) == pytest.approx(0.6)
    assert_array_equal(R.l1_grad(W, 0.1), [[0.1, -0.1], [0.0, 0.1]])  # 0 at W = 0
    assert isinstance(R.l2_penalty(W.astype(np.float32), 0.1), float)
    # Keras's regularizers.l2(k) is k * sum W^2: ours with lam = 2k
    assert R.l2_penalty(W, 2 * 0.01) == pytest.approx(0.01 * np.sum(W**2))


@SETTINGS
@given(h=matrices(away_from_zero=True), l1=st.floats(0, 1), l2=st.floats(0, 1))
def test_activity_penalty_is_a_batch_mean_with_the_right_gradient(h, l1, l2):
    numeric = numerical_gradient(lambda a: R.activity_penalty(a, l1, l2), h.copy(), h=1e-6)
    assert_allclose(R.activity_grad(h, l1, l2), numeric, rtol=1e-6, atol=1e-7)
    doubled = np.concatenate([h, h])  # the same rows twice: the mean does not change
    assert R.activity_penalty(doubled, l1, l2) == pytest.approx(R.activity_penalty(h, l1, l2), rel=1e-12)
    t = torch.tensor(h, requires_grad=True)
    TR.activity_penalty(t, l1, l2).backward()
    assert_allclose(t.grad.numpy(), R.activity_grad(h, l1, l2), rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------------------------- max-norm


def test_max_norm_leaves_short_columns_untouched_and_rescales_long_ones():
    W = np.array([[3.0, 0.1, 0.0, 6.0], [4.0, 0.2, 0.0, 8.0]])  # column norms 5, 0.22, 0, 10
    out = R.max_norm(W, 5.0)
    assert_array_equal(out[:, :3], W[:, :3])  # norm <= c: bit for bit the same (0 included)
    assert_allclose(out[:, 3], [3.0, 4.0], rtol=1e-15)  # norm 10 -> 5, same direction
    assert_array_equal(W[:, 3], [6.0, 8.0]), "the input is not modified"
    assert out.dtype == W.dtype


@SETTINGS
@given(W=matrices(), c=st.floats(0.1, 5.0))
def test_max_norm_is_the_projection_per_unit(W, c):
    out = R.max_norm(W, c)
    norms, new = R.column_norms(W), R.column_norms(out)
    assert np.all(new <= c * (1 + 1e-12))
    short = norms <= c
    assert_array_equal(out[:, short], W[:, short])
    assert_allclose(new[~short], c, rtol=1e-12)
    assert_allclose(out[:, ~short], W[:, ~short] * (c / norms[~short]), rtol=1e-12)  # same direction
    assert_allclose(R.max_norm(out, c), out, rtol=1e-12, atol=0)  # a projection: idempotent
    assert_allclose(TR.max_norm(torch.tensor(W), c).numpy(), out, rtol=1e-12, atol=1e-300)


def test_max_norm_is_per_column_not_per_row():
    W = np.array([[10.0, 0.0, 0.0]])  # one row of norm 10; columns of norms 10, 0, 0
    out = R.max_norm(W, 1.0)
    assert_allclose(out, [[1.0, 0.0, 0.0]])
    W = np.full((100, 2), 0.2)  # every entry small; each column has norm 2
    assert_allclose(R.column_norms(R.max_norm(W, 1.0)), [1.0, 1.0])
    with pytest.raises(ValueError, match="c > 0"):
        R.max_norm(W, 0.0)


def test_max_norm_linear_constrains_rows_of_nn_linear_like_renorm():
    lin = torch.nn.Linear(6, 4, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.mul_(torch.tensor([[0.1], [10.0], [1.0], [30.0]], dtype=torch.float64))
    before = lin.weight.detach().clone()
    TR.max_norm_linear_(lin, 1.0)
    norms = torch.linalg.vector_norm(lin.weight, dim=1)  # one per output unit
    assert torch.all(norms <= 1.0 + 1e-12)
    short = torch.linalg.vector_norm(before, dim=1) <= 1.0
    assert torch.equal(lin.weight[short], before[short])
    assert_allclose(lin.weight.detach().numpy(), torch.renorm(before, 2, 0, 1.0).numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------- the regularized MLP


@pytest.mark.parametrize("l1, l2", [(0.0, 0.3), (0.05, 0.0), (0.02, 0.1)])
def test_mlp_penalty_gradients_pass_the_gradient_check(l1, l2):
    rng = np.random.default_rng(4)
    model = MLP([4, 5, 5, 3], "tanh", rng=0, l1=l1, l2=l2)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    errors = check_model_gradients(model, x, y, h=1e-5)
    assert max(errors.values()) < 1e-6, errors
    plain = MLP([4, 5, 5, 3], "tanh", rng=0)
    expected = plain.loss(x, y) + sum(
        R.elastic_net_penalty(model.params[f"W{i}"], l1, l2) for i in (1, 2, 3)
    )
    assert model.loss(x, y) == pytest.approx(expected, rel=1e-12)
    _, g = model.loss_and_grads(x, y)
    _, g_plain = plain.loss_and_grads(x, y)
    assert_array_equal(g["b1"], g_plain["b1"]), "biases are not penalized"


def test_mlp_penalty_matches_torch_mlp():
    rng = np.random.default_rng(1)
    model = MLP([5, 6, 4, 3], "relu", rng=2, l1=0.01, l2=0.05)
    tm = TorchMLP(model.sizes, "relu", dtype=torch.float64, l1=0.01, l2=0.05).load_numpy_params(model.params)
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    loss, grads = model.loss_and_grads(x, y)
    tloss = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)) + tm.penalty()
    tloss.backward()
    assert_allclose(loss, tloss.item(), rtol=1e-12)
    for k, v in tm.numpy_grads().items():
        assert_allclose(grads[k], v, rtol=1e-10, atol=1e-13, err_msg=k)
    assert MLP([5, 3]).penalty() == 0.0 and TorchMLP([5, 3]).penalty().item() == 0.0


def test_numpy_and_torch_fit_agree_with_penalties_and_max_norm():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 5)) * 3, rng.integers(0, 3, size=120)
    kw = dict(l1=0.001, l2=0.01, max_norm=0.8)
    np_model = MLP([5, 8, 3], "tanh", rng=1, **kw)
    th_model = TorchMLP([5, 8, 3], "tanh", dtype=torch.float64, **kw).load_numpy_params(np_model.params)
    h_np = fit(np_model, X, y, epochs=3, batch_size=16, lr=0.5, rng=2)
    h_th = fit(th_model, X, y, epochs=3, batch_size=16, lr=0.5, rng=2)
    assert_allclose(h_np.train_loss, h_th.train_loss, rtol=1e-10)
    for i, lin in enumerate(th_model.linears, start=1):
        assert_allclose(lin.weight.detach().numpy().T, np_model.params[f"W{i}"], rtol=1e-9, atol=1e-12)
        assert R.column_norms(np_model.params[f"W{i}"]).max() <= 0.8 * (1 + 1e-12)
    # the constraint was active: without it, the same training makes longer columns
    free = MLP([5, 8, 3], "tanh", rng=1, l1=0.001, l2=0.01)
    fit(free, X, y, epochs=3, batch_size=16, lr=0.5, rng=2)
    assert R.column_norms(free.params["W1"]).max() > 0.8


def test_l2_shrinks_weights_and_l1_makes_them_sparse():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)  # only two of the 20 inputs matter
    runs = {}
    for name, kw in {"none": {}, "l2": {"l2": 0.05}, "l1": {"l1": 0.005}}.items():
        model = MLP([20, 2], "relu", rng=0, **kw)  # softmax regression
        fit(model, X, y, epochs=60, batch_size=30, lr=0.1, rng=0)
        runs[name] = model.params["W1"]
    assert np.linalg.norm(runs["l2"]) < 0.7 * np.linalg.norm(runs["none"])
    irrelevant = np.abs(runs["l1"][2:]).mean(), np.abs(runs["none"][2:]).mean()
    assert irrelevant[0] < 0.3 * irrelevant[1], irrelevant


@pytest.mark.parametrize("kw, match", [
    (dict(l2=-1.0), "penalties must be >= 0"),
    (dict(max_norm=0.0), "max_norm must be positive"),
    (dict(dropout=[0.5]), "one rate per hidden layer"),
    (dict(dropout=1.0), "drop probabilities in"),
    (dict(input_dropout=1.0), "input_dropout must lie in"),
])
def test_bad_regularization_options(kw, match):
    with pytest.raises(ValueError, match=match):
        MLP([3, 4, 4, 2], **kw)
    with pytest.raises(ValueError, match=match):
        TorchMLP([3, 4, 4, 2], **kw)


# ------------------------------------------------------------------------------------ ensembles


def test_average_probabilities_differs_from_voting_and_logit_averaging():
    # three models, one example, three classes
    P = np.array([[[0.40, 0.35, 0.25]], [[0.40, 0.35, 0.25]], [[0.00, 0.95, 0.05]]])
    assert_allclose(E.average_probabilities(P), [[0.8 / 3, 1.65 / 3, 0.55 / 3]])
    assert E.average_probabilities(P).argmax(1)[0] == 1  # soft vote: class 1
    assert E.majority_vote(P.argmax(2), 3)[0] == 0  # hard vote: class 0 (two votes of three)
    tp = torch.tensor(P)
    assert_allclose(TE.average_probabilities(tp).numpy(), E.average_probabilities(P))
    assert TE.majority_vote(tp.argmax(2), 3).tolist() == [0]


VOTES = hnp.arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=st.integers(0, 3))


@SETTINGS
@given(votes=VOTES)
def test_majority_vote_matches_the_counting_rule(votes):
    got = E.majority_vote(votes, 4)
    for n in range(votes.shape[1]):
        counts = np.bincount(votes[:, n], minlength=4)
        assert got[n] == np.flatnonzero(counts == counts.max())[0]  # ties -> smallest id
    assert TE.majority_vote(torch.tensor(votes), 4).tolist() == got.tolist()


def test_ensemble_of_models_and_train_ensemble():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1.5, size=(3, 4))
    y = rng.integers(0, 3, 240)
    X = centers[y] + rng.normal(size=(240, 4))
    ens, hists = E.train_ensemble(lambda s: MLP([4, 8, 3], rng=s), X[:200], y[:200], k=3,
                                  epochs=3, batch_size=20, lr=0.1)
    assert len(ens.models) == len(hists) == 3
    assert not np.array_equal(ens.models[0].params["W1"], ens.models[1].params["W1"])
    P = ens.member_probabilities(X[200:])
    assert P.shape == (3, 40, 3)
    assert_allclose(ens.predict_proba(X[200:]).sum(1), 1.0, rtol=1e-12)
    assert_array_equal(ens.predict(X[200:]), P.mean(0).argmax(1))
    assert_array_equal(ens.predict(X[200:], "vote"), E.majority_vote(P.argmax(2), 3))
    assert 0.0 <= ens.accuracy(X[200:], y[200:]) <= 1.0 and len(ens.member_accuracies(X, y)) == 3
    bag, _ = E.train_ensemble(lambda s: MLP([4, 8, 3], rng=0), X, y, k=2, bootstrap=True, epochs=1)
    assert not np.array_equal(bag.models[0].params["W1"], bag.models[1].params["W1"]), "different samples"
    idx = E.bootstrap_indices(10_000, np.random.default_rng(0))
    assert abs(len(np.unique(idx)) / 10_000 - (1 - np.exp(-1))) < 0.01  # ~63.2% distinct rows
    with pytest.raises(ValueError, match="'mean' or 'vote'"):
        ens.predict(X, "median")
    with pytest.raises(ValueError, match="make_optimizer"):
        E.train_ensemble(lambda s: MLP([4, 3], rng=s), X, y, k=2, optimizer=SGD(lr=0.1))


def test_train_ensemble_gives_each_member_a_fresh_optimizer():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, size=50)
    made = []

    def make_optimizer():
        made.append(SGD(lr=0.1, momentum=0.9))
        return made[-1]

    ens, _ = E.train_ensemble(lambda s: MLP([4, 5, 3], rng=s), X, y, k=3, seed=7,
                              make_optimizer=make_optimizer, epochs=2, batch_size=10)
    assert len({id(o) for o in made}) == 3
    alone = MLP([4, 5, 3], rng=8)  # member 1 trained on its own: the same weights
    fit(alone, X, y, rng=8, optimizer=SGD(lr=0.1, momentum=0.9), epochs=2, batch_size=10)
    assert_array_equal(alone.params["W1"], ens.models[1].params["W1"])


def test_torch_ensemble_uses_eval_mode():
    models = [TorchMLP([4, 6, 3], generator=s, dropout=0.5) for s in range(3)]
    ens = TE.Ensemble(models)
    X = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    a, b = ens.predict_proba(X), ens.predict_proba(X)
    assert torch.equal(a, b), "dropout must be off when the ensemble predicts"
    assert all(m.training for m in models), "the members' mode is restored"
    assert_allclose(a.sum(1).numpy(), 1.0, rtol=1e-6)
    assert ens.predict(X).shape == (10,) and ens.predict(X, "vote").shape == (10,)
