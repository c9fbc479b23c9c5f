"""Mode counting: 2D mixtures (PacGAN / VEEGAN protocol), labelled and stacked data.

**2D mixtures** (VEEGAN, Srivastava et al., NeurIPS 2017; PacGAN, Lin et al., NeurIPS
2018; checked against the ``MetricLogger`` of PacGAN's released code): over
2,500 generated samples, each sample is assigned to its nearest mode centre; it is
*high quality* if its std-normalised distance to that centre, ``||x - mu|| / std``, is
below 3. Then

    modes = #{k : at least one high-quality sample is assigned to mode k}
    hq    = (# high-quality samples) / (# samples)
    rkl   = KL(q || p) = sum_k q_k log(q_k / p_k)

with ``q`` the histogram of high-quality samples over modes (normalised) and ``p`` the
data's mode weights (uniform for ring8 / grid25). PacGAN reports this "reverse KL"; its
code logs the entropy of ``q``, and for uniform ``p`` ``rkl = log K - H(q)``. When no
sample is high quality ``q`` is undefined; ``rkl`` is then reported as ``log K``, the value
of a total collapse onto one mode (the maximum for uniform ``p``).

**Labelled data**: a classifier predicts a class per sample; ``classes`` = classes predicted
at least once, ``kl = KL(q || p*)`` (natural log) between the predicted class histogram and
the data's. **Stacked data** (Stacked MNIST protocol, Metz et al. 2017): each of the three
channels is classified separately and the label is ``100 a + 10 b + c`` (1,000 modes); the
reference ``p*`` is then uniform over the 1,000 modes, as in the protocol.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import xlogy

from ..errors import GanforgeError


def _t(a, dtype=torch.float64) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    return a.detach().cpu().to(dtype)


def assign_modes(samples, modes, std: float, threshold: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nearest mode index [N], high-quality mask [N])`` of ``samples [N, d]``."""
    x, mu = _t(samples), _t(modes)
    if x.dim() != 2 or mu.dim() != 2 or x.shape[1] != mu.shape[1]:
        raise GanforgeError(f"samples {tuple(x.shape)} and mode centres {tuple(mu.shape)} must be [N, d] and [K, d]")
    d = torch.cdist(x, mu)  # [N, K]
    dist, idx = d.min(dim=1)
    return idx, dist < threshold * std


def kl_divergence(q: np.ndarray, p: np.ndarray) -> float:
    """``KL(q || p) = sum q log(q / p)``, natural log, ``0 log 0 = 0``."""
    return float((xlogy(q, q) - xlogy(q, p)).sum())


def count_modes_2d(samples, modes, std: float, threshold: float = 3.0, weights=None) -> dict[str, float]:
    """PacGAN / VEEGAN 2D metrics → ``{"modes", "hq", "rkl"}`` (see module doc).

    ``weights``: the data's mode probabilities ``[K]`` (default uniform).
    """
    idx, hq = assign_modes(samples, modes, std, threshold)
    k = int(_t(modes).shape[0])
    counts = torch.bincount(idx[hq], minlength=k).double().numpy()  # [K]
    p = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    total = counts.sum()
    rkl = kl_divergence(counts / total, p) if total > 0 else math.log(1.0 / p.min())
    return {"modes": int((counts > 0).sum()), "hq": float(total / max(len(idx), 1)), "rkl": rkl}


def mode_spread(samples, modes, std: float, threshold: float = 3.0) -> float:
    """Within-mode spread of the high-quality samples relative to the data's, ``[0, 3]``.

    ``sqrt(mean ||x - mu_k(x)||^2 / d) / std`` over the high-quality samples (``mu_k(x)`` the
    nearest centre). Samples of the data itself score ``sqrt(E[r^2 | r < t] / d)`` with
    ``r^2 ~ chi2_d`` (0.974 for d = 2, t = 3): a value well below it means the generator puts
    each mode's mass on a few points (high quality, but less spread than the data); NaN when
    no sample is high quality.
    """
    x, mu = _t(samples), _t(modes)
    idx, hq = assign_modes(x, mu, std, threshold)
    if not bool(hq.any()):
        return float("nan")
    r2 = ((x[hq] - mu[idx[hq]]) ** 2).sum(dim=1)  # [M]
    return float((r2.mean() / x.shape[1]).sqrt()) / std


def data_spread(d: int, threshold: float = 3.0) -> float:
    """:func:`mode_spread` of the data itself: ``sqrt(E[r^2 | r^2 < t^2] / d)``, ``r^2 ~ chi2_d``."""
    from scipy.stats import chi2

    t2 = threshold**2
    # E[r^2 1{r^2 < t2}] = d * P(chi2_{d+2} < t2) for r^2 ~ chi2_d; divided by P(chi2_d < t2) and by d
    return math.sqrt(chi2.cdf(t2, d + 2) / chi2.cdf(t2, d))


def stacked_labels(channel_labels) -> torch.Tensor:
    """Per-channel class predictions ``[N, 3]`` (digits a, b, c) → ``100 a + 10 b + c`` ``[N]``."""
    c = _t(channel_labels, torch.int64)
    if c.dim() != 2 or c.shape[1] != 3:
        raise GanforgeError(f"stacked labels need [N, 3] channel predictions, got {tuple(c.shape)}")
    return 100 * c[:, 0] + 10 * c[:, 1] + c[:, 2]


def channel_kl(predicted) -> list[float]:
    """KL to uniform of each channel's digit histogram, for stacked labels ``100 a + 10 b + c``.

    ``KL(q || U_1000) = sum_i KL(q_i || U_10) + (total correlation of a, b, c)``, so the three
    values say how much of a stacked KL comes from each channel's class imbalance alone.
    """
    y = _t(predicted, torch.int64)
    if y.numel() == 0 or int(y.min()) < 0 or int(y.max()) >= 1000:
        raise GanforgeError("stacked labels must be a non-empty tensor of integers in [0, 1000)")
    out = []
    for digit in (y // 100, (y // 10) % 10, y % 10):
        q = torch.bincount(digit, minlength=10).double().numpy()
        out.append(kl_divergence(q / q.sum(), np.full(10, 0.1)))
    return out


def count_classes(predicted, num_classes: int, reference=None) -> dict[str, float]:
    """``{"classes": classes predicted at least once, "kl": KL(q || p*)}``.

    ``predicted``: int labels ``[N]``; ``reference``: the data's class distribution ``p*``
    ``[C]`` (counts or probabilities; default uniform). A class with ``p* = 0`` that is
    predicted gives ``inf``.
    """
    y = _t(predicted, torch.int64)
    if y.numel() == 0:
        raise GanforgeError("no predictions to count")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise GanforgeError(f"predicted classes must lie in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y, minlength=num_classes).double().numpy()
    q = counts / counts.sum()
    p = np.full(num_classes, 1.0 / num_classes) if reference is None else np.asarray(_t(reference).numpy(), dtype=np.float64)
    if p.shape != (num_classes,):
        raise GanforgeError(f"reference class distribution has shape {p.shape}, expected ({num_classes},)")
    p = p / p.sum()
    return {"classes": int((counts > 0).sum()), "kl": kl_divergence(q, p)}


class ModeCounter:
    """Stateful mode counting: ``update(samples)`` accumulates the per-mode histogram.

    2D (``modes`` given): ``compute()`` → ``{"modes", "hq", "rkl"}``; labelled
    (``num_classes`` given, ``update`` takes predicted labels): ``{"classes", "kl"}``.
    """

    def __init__(self, modes=None, std: float | None = None, num_classes: int | None = None, reference=None, threshold: float = 3.0) -> None:
        if (modes is None) == (num_classes is None):
            raise GanforgeError("ModeCounter needs either mode centres (2D data) or num_classes (labelled data)")
        self.centres = None if modes is None else _t(modes)
        self.std, self.threshold, self.reference = std, threshold, reference
        self.k = num_classes if modes is None else self.centres.shape[0]
        self.reset()

    def update(self, batch) -> None:
        if self.centres is not None:
            idx, hq = assign_modes(batch, self.centres, self.std, self.threshold)
            self.counts += torch.bincount(idx[hq], minlength=self.k).double()
            self.n += len(idx)
        else:
            y = _t(batch, torch.int64)
            self.counts += torch.bincount(y, minlength=self.k).double()
            self.n += len(y)

    def compute(self) -> dict[str, float]:
        c = self.counts.numpy()
        if self.centres is not None:
            p = np.full(self.k, 1.0 / self.k)
            rkl = kl_divergence(c / c.sum(), p) if c.sum() > 0 else math.log(self.k)
            return {"modes": int((c > 0).sum()), "hq": float(c.sum() / max(self.n, 1)), "rkl": rkl}
        p = np.full(self.k, 1.0 / self.k) if self.reference is None else np.asarray(self.reference, dtype=np.float64)
        return {"classes": int((c > 0).sum()), "kl": kl_divergence(c / c.sum(), p / p.sum())}

    def reset(self) -> None:
        self.counts = torch.zeros(self.k, dtype=torch.float64)
        self.n = 0
