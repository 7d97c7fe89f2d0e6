"""Ensembles of torch classifiers, same names as ``numpy_impl.ensembles``.

Members are evaluated in ``eval()`` mode (dropout off) without gradients; their softmax
probabilities are averaged, or their argmaxes vote (ties to the smallest class id).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def average_probabilities(probs: Sequence[Tensor] | Tensor) -> Tensor:
    """(1/K) sum_k P_k: (K, N, C) -> (N, C)."""
    P = torch.stack(list(probs)) if not isinstance(probs, Tensor) else probs
    if P.ndim != 3:
        raise ValueError(f"expected probabilities stacked (K, N, C), got shape {tuple(P.shape)}")
    return P.mean(dim=0)


def majority_vote(predictions: Sequence[Tensor] | Tensor, n_classes: int) -> Tensor:
    """The most frequent class id per column of (K, N) predictions; ties to the smallest id."""
    votes = torch.stack(list(predictions)) if not isinstance(predictions, Tensor) else predictions
    counts = torch.nn.functional.one_hot(votes.long(), n_classes).sum(dim=0)  # (N, C)
    # argmax of the first maximum: give every class a bonus that decreases with its id, < 1
    bonus = torch.linspace(0.5, 0.0, n_classes, device=counts.device, dtype=torch.float64)
    return (counts.double() + bonus).argmax(dim=1)


@torch.no_grad()
def predict_proba(model: nn.Module, X: Tensor) -> Tensor:
    """softmax(model(X)) in evaluation mode; the model's training flag is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return torch.softmax(model(X), dim=1)
    finally:
        model.train(was_training)


class Ensemble:
    """K trained torch models combined by averaging probabilities or by majority vote."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = list(models)

    def member_probabilities(self, X: Tensor) -> Tensor:
        return torch.stack([predict_proba(m, X) for m in self.models])  # (K, N, C)

    def predict_proba(self, X: Tensor) -> Tensor:
        return average_probabilities(self.member_probabilities(X))

    def predict(self, X: Tensor, method: str = "mean") -> Tensor:
        P = self.member_probabilities(X)
        if method == "mean":
            return average_probabilities(P).argmax(dim=1)
        if method == "vote":
            return majority_vote(P.argmax(dim=2), P.shape[2])
        raise ValueError(f"method must be 'mean' or 'vote', got {method!r}")
