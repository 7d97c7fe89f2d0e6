"""Ensembles of K classifiers: average their probabilities, or let them vote.

* ``average_probabilities``: p(c | x) = (1/K) sum_k p_k(c | x), then the argmax. This is the
  usual way to combine networks (and what ``sklearn.ensemble.VotingClassifier(voting="soft")``
  does); averaging *logits* is a different rule (a geometric mean of the probabilities, up to
  normalisation).
* ``majority_vote``: each model votes for its argmax; ties go to the smallest class id
  (``VotingClassifier(voting="hard")`` breaks ties the same way).
* ``bootstrap_indices``: N rows drawn with replacement, for bagging (Breiman, 1996).
* ``train_ensemble``: K models that differ by their seed (initial weights, batch order, dropout
  masks) and, with ``bootstrap=True``, by their training sample.

Checked against scikit-learn's ``VotingClassifier`` rules in ``tests/test_regularization.py``;
book chapter 4 measures what an ensemble gains on our data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl.activations import softmax

Array = NDArray[np.floating]


def _stack(probs: Sequence[Array] | Array) -> Array:
    P = np.asarray(probs, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] < 1:
        raise ValueError(f"expected K >= 1 arrays of shape (N, C), stacked (K, N, C); got shape {P.shape}")
    return P


def average_probabilities(probs: Sequence[Array] | Array) -> Array:
    """(1/K) sum_k P_k for K probability arrays of shape (N, C): (K, N, C) -> (N, C)."""
    return _stack(probs).mean(axis=0)


def majority_vote(predictions: Sequence[NDArray[np.integer]] | NDArray, n_classes: int) -> NDArray:
    """The class most models predict, (K, N) -> (N,); a tie goes to the smallest class id."""
    votes = np.asarray(predictions)
    if votes.ndim != 2:
        raise ValueError(f"expected K arrays of N class ids, stacked (K, N); got shape {votes.shape}")
    counts = np.zeros((votes.shape[1], n_classes), dtype=np.int64)  # (N, C)
    for row in votes:
        counts[np.arange(votes.shape[1]), row] += 1
    return counts.argmax(axis=1)  # argmax returns the first maximum: the smallest class id


def bootstrap_indices(n: int, rng: np.random.Generator) -> NDArray[np.integer]:
    """n row indices drawn uniformly with replacement (about 63% distinct rows)."""
    return rng.integers(0, n, size=n)


def predict_proba(model: Any, X: Array) -> Array:
    """softmax of a NumPy model's logits (evaluation mode: no dropout). (N, D) -> (N, C)."""
    return softmax(np.asarray(model.forward(X), dtype=np.float64))


class Ensemble:
    """K trained models combined by averaging probabilities (``method="mean"``) or by vote."""

    def __init__(self, models: Sequence[Any], n_classes: int | None = None) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = list(models)
        self.n_classes = n_classes

    def member_probabilities(self, X: Array) -> Array:
        """Every member's probabilities, (K, N, C)."""
        return np.stack([predict_proba(m, X) for m in self.models])

    def predict_proba(self, X: Array) -> Array:
        return average_probabilities(self.member_probabilities(X))

    def predict(self, X: Array, method: str = "mean") -> NDArray:
        P = self.member_probabilities(X)
        if method == "mean":
            return average_probabilities(P).argmax(axis=1)
        if method == "vote":
            return majority_vote(P.argmax(axis=2), self.n_classes or P.shape[2])
        raise ValueError(f"method must be 'mean' or 'vote', got {method!r}")

    def accuracy(self, X: Array, y: NDArray[np.integer], method: str = "mean") -> float:
        return float((self.predict(X, method) == np.asarray(y)).mean())

    def member_accuracies(self, X: Array, y: NDArray[np.integer]) -> list[float]:
        return [float((predict_proba(m, X).argmax(axis=1) == np.asarray(y)).mean()) for m in self.models]


def train_ensemble(
    make_model: Callable[[int], Any],
    X: Array,
    y: NDArray[np.integer],
    k: int = 5,
    *,
    bootstrap: bool = False,
    seed: int = 0,
    make_optimizer: Callable[[], Any] | None = None,
    **fit_kwargs: Any,
) -> tuple[Ensemble, list]:
    """Train ``k`` models ``make_model(seed_i)`` with ``training.fit``; returns the ensemble and
    the histories. Member i uses seed ``seed + i`` for its weights, batch order and dropout, and
    with ``bootstrap`` a bootstrap sample of (X, y) drawn from the same seed.

    ``make_optimizer()`` gives each member a fresh optimizer: one optimizer object shared by
    several models would carry one model's momentum into the next.
    """
    if "optimizer" in fit_kwargs:
        raise ValueError("pass make_optimizer (a function returning a new optimizer), not optimizer")
    from course_lib.training import fit

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    X, y = np.asarray(X), np.asarray(y)
    models, histories = [], []
    for i in range(k):
        member_seed = seed + i
        model = make_model(member_seed)
        Xi, yi = X, y
        if bootstrap:
            idx = bootstrap_indices(len(X), np.random.default_rng([member_seed, 1]))
            Xi, yi = X[idx], y[idx]
        opt = make_optimizer() if make_optimizer is not None else None
        histories.append(fit(model, Xi, yi, rng=member_seed, optimizer=opt, **fit_kwargs))
        models.append(model)
    return Ensemble(models), histories
