"""Hyperparameter search: grid, random, Bayesian optimization and budgeted search over one search space.

A *search space* is a dict ``name -> dimension``, shared by the three searches::

    space = {"lr": LogUniform(1e-3, 1.0), "dropout": Uniform(0.0, 0.7),
             "width": IntUniform(16, 512, log=True), "activation": Categorical(["relu", "tanh"])}

``grid_search``, ``random_search`` and ``bayes_search`` call ``objective(params) -> float`` and
return a pandas DataFrame with one row per trial: ``trial``, one column per hyperparameter,
``score``, ``status`` (``"ok"`` or ``"failed"``), ``error`` (the exception of a failed trial, ``""``
otherwise), ``seconds`` (the objective's wall time) and ``best_so_far``. An objective that raises,
or returns NaN or infinity, is a failed trial: the search records it and goes on. The budget is
a number of trials (``n_trials``), a wall time (``max_seconds``: no trial starts after that), or
both. The same ``seed`` gives the same trials. ``direction`` says whether a higher
(``"maximize"``, an accuracy) or a lower score (``"minimize"``, a loss) is better.

**Bayesian optimization** (Snoek, Larochelle and Adams 2012) models the objective by a Gaussian
process (GP). Inputs are mapped to the unit cube: uniform dimensions linearly, log dimensions in
log space, integers by their continuous relaxation (rounded back), categorical ones one-hot.
Scores y are standardized to mean 0 and variance 1. With one length scale per input (ARD),

    k(x, x') = s^2 r(d),         d^2 = sum_j (x_j - x'_j)^2 / l_j^2
    RBF:         r(d) = exp(-d^2 / 2)
    Matérn 5/2:  r(d) = (1 + sqrt(5) d + 5 d^2 / 3) exp(-sqrt(5) d)

and observations y = f(X) + eps, eps ~ N(0, sigma_n^2), the posterior of f at test points x* is
(Rasmussen and Williams 2006, eqs. 2.25-2.26 and algorithm 2.1)

    K = k(X, X) + sigma_n^2 I = L L^T,     alpha = L^T \\ (L \\ y)
    mean(x*) = k(x*, X) alpha,             var(x*) = k(x*, x*) - v^T v,   v = L \\ k(X, x*)

The hyperparameters theta = (log s^2, log l_1, ..., log l_D, log sigma_n^2), the noise included,
maximize the log marginal likelihood (R&W eqs. 2.30 and 5.9), by L-BFGS-B from several starts:

    log p(y | X, theta) = -1/2 y^T alpha - sum_i log L_ii - n/2 log(2 pi)
    d log p / d theta_k = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_k)

The next trial maximizes the expected improvement over the best score so far, f_best (Jones,
Schonlau and Welch 1998); for minimization, with mu and sigma the posterior mean and standard
deviation and xi >= 0 a small margin,

    EI(x) = E[max(f_best - xi - f(x), 0)] = (f_best - xi - mu) Phi(z) + sigma phi(z),
    z = (f_best - xi - mu) / sigma

over random candidates and perturbations of the best points so far. The first ``n_initial``
trials are random (the same ones ``random_search`` draws with the same seed). Other acquisitions
(``acquisition=``): the probability of improvement PI(x) = Phi(z) (Kushner 1964), and the
confidence bound kappa sigma - mu, the lower confidence bound mu - kappa sigma negated (Srinivas
et al. 2010), all maximized.

**Budgeted search.** ``successive_halving`` (Jamieson and Talwalkar 2016) and ``hyperband`` (Li et
al. 2018) call ``objective(params, budget) -> float`` with a budget (epochs, an integer): many
configurations get a small budget, and the best 1/eta of each rung go on with eta times more, up to
``max_budget``. Their tables have one row per evaluation, with ``config``, ``rung``, ``budget``
(and Hyperband's ``iteration`` and ``bracket``) columns; ``best_trial`` takes the best at the
largest budget, and ``table["budget"].sum()`` is what the search spent.

References: C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine Learning*, MIT
Press 2006, chapters 2 and 5; D. R. Jones, M. Schonlau and W. J. Welch, Efficient global
optimization of expensive black-box functions, *J. Global Optimization* 13, 1998; J. Snoek,
H. Larochelle and R. P. Adams, Practical Bayesian optimization of machine learning algorithms,
NeurIPS 2012; J. Bergstra and Y. Bengio, Random search for hyper-parameter optimization, *JMLR*
13, 2012; H. J. Kushner, A new method of locating the maximum point of an arbitrary multipeak curve
in the presence of noise, *J. Basic Engineering* 86, 1964; N. Srinivas, A. Krause, S. Kakade and
M. Seeger, Gaussian process optimization in the bandit setting, ICML 2010; K. Jamieson and
A. Talwalkar, Non-stochastic best arm identification and hyperparameter optimization, AISTATS 2016;
L. Li, K. Jamieson, G. DeSalvo, A. Rostamizadeh and A. Talwalkar, Hyperband, *JMLR* 18(185), 2018.
The GP is checked against scikit-learn's ``GaussianProcessRegressor`` and EI against a
Monte Carlo estimate in ``tests/test_search.py``. Book chapter 6 explains all of it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize
from scipy.special import ndtr  # the standard normal cdf Phi (scipy.stats takes a second to import)
from threadpoolctl import threadpool_limits

__all__ = [
    "Uniform",
    "LogUniform",
    "IntUniform",
    "Categorical",
    "Dimension",
    "grid_values",
    "grid_search",
    "random_search",
    "bayes_search",
    "BayesianOptimizer",
    "GaussianProcess",
    "expected_improvement",
    "probability_of_improvement",
    "upper_confidence_bound",
    "successive_halving",
    "hyperband",
    "halving_schedule",
    "hyperband_brackets",
    "encode",
    "decode",
    "sample_params",
    "best_trial",
    "RESULT_COLUMNS",
]

#: The columns of a results table besides one column per hyperparameter.
RESULT_COLUMNS = ("trial", "score", "status", "error", "seconds", "best_so_far")
#: The extra columns of a budgeted search's table (successive halving, Hyperband).
BUDGET_COLUMNS = ("config", "iteration", "bracket", "rung", "budget")

Params = dict[str, Any]
Space = Mapping[str, "Dimension"]


# ------------------------------------------------------------------------------------ dimensions


class Dimension:
    """One hyperparameter's range. ``width`` columns in the unit-cube encoding the GP sees."""

    width = 1

    def sample(self, rng: np.random.Generator, n: int) -> list:
        """n values drawn from the dimension's prior (uniform in its own scale)."""
        raise NotImplementedError

    def grid(self, n: int) -> list:
        """n values evenly spaced in the dimension's scale (fewer for small integer ranges)."""
        raise NotImplementedError

    def encode(self, values: Sequence) -> np.ndarray:
        """Values -> (n, width) points of the unit cube."""
        raise NotImplementedError

    def decode(self, U: np.ndarray) -> list:
        """(n, width) points of (or near) the unit cube -> the nearest valid values."""
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError


def _check_bounds(low: float, high: float, positive: bool = False) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"need finite low < high, got low={low}, high={high}")
    if positive and low <= 0:
        raise ValueError(f"a log scale needs low > 0, got low={low}")


@dataclass(frozen=True)
class Uniform(Dimension):
    """A real number in [low, high], uniform: a dropout rate, a momentum."""

    low: float  # smallest value
    high: float  # largest value

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high)

    def sample(self, rng, n):
        return [float(v) for v in rng.uniform(self.low, self.high, n)]

    def grid(self, n):
        if n <= 1:
            return [(self.low + self.high) / 2]
        return [float(v) for v in np.linspace(self.low, self.high, n)]

    def encode(self, values):
        v = np.asarray(values, dtype=np.float64)
        return ((v - self.low) / (self.high - self.low))[:, None]

    def decode(self, U):
        u = np.clip(np.asarray(U, dtype=np.float64)[:, 0], 0.0, 1.0)
        return [float(v) for v in self.low + u * (self.high - self.low)]

    def contains(self, value):
        return isinstance(value, (int, float, np.number)) and self.low <= value <= self.high


@dataclass(frozen=True)
class LogUniform(Dimension):
    """A positive real number in [low, high] whose logarithm is uniform: a learning rate, a penalty."""

    low: float  # smallest value, > 0
    high: float  # largest value

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, positive=True)

    @property
    def _logs(self) -> tuple[float, float]:
        return math.log(self.low), math.log(self.high)

    def sample(self, rng, n):
        a, b = self._logs
        return [float(v) for v in np.clip(np.exp(rng.uniform(a, b, n)), self.low, self.high)]

    def grid(self, n):
        if n <= 1:
            return [math.sqrt(self.low * self.high)]
        return [float(v) for v in np.geomspace(self.low, self.high, n)]

    def encode(self, values):
        a, b = self._logs
        return ((np.log(np.asarray(values, dtype=np.float64)) - a) / (b - a))[:, None]

    def decode(self, U):
        a, b = self._logs
        u = np.clip(np.asarray(U, dtype=np.float64)[:, 0], 0.0, 1.0)
        return [float(v) for v in np.clip(np.exp(a + u * (b - a)), self.low, self.high)]

    def contains(self, value):
        return isinstance(value, (int, float, np.number)) and self.low <= value <= self.high


@dataclass(frozen=True)
class IntUniform(Dimension):
    """An integer in [low, high] (both included), uniform, or log-uniform with ``log=True``: a width.

    The log version draws a real number log-uniformly in [low - 1/2, high + 1/2] and rounds it,
    so P(k) is proportional to log((k + 1/2) / (k - 1/2)), about 1/k (as Optuna's ``suggest_int``).
    """

    low: int  # smallest value
    high: int  # largest value
    log: bool = False  # uniform in log space (needs low >= 1)

    def __post_init__(self) -> None:
        if int(self.low) != self.low or int(self.high) != self.high:
            raise ValueError(f"IntUniform needs integer bounds, got {self.low}, {self.high}")
        _check_bounds(self.low, self.high)
        if self.log and self.low < 1:
            raise ValueError(f"IntUniform(log=True) needs low >= 1, got {self.low}")

    def _t(self, v):
        return np.log(v) if self.log else np.asarray(v, dtype=np.float64)

    def _t_inv(self, t):
        return np.exp(t) if self.log else t

    @property
    def _ends(self) -> tuple[float, float]:
        return float(self._t(self.low - 0.5)), float(self._t(self.high + 0.5))

    def _from_unit(self, u) -> np.ndarray:
        a, b = self._ends
        v = np.rint(self._t_inv(a + np.clip(u, 0.0, 1.0) * (b - a)))
        return np.clip(v, self.low, self.high).astype(np.int64)

    def sample(self, rng, n):
        return [int(v) for v in self._from_unit(rng.uniform(0.0, 1.0, n))]

    def grid(self, n):
        if n <= 1:
            return [int(self._from_unit(np.array([0.5]))[0])]
        ends = (self.low, self.high)
        raw = np.geomspace(*ends, n) if self.log else np.linspace(*ends, n)
        return [int(v) for v in np.unique(np.rint(raw))]

    def encode(self, values):
        a, b = self._ends
        return ((self._t(np.asarray(values, dtype=np.float64)) - a) / (b - a))[:, None]

    def decode(self, U):
        return [int(v) for v in self._from_unit(np.asarray(U, dtype=np.float64)[:, 0])]

    def contains(self, value):
        return isinstance(value, (int, np.integer)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical(Dimension):
    """One of a few unordered choices: an activation, an optimizer. One-hot for the GP."""

    choices: tuple  # the values, all different

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 1:
            raise ValueError("Categorical needs at least one choice")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"Categorical choices must be different, got {self.choices}")

    @property
    def width(self) -> int:  # type: ignore[override]
        return len(self.choices)

    def _index(self, value) -> int:
        for i, c in enumerate(self.choices):  # True is not 1, although True == 1
            if c is value or (isinstance(c, bool) == isinstance(value, (bool, np.bool_)) and c == value):
                return i
        raise ValueError(f"{value!r} is not one of {self.choices}")

    def sample(self, rng, n):
        return [self.choices[i] for i in rng.integers(0, len(self.choices), n)]

    def grid(self, n):
        return list(self.choices)

    def encode(self, values):
        out = np.zeros((len(values), self.width))
        out[np.arange(len(values)), [self._index(v) for v in values]] = 1.0
        return out

    def decode(self, U):
        return [self.choices[i] for i in np.argmax(np.asarray(U), axis=1)]

    def contains(self, value):
        try:
            self._index(value)
        except ValueError:
            return False
        return True


def _check_space(space: Space) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError("the search space is a non-empty dict name -> dimension")
    for name, dim in space.items():
        if not isinstance(name, str):
            raise ValueError(f"hyperparameter names are strings, got {name!r}")
        if name in RESULT_COLUMNS or name in BUDGET_COLUMNS:
            raise ValueError(f"{name!r} is a column of the results table: rename the hyperparameter")
        if not isinstance(dim, Dimension):
            raise ValueError(f"{name}: {dim!r} is not a Uniform, LogUniform, IntUniform or Categorical")


def encode(space: Space, params: Sequence[Params]) -> np.ndarray:
    """A list of parameter dicts -> (n, W) points of the unit cube, W = sum of the widths."""
    return np.hstack([dim.encode([p[name] for p in params]) for name, dim in space.items()])


def decode(space: Space, U: np.ndarray) -> list[Params]:
    """(n, W) points -> the nearest valid parameter dicts (clipped, rounded, argmax of one-hot)."""
    U = np.atleast_2d(np.asarray(U, dtype=np.float64))
    cols, start = {}, 0
    for name, dim in space.items():
        cols[name] = dim.decode(U[:, start : start + dim.width])
        start += dim.width
    return [{name: cols[name][i] for name in space} for i in range(len(U))]


def sample_params(space: Space, rng: np.random.Generator) -> Params:
    """One trial's parameters: each dimension drawn in turn from its prior."""
    return {name: dim.sample(rng, 1)[0] for name, dim in space.items()}


def grid_values(space: Space, n_points: int = 3, values: Mapping[str, Sequence] | None = None) -> dict:
    """The values a grid search tries per dimension: ``values[name]``, else ``dim.grid(n_points)``."""
    _check_space(space)
    values = dict(values or {})
    unknown = set(values) - set(space)
    if unknown:
        raise ValueError(f"grid values for {sorted(unknown)}, which are not in the space {list(space)}")
    out = {}
    for name, dim in space.items():
        vals = list(values[name]) if name in values else dim.grid(n_points)
        bad = [v for v in vals if not dim.contains(v)]
        if not vals or bad:
            raise ValueError(f"grid values of {name} must be non-empty and inside {dim}, got {vals}")
        out[name] = vals
    return out


# ------------------------------------------------------------------------------------- the loop


def _check_direction(direction: str) -> bool:
    """True when higher is better."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction is 'maximize' or 'minimize', got {direction!r}")
    return direction == "maximize"


def _evaluate(objective: Callable[[Params], float], params: Params) -> tuple[float, str, str, float]:
    """(score, status, error, seconds) of one call; any exception makes a failed trial."""
    start = time.perf_counter()
    try:
        score = float(objective(dict(params)))
        error = "" if math.isfinite(score) else f"objective returned {score}"
    except Exception as err:  # noqa: BLE001 - a failing trial must not end the search
        score, error = math.nan, f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    if error:
        return math.nan, "failed", error, seconds
    return score, "ok", "", seconds


def _run(
    method: str,
    objective: Callable[[Params], float],
    space: Space,
    propose: Callable[[int], Params | None],
    observe: Callable[[Params, float | None], None],
    n_trials: int | None,
    max_seconds: float | None,
    direction: str,
    seed: int | None,
) -> pd.DataFrame:
    maximize = _check_direction(direction)
    if n_trials is not None and (int(n_trials) != n_trials or n_trials < 0):
        raise ValueError(f"n_trials is a number of trials >= 0, got {n_trials}")
    if max_seconds is not None and not max_seconds >= 0:
        raise ValueError(f"max_seconds must be >= 0, got {max_seconds}")
    rows = []
    start = time.perf_counter()
    while n_trials is None or len(rows) < n_trials:
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            break
        params = propose(len(rows))
        if params is None:  # a grid that is done
            break
        score, status, error, seconds = _evaluate(objective, params)
        observe(params, score if status == "ok" else None)
        rows.append(
            {
                "trial": len(rows),
                **params,
                "score": score,
                "status": status,
                "error": error,
                "seconds": seconds,
            }
        )
    columns = ["trial", *space, "score", "status", "error", "seconds"]
    table = pd.DataFrame(rows, columns=columns)
    table["score"] = table["score"].astype(np.float64)
    table["seconds"] = table["seconds"].astype(np.float64)
    table["best_so_far"] = _best_so_far(table["score"].to_numpy(), maximize)
    table.attrs.update(
        method=method, direction=direction, seed=seed, total_seconds=time.perf_counter() - start
    )
    return table


def _best_so_far(scores: np.ndarray, maximize: bool) -> np.ndarray:
    best, out = math.nan, np.empty(len(scores))
    for i, s in enumerate(scores):
        if not math.isnan(s) and (math.isnan(best) or (s > best if maximize else s < best)):
            best = s
        out[i] = best
    return out


def best_trial(results: pd.DataFrame, direction: str | None = None) -> pd.Series:
    """The row of the best successful trial (the first one on ties).

    In the table of a budgeted search (a ``budget`` column: ``successive_halving``, ``hyperband``),
    the best of the evaluations at the largest budget that succeeded.

    ``direction`` defaults to the one the search recorded in ``results.attrs``; a table that lost
    it (``pd.concat`` of several searches) needs it given.
    """
    direction = direction or results.attrs.get("direction")
    if direction is None:
        raise ValueError("this table does not say whether higher is better: pass direction=")
    maximize = _check_direction(direction)
    ok = results[results["status"] == "ok"]
    if ok.empty:
        raise ValueError("no trial succeeded")
    if "budget" in ok:  # a budgeted search: a score at a small budget is not comparable, keep the largest
        ok = ok[ok["budget"] == ok["budget"].max()]
    scores = ok["score"].to_numpy()
    return ok.iloc[int(np.argmax(scores) if maximize else np.argmin(scores))]  # by position: any index


def _need_budget(n_trials: int | None, max_seconds: float | None) -> None:
    if n_trials is None and max_seconds is None:
        raise ValueError("give a budget: n_trials, max_seconds, or both")


# ----------------------------------------------------------------------------- grid and random


def grid_search(
    objective: Callable[[Params], float],
    space: Space,
    *,
    n_points: int = 3,
    values: Mapping[str, Sequence] | None = None,
    direction: str = "minimize",
    n_trials: int | None = None,
    max_seconds: float | None = None,
) -> pd.DataFrame:
    """Every combination of ``grid_values(space, n_points, values)``, the last dimension fastest.

    Without a budget the whole product is evaluated; ``n_trials`` or ``max_seconds`` stop earlier.
    """
    grid = grid_values(space, n_points, values)
    combos = itertools.product(*grid.values())

    def propose(_):
        combo = next(combos, None)
        return None if combo is None else dict(zip(grid, combo, strict=True))

    return _run("grid", objective, space, propose, lambda *_: None, n_trials, max_seconds, direction, None)


def random_search(
    objective: Callable[[Params], float],
    space: Space,
    n_trials: int | None = None,
    *,
    seed: int = 0,
    direction: str = "minimize",
    max_seconds: float | None = None,
) -> pd.DataFrame:
    """Independent draws from every dimension's prior (Bergstra and Bengio 2012)."""
    _check_space(space)
    _need_budget(n_trials, max_seconds)
    rng = np.random.default_rng(seed)
    return _run(
        "random",
        objective,
        space,
        lambda _: sample_params(space, rng),
        lambda *_: None,
        n_trials,
        max_seconds,
        direction,
        seed,
    )


# ------------------------------------------------------------------------------ Gaussian process


_SQRT5 = math.sqrt(5.0)
_blas_depth = 0  # > 0 inside _one_blas_thread


@contextlib.contextmanager
def _one_blas_thread():
    """One BLAS thread for the GP's small matrices: more threads only wait for each other (ten times
    slower on a busy machine). Nested uses cost nothing (threadpoolctl takes milliseconds)."""
    global _blas_depth
    if _blas_depth:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        _blas_depth += 1
        try:
            yield
        finally:
            _blas_depth -= 1


def _kernel(kind: str, A: np.ndarray, B: np.ndarray, ls: np.ndarray, grad: bool = False):
    """r(d) between the rows of A (n, D) and B (m, D), and, with ``grad``, dr/dlog l_j as (D, n, m)."""
    diff = (A[:, None, :] - B[None, :, :]) / ls  # (n, m, D)
    sq = diff**2
    d2 = sq.sum(-1)  # (n, m)
    if kind == "rbf":
        r = np.exp(-0.5 * d2)
        dr = r[None] * np.moveaxis(sq, -1, 0) if grad else None
    elif kind == "matern52":
        d = np.sqrt(d2)
        e = np.exp(-_SQRT5 * d)
        r = (1.0 + _SQRT5 * d + (5.0 / 3.0) * d2) * e
        dr = ((5.0 / 3.0) * (1.0 + _SQRT5 * d) * e)[None] * np.moveaxis(sq, -1, 0) if grad else None
    else:
        raise ValueError(f"kernel is 'rbf' or 'matern52', got {kind!r}")
    return (r, dr) if grad else r


@dataclass
class GaussianProcess:
    """GP regression with an RBF or Matérn 5/2 ARD kernel and Gaussian noise, fitted by type-II ML.

    ``fit(X, y)`` with X (n, D) and y (n,); ``predict(Xs)`` gives the posterior mean and standard
    deviation of the latent f (noise excluded), each (m,). The hyperparameters below are the
    starting point of the fit, or the values used when ``fit(optimize=False)``.
    """

    kernel: str = "matern52"  # "rbf" or "matern52"
    lengthscale: float | Sequence[float] = 0.3  # l, one for all inputs or one per input (unit-cube units)
    signal_variance: float = 1.0  # s^2, the prior variance of f (in units of the standardized y)
    noise: float = 1e-3  # sigma_n^2, the noise variance (same units)
    normalize_y: bool = True  # standardize y before fitting (mean 0, variance 1)
    bounds: dict = field(
        default_factory=lambda: {  # box for the fit, on the values (not the logs)
            "signal_variance": (0.05, 20.0),
            "lengthscale": (0.01, 10.0),
            "noise": (1e-6, 1.0),
        }
    )

    def _theta0(self, D: int) -> np.ndarray:
        ls = np.broadcast_to(np.asarray(self.lengthscale, dtype=np.float64), (D,))
        return np.log(np.concatenate([[self.signal_variance], ls, [self.noise]]))

    def _unpack(self, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
        e = np.exp(theta)
        return e[0], e[1:-1], e[-1]

    def log_marginal_likelihood(self, theta: np.ndarray | None = None, eval_gradient: bool = False):
        """log p(y | X, theta) of the fitted data, and its gradient with respect to theta if asked.

        theta = (log s^2, log l_1, ..., log l_D, log sigma_n^2), the order of scikit-learn's
        ``ConstantKernel * Matern + WhiteKernel``; None means the fitted theta.
        """
        theta = self.theta_ if theta is None else np.asarray(theta, dtype=np.float64)
        X, y = self.X_train_, self._y
        n = len(X)
        s2, ls, n2 = self._unpack(theta)
        r, dr = _kernel(self.kernel, X, X, ls, grad=True)
        K = s2 * r + n2 * np.eye(n)
        try:
            L = linalg.cholesky(K, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return (-np.inf, np.zeros_like(theta)) if eval_gradient else -np.inf
        alpha = linalg.cho_solve((L, True), y, check_finite=False)
        lml = -0.5 * y @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * math.log(2 * math.pi)
        if not eval_gradient:
            return float(lml)
        W = np.outer(alpha, alpha) - linalg.cho_solve((L, True), np.eye(n), check_finite=False)  # (n, n)
        grad = np.empty_like(theta)
        grad[0] = 0.5 * np.sum(W * (s2 * r))
        grad[1:-1] = 0.5 * np.einsum("ij,kij->k", W, s2 * dr)
        grad[-1] = 0.5 * n2 * np.trace(W)
        return float(lml), grad

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        optimize: bool = True,
        n_restarts: int = 2,
        rng: np.random.Generator | int | None = 0,
    ) -> GaussianProcess:
        """Condition on (X, y); with ``optimize``, first maximize the log marginal likelihood over theta
        from the initial values and ``n_restarts`` random starts in the bounds."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"X must be (n, D) and y (n,), got {X.shape} and {y.shape}")
        self.X_train_ = X
        self.y_mean_, self.y_std_ = (float(y.mean()), float(y.std())) if self.normalize_y else (0.0, 1.0)
        if self.y_std_ == 0.0:
            self.y_std_ = 1.0
        self._y = (y - self.y_mean_) / self.y_std_
        theta = self._theta0(X.shape[1])
        if optimize:
            with _one_blas_thread():
                theta = self._optimize(theta, n_restarts, np.random.default_rng(rng))
        self.theta_ = theta
        s2, ls, n2 = self._unpack(theta)
        K = s2 * _kernel(self.kernel, X, X, ls) + n2 * np.eye(len(X))
        self.L_ = linalg.cholesky(K, lower=True, check_finite=False)
        self.alpha_ = linalg.cho_solve((self.L_, True), self._y)
        return self

    def _optimize(self, theta0: np.ndarray, n_restarts: int, rng: np.random.Generator) -> np.ndarray:
        b = self.bounds
        D = len(theta0) - 2
        box = np.log([b["signal_variance"], *[b["lengthscale"]] * D, b["noise"]])  # (D + 2, 2)
        starts = [np.clip(theta0, box[:, 0], box[:, 1])]
        starts += [rng.uniform(box[:, 0], box[:, 1]) for _ in range(n_restarts)]

        def neg(theta):
            lml, grad = self.log_marginal_likelihood(theta, eval_gradient=True)
            return (1e25, np.zeros_like(theta)) if not np.isfinite(lml) else (-lml, -grad)

        best, best_value = starts[0], neg(starts[0])[0]
        for start in starts:
            res = optimize.minimize(neg, start, jac=True, method="L-BFGS-B", bounds=box)
            if np.isfinite(res.fun) and res.fun < best_value:
                best, best_value = res.x, res.fun
        return best

    def predict(self, Xs: np.ndarray, return_cov: bool = False):
        """Posterior (mean, std) of f at Xs (m, D), or (mean, cov) with ``return_cov``, in y's units."""
        Xs = np.asarray(Xs, dtype=np.float64)
        s2, ls, _ = self._unpack(self.theta_)
        Ks = s2 * _kernel(self.kernel, Xs, self.X_train_, ls)  # (m, n)
        mean = Ks @ self.alpha_ * self.y_std_ + self.y_mean_
        v = linalg.solve_triangular(self.L_, Ks.T, lower=True)  # (n, m)
        if return_cov:
            cov = s2 * _kernel(self.kernel, Xs, Xs, ls) - v.T @ v
            return mean, cov * self.y_std_**2
        var = np.clip(s2 - np.sum(v**2, axis=0), 0.0, None)
        return mean, np.sqrt(var) * self.y_std_

    @property
    def fitted(self) -> dict[str, Any]:
        """The fitted hyperparameters by name (in the units of the standardized y)."""
        s2, ls, n2 = self._unpack(self.theta_)
        return {"signal_variance": float(s2), "lengthscale": ls.copy(), "noise": float(n2)}


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, direction: str = "minimize"
) -> np.ndarray:
    """EI = E[max(best - xi - f, 0)] for f ~ N(mean, std^2) (minimize; maximize flips the signs).

    Closed form (Jones et al. 1998): (best - xi - mean) Phi(z) + std phi(z), z = (best - xi - mean) / std;
    where std = 0 it is max(best - xi - mean, 0).
    """
    maximize = _check_direction(direction)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    gain = (mean - best - xi) if maximize else (best - xi - mean)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = gain / std
        pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)  # phi(z)
        ei = np.where(std > 0, gain * ndtr(z) + std * pdf, np.maximum(gain, 0.0))
    return np.maximum(ei, 0.0)


def probability_of_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, direction: str = "minimize"
) -> np.ndarray:
    """PI = P(f < best - xi) = Phi((best - xi - mean) / std) for f ~ N(mean, std^2) (minimize).

    Kushner (1964); maximize flips the signs, P(f > best + xi). Where std = 0 it is 1 if the mean
    improves on best - xi, else 0. Larger is better, as for EI: the next trial is its argmax.
    """
    maximize = _check_direction(direction)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    gain = (mean - best - xi) if maximize else (best - xi - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, ndtr(gain / std), (gain > 0).astype(np.float64))


def upper_confidence_bound(
    mean: np.ndarray, std: np.ndarray, kappa: float = 2.0, direction: str = "minimize"
) -> np.ndarray:
    """UCB = mean + kappa std (maximize); for minimize, the lower confidence bound negated, kappa std - mean.

    Srinivas, Krause, Kakade and Seeger (2010). The sign convention is EI's: larger is better in
    both directions, and the next trial is the argmax (for minimization, the point of the lowest
    lower bound mean - kappa std). kappa >= 0 weighs exploration (std) against exploitation (mean).
    """
    maximize = _check_direction(direction)
    if not kappa >= 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return mean + kappa * std if maximize else kappa * std - mean


_ACQUISITIONS = ("ei", "pi", "ucb")

# -------------------------------------------------------------------------- Bayesian optimization


class BayesianOptimizer:
    """Ask-and-tell Bayesian optimization over ``space``: ``params = opt.ask()``, ``opt.tell(params, score)``.

    The first ``n_initial`` trials are random draws (those of ``random_search`` with the same
    seed); after that, ``ask`` fits a ``GaussianProcess`` to every trial told so far (a failed one,
    told ``None``, counts as the worst score seen, so the search moves away from it) and returns
    the candidate with the largest acquisition: ``acquisition="ei"`` the expected improvement (the
    default), ``"pi"`` the probability of improvement (both with margin ``xi``), ``"ucb"`` the
    confidence bound with weight ``kappa``, all in units of the standardized scores. After a
    model-based ``ask``, ``gp``, ``candidates`` (encoded, (M, W)) and ``acq`` (M,), the acquisition
    of every candidate, describe that step; ``ei`` is the same array (its name from when EI was the
    only choice).
    """

    def __init__(
        self,
        space: Space,
        *,
        direction: str = "minimize",
        seed: int = 0,
        n_initial: int | None = None,
        kernel: str = "matern52",
        xi: float = 0.01,
        n_candidates: int = 1000,
        n_restarts: int = 1,
        acquisition: str = "ei",
        kappa: float = 2.0,
    ) -> None:
        _check_space(space)
        self.space = dict(space)
        self.maximize = _check_direction(direction)
        self.rng = np.random.default_rng(seed)
        self.n_initial = max(2, len(space) + 1) if n_initial is None else int(n_initial)
        if self.n_initial < 1:
            raise ValueError(f"n_initial must be >= 1, got {n_initial}")
        if acquisition not in _ACQUISITIONS:
            raise ValueError(f"acquisition is one of {sorted(_ACQUISITIONS)}, got {acquisition!r}")
        if not kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        self.acquisition, self.kappa = acquisition, float(kappa)
        self.kernel, self.xi = kernel, float(xi)
        self.n_candidates, self.n_restarts = int(n_candidates), int(n_restarts)
        self.params: list[Params] = []
        self.scores: list[float | None] = []
        self.gp: GaussianProcess | None = None
        self.candidates = self.acq = self.ei = None
        _kernel(kernel, np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1))  # fail early on a bad name

    def tell(self, params: Params, score: float | None) -> None:
        """Record a trial; ``score`` None (or NaN) for a failed one."""
        ok = score is not None and math.isfinite(score)
        self.params.append(dict(params))
        self.scores.append(float(score) if ok else None)

    def _targets(self) -> np.ndarray:
        """Scores to *minimize*, failed trials set to the worst successful one."""
        s = np.array([np.nan if v is None else (-v if self.maximize else v) for v in self.scores])
        return np.where(np.isnan(s), np.nanmax(s), s)

    def ask(self) -> Params:
        n_ok = sum(v is not None for v in self.scores)
        if len(self.params) < self.n_initial or n_ok < 2:
            return sample_params(self.space, self.rng)
        X, s = encode(self.space, self.params), self._targets()
        gp = GaussianProcess(kernel=self.kernel)
        if self.gp is not None:  # start the fit from the last step's hyperparameters
            gp.signal_variance, gp.lengthscale, gp.noise = self.gp.fitted.values()
        with _one_blas_thread():
            self.gp = gp.fit(X, s, n_restarts=self.n_restarts, rng=self.rng)
            C = self._candidates(X, s)
            mean, std = self.gp.predict(C)
        # in standardized units, so that xi and kappa mean the same whatever the scale of the scores
        mu, sd = (mean - self.gp.y_mean_) / self.gp.y_std_, std / self.gp.y_std_
        best = (s.min() - self.gp.y_mean_) / self.gp.y_std_
        if self.acquisition == "ei":
            acq = expected_improvement(mu, sd, best, self.xi)
        elif self.acquisition == "pi":
            acq = probability_of_improvement(mu, sd, best, self.xi)
        else:
            acq = upper_confidence_bound(mu, sd, self.kappa)
        self.candidates, self.acq = C, acq
        self.ei = acq
        return decode(self.space, C[int(np.argmax(acq))])[0]

    def _candidates(self, X: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Random points of the space and Gaussian perturbations of the 5 best, snapped to valid values."""
        rng, m = self.rng, self.n_candidates
        U = np.hstack([dim.encode(dim.sample(rng, m)) for dim in self.space.values()])  # (m, W)
        top = X[np.argsort(s)[: min(5, len(s))]]
        base = top[rng.integers(0, len(top), m)]
        scale = rng.choice([0.01, 0.05, 0.2], size=(m, 1))
        local = base + scale * rng.standard_normal(base.shape)
        start = 0
        for dim in self.space.values():  # categorical columns: keep the base's choice, or a random one
            if isinstance(dim, Categorical):
                cols = slice(start, start + dim.width)
                flip = rng.random(m) < 0.2
                local[:, cols] = base[:, cols]
                local[flip, cols] = dim.encode(dim.sample(rng, int(flip.sum())))
            start += dim.width
        local = encode(self.space, decode(self.space, local))
        return np.vstack([U, local])


def bayes_search(
    objective: Callable[[Params], float],
    space: Space,
    n_trials: int | None = None,
    *,
    seed: int = 0,
    direction: str = "minimize",
    max_seconds: float | None = None,
    n_initial: int | None = None,
    kernel: str = "matern52",
    xi: float = 0.01,
    n_candidates: int = 1000,
    acquisition: str = "ei",
    kappa: float = 2.0,
) -> pd.DataFrame:
    """Bayesian optimization: a GP surrogate and an acquisition, expected improvement by default
    (``BayesianOptimizer``; ``acquisition="pi"`` or ``"ucb"`` with ``kappa``)."""
    _need_budget(n_trials, max_seconds)
    opt = BayesianOptimizer(
        space,
        direction=direction,
        seed=seed,
        n_initial=n_initial,
        kernel=kernel,
        xi=xi,
        n_candidates=n_candidates,
        acquisition=acquisition,
        kappa=kappa,
    )
    return _run(
        "bayes", objective, space, lambda _: opt.ask(), opt.tell, n_trials, max_seconds, direction, seed
    )


# ----------------------------------------------------------- budgeted search: successive halving


def _check_budgets(min_budget: int, max_budget: int, eta: int) -> None:
    for name, v in (("min_budget", min_budget), ("max_budget", max_budget)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} is a whole number of epochs >= 1, got {v!r}")
    if min_budget > max_budget:
        raise ValueError(f"min_budget must be <= max_budget, got min_budget={min_budget} > {max_budget}")
    if isinstance(eta, bool) or not isinstance(eta, (int, np.integer)) or eta < 2:
        raise ValueError(
            f"eta, the factor by which each rung cuts the configurations, is an integer >= 2, got {eta!r}"
        )


def _n_halvings(min_budget: int, max_budget: int, eta: int) -> int:
    """s = floor(log_eta(max_budget / min_budget)), in integer arithmetic."""
    s = 0
    while min_budget * eta ** (s + 1) <= max_budget:
        s += 1
    return s


def _rungs(n: int, s: int, max_budget: int, eta: int) -> list[tuple[int, int]]:
    """[(n_i, r_i)] for i = 0..s: n_i = max(1, floor(n / eta^i)), r_i = floor(max_budget / eta^(s - i))."""
    return [(max(1, n // eta**i), max_budget // eta ** (s - i)) for i in range(s + 1)]


def halving_schedule(n: int, min_budget: int, max_budget: int, eta: int = 3) -> list[tuple[int, int]]:
    """The rungs of successive halving, [(n_i, r_i)], i = 0..s, s = floor(log_eta(max_budget / min_budget)):

        n_i = max(1, floor(n / eta^i)) configurations,   r_i = floor(max_budget / eta^(s - i)) budget each.

    The last rung is max_budget; r_0 >= min_budget (= min_budget when max/min is a power of eta).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n, the number of configurations, is an integer >= 1, got {n!r}")
    _check_budgets(min_budget, max_budget, eta)
    return _rungs(int(n), _n_halvings(min_budget, max_budget, eta), int(max_budget), int(eta))


def hyperband_brackets(
    min_budget: int, max_budget: int, eta: int = 3
) -> list[tuple[int, list[tuple[int, int]]]]:
    """Hyperband's brackets (Li et al. 2018, algorithm 1), [(s, rungs)] for s = s_max, ..., 0.

    With R = max_budget / min_budget and s_max = floor(log_eta R), bracket s runs successive
    halving on n = ceil((s_max + 1) eta^s / (s + 1)) configurations from r = max_budget / eta^s:
    rungs (floor(n / eta^i), floor(max_budget / eta^(s - i))), i = 0..s.
    """
    _check_budgets(min_budget, max_budget, eta)
    s_max = _n_halvings(min_budget, max_budget, eta)
    out = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))  # ceil in integers
        out.append((s, _rungs(n, s, int(max_budget), int(eta))))
    return out


def _halve(objective, configs, rungs, maximize, rows, extra) -> None:
    """Run one successive-halving bracket: evaluate ``configs`` [(id, params)] rung by rung at r_i, keep the
    best n_{i+1} successful ones. One row per evaluation is appended to ``rows``."""
    alive = list(configs)
    for i, (_, budget) in enumerate(rungs):
        results = []
        for cid, params in alive:
            score, status, error, seconds = _evaluate(lambda p, b=budget: objective(p, b), params)
            rows.append(
                {
                    "trial": len(rows),
                    "config": cid,
                    **extra,
                    "rung": i,
                    "budget": int(budget),
                    **params,
                    "score": score,
                    "status": status,
                    "error": error,
                    "seconds": seconds,
                }
            )
            if status == "ok":
                results.append((score, cid, params))
        if i + 1 == len(rungs) or not results:
            return
        sign = -1.0 if maximize else 1.0  # sorted is stable: on ties, the first evaluated goes on
        order = sorted(range(len(results)), key=lambda k: sign * results[k][0])
        alive = [results[k][1:] for k in order[: rungs[i + 1][0]]]


def _budget_table(rows, space, columns, method, direction, seed, start, **attrs) -> pd.DataFrame:
    maximize = _check_direction(direction)
    table = pd.DataFrame(rows, columns=["trial", *columns, *space, "score", "status", "error", "seconds"])
    table["score"] = table["score"].astype(np.float64)
    table["seconds"] = table["seconds"].astype(np.float64)
    top = table["budget"] == table["budget"].max()  # best so far among the evaluations at the largest budget
    table["best_so_far"] = _best_so_far(np.where(top, table["score"], np.nan), maximize)
    table.attrs.update(
        method=method,
        direction=direction,
        seed=seed,
        total_budget=int(table["budget"].sum()),
        total_seconds=time.perf_counter() - start,
        **attrs,
    )
    return table


def _generator(rng: np.random.Generator | int) -> tuple[np.random.Generator, int | None]:
    if isinstance(rng, np.random.Generator):
        return rng, None
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
        raise ValueError(f"rng is a numpy Generator or an integer seed, got {rng!r}")
    return np.random.default_rng(int(rng)), int(rng)


def successive_halving(
    space: Space,
    objective: Callable[[Params, int], float],
    n: int,
    min_budget: int,
    max_budget: int,
    eta: int = 3,
    rng: np.random.Generator | int = 0,
    *,
    direction: str = "minimize",
) -> pd.DataFrame:
    """Successive halving (Jamieson and Talwalkar 2016): n random configurations, the best 1/eta go on.

    ``objective(params, budget) -> score`` trains with ``budget`` (epochs, an integer) and scores.
    Rung i evaluates n_i configurations with budget r_i (``halving_schedule``) and the best n_{i+1}
    successful ones go on to rung i + 1, until max_budget. Configurations are drawn as
    ``random_search`` draws them: the same seed gives the same n first configurations.

    The results table has one row per evaluation, the columns of ``random_search``'s plus
    ``config`` (which configuration, 0..n-1), ``rung`` and ``budget``; ``best_so_far`` and
    ``best_trial`` consider the evaluations at the largest budget. ``attrs["total_budget"]`` is the
    sum of the budgets, the cost when every evaluation trains from scratch.
    """
    _check_space(space)
    schedule = halving_schedule(n, min_budget, max_budget, eta)
    maximize = _check_direction(direction)
    gen, seed = _generator(rng)
    configs = [(cid, sample_params(space, gen)) for cid in range(int(n))]
    rows: list[dict] = []
    start = time.perf_counter()
    _halve(objective, configs, schedule, maximize, rows, {})
    return _budget_table(
        rows,
        space,
        ["config", "rung", "budget"],
        "successive_halving",
        direction,
        seed,
        start,
        eta=int(eta),
        min_budget=int(min_budget),
        max_budget=int(max_budget),
    )


def hyperband(
    space: Space,
    objective: Callable[[Params, int], float],
    min_budget: int,
    max_budget: int,
    eta: int = 3,
    rng: np.random.Generator | int = 0,
    *,
    direction: str = "minimize",
    n_iterations: int = 1,
) -> pd.DataFrame:
    """Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh and Talwalkar 2018): successive halving in every
    bracket of ``hyperband_brackets``, from the most aggressive (s = s_max: many configurations, from
    min_budget) to plain random search (s = 0: a few, all at max_budget).

    ``objective(params, budget)`` and the table as in ``successive_halving``, with ``iteration`` and
    ``bracket`` (s) columns. ``n_iterations`` repeats all the brackets with new configurations
    (Hyperband's outer loop). Configurations are drawn in order, as ``random_search`` draws them.
    """
    _check_space(space)
    brackets = hyperband_brackets(min_budget, max_budget, eta)
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, (int, np.integer)) or n_iterations < 1:
        raise ValueError(f"n_iterations is an integer >= 1, got {n_iterations!r}")
    maximize = _check_direction(direction)
    gen, seed = _generator(rng)
    rows: list[dict] = []
    start, cid = time.perf_counter(), 0
    for it in range(int(n_iterations)):
        for s, rungs in brackets:
            configs = [(cid + k, sample_params(space, gen)) for k in range(rungs[0][0])]
            cid += len(configs)
            _halve(objective, configs, rungs, maximize, rows, {"iteration": it, "bracket": s})
    return _budget_table(
        rows,
        space,
        ["config", "iteration", "bracket", "rung", "budget"],
        "hyperband",
        direction,
        seed,
        start,
        eta=int(eta),
        min_budget=int(min_budget),
        max_budget=int(max_budget),
    )
