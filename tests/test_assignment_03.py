"""Assignment 03 (RBMs) end to end: the solution scores full marks, the release zero, and each
graded part loses exactly its points for a plausible wrong answer or a delegating one.

Fast tests check the notebooks' structure and run every fake student in process; the ``slow``
ones grade the solution, the release and a class of fake students with real nbgrader, in one
workspace (outside the repository) and one ``nbgrader autograde`` run, and compare every per-cell
score. Parts 4 and 5 are graded on their own: their tests run the student's function with the
course's samplers, so a wrong ``sample_h`` costs part 1 only.
"""

from __future__ import annotations

from assignment_harness import AssignmentSuite, delegating, wrong

ASSIGNMENT = "03-rbm"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_sample_h": 2,
    "test_sample_v": 1,
    "test_free_energy": 2,
    "test_cd1_update": 3,
    "test_greedy_pretrain": 2,
    "test_experiment": 2,
}

#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    "sample_h-wrong-comparison": wrong(
        "sample_h",
        """
        p_h = sigmoid(v @ W + b_h)
        return p_h, (rng.random(p_h.shape) > p_h).astype(float)
        """,
        "test_sample_h",
    ),
    "sample_h-probabilities-as-sample": wrong(
        "sample_h", "p_h = sigmoid(v @ W + b_h)\nreturn p_h, p_h", "test_sample_h"
    ),
    "sample_v-global-random": wrong(
        "sample_v",
        """
        p_v = sigmoid(h @ W.T + b_v)
        return p_v, (np.random.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "sample_v-forgets-bias": wrong(
        "sample_v",
        """
        p_v = sigmoid(h @ W.T)
        return p_v, (rng.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "free_energy-sign-of-visible-term": wrong(
        "free_energy",
        "return (v @ b_v) - np.logaddexp(0.0, v @ W + b_h).sum(axis=1)",
        "test_free_energy",
    ),
    "free_energy-overflows": wrong(
        "free_energy",
        "return -(v @ b_v) - np.log(1.0 + np.exp(v @ W + b_h)).sum(axis=1)",
        "test_free_energy",
    ),
    "cd1-v-and-h-swapped": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1 = sigmoid(v1 @ W + b_h)
        dW = (p_h0.T @ v0 - p_h1.T @ v1) / v0.shape[0]
        return W + lr * dW, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (p_h0 - p_h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "cd1-binary-hidden-statistics": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1, h1 = sample_h(v1, W, b_h, rng)
        dW = (v0.T @ h0 - v1.T @ h1) / v0.shape[0]
        return W + lr * dW, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (h0 - h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "cd1-modifies-W-in-place": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1 = sigmoid(v1 @ W + b_h)
        W += lr * (v0.T @ p_h0 - v1.T @ p_h1) / v0.shape[0]
        return W, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (p_h0 - p_h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "greedy-stacks-on-samples": wrong(
        "greedy_pretrain",
        """
        layers, data = [], X
        for n_hidden in hidden_sizes:
            W, b_v, b_h = train_rbm(data, n_hidden, rng)
            layers.append((W, b_v, b_h))
            data = sample_h(data, W, b_h, rng)[1]
        return layers
        """,
        "test_greedy_pretrain",
    ),
    "greedy-trains-every-rbm-on-X": wrong(
        "greedy_pretrain",
        "return [train_rbm(X, n_hidden, rng) for n_hidden in hidden_sizes]",
        "test_greedy_pretrain",
    ),
    "experiment-divides-by-cd-norm": wrong(
        "experiment",
        """
        rel_errors = {k: float(np.linalg.norm(g - exact) / np.linalg.norm(g)) for k, g in cd.items()}
        cosine_cd1 = float(np.sum(cd[1] * exact) / (np.linalg.norm(cd[1]) * np.linalg.norm(exact)))
        smallest_k = min(k for k, e in rel_errors.items() if e < 0.01)
        """,
        "test_experiment",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "sample_h-calls-course_lib": delegating(
        "sample_h",
        """
        from course_lib.numpy_impl.rbm import sample_hidden as _sample_hidden

        def sample_h(v, W, b_h, rng):
            return _sample_hidden(v, W, b_h, rng)
        """,
        "test_sample_h",
    ),
    "sample_v-calls-scipy": delegating(
        "sample_v",
        """
        from scipy.special import expit

        def sample_v(h, W, b_v, rng):
            p_v = expit(h @ W.T + b_v)
            return p_v, (rng.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "free_energy-calls-torch": delegating(
        "free_energy",
        """
        import torch

        def free_energy(v, W, b_v, b_h):
            a = torch.as_tensor(v @ W + b_h)
            return -(v @ b_v) - torch.logaddexp(torch.zeros_like(a), a).sum(dim=1).numpy()
        """,
        "test_free_energy",
    ),
    "cd1-calls-course_lib-RBM": delegating(
        "cd1_update",
        """
        from course_lib.numpy_impl.rbm import RBM as _RBM

        def cd1_update(v0, W, b_v, b_h, lr, rng):
            model = _RBM(W.shape[0], W.shape[1])
            model.W, model.b_v, model.b_h = W.copy(), b_v.copy(), b_h.copy()
            g = model.cd_gradient(v0, k=1, rng=rng)
            return W + lr * g["W"], b_v + lr * g["b_v"], b_h + lr * g["b_h"]
        """,
        "test_cd1_update",
    ),
    "greedy-helper-calls-course_lib": delegating(
        "greedy_pretrain",
        """
        from course_lib.numpy_impl.activations import sigmoid as _library_sigmoid

        def _up(data, W, b_h):
            return _library_sigmoid(data @ W + b_h)

        def greedy_pretrain(X, hidden_sizes, train_rbm, rng):
            layers, data = [], X
            for n_hidden in hidden_sizes:
                W, b_v, b_h = train_rbm(data, n_hidden, rng)
                layers.append((W, b_v, b_h))
                data = _up(data, W, b_h)
            return layers
        """,
        "test_greedy_pretrain",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "sample_h-wrong-comparison",
    "sample_v-global-random",
    "free_energy-sign-of-visible-term",
    "cd1-v-and-h-swapped",
    "greedy-stacks-on-samples",
    "experiment-divides-by-cd-norm",
)
NBGRADER_DELEGATING = (
    "sample_h-calls-course_lib",
    "cd1-calls-course_lib-RBM",
    "greedy-helper-calls-course_lib",
)


class TestAssignment03(AssignmentSuite):
    MIN_PARTS = 5
    NOT_FROM_SCRATCH = frozenset({"test_experiment"})  # runs the student's pretraining; nothing to delegate
