"""Assignment 02 (weight initialization) end to end: the solution scores full marks, the release zero,
and each graded part loses exactly its points for a plausible wrong answer or a delegating one.

The shared suite (``assignment_harness.AssignmentSuite``) checks the notebooks' structure, runs every
fake student in process and grades a class of them with real nbgrader (``slow``). This module adds
what statistical grading needs: the test cells are statistical (tolerances of six standard errors),
so they are run again with **50 other seeds** (every integer seed the cells give
``np.random.default_rng`` is shifted), and must never fail the solution, while every wrong answer
must fail its part with every one of those seeds.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from assignment_harness import AssignmentSuite, delegating, nbgrader_meta, read, wrong
from threadpoolctl import threadpool_limits

ASSIGNMENT = "02-initialization"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_xavier_uniform": 2,
    "test_xavier_normal": 2,
    "test_he_normal": 2,
    "test_kaiming_normal_": 2,
    "test_layer_stds": 2,
}

#: The body of a correct layer_stds up to its loop, for wrong answers that differ in what they record.
_ACTIVATION = """
f = {"linear": lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}[activation]
h = np.asarray(x, dtype=np.float64)
"""

#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    # 1. Xavier uniform
    "xavier_uniform-limit-is-the-std": wrong(  # sqrt(2 / (in + out)) as the limit: std sqrt(3) too small
        "xavier_uniform",
        "a = np.sqrt(2.0 / (fan_in + fan_out))\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-draws-normal": wrong(  # the right variance, the wrong distribution
        "xavier_uniform",
        "return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-fan-in-only": wrong(  # Caffe's default "xavier" filler: variance 1 / fan_in
        "xavier_uniform",
        "a = np.sqrt(3.0 / fan_in)\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-global-random-state": wrong(
        "xavier_uniform",
        "a = np.sqrt(6.0 / (fan_in + fan_out))\nreturn np.random.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    # 2. Xavier normal
    "xavier_normal-std-is-the-variance": wrong(
        "xavier_normal",
        "return rng.normal(0.0, 2.0 / (fan_in + fan_out), size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    "xavier_normal-is-lecun": wrong(  # the sqrt(1 / n) rule many notes call "Xavier"
        "xavier_normal",
        "return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    "xavier_normal-draws-uniform": wrong(
        "xavier_normal",
        "a = np.sqrt(6.0 / (fan_in + fan_out))\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    # 3. He normal
    "he_normal-uses-fan_out": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(2.0 / ((1 + negative_slope**2) * fan_out)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-std-is-the-variance": wrong(
        "he_normal",
        "return rng.normal(0.0, 2.0 / ((1 + negative_slope**2) * fan_in), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-forgets-the-2": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(1.0 / ((1 + negative_slope**2) * fan_in)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-ignores-negative_slope": wrong(
        "he_normal", "return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))", "test_he_normal"
    ),
    "he_normal-slope-not-squared": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(2.0 / ((1 + negative_slope) * fan_in)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    # 4. PyTorch's layout, in place
    "kaiming-fan_in-from-shape0": wrong(  # (out, in) read as (in, out)
        "kaiming_normal_",
        "weight[...] = rng.normal(0.0, np.sqrt(2.0 / weight.shape[0]), size=weight.shape)\nreturn weight",
        "test_kaiming_normal_",
    ),
    "kaiming-returns-a-new-array": wrong(
        "kaiming_normal_",
        "return rng.normal(0.0, np.sqrt(2.0 / weight.shape[1]), size=weight.shape)",
        "test_kaiming_normal_",
    ),
    # 5. layer_stds
    "layer_stds-of-pre-activations": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for W in weights:
    z = h @ W
    out.append(float(z.std()))
    h = f(z)
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-returns-variances": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for W in weights:
    h = f(h @ W)
    out.append(float(h.var()))
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-includes-the-input": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = [float(h.std())]
for W in weights:
    h = f(h @ W)
    out.append(float(h.std()))
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-no-activation-on-the-last-layer": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for i, W in enumerate(weights):
    h = h @ W
    if i < len(weights) - 1:
        h = f(h)
    out.append(float(h.std()))
return out
""",
        "test_layer_stds",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "xavier_uniform-calls-torch": delegating(
        "xavier_uniform",
        """
        import torch

        def xavier_uniform(fan_in, fan_out, rng):
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            w = torch.empty(fan_out, fan_in, dtype=torch.float64)
            return torch.nn.init.xavier_uniform_(w, generator=g).T.numpy()
        """,
        "test_xavier_uniform",
    ),
    "xavier_normal-calls-course_lib": delegating(
        "xavier_normal",
        """
        from course_lib.numpy_impl import initializers as _I

        def xavier_normal(fan_in, fan_out, rng):
            return _I.xavier_normal(fan_in, fan_out, rng)
        """,
        "test_xavier_normal",
    ),
    "he_normal-calls-course_lib": delegating(
        "he_normal",
        """
        from course_lib.numpy_impl.initializers import get as _get

        def he_normal(fan_in, fan_out, rng, negative_slope=0.0):
            return _get("he_normal", fan_in, fan_out, rng, gain=np.sqrt(1.0 / (1.0 + negative_slope**2)))
        """,
        "test_he_normal",
    ),
    "kaiming_normal_-calls-torch": delegating(
        "kaiming_normal_",
        """
        import torch

        def kaiming_normal_(weight, rng):
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            torch.nn.init.kaiming_normal_(torch.from_numpy(weight), nonlinearity="relu", generator=g)
            return weight
        """,
        "test_kaiming_normal_",
    ),
    "layer_stds-calls-course_lib": delegating(
        "layer_stds",
        """
        from course_lib.numpy_impl import activations as _A

        def layer_stds(x, weights, activation):
            f = {"linear": lambda z: z, "tanh": _A.tanh, "relu": _A.relu}[activation]
            out, h = [], np.asarray(x, dtype=np.float64)
            for W in weights:
                h = f(h @ W)
                out.append(float(h.std()))
            return out
        """,
        "test_layer_stds",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "xavier_uniform-limit-is-the-std",
    "xavier_normal-std-is-the-variance",
    "he_normal-uses-fan_out",
    "kaiming-fan_in-from-shape0",
    "layer_stds-of-pre-activations",
)
NBGRADER_DELEGATING = (
    "xavier_uniform-calls-torch",
    "he_normal-calls-course_lib",
    "layer_stds-calls-course_lib",
)


# --- the test cells with other seeds ---------------------------------------------------------------

#: 50 shifts of every integer seed in the test cells (0 is the notebook as written).
SEED_SHIFTS = [0] + [7919 * k for k in range(1, 50)]


@contextlib.contextmanager
def shifted_seeds(shift: int):
    """``np.random.default_rng(s)`` gives the generator of seed ``s + shift`` for every integer ``s``."""
    real = np.random.default_rng

    def default_rng(seed=None):
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seed = int(seed) + shift
        return real(seed)

    np.random.default_rng = default_rng
    try:
        yield
    finally:
        np.random.default_rng = real


def answers_namespace(nb) -> dict:
    """A kernel-like namespace after the set-up and answer cells (no test cell, no demo)."""
    ns: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and (meta.get("grade_id") == "setup" or meta.get("solution")):
            exec(compile(cell.source, f"<cell {meta.get('grade_id')}>", "exec"), ns)  # noqa: S102
    return ns


def run_test_cell(nb, ns: dict, test_id: str, shift: int) -> BaseException | None:
    """Run the test cell ``test_id`` (visible and hidden tests) in a copy of ``ns`` with shifted seeds."""
    source = next(c.source for c in nb.cells if nbgrader_meta(c).get("grade_id") == test_id)
    try:
        with shifted_seeds(shift), threadpool_limits(1):
            exec(compile(source, f"<cell {test_id}>", "exec"), dict(ns))  # noqa: S102
    except Exception as err:  # an AssertionError, or any error nbgrader would record
        return err
    return None


class TestAssignment02(AssignmentSuite):
    MIN_PARTS = 5
    ISSUE_WRONG = ("he_normal-uses-fan_out", "xavier_normal-std-is-the-variance")

    def test_shifted_seeds_reach_the_test_cells(self):
        """Control: the shift changes what a test cell draws (else the 50 runs would be one run)."""
        draws = []
        for shift in (0, SEED_SHIFTS[1]):
            with shifted_seeds(shift):
                draws.append(np.random.default_rng(21).random(3))
        assert not np.array_equal(*draws)
        assert np.random.default_rng(21).random() == draws[0][0], "the patch is undone afterwards"

    @pytest.mark.slow
    def test_the_solution_passes_with_50_seeds(self):
        """No false failures: every test cell, visible and hidden tests, with 50 sets of seeds."""
        nb = read(self.solution_path())
        ns = answers_namespace(nb)
        failures = {
            (test_id, shift): repr(err)
            for shift in SEED_SHIFTS
            for test_id in POINTS
            if (err := run_test_cell(nb, ns, test_id, shift)) is not None
        }
        assert failures == {}, f"{len(failures)} false failures of the solution: {list(failures.items())[:5]}"

    @pytest.mark.slow
    def test_every_wrong_answer_fails_its_part_with_every_seed(self):
        """No lucky passes: each wrong answer fails the test cell of its part with all 50 seeds."""
        passes = []
        for case, answer in WRONG.items():
            nb = answer.apply(read(self.solution_path()))
            ns = answers_namespace(nb)
            for test_id in answer.fails:
                passes += [
                    (case, shift) for shift in SEED_SHIFTS if run_test_cell(nb, ns, test_id, shift) is None
                ]
        assert passes == [], f"wrong answers that passed with some seeds: {passes[:10]}"
