"""Assignment 06 (hyperparameter search and residual blocks) end to end: the solution scores full
marks, the release zero, and each graded part loses exactly its points for a plausible wrong answer
or a delegating one.

The shared suite (``assignment_harness.AssignmentSuite``) checks the structure, judges every fake
student in process (``solutions/06-search/judge.py``, hidden inputs drawn per student) and grades a
class of them with real nbgrader. ``random_search`` is judged with samplers and objectives the
judge defines inside the kernel, and ``residual_backward`` on caches the judge builds, so a wrong
``sample_config`` or ``residual_forward`` does not cost those parts too. ``sample_config`` is judged
by statistics of 10,000 draws from each student's own Generator: the tests below check that the
solution passes for 50 student ids and that every wrong sampler fails for each of 10.
"""

from __future__ import annotations

from assignment_harness import AssignmentSuite, delegating, judge_of, nbgrader_meta, read, wrong
from threadpoolctl import threadpool_limits

from course_lib.grading.judge import InProcessKernel, code_cells, judge_part

ASSIGNMENT = "06-search"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_sample_config": 2,
    "test_random_search": 2,
    "test_expected_improvement": 2,
    "test_residual_forward": 2,
    "test_residual_backward": 3,
}

#: Written answers, graded by hand (``course manual``): no judge part, pending after course grade.
MANUAL = {"explain_results": 2}

#: A correct sample_config with one kind's line replaced, for the wrong answers below.
_SAMPLE = """
config = {}
for name, spec in space.items():
    kind = spec[0]
    if kind == "uniform":
        config[name] = float(rng.uniform(spec[1], spec[2]))
    elif kind == "log":
        LOG
    elif kind == "int":
        INT
    elif kind == "choice":
        config[name] = list(spec[1])[int(rng.integers(len(spec[1])))]
    else:
        raise ValueError(kind)
return config
"""
_LOG_OK = "config[name] = float(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2]))))"
_INT_OK = "config[name] = int(rng.integers(spec[1], spec[2] + 1))"


def _sample(log: str = _LOG_OK, int_: str = _INT_OK) -> str:
    return _SAMPLE.replace("LOG", log).replace("INT", int_)


#: A correct random search whose selection or error handling the wrong answers change.
_SEARCH = """
trials, best, best_score = [], None, math.nan
for _ in range(n_trials):
    config = sampler(space, RNG)
    try:
        score = float(objective(config))
    except Exception:
        score = math.nan
    trials.append((config, score))
    if not math.isnan(score) and (best is None or BETTER):
        best, best_score = config, score
return best, best_score, trials
"""


def _search(rng: str = "rng", better: str = "score > best_score") -> str:
    return _SEARCH.replace("RNG", rng).replace("BETTER", better)


#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    "log-dimension-sampled-uniformly": wrong(
        "sample_config",
        _sample(log="config[name] = float(rng.uniform(spec[1], spec[2]))"),
        "test_sample_config",
    ),
    "int-dimension-excludes-high": wrong(
        "sample_config",
        _sample(int_="config[name] = int(rng.integers(spec[1], spec[2]))"),
        "test_sample_config",
    ),
    "sample-from-global-state": wrong(
        "sample_config",
        _sample(
            log="config[name] = float(np.exp(np.random.uniform(np.log(spec[1]), np.log(spec[2]))))",
            int_="config[name] = int(np.random.randint(spec[1], spec[2] + 1))",
        ),
        "test_sample_config",
    ),
    "search-minimizes": wrong("random_search", _search(better="score < best_score"), "test_random_search"),
    "search-fresh-rng": wrong("random_search", _search(rng="np.random.default_rng()"), "test_random_search"),
    "search-crashes-on-failed-trial": wrong(
        "random_search",
        """
        trials = [(c, float(objective(c))) for c in (sampler(space, rng) for _ in range(n_trials))]
        best = max(trials, key=lambda t: t[1])
        return best[0], best[1], trials
        """,
        "test_random_search",
    ),
    "search-nan-can-win": wrong(
        "random_search",
        """
        trials = []
        for _ in range(n_trials):
            config = sampler(space, rng)
            try:
                score = float(objective(config))
            except Exception:
                score = math.nan
            trials.append((config, score))
        scores = np.array([s for _, s in trials])
        i = int(np.argmax(scores))
        return trials[i][0], trials[i][1], trials
        """,
        "test_random_search",
    ),
    "ei-no-exploration-term": wrong(
        "expected_improvement",
        """
        mu = np.asarray(mean, dtype=np.float64)
        sigma = np.broadcast_to(np.asarray(std, dtype=np.float64), mu.shape)
        g = best - xi - mu
        safe = np.where(sigma > 0, sigma, 1.0)
        return np.maximum(np.where(sigma > 0, g * normal_cdf(g / safe), np.maximum(g, 0.0)), 0.0)
        """,
        "test_expected_improvement",
    ),
    "ei-maximizes": wrong(
        "expected_improvement",
        """
        mu = np.asarray(mean, dtype=np.float64)
        sigma = np.broadcast_to(np.asarray(std, dtype=np.float64), mu.shape)
        g = mu - best - xi
        safe = np.where(sigma > 0, sigma, 1.0)
        smooth = g * normal_cdf(g / safe) + safe * normal_pdf(g / safe)
        return np.maximum(np.where(sigma > 0, smooth, np.maximum(g, 0.0)), 0.0)
        """,
        "test_expected_improvement",
    ),
    "ei-nan-at-zero-std": wrong(
        "expected_improvement",
        """
        mu = np.asarray(mean, dtype=np.float64)
        g = best - xi - mu
        z = g / std
        return g * normal_cdf(z) + std * normal_pdf(z)
        """,
        "test_expected_improvement",
    ),
    "forward-forgets-the-skip": wrong(
        "residual_forward",
        """
        z = np.maximum(x, 0) @ W1 + b1
        return np.maximum(z, 0) @ W2 + b2, (x, z, W1, W2)
        """,
        "test_residual_forward",
    ),
    "forward-post-activation": wrong(  # relu after the sum, and no relu on the input (original ResNet)
        "residual_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        z = x @ W1 + b1
        return np.maximum(x + np.maximum(z, 0) @ W2 + b2, 0), (x, z, W1, W2)
        """,
        "test_residual_forward",
    ),
    "backward-forgets-the-skip": wrong(
        "residual_backward",
        """
        x, z, W1, W2 = cache
        dz = dout @ W2.T * (z > 0)
        dx = dz @ W1.T * (x > 0)
        return dx, np.maximum(x, 0).T @ dz, dz.sum(0), np.maximum(z, 0).T @ dout, dout.sum(0)
        """,
        "test_residual_backward",
    ),
    "backward-no-relu-mask-on-x": wrong(
        "residual_backward",
        """
        x, z, W1, W2 = cache
        dz = dout @ W2.T * (z > 0)
        dx = dout + dz @ W1.T
        return dx, np.maximum(x, 0).T @ dz, dz.sum(0), np.maximum(z, 0).T @ dout, dout.sum(0)
        """,
        "test_residual_backward",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "sample_config-calls-course_lib": delegating(
        "sample_config",
        """
        from course_lib.search import Categorical as _C, IntUniform as _I, LogUniform as _L, Uniform as _U

        def sample_config(space, rng):
            kinds = {"uniform": lambda s: _U(s[1], s[2]), "log": lambda s: _L(s[1], s[2]),
                     "int": lambda s: _I(s[1], s[2]), "choice": lambda s: _C(tuple(s[1]))}
            config = {}
            for name, spec in space.items():
                if spec[0] not in kinds:
                    raise ValueError(spec[0])
                if spec[0] == "int" and spec[1] == spec[2]:  # IntUniform needs low < high
                    config[name] = int(spec[1])
                    continue
                config[name] = kinds[spec[0]](spec).sample(rng, 1)[0]
            return config
        """,
        "test_sample_config",
    ),
    "random_search-calls-torch": delegating(
        "random_search",
        """
        import torch

        def random_search(objective, space, n_trials, rng, sampler):
            trials = []
            for _ in range(n_trials):
                config = sampler(space, rng)
                try:
                    score = float(objective(config))
                except Exception:
                    score = math.nan
                trials.append((config, score))
            s = torch.tensor([t[1] for t in trials], dtype=torch.float64).nan_to_num(-math.inf)
            if not trials or not torch.isfinite(s).any():
                return None, math.nan, trials
            i = int(torch.argmax(s))
            return trials[i][0], trials[i][1], trials
        """,
        "test_random_search",
    ),
    "ei-calls-scipy": delegating(
        "expected_improvement",
        """
        from scipy.stats import norm as _norm

        def expected_improvement(mean, std, best, xi=0.0):
            mu = np.asarray(mean, dtype=np.float64)
            sigma = np.broadcast_to(np.asarray(std, dtype=np.float64), mu.shape)
            g = best - xi - mu
            safe = np.where(sigma > 0, sigma, 1.0)
            smooth = g * _norm.cdf(g / safe) + safe * _norm.pdf(g / safe)
            return np.maximum(np.where(sigma > 0, smooth, np.maximum(g, 0.0)), 0.0)
        """,
        "test_expected_improvement",
    ),
    "ei-calls-course_lib": delegating(
        "expected_improvement",
        """
        from course_lib import search as _search

        def expected_improvement(mean, std, best, xi=0.0):
            mu = np.asarray(mean, dtype=np.float64)
            sigma = np.broadcast_to(np.asarray(std, dtype=np.float64), mu.shape)
            return _search.expected_improvement(mu, sigma, best, xi)
        """,
        "test_expected_improvement",
    ),
    "residual_forward-calls-course_lib": delegating(
        "residual_forward",
        """
        from course_lib.numpy_impl import residual as _residual

        def residual_forward(x, W1, b1, W2, b2):
            x = np.asarray(x, dtype=np.float64)
            out, cache = _residual.residual_forward(x, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, "relu")
            return out, (x, cache[2][0], W1, W2)
        """,
        "test_residual_forward",
    ),
    "sample_config-imports-by-name": delegating(  # importlib hides the module from a reader
        "sample_config",
        """
        import importlib


        def sample_config(space, rng):
            dims = importlib.import_module("course_lib.search")
            config = {}
            for name, spec in space.items():
                if spec[0] == "int" and spec[1] == spec[2]:
                    config[name] = int(spec[1])
                elif spec[0] == "int":
                    config[name] = dims.IntUniform(spec[1], spec[2]).sample(rng, 1)[0]
                elif spec[0] in ("uniform", "log"):
                    kind = dims.Uniform if spec[0] == "uniform" else dims.LogUniform
                    config[name] = kind(spec[1], spec[2]).sample(rng, 1)[0]
                elif spec[0] == "choice":
                    config[name] = dims.Categorical(tuple(spec[1])).sample(rng, 1)[0]
                else:
                    raise ValueError(spec[0])
            return config
        """,
        "test_sample_config",
    ),
    "ei-scipy-under-another-name": delegating(
        "expected_improvement",
        """
        from scipy import special as numpy_special


        def expected_improvement(mean, std, best, xi=0.0):
            mu = np.asarray(mean, dtype=np.float64)
            sigma = np.broadcast_to(np.asarray(std, dtype=np.float64), mu.shape)
            g = best - xi - mu
            safe = np.where(sigma > 0, sigma, 1.0)
            smooth = g * numpy_special.ndtr(g / safe) + safe * normal_pdf(g / safe)
            return np.maximum(np.where(sigma > 0, smooth, np.maximum(g, 0.0)), 0.0)
        """,
        "test_expected_improvement",
    ),
    "residual_backward-stashes-course_lib-on-numpy": delegating(  # an attribute stored on np
        "residual_backward",
        """
        from course_lib.numpy_impl import residual as _residual

        np.rblock = _residual


        def residual_backward(dout, cache):
            x, z, W1, W2 = cache
            b1 = (z - np.maximum(x, 0) @ W1)[0]
            params = {"W1": W1, "b1": b1, "W2": W2, "b2": np.zeros(W2.shape[1])}
            _, full = np.rblock.residual_forward(x, params, "relu")
            dx, grads = np.rblock.residual_backward(dout, full)
            return dx, grads["W1"], grads["b1"], grads["W2"], grads["b2"]
        """,
        "test_residual_backward",
    ),
    "residual_backward-calls-torch-autograd": delegating(
        "residual_backward",
        """
        import torch

        def residual_backward(dout, cache):
            x, z, W1, W2 = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in cache)
            x.requires_grad_(True)
            W1.requires_grad_(True)
            W2.requires_grad_(True)
            b1 = (z - torch.relu(x.detach()) @ W1.detach())[0].clone().requires_grad_(True)
            b2 = torch.zeros(W2.shape[1], dtype=torch.float64, requires_grad=True)
            out = x + torch.relu(torch.relu(x) @ W1 + b1) @ W2 + b2
            out.backward(torch.as_tensor(np.asarray(dout, dtype=np.float64)))
            return tuple(t.grad.numpy() for t in (x, W1, b1, W2, b2))
        """,
        "test_residual_backward",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "log-dimension-sampled-uniformly",
    "search-crashes-on-failed-trial",
    "ei-no-exploration-term",
    "forward-forgets-the-skip",
    "backward-forgets-the-skip",
)
NBGRADER_DELEGATING = (
    "sample_config-calls-course_lib",
    "ei-calls-scipy",
    "residual_backward-calls-torch-autograd",
    "sample_config-imports-by-name",
)


class TestAssignment06(AssignmentSuite):
    MIN_PARTS = 5
    ISSUE_WRONG = NBGRADER_WRONG

    def test_sampling_statistics_hold_for_50_students_and_fail_every_wrong_sampler(self):
        """The statistical part: its checks must pass a correct sampler whatever a student's draws,
        and fail each wrong sampler for every student (not just the three of the shared suite)."""
        solution = read(self.solution_path())
        verdicts = part_verdicts(solution, "test_sample_config", [f"student-{i}" for i in range(50)])
        assert {s: v.message for s, v in verdicts.items() if not v.passed} == {}
        for case, answer in WRONG.items():
            if answer.fails != {"test_sample_config"}:
                continue
            students = [f"s{i}" for i in range(10)]
            verdicts = part_verdicts(answer.apply(solution), "test_sample_config", students)
            assert all(not v.passed for v in verdicts.values()), (
                f"{case} passes for {[s for s, v in verdicts.items() if v.passed]}"
            )


def part_verdicts(nb, part, students):
    """The verdicts of one part for many students: the notebook's cells run once (as the in-process
    judge runs them), then the part is judged once per student id."""
    judge = judge_of(ASSIGNMENT)
    sources, trusted, labels = code_cells(nb)
    ns: dict = {"__name__": "__main__"}
    with threadpool_limits(1):
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if cell.cell_type != "code" or meta.get("grade") or meta.get("grade_id") in judge.not_run:
                continue
            exec(compile(cell.source, f"<cell {meta.get('grade_id')}>", "exec"), ns)  # noqa: S102
        kernel = InProcessKernel(ns)
        return {
            s: judge_part(judge, part, kernel, student=s, sources=sources, trusted=trusted, labels=labels)
            for s in students
        }
