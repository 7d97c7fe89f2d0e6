"""The RBM (NumPy and torch): exact formulas, the CD-k gradient, sampling, parity, scikit-learn.

* energy, free energy and pseudo-likelihood against brute-force enumeration of every state;
* the exact log-likelihood gradient (enumeration) against central differences; the CD-1
  estimate agrees with it in sign and direction, and the *expected* CD-k gradient (computed
  exactly through the Gibbs transition matrix) tends to it as k grows; sampled CD-k matches its
  expectation within Monte-Carlo error; PCD's chains sample the model distribution;
* the mean of many samples matches the conditional probabilities; no NaN on all-zero and
  all-one inputs; inputs are never modified;
* NumPy and torch RBMs fed the same uniforms make the same updates; the torch CD update equals
  autograd of the free-energy difference;
* against scikit-learn's ``BernoulliRBM``: the same free energy, the same pseudo-likelihood
  after training with the same hyper-parameters (tolerance below), and RBM features beat raw
  pixels for logistic regression, as in scikit-learn's example.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from course_lib.gradcheck import numerical_gradient
from course_lib.numpy_impl import rbm as R
from course_lib.numpy_impl.rbm import RBM, MultiSeedRBM
from course_lib.torch_impl.rbm import RBM as TorchRBM

PARAMS = ("W", "b_v", "b_h")


def random_rbm(D: int, H: int, seed: int = 0, scale: float = 1.0) -> RBM:
    """An RBM with N(0, scale^2) weights and N(0, 1) biases: far from the N(0, 0.01^2) start."""
    rng = np.random.default_rng(seed)
    rbm = RBM(D, H, rng=seed)
    rbm.W = rng.normal(0.0, scale, (D, H))
    rbm.b_v = rng.normal(0.0, 1.0, D)
    rbm.b_h = rng.normal(0.0, 1.0, H)
    return rbm


def flat(g: dict) -> np.ndarray:
    return np.concatenate([np.asarray(g[k]).ravel() for k in PARAMS])


def binary(rng: np.random.Generator, n: int, d: int, p: float = 0.5) -> np.ndarray:
    return (rng.random((n, d)) < p).astype(np.float64)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


# --- energies against enumeration ---------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(D=st.integers(1, 6), H=st.integers(1, 7), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 4.0))
def test_free_energy_is_minus_log_sum_over_hidden_states(D, H, seed, scale):
    rbm = random_rbm(D, H, seed, scale)
    V, Hs = R.all_states(D), R.all_states(H)
    # -log sum_h exp(-E(v, h)), with E from its definition -v.b_v - h.b_h - v W h
    E = -(V @ rbm.b_v)[:, None] - (Hs @ rbm.b_h)[None, :] - V @ rbm.W @ Hs.T  # (2^D, 2^H)
    assert_allclose(rbm.free_energy(V), -logsumexp(-E, axis=1), rtol=1e-10, atol=1e-10)
    pairs_v, pairs_h = np.repeat(V, len(Hs), axis=0), np.tile(Hs, (len(V), 1))
    assert_allclose(rbm.energy(pairs_v, pairs_h), E.ravel(), rtol=1e-12, atol=1e-12)


def test_free_energy_matches_the_closed_form_and_torch():
    rbm = random_rbm(7, 5, seed=3, scale=2.0)
    v = binary(np.random.default_rng(1), 9, 7)
    softplus = np.log1p(np.exp(v @ rbm.W + rbm.b_h))  # no overflow at these sizes
    assert_allclose(rbm.free_energy(v), -v @ rbm.b_v - softplus.sum(axis=1), rtol=1e-12)
    t = TorchRBM(7, 5, dtype=torch.float64).load_numpy_params(rbm)
    assert_allclose(t.free_energy(v).numpy(), rbm.free_energy(v), rtol=1e-12)
    assert_allclose(t.energy(v, v[:, :5]).numpy(), rbm.energy(v, v[:, :5]), rtol=1e-12)


def test_log_partition_and_model_distribution_by_double_enumeration():
    rbm = random_rbm(5, 4, seed=7, scale=1.5)
    V, Hs = R.all_states(5), R.all_states(4)
    E = -(V @ rbm.b_v)[:, None] - (Hs @ rbm.b_h)[None, :] - V @ rbm.W @ Hs.T
    log_z = float(logsumexp(-E.ravel(), axis=0))
    assert_allclose(R.log_partition(rbm), log_z, rtol=1e-12)
    p_joint = np.exp(-E - log_z)
    assert_allclose(R.model_distribution(rbm), p_joint.sum(axis=1), rtol=1e-10, atol=1e-15)
    assert_allclose(R.model_distribution(rbm).sum(), 1.0, rtol=1e-12)


def test_pseudo_likelihood_exact_is_the_sum_of_log_conditionals():
    rbm = random_rbm(6, 4, seed=11, scale=1.5)
    p = R.model_distribution(rbm)  # p(v) for every state, in counting order
    V = R.all_states(6)
    X = V[np.random.default_rng(2).choice(64, size=10)]
    index = (X @ (2 ** np.arange(5, -1, -1))).astype(int)
    expected = np.zeros(len(X))
    for i in range(6):  # log p(v_i | v_-i) = log p(v) / (p(v) + p(v with bit i flipped))
        flipped = (index ^ (1 << (5 - i))).astype(int)
        expected += np.log(p[index] / (p[index] + p[flipped]))
    assert_allclose(rbm.pseudo_likelihood(X, exact=True), expected, rtol=1e-10)
    t = TorchRBM(6, 4, dtype=torch.float64).load_numpy_params(rbm)
    assert_allclose(t.pseudo_likelihood(X, exact=True).numpy(), expected, rtol=1e-10)


def test_stochastic_pseudo_likelihood_is_unbiased_for_the_exact_one():
    rbm = random_rbm(8, 5, seed=4, scale=1.0)
    X = binary(np.random.default_rng(5), 3, 8)
    reps = 20000
    est = rbm.pseudo_likelihood(np.repeat(X, reps, axis=0), np.random.default_rng(6)).reshape(3, reps)
    se = est.std(axis=1) / np.sqrt(reps)
    assert np.all(np.abs(est.mean(axis=1) - rbm.pseudo_likelihood(X, exact=True)) < 5 * se)


def test_pseudo_likelihood_flips_one_unit_per_row_like_scikit_learn():
    """D * log sigma(F(v~) - F(v)) with the unit rng.integers(0, D, N) picks: checked by hand."""
    rbm = random_rbm(5, 3, seed=8)
    X = binary(np.random.default_rng(9), 6, 5)
    i = np.random.default_rng(10).integers(0, 5, 6)
    flipped = X.copy()
    flipped[np.arange(6), i] = 1 - flipped[np.arange(6), i]
    diff = rbm.free_energy(flipped) - rbm.free_energy(X)
    expected = 5 * np.log(1 / (1 + np.exp(-diff)))
    assert_allclose(rbm.pseudo_likelihood(X, np.random.default_rng(10)), expected, rtol=1e-12)


# --- the log-likelihood gradient and CD-k -------------------------------------------------------


def test_exact_gradient_matches_central_differences_of_the_log_likelihood():
    rbm = random_rbm(5, 3, seed=12, scale=1.0)
    X = binary(np.random.default_rng(13), 7, 5)
    grads = R.exact_gradient(rbm, X)
    for name in PARAMS:
        numeric = numerical_gradient(lambda _: R.log_likelihood(rbm, X), getattr(rbm, name))
        assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.fixture(scope="module")
def tiny():
    """A tiny RBM with large weights (slow-mixing Gibbs chain: CD-1 is visibly biased) and data."""
    rbm = random_rbm(8, 5, seed=0, scale=3.0)
    X = R.all_states(8)[np.random.default_rng(1).choice(256, size=12)]
    return rbm, X


def test_cd1_agrees_with_the_exact_gradient_in_sign_and_direction(tiny):
    rbm, X = tiny
    exact = flat(R.exact_gradient(rbm, X))
    cd1 = flat(R.expected_cd_gradient(rbm, X, 1))
    cosine = cd1 @ exact / np.linalg.norm(cd1) / np.linalg.norm(exact)
    assert cosine > 0.9, cosine  # nearly the same direction (0.92 here; CD-3 0.985)
    assert cd1 @ exact > 0, "a CD-1 step must increase the log-likelihood to first order"
    big = np.abs(exact) > 0.1 * np.abs(exact).max()  # the entries that matter
    assert np.mean(np.sign(cd1[big]) == np.sign(exact[big])) > 0.9
    assert np.linalg.norm(cd1 - exact) / np.linalg.norm(exact) > 0.1, "CD-1 should be biased here"


def test_expected_cd_k_tends_to_the_exact_gradient(tiny):
    rbm, X = tiny
    exact = flat(R.exact_gradient(rbm, X))
    ks = [1, 2, 3, 5, 10, 20, 50]
    err = [np.linalg.norm(flat(R.expected_cd_gradient(rbm, X, k)) - exact) for k in ks]
    err = np.array(err) / np.linalg.norm(exact)
    assert all(a > b for a, b in zip(err, err[1:], strict=False)), err  # strictly better with every k
    assert err[-1] < 1e-6, err


@pytest.mark.parametrize("k", [1, 3])
def test_sampled_cd_k_matches_its_expectation(tiny, k):
    rbm, X = tiny
    rbm = copy.deepcopy(rbm)
    reps, blocks = 1500, 16
    rng = np.random.default_rng(20 + k)
    batch = np.repeat(X, reps, axis=0)
    estimates = np.array([flat(rbm.cd_gradient(batch, k=k, rng=rng)) for _ in range(blocks)])
    mean, se = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(blocks)
    expected = flat(R.expected_cd_gradient(rbm, X, k))
    z = np.abs(mean - expected) / np.maximum(se, 1e-12)
    assert z.max() < 5.5, f"largest deviation {z.max():.1f} standard errors"  # 53 entries


def test_pcd_chains_sample_the_model_distribution(tiny):
    """With lr = 0, PCD's negative statistics average to the exact model expectation."""
    rbm, X = tiny
    rbm = copy.deepcopy(rbm)
    rng = np.random.default_rng(30)
    data = R._statistics(X, np.full(len(X), 1 / len(X)), rbm)
    model = R._statistics(R.all_states(8), R.model_distribution(rbm), rbm)
    chains = np.repeat(X, 50, axis=0)  # 600 chains, started at the data
    negs = []
    for step in range(300):
        g = rbm.cd_step(chains, k=1, lr=0.0, persistent=True, rng=rng)
        if step >= 50:  # burn-in
            negs.append({key: data[key] - g[key] for key in PARAMS})
    assert rbm.chain is not None and rbm.chain.shape == (600, 5)
    mean = {key: np.mean([n[key] for n in negs], axis=0) for key in PARAMS}
    assert_allclose(flat(mean), flat(model), atol=0.03)
    # CD-1 started at the data would be far off: this is what persistence buys
    cd1_neg = {key: data[key] - v for key, v in R.expected_cd_gradient(rbm, X, 1).items()}
    assert np.abs(flat(cd1_neg) - flat(model)).max() > 0.1


def test_cd_gradient_formula_for_given_samples_and_draw_order():
    """Replay the documented draws (h0, then v1, h1, ..., no h after CD-k's last v) by hand."""
    rbm = random_rbm(6, 4, seed=40, scale=1.0)
    v0 = binary(np.random.default_rng(41), 5, 6)
    k = 2
    grads = rbm.cd_gradient(v0, k=k, rng=np.random.default_rng(42))
    rng = np.random.default_rng(42)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    ph0 = sig(v0 @ rbm.W + rbm.b_h)
    h = (rng.random((5, 4)) < ph0).astype(float)
    for step in range(k):
        vk = (rng.random((5, 6)) < sig(h @ rbm.W.T + rbm.b_v)).astype(float)
        phk = sig(vk @ rbm.W + rbm.b_h)
        if step < k - 1:
            h = (rng.random((5, 4)) < phk).astype(float)
    assert_allclose(grads["W"], (v0.T @ ph0 - vk.T @ phk) / 5, rtol=1e-12)
    assert_allclose(grads["b_v"], (v0 - vk).mean(axis=0), rtol=1e-12, atol=1e-15)
    assert_allclose(grads["b_h"], (ph0 - phk).mean(axis=0), rtol=1e-12)
    rng_state = rng.bit_generator.state
    rng2 = np.random.default_rng(42)
    rbm.cd_gradient(v0, k=k, rng=rng2)
    assert rng2.bit_generator.state == rng_state, "cd_gradient drew a different number of uniforms"


def test_cd_step_applies_lr_momentum_and_weight_decay():
    rbm = random_rbm(5, 3, seed=50)
    v = binary(np.random.default_rng(51), 8, 5)
    ref = copy.deepcopy(rbm)
    lr, mu, lam = 0.05, 0.9, 0.01
    vel = {k: np.zeros_like(p) for k, p in ref.params.items()}
    rng_a, rng_b = np.random.default_rng(52), np.random.default_rng(52)
    for _ in range(3):
        rbm.cd_step(v, k=1, lr=lr, rng=rng_a, momentum=mu, weight_decay=lam)
        g = ref.cd_gradient(v, k=1, rng=rng_b)
        for name, p in ref.params.items():
            step = g[name] - (lam * p if name == "W" else 0.0)
            vel[name] = mu * vel[name] + step
            p += lr * vel[name]
    for name in PARAMS:
        assert_allclose(rbm.params[name], ref.params[name], rtol=1e-12, err_msg=name)


def test_cd_training_increases_the_exact_log_likelihood_and_cd5_beats_cd1():
    X = R.all_states(8)[np.random.default_rng(60).choice(256, size=40)]
    X[:, :4] = X[:, [0]]  # four identical units: structure an RBM can learn
    before = R.log_likelihood(RBM(8, 6, rng=0), X)  # about -8 ln 2, the uniform distribution
    after = {1: [], 5: []}
    for k in after:
        for seed in range(3):
            rbm = RBM(8, 6, rng=seed)
            rng = np.random.default_rng(61 + seed)
            rbm.fit(X, epochs=100, batch_size=10, lr=0.3, k=k, rng=rng, monitor=False)
            after[k].append(R.log_likelihood(rbm, X))
    assert min(after[1]) > before + 0.5, (before, after)
    assert np.mean(after[5]) > np.mean(after[1]) + 0.3, after  # a less biased gradient fits better


# --- sampling, edge cases, inputs ---------------------------------------------------------------


def test_mean_of_hidden_and_visible_samples_matches_the_probabilities():
    rbm = random_rbm(6, 5, seed=70, scale=1.0)
    v = np.repeat(binary(np.random.default_rng(71), 3, 6), 20000, axis=0)
    p, h = rbm.sample_h(v, np.random.default_rng(72))
    assert set(np.unique(h)) <= {0.0, 1.0}
    n = 20000
    mean, prob = h.reshape(3, n, 5).mean(axis=1), p.reshape(3, n, 5)[:, 0]
    assert np.all(np.abs(mean - prob) < 5 * np.sqrt(prob * (1 - prob) / n) + 1e-12)
    hh = np.repeat(binary(np.random.default_rng(73), 3, 5), n, axis=0)
    pv, vs = rbm.sample_v(hh, np.random.default_rng(74))
    mean, prob = vs.reshape(3, n, 6).mean(axis=1), pv.reshape(3, n, 6)[:, 0]
    assert np.all(np.abs(mean - prob) < 5 * np.sqrt(prob * (1 - prob) / n) + 1e-12)


def test_sampling_uses_u_less_than_p():
    rbm = random_rbm(4, 3, seed=75)
    v = binary(np.random.default_rng(76), 5, 4)
    p, h = rbm.sample_h(v, np.random.default_rng(77))
    assert_array_equal(h, (np.random.default_rng(77).random((5, 3)) < p).astype(float))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_no_nan_on_all_zero_and_all_one_inputs(backend, fill):
    rbm = random_rbm(10, 6, seed=80, scale=60.0)  # saturating weights: exp(+-hundreds)
    rbm.b_h *= 100
    rbm.b_h[:2] = [1000.0, -1000.0]  # exp(1000) overflows float64: softplus must not compute it
    model = rbm if backend == "numpy" else TorchRBM(10, 6, dtype=torch.float64).load_numpy_params(rbm)
    v = np.full((4, 10), fill)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning fails the test too
        outs = [
            model.free_energy(v),
            model.prob_h(v),
            model.reconstruct(v),
            model.pseudo_likelihood(v, np.random.default_rng(0)),
            model.pseudo_likelihood(v, exact=True),
            model.reconstruction_error(v),
        ]
        grads = model.cd_step(v, k=2, lr=0.1, rng=np.random.default_rng(1), momentum=0.5, weight_decay=0.1)
        model.cd_step(v, k=1, lr=0.1, persistent=True, rng=np.random.default_rng(2))
    for out in [*outs, *grads.values(), *model.params.values()]:
        assert np.all(np.isfinite(np.asarray(out.detach() if hasattr(out, "detach") else out)))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_inputs_are_never_modified(backend):
    rbm = random_rbm(6, 4, seed=90)
    model = rbm if backend == "numpy" else TorchRBM(6, 4, dtype=torch.float64).load_numpy_params(rbm)
    v = binary(np.random.default_rng(91), 7, 6)
    h = binary(np.random.default_rng(92), 7, 4)
    v0, h0 = v.copy(), h.copy()
    rng = np.random.default_rng(93)
    model.sample_h(v, rng), model.sample_v(h, rng), model.free_energy(v), model.energy(v, h)
    model.reconstruct(v), model.reconstruction_error(v), model.gibbs(v, 3, rng)
    model.pseudo_likelihood(v, rng), model.pseudo_likelihood(v, exact=True)
    model.cd_step(v, k=2, rng=rng), model.cd_step(v, persistent=True, rng=rng)
    model.cd_step(v, persistent=True, rng=rng)  # now from the chains
    model.fit(v, epochs=2, batch_size=3, rng=rng, X_val=v)
    assert_array_equal(v, v0)
    assert_array_equal(h, h0)
    if backend == "numpy":  # float32 inputs are cast, float64 ones used as they are: not written either
        assert not np.shares_memory(rbm.chain, v)


def test_constructor_and_shape_errors():
    with pytest.raises(ValueError, match="positive"):
        RBM(0, 3)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        RBM(4, 3).free_energy(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="k must be"):
        RBM(4, 3).cd_step(np.zeros((2, 4)), k=0)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        TorchRBM(4, 3).prob_v(torch.zeros(2, 4))


# --- NumPy and torch: the same updates for the same random numbers ----------------------------


@pytest.mark.parametrize(("k", "persistent"), [(1, False), (3, False), (1, True), (2, True)])
def test_numpy_and_torch_rbms_make_the_same_updates(k, persistent):
    rbm = random_rbm(7, 5, seed=100, scale=0.5)
    t = TorchRBM(7, 5, dtype=torch.float64).load_numpy_params(rbm)
    X = binary(np.random.default_rng(101), 12, 7)
    rng_np, rng_t = np.random.default_rng(102), np.random.default_rng(102)
    for step in range(5):
        batch = X[step % 3 * 4 : step % 3 * 4 + 4]
        g_np = rbm.cd_step(batch, k, 0.1, persistent, rng_np, momentum=0.5, weight_decay=1e-3)
        g_t = t.cd_step(batch, k, 0.1, persistent, rng_t, momentum=0.5, weight_decay=1e-3)
        for name in PARAMS:
            assert_allclose(g_t[name].numpy(), g_np[name], rtol=1e-12, atol=1e-14, err_msg=f"{step} {name}")
    for name in PARAMS:
        assert_allclose(t.numpy_params()[name], rbm.params[name], rtol=1e-12, atol=1e-14)
    if persistent:
        assert_array_equal(t.chain.numpy(), rbm.chain)
    assert_allclose(t.pseudo_likelihood(X, rng_t).numpy(), rbm.pseudo_likelihood(X, rng_np), rtol=1e-12)


def test_numpy_and_torch_fit_give_the_same_history():
    X = binary(np.random.default_rng(110), 40, 9)
    rbm = RBM(9, 6, rng=np.random.default_rng(111))
    t = TorchRBM(9, 6, generator=np.random.default_rng(111), dtype=torch.float64)
    assert_allclose(t.W.detach().numpy(), rbm.W, rtol=0, atol=0)  # same initial draw
    kw = dict(epochs=3, batch_size=7, lr=0.2, k=1, persistent=True, momentum=0.3)
    h_np = rbm.fit(X, rng=np.random.default_rng(112), **kw)
    h_t = t.fit(X, rng=np.random.default_rng(112), **kw)
    assert_allclose(h_t.recon_error, h_np.recon_error, rtol=1e-10)
    assert_allclose(h_t.pseudo_likelihood, h_np.pseudo_likelihood, rtol=1e-10)
    assert_allclose(t.numpy_params()["W"], rbm.W, rtol=1e-10, atol=1e-13)


def test_torch_cd_gradient_is_autograd_of_the_free_energy_difference():
    """d/dtheta [mean F(v_k) - mean F(v_0)] = the CD estimate, for the v_k the chain reached."""
    rbm = random_rbm(6, 4, seed=120)
    t = TorchRBM(6, 4, dtype=torch.float64).load_numpy_params(rbm)
    v0 = binary(np.random.default_rng(121), 9, 6)
    t.cd_gradient(v0, k=1, persistent=True, rng=np.random.default_rng(122))  # start the chains
    chain = t.chain.clone()
    g = t.cd_gradient(v0, k=1, persistent=True, rng=np.random.default_rng(123))
    vk = t._bernoulli(t.prob_v(chain), np.random.default_rng(123))  # the same first draw
    params = {k: p.detach().clone().requires_grad_(True) for k, p in t.params.items()}

    def F(v):
        return -(v @ params["b_v"]) - torch.nn.functional.softplus(v @ params["W"] + params["b_h"]).sum(1)

    objective = F(vk).mean() - F(torch.as_tensor(v0)).mean()
    auto = torch.autograd.grad(objective, [params[k] for k in PARAMS])
    for name, a in zip(PARAMS, auto, strict=True):
        assert_allclose(a.numpy(), g[name].numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_rbm_on_cuda_matches_cpu():
    X = binary(np.random.default_rng(130), 64, 20)
    cpu = TorchRBM(20, 8, dtype=torch.float64)
    gpu = TorchRBM(20, 8, dtype=torch.float64, device="cuda").load_numpy_params(cpu.numpy_params())
    for model in (cpu, gpu):
        model.fit(X, epochs=2, rng=np.random.default_rng(131), persistent=True)
    assert_allclose(gpu.numpy_params()["W"], cpu.numpy_params()["W"], rtol=1e-9, atol=1e-12)
    gpu.fit(X, epochs=1, rng=torch.Generator(device="cuda").manual_seed(0))  # the torch-generator path


# --- fit ----------------------------------------------------------------------------------------


def test_fit_monitors_progress_and_monitoring_does_not_change_training():
    X = (np.random.default_rng(140).random((200, 16)) < 0.2).astype(float)
    X[:100, :8] = 1.0  # two clusters
    a, b = RBM(16, 8, rng=1), RBM(16, 8, rng=1)
    hist = a.fit(X, epochs=8, lr=0.5, rng=np.random.default_rng(141), X_val=X[:50])
    b.fit(X, epochs=8, lr=0.5, rng=np.random.default_rng(141), monitor=False)
    assert_array_equal(a.W, b.W)
    assert hist.epoch == list(range(1, 9)) and len(hist.seconds) == 8
    assert len(hist.val_recon_error) == len(hist.val_pseudo_likelihood) == 8
    assert hist.recon_error[-1] < 0.75 * hist.recon_error[0], hist.recon_error
    exact_before = RBM(16, 8, rng=1).pseudo_likelihood(X, exact=True).mean()
    assert a.pseudo_likelihood(X, exact=True).mean() > exact_before + 2
    assert list(hist.to_frame().columns[:2]) == ["recon_error", "pseudo_likelihood"]
    part = b.fit(X, epochs=1, rng=np.random.default_rng(142), monitor_rows=30)
    assert_allclose(part.recon_error[-1], b.reconstruction_error(X[:30]), rtol=1e-12)


# --- scikit-learn's BernoulliRBM ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_binary():
    from course_lib.data import load_digits

    X, y = load_digits()
    return (X > 0.5).astype(np.float64), y


def test_free_energy_and_conditionals_match_scikit_learn(digits_binary):
    from sklearn.neural_network import BernoulliRBM

    X = digits_binary[0][:200]
    with threadpool_limits(1):
        sk = BernoulliRBM(n_components=20, n_iter=2, random_state=0).fit(X)
    ours = RBM(64, 20)
    ours.W, ours.b_v, ours.b_h = sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_
    assert_allclose(ours.free_energy(X), sk._free_energy(X), rtol=1e-12)
    assert_allclose(ours.transform(X), sk.transform(X), rtol=1e-12)


#: Our pseudo-likelihood (nats per image, mean over 3 seeds) on the binarised digits after
#: training must be this close to scikit-learn's, with the same hyper-parameters and procedure
#: (PCD-1, batches of 10 in the data's order, lr 0.1, 10 epochs, 100 hidden units, N(0, 0.01^2)
#: weights). One run's exact pseudo-likelihood varies by about 0.2-0.6 nats from seed to seed, so
#: the mean of 3 by about 0.3; both land near -16 (an untrained RBM: about -44).
PL_TOLERANCE = 1.0


def test_pseudo_likelihood_after_training_matches_scikit_learn(digits_binary):
    from sklearn.neural_network import BernoulliRBM

    X = digits_binary[0]
    ours_exact, sk_exact, ours_est, sk_est = [], [], [], []
    with threadpool_limits(1):
        for seed in range(3):
            sk = BernoulliRBM(
                n_components=100, learning_rate=0.1, batch_size=10, n_iter=10, random_state=seed
            )
            sk.fit(X)
            ours = RBM(64, 100, rng=seed)
            ours.fit(X, epochs=10, batch_size=10, lr=0.1, persistent=True, shuffle=False, monitor=False)
            as_ours = RBM(64, 100)
            as_ours.W, as_ours.b_v = sk.components_.T, sk.intercept_visible_
            as_ours.b_h = sk.intercept_hidden_
            sk_exact.append(as_ours.pseudo_likelihood(X, exact=True).mean())
            ours_exact.append(ours.pseudo_likelihood(X, exact=True).mean())
            # the stochastic estimator (one flip per image) is noisy: average 10 draws of each
            for draw in range(10):
                sk.random_state = 1000 * seed + draw  # score_samples draws its flips from it
                sk_est.append(sk.score_samples(X).mean())
                ours_est.append(ours.pseudo_likelihood(X, np.random.default_rng(1000 * seed + draw)).mean())
    untrained = RBM(64, 100).pseudo_likelihood(X, exact=True).mean()
    assert np.mean(sk_exact) > untrained + 20
    assert abs(np.mean(ours_exact) - np.mean(sk_exact)) < PL_TOLERANCE, (ours_exact, sk_exact)
    assert abs(np.mean(ours_est) - np.mean(sk_est)) < PL_TOLERANCE, (np.mean(ours_est), np.mean(sk_est))
    assert abs(np.mean(ours_est) - np.mean(ours_exact)) < 0.5, "the estimator is unbiased"


def nudge(X: np.ndarray) -> np.ndarray:
    """The digits and their four one-pixel shifts, as scikit-learn's RBM example: (5N, 64)."""
    imgs = X.reshape(-1, 8, 8)
    out = [imgs]
    for axis, shift in ((1, 1), (1, -1), (2, 1), (2, -1)):
        moved = np.roll(imgs, shift, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = 0 if shift > 0 else -1
        moved[tuple(edge)] = 0.0  # shifted in from the border: blank, not wrapped around
        out.append(moved)
    return np.concatenate(out).reshape(-1, 64)


def test_rbm_features_beat_raw_pixels_as_in_scikit_learns_example():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import BernoulliRBM

    from course_lib.data import load_digits

    X, y = load_digits()
    Xn, yn = nudge(X.astype(np.float64)), np.tile(y, 5)
    Xtr, Xte, ytr, yte = train_test_split(Xn, yn, test_size=0.2, random_state=0)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter: the same cap for all three
        ours = RBM(64, 100, rng=0)
        ours.fit(Xtr, epochs=10, lr=0.06, persistent=True, monitor=False)
        sk = BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0).fit(Xtr)

        def accuracy(ftr, fte, C):
            return LogisticRegression(C=C, max_iter=200).fit(ftr, ytr).score(fte, yte)

        raw = accuracy(Xtr, Xte, 100.0)
        acc_ours = accuracy(ours.transform(Xtr), ours.transform(Xte), 6000.0)
        acc_sk = accuracy(sk.transform(Xtr), sk.transform(Xte), 6000.0)
    assert acc_ours > raw + 0.10, (acc_ours, raw)  # scikit-learn's example: about 0.93 vs 0.78
    assert abs(acc_ours - acc_sk) < 0.03, (acc_ours, acc_sk)


# --- several seeds at once ------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(k=1), dict(k=3), dict(k=1, persistent=True), dict(k=2, persistent=True)])
def test_multiseed_rbm_members_train_exactly_as_independent_rbms(kw):
    """Member s of a MultiSeedRBM makes the updates RBM(rng=seeds[s]).fit(rng=rngs[s]) makes alone
    (float64, bit for bit: the same permutations and the same uniforms in the same order)."""
    X = (np.random.default_rng(5).random((53, 12)) < 0.3).astype(float)
    seeds, settings_ = [3, 4, 5], dict(epochs=3, batch_size=10, lr=0.1, momentum=0.5, weight_decay=1e-3, **kw)
    stacked = MultiSeedRBM(12, 7, seeds, std=0.1)
    stacked.fit(X, rngs=[10 + s for s in range(3)], **settings_)
    for s, seed in enumerate(seeds):
        alone = RBM(12, 7, rng=seed, std=0.1)
        alone.fit(X, rng=np.random.default_rng(10 + s), monitor=False, **settings_)
        member = stacked.member(s)
        for name in ("W", "b_v", "b_h"):
            assert_array_equal(getattr(member, name), getattr(alone, name), err_msg=f"member {s}, {name}")


def test_multiseed_rbm_evaluation_matches_its_members():
    X = (np.random.default_rng(6).random((20, 9)) < 0.4).astype(float)
    stacked = MultiSeedRBM(9, 5, [0, 1], std=0.5)
    stacked.fit(X, rngs=[0, 1], epochs=2, batch_size=5, lr=0.1)
    for s in range(2):
        m = stacked.member(s)
        assert_allclose(stacked.free_energy(X)[s], m.free_energy(X), rtol=1e-12)
        assert_allclose(stacked.prob_h(X)[s], m.prob_h(X), rtol=1e-12)
        assert_allclose(stacked.reconstruction_error(X)[s], m.reconstruction_error(X), rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        stacked.prob_h(np.zeros((4, 8)))
    with pytest.raises(ValueError, match="one Generator"):
        stacked.gibbs(X, 1, rngs=[0])
