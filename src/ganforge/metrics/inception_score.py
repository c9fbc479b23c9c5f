"""Inception Score (Salimans et al. 2016) and MODE score (Che et al. 2017).

Both take class probabilities ``p(y|x)`` ``[N, C]`` of *any* classifier (InceptionV3's
1008-way logits, or ganforge's dataset classifier) and are computed in float64.

Inception Score ("Improved Techniques for Training GANs", Salimans et al., NeurIPS 2016):

    IS = exp( E_x KL(p(y|x) || p(y)) ),   p(y) = E_x p(y|x)

over ``splits`` consecutive equal parts of the samples (boundaries ``i * N // splits``, as
torch-fidelity); the result is the mean and the population std over splits.

MODE score ("Mode Regularized Generative Adversarial Networks", Che, Li, Jacob, Bengio,
Li, ICLR 2017) also compares the generated marginal with the data's label distribution
``p*(y)``:

    MODE = exp( E_x KL(p(y|x) || p*(y)) - KL(p(y) || p*(y)) )

It is high when samples are confidently classified *and* the generated marginal matches
the data's. (With ``p* = p`` it equals the IS.) ``0 log 0 = 0``; a class with ``p* = 0``
that the generator produces gives ``inf``, as the formula says.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import xlogy

from ..errors import GanforgeError


def _probs64(p) -> np.ndarray:
    if isinstance(p, torch.Tensor):
        p = p.detach().cpu().to(torch.float64).numpy()
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise GanforgeError(f"class probabilities must be [N, C], got shape {p.shape}")
    return p


def probabilities(logits) -> np.ndarray:
    """Softmax of ``logits [N, C]`` in float64."""
    if isinstance(logits, torch.Tensor):
        return torch.softmax(logits.detach().cpu().to(torch.float64), dim=1).numpy()
    return probabilities(torch.from_numpy(np.asarray(logits, dtype=np.float64)))


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p_i || q_i) = sum_c p_ic (log p_ic - log q_ic)`` per row (``q`` broadcasts)."""
    return (xlogy(p, p) - xlogy(p, np.broadcast_to(q, p.shape))).sum(axis=-1)


def _splits(n: int, splits: int) -> list[slice]:
    if not 1 <= splits <= n:
        raise GanforgeError(f"need 1 <= splits <= number of samples, got {splits} splits of {n} samples")
    return [slice(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score_split(p: np.ndarray) -> float:
    """``exp(mean_x KL(p(y|x) || p(y)))`` of one split ``p [n, C]``."""
    return float(np.exp(kl_rows(p, p.mean(axis=0, keepdims=True)).mean()))


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """``(mean, std)`` of the Inception Score over ``splits`` parts of ``probs [N, C]``."""
    p = _probs64(probs)
    scores = np.array([inception_score_split(p[s]) for s in _splits(p.shape[0], splits)])
    return float(scores.mean()), float(scores.std())


def mode_score_split(p: np.ndarray, p_star: np.ndarray) -> float:
    """``exp(mean_x KL(p(y|x) || p*) - KL(p(y) || p*))`` of one split."""
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(kl_rows(p, p_star[None]).mean() - kl_rows(marginal, p_star[None])[0]))


def label_distribution(labels, num_classes: int) -> np.ndarray:
    """Empirical ``p*(y)`` of integer ``labels`` over ``num_classes`` classes."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
    return counts / counts.sum()


def mode_score(probs, data_distribution, splits: int = 10) -> tuple[float, float]:
    """``(mean, std)`` of the MODE score over ``splits`` parts; ``data_distribution = p*(y) [C]``."""
    p = _probs64(probs)
    p_star = np.asarray(data_distribution.detach().cpu() if isinstance(data_distribution, torch.Tensor) else data_distribution, dtype=np.float64)
    if p_star.shape != (p.shape[1],):
        raise GanforgeError(f"data class distribution has shape {p_star.shape}, expected ({p.shape[1]},)")
    p_star = p_star / p_star.sum()
    scores = np.array([mode_score_split(p[s], p_star) for s in _splits(p.shape[0], splits)])
    return float(scores.mean()), float(scores.std())


class InceptionScore:
    """Stateful IS (and MODE score when ``data_distribution`` is given).

    ``update(probs)`` keeps the probabilities (float64); splits need all of them.
    ``compute()`` returns ``(is_mean, is_std)``; :meth:`compute_mode_score` the MODE score.
    """

    def __init__(self, splits: int = 10, data_distribution=None) -> None:
        self.splits, self.data_distribution = splits, data_distribution
        self.reset()

    def update(self, probs) -> None:
        self.probs.append(_probs64(probs))

    def compute(self) -> tuple[float, float]:
        return inception_score(np.concatenate(self.probs), self.splits)

    def compute_mode_score(self) -> tuple[float, float]:
        if self.data_distribution is None:
            raise GanforgeError("the MODE score needs the data's class distribution (data_distribution=...)")
        return mode_score(np.concatenate(self.probs), self.data_distribution, self.splits)

    def reset(self) -> None:
        self.probs: list[np.ndarray] = []
