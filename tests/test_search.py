"""Hyperparameter search (course_lib.search): the space, the three searches, the GP and EI.

* the space: grid values are linear / geometric / all choices; encode and decode are inverse
  (Hypothesis); random draws stay inside the bounds and follow the log scale (Kolmogorov-Smirnov
  and chi-square tests, seeded);
* grid search evaluates the product of the grid values exactly once each, in order;
* the results table: its columns, failed trials (an exception, a NaN) recorded and skipped by
  ``best_so_far``, the budget in trials or seconds, the same table for the same seed;
* the Gaussian process against scikit-learn's ``GaussianProcessRegressor`` with the same fixed
  kernel (mean, std, covariance, log marginal likelihood and its gradient, float64); the gradient
  by central differences; interpolation of noiseless data, with the variance vanishing at the
  observed points; the fitted noise level;
* expected improvement against a Monte Carlo estimate, and its properties (Hypothesis);
* Bayesian optimization beats random search on a 1-D and a 2-D test function in most of 20 seeds;
* the probability of improvement and the confidence bound against a hand computation with
  ``scipy.stats.norm`` (float64), and ``acquisition=`` choosing their argmax;
* successive halving and Hyperband: rung sizes and budgets by the formulas (Li et al. 2018,
  table 1, for R = 81 and eta = 3), the true best found when the ranking does not depend on the
  budget, only successful configurations promoted, the table and its total budget, seeds, and
  errors for bad arguments.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

from course_lib.gradcheck import numerical_gradient
from course_lib.search import (
    RESULT_COLUMNS,
    BayesianOptimizer,
    Categorical,
    GaussianProcess,
    IntUniform,
    LogUniform,
    Uniform,
    bayes_search,
    best_trial,
    decode,
    encode,
    expected_improvement,
    grid_search,
    grid_values,
    halving_schedule,
    hyperband,
    hyperband_brackets,
    probability_of_improvement,
    random_search,
    successive_halving,
    upper_confidence_bound,
)

SETTINGS = settings(max_examples=40, deadline=None)

SPACE = {
    "lr": LogUniform(1e-4, 1.0),
    "dropout": Uniform(0.0, 0.7),
    "width": IntUniform(16, 512, log=True),
    "activation": Categorical(["relu", "tanh", "sigmoid"]),
}


def quadratic(p):
    """A cheap objective over SPACE, lowest at lr = 1e-2, dropout = 0.3, width = 128, relu."""
    return (
        (math.log10(p["lr"]) + 2) ** 2
        + (p["dropout"] - 0.3) ** 2
        + math.log2(p["width"] / 128) ** 2 / 10
        + (p["activation"] != "relu")
    )


def forrester(p):
    """Forrester et al. (2008): one input in [0, 1], global minimum -6.0207 at x = 0.7572."""
    x = p["x"]
    return (6 * x - 2) ** 2 * math.sin(12 * x - 4)


def branin(p):
    """Branin-Hoo on [-5, 10] x [0, 15]: three global minima of 0.397887."""
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


# ------------------------------------------------------------------------------------ the space


def test_grid_values_are_linear_geometric_and_all_choices():
    g = grid_values(SPACE, n_points=5)
    assert_allclose(g["lr"], [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)  # equal ratios: a log grid
    assert_allclose(g["dropout"], [0.0, 0.175, 0.35, 0.525, 0.7], rtol=1e-12)
    assert g["width"] == [16, 38, 91, 215, 512]  # geometric, rounded
    assert g["activation"] == ["relu", "tanh", "sigmoid"]  # every choice, whatever n_points
    assert grid_values({"k": IntUniform(1, 3)}, n_points=7)["k"] == [1, 2, 3]  # no duplicates
    assert grid_values(SPACE, values={"lr": [0.5]})["lr"] == [0.5]


def test_grid_values_are_checked():
    with pytest.raises(ValueError, match="not in the space"):
        grid_values(SPACE, values={"momentum": [0.9]})
    with pytest.raises(ValueError, match="inside"):
        grid_values(SPACE, values={"dropout": [0.9]})
    with pytest.raises(ValueError, match="inside"):
        grid_values(SPACE, values={"activation": ["elu"]})


@pytest.mark.parametrize("n_points", [1, 2, 3])
def test_grid_search_covers_the_product_exactly(n_points):
    values = {"activation": ["tanh", "relu"]}
    seen = []
    table = grid_search(lambda p: seen.append(p) or 0.0, SPACE, n_points=n_points, values=values)
    g = grid_values(SPACE, n_points, values)
    product = [dict(zip(g, combo, strict=True)) for combo in itertools.product(*g.values())]
    assert seen == product  # every combination once, in order, the last dimension fastest
    assert len(table) == math.prod(len(v) for v in g.values())
    assert table[list(SPACE)].to_dict("records") == product
    assert table["trial"].tolist() == list(range(len(product)))


def test_grid_search_budget_stops_early():
    table = grid_search(lambda p: 0.0, SPACE, n_points=3, n_trials=5)
    assert len(table) == 5


def _dimensions():
    bounds = st.tuples(st.floats(-1e3, 1e3), st.floats(1e-3, 1e3)).map(lambda t: (t[0], t[0] + t[1]))
    uniform = bounds.map(lambda b: Uniform(*b))
    log = st.tuples(st.floats(1e-6, 1e3), st.floats(1.01, 1e6)).map(lambda t: LogUniform(t[0], t[0] * t[1]))
    ints = st.tuples(st.integers(1, 1000), st.integers(1, 1000), st.booleans()).map(
        lambda t: IntUniform(t[0], t[0] + t[1], log=t[2])
    )
    cats = st.integers(1, 6).map(lambda k: Categorical([f"c{i}" for i in range(k)]))
    return st.one_of(uniform, log, ints, cats)


@SETTINGS
@given(dim=_dimensions(), seed=st.integers(0, 2**32 - 1))
def test_samples_are_inside_and_encode_decode_round_trip(dim, seed):
    values = dim.sample(np.random.default_rng(seed), 50)
    assert all(dim.contains(v) for v in values)
    U = dim.encode(values)
    assert U.shape == (50, dim.width)
    assert np.all((U >= -1e-12) & (U <= 1 + 1e-12))
    back = dim.decode(U)
    if isinstance(dim, (IntUniform, Categorical)):
        assert back == values
    else:
        assert_allclose(back, values, rtol=1e-9)


@SETTINGS
@given(dim=_dimensions(), u=st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=5))
def test_decode_snaps_any_point_to_a_valid_value(dim, u):
    U = np.repeat(np.array(u)[:, None], dim.width, axis=1)
    assert all(dim.contains(v) for v in dim.decode(U))


def test_random_search_respects_bounds_and_log_scales():
    table = random_search(lambda p: 0.0, SPACE, n_trials=3000, seed=0)
    lr, drop, width = table["lr"].to_numpy(), table["dropout"].to_numpy(), table["width"].to_numpy()
    assert lr.min() >= 1e-4 and lr.max() <= 1.0 and drop.min() >= 0.0 and drop.max() <= 0.7
    # log10(lr) is uniform on [-4, 0]; lr itself is not uniform on [1e-4, 1]
    assert stats.kstest(np.log10(lr), stats.uniform(-4, 4).cdf).pvalue > 1e-3
    assert stats.kstest(lr, stats.uniform(1e-4, 1.0 - 1e-4).cdf).pvalue < 1e-10
    assert stats.kstest(drop, stats.uniform(0.0, 0.7).cdf).pvalue > 1e-3
    # integers on a log scale: P(k) proportional to log((k + 1/2) / (k - 1/2)), in 8 bins
    k = np.arange(16, 513)
    p = np.log((k + 0.5) / (k - 0.5))
    p /= p.sum()
    edges = np.geomspace(16, 513, 9)
    expected = np.array([p[(k >= a) & (k < b)].sum() for a, b in itertools.pairwise(edges)]) * len(width)
    observed, _ = np.histogram(width, bins=edges)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert np.all(np.isin(width, k)) and width.dtype.kind == "i"
    counts = table["activation"].value_counts().reindex(["relu", "tanh", "sigmoid"]).to_numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_int_uniform_without_log_is_uniform_on_every_integer():
    values = np.array(IntUniform(3, 7).sample(np.random.default_rng(1), 5000))
    counts = np.bincount(values, minlength=8)[3:]
    assert counts.sum() == 5000 and stats.chisquare(counts).pvalue > 1e-3


def test_space_encoding_is_the_concatenation_of_the_dimensions():
    params = [{"lr": 1e-2, "dropout": 0.35, "width": 16, "activation": "tanh"}]
    U = encode(SPACE, params)
    assert U.shape == (1, 1 + 1 + 1 + 3)
    assert_allclose(U[0, :2], [0.5, 0.5])  # the middle of a log range and of a linear one
    assert_array_equal(U[0, 3:], [0, 1, 0])  # one-hot
    back = decode(SPACE, U)[0]
    assert back["lr"] == pytest.approx(1e-2, rel=1e-12) and {**back, "lr": 1e-2} == params[0]


def test_dimensions_reject_bad_bounds():
    for make in (
        lambda: Uniform(1, 1),
        lambda: LogUniform(0, 1),
        lambda: IntUniform(0, 10, log=True),
        lambda: IntUniform(1.5, 3),
        lambda: Categorical([]),
        lambda: Categorical(["a", "a"]),
    ):
        with pytest.raises(ValueError):
            make()
    with pytest.raises(ValueError, match="column"):
        random_search(lambda p: 0.0, {"score": Uniform(0, 1)}, 1)


# ---------------------------------------------------------------------------- the results table


@pytest.mark.parametrize("search", [random_search, bayes_search])
def test_results_table_and_failed_trials(search):
    def objective(p):
        if p["activation"] == "sigmoid":
            raise RuntimeError("diverged")
        if p["dropout"] > 0.6:
            return float("nan")
        return quadratic(p)

    table = search(objective, SPACE, 14, seed=3, direction="minimize")
    assert list(table.columns) == ["trial", *SPACE, *RESULT_COLUMNS[1:]]
    assert len(table) == 14 and table["trial"].tolist() == list(range(14))
    failed = table[table["status"] == "failed"]
    expected_failed = (table["activation"] == "sigmoid") | (table["dropout"] > 0.6)
    assert_array_equal(table["status"] == "failed", expected_failed)
    assert len(failed) > 0
    assert failed["score"].isna().all()
    assert all(e == "RuntimeError: diverged" or e == "objective returned nan" for e in failed["error"])
    ok = table[table["status"] == "ok"]
    assert (ok["error"] == "").all() and (table["seconds"] >= 0).all()
    scores = table["score"].to_numpy()
    manual = [np.nanmin(scores[: i + 1]) if np.any(~np.isnan(scores[: i + 1])) else np.nan for i in range(14)]
    assert_allclose(table["best_so_far"], manual)
    best = best_trial(table)
    assert best["score"] == ok["score"].min()
    assert table.attrs["method"] == search.__name__.split("_")[0] and table.attrs["seed"] == 3


def test_maximize_flips_what_is_best():
    table = random_search(lambda p: -quadratic(p), SPACE, 20, seed=0, direction="maximize")
    assert table["best_so_far"].iloc[-1] == table["score"].max()
    assert best_trial(table)["score"] == table["score"].max()
    with pytest.raises(ValueError, match="direction"):
        random_search(quadratic, SPACE, 2, direction="max")
    pooled = pd.concat([table, table])  # concat drops attrs: the direction must then be given
    pooled.attrs = {}
    with pytest.raises(ValueError, match="direction"):
        best_trial(pooled)
    assert best_trial(pooled, "minimize")["score"] == table["score"].min()


@pytest.mark.parametrize("search", [random_search, bayes_search])
def test_same_seed_same_trials(search):
    a = search(quadratic, SPACE, 9, seed=5)
    b = search(quadratic, SPACE, 9, seed=5)
    c = search(quadratic, SPACE, 9, seed=6)
    cols = [*SPACE, "score", "status"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not a[cols].equals(c[cols])


def test_bayes_starts_with_the_random_search_trials():
    r = random_search(quadratic, SPACE, 5, seed=11)
    b = bayes_search(quadratic, SPACE, 8, seed=11, n_initial=5)
    pd.testing.assert_frame_equal(r[list(SPACE)], b[list(SPACE)].iloc[:5])
    assert not b[list(SPACE)].iloc[5:].duplicated().any()


def test_budget_in_seconds():
    def slow(p):
        time.sleep(0.02)
        return 0.0

    start = time.perf_counter()
    table = random_search(slow, SPACE, max_seconds=0.2, seed=0)
    elapsed = time.perf_counter() - start
    assert 3 <= len(table) <= 11  # 0.2 s of 0.02 s trials, on a busy machine fewer
    assert elapsed < 0.2 + 0.15  # no trial starts after the budget: at most one runs past it
    assert len(random_search(slow, SPACE, n_trials=2, max_seconds=10.0)) == 2  # whichever comes first
    empty = random_search(slow, SPACE, max_seconds=0.0)
    assert len(empty) == 0 and list(empty.columns) == ["trial", *SPACE, *RESULT_COLUMNS[1:]]
    with pytest.raises(ValueError, match="budget"):
        random_search(slow, SPACE)


def test_bayes_search_survives_an_objective_that_always_fails():
    def broken(p):
        raise ValueError("no data")

    table = bayes_search(broken, {"x": Uniform(0, 1)}, 6, seed=0)
    assert (table["status"] == "failed").all() and len(table) == 6
    assert table["best_so_far"].isna().all()
    with pytest.raises(ValueError, match="no trial succeeded"):
        best_trial(table)


@pytest.mark.slow
def test_bayes_search_on_a_mixed_space_beats_random_search():
    best = {"bayes": [], "random": []}
    for seed in range(5):
        table = bayes_search(quadratic, SPACE, 20, seed=seed)
        rows = table[list(SPACE)].to_dict("records")
        assert all(SPACE[k].contains(v) for row in rows for k, v in row.items())
        best["bayes"].append(best_trial(table))
        best["random"].append(best_trial(random_search(quadratic, SPACE, 20, seed=seed)))
    assert all(row["activation"] == "relu" for row in best["bayes"])  # the category that matters
    b, r = ([row["score"] for row in best[k]] for k in ("bayes", "random"))
    assert np.median(b) < 0.3 * np.median(r), (b, r)


# ----------------------------------------------------------------------------- Gaussian process


def _data(n=12, D=3, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, D))
    y = np.sin(3 * X).sum(1) + noise * rng.normal(size=n) + 2.0
    return X, y, rng.uniform(size=(7, D))


def _sklearn_kernel(kind, ls):
    base = RBF(length_scale=ls) if kind == "rbf" else Matern(length_scale=ls, nu=2.5)
    return ConstantKernel(1.7) * base


@pytest.mark.parametrize("kind", ["rbf", "matern52"])
@pytest.mark.parametrize("normalize_y", [True, False])
def test_gp_posterior_matches_sklearn(kind, normalize_y):
    X, y, Xs = _data()
    ls = np.array([0.3, 0.5, 0.8])
    ours = GaussianProcess(
        kernel=kind, lengthscale=ls, signal_variance=1.7, noise=0.01, normalize_y=normalize_y
    ).fit(X, y, optimize=False)
    ref = GaussianProcessRegressor(
        _sklearn_kernel(kind, ls), alpha=0.01, optimizer=None, normalize_y=normalize_y
    ).fit(X, y)
    mean, std = ours.predict(Xs)
    ref_mean, ref_std = ref.predict(Xs, return_std=True)
    assert_allclose(mean, ref_mean, rtol=1e-10, atol=1e-10)
    assert_allclose(std, ref_std, rtol=1e-8, atol=1e-10)
    _, cov = ours.predict(Xs, return_cov=True)
    assert_allclose(cov, ref.predict(Xs, return_cov=True)[1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["rbf", "matern52"])
def test_log_marginal_likelihood_and_gradient_match_sklearn(kind):
    X, y, _ = _data(seed=1)
    ls = np.array([0.2, 0.7, 1.3])
    ours = GaussianProcess(kernel=kind, lengthscale=ls, signal_variance=0.8, noise=0.05).fit(
        X, y, optimize=False
    )
    # the noise as a WhiteKernel makes it a hyperparameter with a gradient; alpha=0 adds nothing else
    ref = GaussianProcessRegressor(
        _sklearn_kernel(kind, ls) + WhiteKernel(0.05), alpha=0.0, optimizer=None, normalize_y=True
    ).fit(X, y)
    for theta in (ref.kernel_.theta, ref.kernel_.theta + np.array([0.3, -0.2, 0.1, 0.4, -1.0])):
        lml, grad = ours.log_marginal_likelihood(theta, eval_gradient=True)
        ref_lml, ref_grad = ref.log_marginal_likelihood(theta, eval_gradient=True)
        assert_allclose(lml, ref_lml, rtol=1e-10)
        assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("kind", ["rbf", "matern52"])
def test_log_marginal_likelihood_gradient_by_central_differences(kind):
    X, y, _ = _data(n=9, D=2, seed=2)
    gp = GaussianProcess(kernel=kind).fit(X, y, optimize=False)
    theta = np.log([1.3, 0.25, 0.6, 0.02])
    numeric = numerical_gradient(lambda t: gp.log_marginal_likelihood(t), theta.copy(), h=1e-6)
    assert_allclose(gp.log_marginal_likelihood(theta, eval_gradient=True)[1], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["rbf", "matern52"])
def test_gp_interpolates_noiseless_observations(kind):
    rng = np.random.default_rng(4)
    X = np.sort(rng.uniform(size=(8, 1)), axis=0)
    y = np.sin(6 * X[:, 0])
    gp = GaussianProcess(kernel=kind, lengthscale=0.2, noise=1e-10).fit(X, y, optimize=False)
    mean, std = gp.predict(X)
    assert_allclose(mean, y, atol=1e-6)  # through every observation
    prior_std = math.sqrt(gp.signal_variance) * gp.y_std_
    assert np.all(std < 1e-4 * prior_std)  # and certain there
    mid = (X[:-1] + X[1:]) / 2
    assert np.all(gp.predict(mid)[1] > 10 * std.max())  # less certain between them
    far = np.array([[3.0]])
    assert_allclose(gp.predict(far)[1], prior_std, rtol=1e-6)  # the prior, far from all data


def test_gp_variance_shrinks_where_observed():
    X, y, Xs = _data(n=10, D=2, seed=5, noise=0.0)
    gp = GaussianProcess(lengthscale=0.3, noise=1e-4, normalize_y=False)
    before = gp.fit(X, y, optimize=False).predict(Xs)[1]
    after = gp.fit(
        np.vstack([X, Xs[:3]]), np.concatenate([y, np.sin(3 * Xs[:3]).sum(1) + 2]), optimize=False
    ).predict(Xs)[1]
    assert np.all(after <= before + 1e-12)  # conditioning on more data never adds variance
    assert np.all(after[:3] < 0.05 * before[:3])  # and removes almost all of it where observed


def test_fitted_noise_recovers_the_noise_level():
    rng = np.random.default_rng(6)
    X = rng.uniform(size=(80, 1))
    f = np.sin(6 * X[:, 0])
    noisy = GaussianProcess(kernel="rbf").fit(X, f + 0.2 * rng.normal(size=80), n_restarts=3, rng=0)
    noise_var = noisy.fitted["noise"] * noisy.y_std_**2  # back in the units of y
    assert 0.5 * 0.04 < noise_var < 2 * 0.04
    clean = GaussianProcess(kernel="rbf").fit(X, f, n_restarts=3, rng=0)
    assert clean.fitted["noise"] < 1e-4
    assert clean.log_marginal_likelihood() >= clean.log_marginal_likelihood(clean._theta0(1)) - 1e-9


# ------------------------------------------------------------------------- expected improvement


@pytest.mark.parametrize(
    ("mean", "std", "best", "xi", "direction"),
    [
        (0.0, 1.0, 0.0, 0.0, "minimize"),
        (1.0, 0.5, 0.0, 0.0, "minimize"),
        (-0.5, 2.0, 0.3, 0.1, "minimize"),
        (2.0, 0.3, 1.5, 0.0, "maximize"),
        (0.0, 1.0, 1.0, 0.05, "maximize"),
    ],
)
def test_expected_improvement_matches_monte_carlo(mean, std, best, xi, direction):
    f = np.random.default_rng(0).normal(mean, std, size=400_000)
    gain = best - xi - f if direction == "minimize" else f - best - xi
    samples = np.maximum(gain, 0.0)
    se = samples.std() / math.sqrt(len(samples))
    ei = expected_improvement(np.array([mean]), np.array([std]), best, xi, direction)[0]
    assert abs(ei - samples.mean()) < 4 * se


@SETTINGS
@given(mean=st.floats(-5, 5), std=st.floats(1e-3, 5), best=st.floats(-5, 5), xi=st.floats(0, 1))
def test_expected_improvement_properties(mean, std, best, xi):
    ei = expected_improvement(np.array([mean]), np.array([std]), best, xi)[0]
    assert ei >= max(best - xi - mean, 0.0) - 1e-12  # Jensen: E max(g, 0) >= max(E g, 0)
    assert expected_improvement(np.array([mean]), np.array([std * 1.5]), best, xi)[0] >= ei  # more doubt
    assert expected_improvement(np.array([mean - 0.1]), np.array([std]), best, xi)[0] >= ei  # better mean
    flipped = expected_improvement(np.array([-mean]), np.array([std]), -best, xi, "maximize")[0]
    assert_allclose(flipped, ei, rtol=1e-12, atol=1e-300)
    assert expected_improvement(np.array([mean]), np.array([0.0]), best, xi)[0] == max(best - xi - mean, 0.0)


def test_ask_exposes_the_model_of_the_step():
    opt = BayesianOptimizer({"x": Uniform(0, 1)}, seed=0, n_initial=3)
    for _ in range(3):
        p = opt.ask()
        opt.tell(p, forrester(p))
    assert opt.gp is None  # still the random start
    p = opt.ask()
    assert opt.gp is not None and opt.ei.shape == (len(opt.candidates),)
    assert encode(opt.space, [p])[0, 0] == pytest.approx(opt.candidates[np.argmax(opt.ei), 0])
    # on a mixed space every candidate whose EI is computed is a valid configuration, snapped
    mixed = BayesianOptimizer(SPACE, seed=1, n_initial=4, n_candidates=200)
    for _ in range(5):
        p = mixed.ask()
        mixed.tell(p, quadratic(p))
    C = mixed.candidates
    assert C.shape == (400, 6)
    assert_allclose(encode(SPACE, decode(SPACE, C)), C, atol=1e-12)


# ------------------------------------------------------------------------- Bayes versus random


@pytest.mark.slow
@pytest.mark.parametrize(
    ("objective", "space", "n_trials", "optimum"),
    [
        (forrester, {"x": Uniform(0.0, 1.0)}, 12, -6.020740),
        (branin, {"x1": Uniform(-5.0, 10.0), "x2": Uniform(0.0, 15.0)}, 20, 0.397887),
    ],
    ids=["forrester-1d", "branin-2d"],
)
def test_bayes_beats_random_search_in_most_seeds(objective, space, n_trials, optimum):
    regret = {"bayes": [], "random": []}
    for seed in range(20):
        regret["bayes"].append(bayes_search(objective, space, n_trials, seed=seed)["score"].min() - optimum)
        regret["random"].append(random_search(objective, space, n_trials, seed=seed)["score"].min() - optimum)
    b, r = np.array(regret["bayes"]), np.array(regret["random"])
    assert np.all(b >= -1e-6) and np.all(r >= -1e-6)  # nobody beats the known optimum
    assert np.sum(b < r) >= 15, (b, r)  # Bayes is better in most seeds (chance alone: 2% for >= 15)
    assert np.median(b) < 0.3 * np.median(r), (np.median(b), np.median(r))


# ------------------------------------------------------------------ other acquisition functions


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_probability_of_improvement_matches_a_hand_computation(direction):
    mean = np.array([-1.0, 0.0, 0.3, 2.0, 0.5])
    std = np.array([0.5, 1.0, 0.01, 3.0, 0.0])
    best, xi = 0.2, 0.05
    sign = 1.0 if direction == "maximize" else -1.0
    gain = sign * (mean - best) - xi  # improvement of the mean over best, beyond the margin
    expected = np.array(
        [stats.norm.cdf(g / s) if s > 0 else float(g > 0) for g, s in zip(gain, std, strict=True)]
    )
    pi = probability_of_improvement(mean, std, best, xi, direction)
    assert pi.dtype == np.float64
    assert_allclose(pi, expected, rtol=1e-13, atol=1e-300)
    # Monte Carlo: P(f < best - xi) for f ~ N(mean, std^2)
    f = np.random.default_rng(0).normal(mean[1], std[1], 400_000)
    mc = np.mean(f < best - xi) if direction == "minimize" else np.mean(f > best + xi)
    assert abs(pi[1] - mc) < 4 * math.sqrt(mc * (1 - mc) / f.size)


@SETTINGS
@given(mean=st.floats(-5, 5), std=st.floats(1e-3, 5), best=st.floats(-5, 5), xi=st.floats(0, 1))
def test_probability_of_improvement_properties(mean, std, best, xi):
    pi = probability_of_improvement(np.array([mean]), np.array([std]), best, xi)[0]
    assert 0.0 <= pi <= 1.0
    assert (
        probability_of_improvement(np.array([mean - 0.1]), np.array([std]), best, xi)[0] >= pi
    )  # better mean
    flipped = probability_of_improvement(np.array([-mean]), np.array([std]), -best, xi, "maximize")[0]
    assert_allclose(flipped, pi, rtol=1e-12, atol=1e-300)


def test_upper_confidence_bound_matches_a_hand_computation():
    mean = np.array([0.0, 1.0, -2.0, 0.5])
    std = np.array([1.0, 0.1, 0.2, 1.2])
    assert_allclose(upper_confidence_bound(mean, std, 1.5, "maximize"), mean + 1.5 * std, rtol=1e-15)
    lcb = mean - 1.5 * std  # minimization: the lower confidence bound, whose smallest value is next
    ucb = upper_confidence_bound(mean, std, 1.5, "minimize")
    assert_allclose(ucb, -lcb, rtol=1e-15)
    assert np.argmax(ucb) == np.argmin(lcb) == 2
    assert np.argmax(upper_confidence_bound(mean, std, 0.0)) == np.argmin(mean)  # kappa 0: pure exploitation
    assert np.argmax(upper_confidence_bound(mean, std, 50.0)) == np.argmax(std)  # large kappa: exploration
    with pytest.raises(ValueError, match="kappa"):
        upper_confidence_bound(mean, std, -1.0)


@pytest.mark.parametrize("acquisition", ["ei", "pi", "ucb"])
def test_ask_maximizes_the_chosen_acquisition(acquisition):
    opt = BayesianOptimizer({"x": Uniform(0, 1)}, seed=0, n_initial=3, acquisition=acquisition, kappa=1.5)
    for _ in range(4):
        p = opt.ask()
        opt.tell(p, forrester(p))
    p = opt.ask()  # the step the model describes: not told yet
    mean, std = opt.gp.predict(opt.candidates)
    mu, sd = (mean - opt.gp.y_mean_) / opt.gp.y_std_, std / opt.gp.y_std_
    best = (min(opt.scores) - opt.gp.y_mean_) / opt.gp.y_std_
    z = (best - opt.xi - mu) / sd
    by_hand = {  # scipy.stats.norm, float64
        "ei": (best - opt.xi - mu) * stats.norm.cdf(z) + sd * stats.norm.pdf(z),
        "pi": stats.norm.cdf(z),
        "ucb": 1.5 * sd - mu,
    }[acquisition]
    assert_allclose(opt.acq, by_hand, rtol=1e-9, atol=1e-12)
    assert opt.ei is opt.acq
    assert encode(opt.space, [p])[0, 0] == pytest.approx(opt.candidates[np.argmax(opt.acq), 0])


def test_acquisitions_lead_to_different_searches_and_ei_is_the_default():
    space = {"x": Uniform(0, 1)}
    tables = {
        a: bayes_search(forrester, space, 8, seed=0, acquisition=a, kappa=3.0) for a in ("ei", "pi", "ucb")
    }
    default = bayes_search(forrester, space, 8, seed=0)
    assert_array_equal(default["x"], tables["ei"]["x"])
    assert not np.allclose(tables["ucb"]["x"], tables["ei"]["x"])
    with pytest.raises(ValueError, match="acquisition"):
        BayesianOptimizer(space, acquisition="thompson")


# ---------------------------------------------------- budgeted search: successive halving, Hyperband


def by_budget(p, budget):
    """quadratic, plus a term that only depends on the budget: the ranking is the same at every budget."""
    return quadratic(p) + 1.0 / budget


@pytest.mark.parametrize(
    "n, eta, lo, hi, expected",
    [
        (18, 3, 1, 3, [(18, 1), (6, 3)]),
        (27, 3, 1, 27, [(27, 1), (9, 3), (3, 9), (1, 27)]),
        (10, 2, 1, 8, [(10, 1), (5, 2), (2, 4), (1, 8)]),
        (20, 3, 2, 20, [(20, 2), (6, 6), (2, 20)]),  # 20/2 is not a power of 3: floor(20/9), floor(20/3), 20
        (5, 4, 3, 3, [(5, 3)]),  # min = max: one rung, random search
        (2, 3, 1, 9, [(2, 1), (1, 3), (1, 9)]),  # never fewer than one configuration
    ],
)
def test_successive_halving_rungs_follow_the_formulas(n, eta, lo, hi, expected):
    assert halving_schedule(n, lo, hi, eta) == expected
    table = successive_halving(SPACE, by_budget, n, lo, hi, eta, rng=0)
    per_rung = table.groupby("rung").agg(
        n=("config", "size"), budget=("budget", "first"), lo=("budget", "min"), hi=("budget", "max")
    )
    assert list(zip(per_rung["n"], per_rung["budget"], strict=True)) == expected
    assert (per_rung["lo"] == per_rung["hi"]).all()  # one budget per rung
    assert table.attrs["total_budget"] == table["budget"].sum() == sum(k * r for k, r in expected)
    assert table["trial"].tolist() == list(range(len(table)))
    assert list(table.columns) == ["trial", "config", "rung", "budget", *SPACE, *RESULT_COLUMNS[1:]]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("n, eta, lo, hi", [(27, 3, 1, 27), (10, 2, 1, 8), (20, 3, 2, 20)])
def test_successive_halving_finds_the_true_best_and_promotes_the_top(direction, n, eta, lo, hi):
    sign = 1.0 if direction == "minimize" else -1.0
    table = successive_halving(
        SPACE, lambda p, b: sign * by_budget(p, b), n, lo, hi, eta, rng=3, direction=direction
    )
    drawn = random_search(quadratic, SPACE, n, seed=3)  # the same n configurations, in the same order
    first = table[table["rung"] == 0]
    assert_array_equal(first["config"], np.arange(n))
    pd.testing.assert_frame_equal(first[list(SPACE)].reset_index(drop=True), drawn[list(SPACE)])
    best = best_trial(table)
    assert best["budget"] == hi
    assert int(best["config"]) == int(drawn["score"].idxmin())  # the true best of the n
    for i in range(table["rung"].max()):  # each rung keeps exactly the best n_{i+1} of the one before
        prev, nxt = table[table["rung"] == i], table[table["rung"] == i + 1]
        top = prev.sort_values("score", ascending=direction == "minimize", kind="stable")["config"]
        assert sorted(nxt["config"]) == sorted(top.iloc[: len(nxt)])


def test_best_trial_of_a_budgeted_search_is_at_the_largest_budget():
    table = successive_halving(SPACE, lambda p, b: quadratic(p) - 100.0 * (b == 1), 9, 1, 9, 3, rng=0)
    assert table["score"].idxmin() in table.index[table["budget"] == 1]  # small budgets score "better"
    assert best_trial(table)["budget"] == 9
    at_max = table["budget"] == 9
    assert_allclose(table["best_so_far"].iloc[-1], table.loc[at_max, "score"].min())
    assert table.loc[: at_max.idxmax() - 1, "best_so_far"].isna().all()  # no best before the first full run


def test_failed_configurations_are_never_promoted():
    def flaky(p, budget):
        if p["activation"] == "relu":  # the best ones by quadratic, but they fail
            raise FloatingPointError("diverged")
        return quadratic(p)

    table = successive_halving(SPACE, flaky, 27, 1, 9, 3, rng=1)
    first = table[table["rung"] == 0]
    failed = set(first.loc[first["status"] == "failed", "config"])
    assert failed and not failed & set(table.loc[table["rung"] > 0, "config"])
    assert (table[table["rung"] > 0]["status"] == "ok").all()
    assert best_trial(table)["activation"] != "relu"


# Li, Jamieson, DeSalvo, Rostamizadeh and Talwalkar (2018), table 1: R = 81, eta = 3, (n_i, r_i) per bracket s
LI_TABLE_1 = {
    4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    3: [(34, 3), (11, 9), (3, 27), (1, 81)],
    2: [(15, 9), (5, 27), (1, 81)],
    1: [(8, 27), (2, 81)],
    0: [(5, 81)],
}


def test_hyperband_brackets_match_li_et_al_table_1():
    assert dict(hyperband_brackets(1, 81, 3)) == LI_TABLE_1
    assert [s for s, _ in hyperband_brackets(1, 81, 3)] == [4, 3, 2, 1, 0]  # most aggressive first
    assert hyperband_brackets(1, 3, 3) == [(1, [(3, 1), (1, 3)]), (0, [(2, 3)])]  # by hand: s_max 1, B = 6
    assert hyperband_brackets(2, 2, 3) == [(0, [(1, 2)])]


@pytest.mark.parametrize("n_iterations", [1, 2])
def test_hyperband_evaluations_and_total_budget(n_iterations):
    table = hyperband(SPACE, by_budget, 1, 81, 3, rng=0, n_iterations=n_iterations)
    assert len(table) == n_iterations * 206  # 121 + 49 + 21 + 10 + 5 evaluations (table 1)
    assert table["budget"].sum() == table.attrs["total_budget"] == n_iterations * 1902  # 405+363+351+378+405
    for (_, s), part in table.groupby(["iteration", "bracket"]):
        rungs = part.groupby("rung").agg(n=("config", "size"), budget=("budget", "first"))
        assert list(zip(rungs["n"], rungs["budget"], strict=True)) == LI_TABLE_1[s]
    assert table["config"].nunique() == n_iterations * (
        81 + 34 + 15 + 8 + 5
    )  # new configurations per bracket
    drawn = random_search(quadratic, SPACE, table["config"].nunique(), seed=0)
    firsts = table.drop_duplicates("config").sort_values("config")
    pd.testing.assert_frame_equal(firsts[list(SPACE)].reset_index(drop=True), drawn[list(SPACE)])
    best = best_trial(table)
    assert best["budget"] == 81
    # the ranking does not depend on the budget: the best at 81 is the best configuration that reached 81
    reached = table.loc[table["budget"] == 81, "config"]
    assert int(best["config"]) == int(drawn["score"].iloc[reached.to_numpy()].idxmin())


@pytest.mark.parametrize("search", ["sh", "hb"])
def test_budgeted_searches_are_reproducible(search):
    def run(rng):
        if search == "sh":
            return successive_halving(SPACE, by_budget, 12, 1, 9, 3, rng=rng)
        return hyperband(SPACE, by_budget, 1, 9, 3, rng=rng)

    a, b, c = run(5), run(5), run(6)
    cols = [col for col in a.columns if col != "seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not a[list(SPACE)].equals(c[list(SPACE)])
    pd.testing.assert_frame_equal(run(np.random.default_rng(5))[cols], a[cols])  # a Generator as a seed
    assert a.attrs["seed"] == 5


def test_budgeted_searches_reject_bad_arguments():
    for bad_eta in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="eta"):
            successive_halving(SPACE, by_budget, 9, 1, 9, bad_eta)
        with pytest.raises(ValueError, match="eta"):
            hyperband(SPACE, by_budget, 1, 9, bad_eta)
    with pytest.raises(ValueError, match="min_budget must be <= max_budget"):
        successive_halving(SPACE, by_budget, 9, 10, 9)
    with pytest.raises(ValueError, match="min_budget must be <= max_budget"):
        hyperband(SPACE, by_budget, 10, 9)
    for bad_n in (0, -3, 2.0):
        with pytest.raises(ValueError, match="n, the number of configurations"):
            successive_halving(SPACE, by_budget, bad_n, 1, 9)
    with pytest.raises(ValueError, match="min_budget is a whole number"):
        successive_halving(SPACE, by_budget, 9, 0, 9)
    with pytest.raises(ValueError, match="max_budget is a whole number"):
        hyperband(SPACE, by_budget, 1, 9.5)
    with pytest.raises(ValueError, match="n_iterations"):
        hyperband(SPACE, by_budget, 1, 9, n_iterations=0)
    with pytest.raises(ValueError, match="rng"):
        successive_halving(SPACE, by_budget, 9, 1, 9, rng="seed")
    with pytest.raises(ValueError, match="column of the results table"):
        successive_halving({"budget": Uniform(0, 1)}, by_budget, 9, 1, 9)
