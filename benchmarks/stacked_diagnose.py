"""Where a stacked run's KL comes from: per-channel digit frequencies and the effect of sampling
with the EMA G, the live G, or the live G with BatchNorm in batch mode.

    GANFORGE_CACHE=... python benchmarks/stacked_diagnose.py RUN_DIR

RUN_DIR: a run kept by ``mode_collapse.py --keep-runs`` (or ``stacked_sweep.py --keep-runs``);
it needs ``checkpoints/last.pt`` for the live G. 26,000 samples with seed 10000, as the benchmark.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch

import ganforge
from ganforge.data import load_dataset
from ganforge.io import load_torch
from ganforge.metrics import evaluate_samples
from ganforge.metrics.features_classifier import build_classifier

N, SEED = 26_000, 10_000


def samples(G, z_dim: int, batch_bn: bool = False) -> torch.Tensor:
    G.eval()
    if batch_bn:  # BatchNorm on the batch's statistics instead of the running ones
        for m in G.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()
    z = torch.randn(N, z_dim, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        return torch.cat([G(c).float() for c in z.split(1000)])


def main(run_dir: str) -> None:
    run = ganforge.load(run_dir)
    data = load_dataset(run.config.data, "train", seed=0)
    ext = build_classifier(data, progress=False)
    live = copy.deepcopy(run.generator)
    live.load_state_dict(load_torch(run.run_dir / "checkpoints" / "last.pt")["modules"]["g"])
    z_dim = run.config.model.z_dim
    for name, x in (("ema G", samples(run.generator, z_dim)), ("live G", samples(live, z_dim)),
                    ("live G, BN batch stats", samples(live, z_dim, True))):
        m = evaluate_samples(x, data, ["modes"], features="classifier", progress=False)
        print(f"{name:24s} modes {m['classes']}  KL {m['kl']:.3f}  channel KLs {[round(m[f'kl_channel{i}'], 4) for i in range(3)]}")
    idx = torch.randint(len(data.x), (N,), generator=torch.Generator().manual_seed(1))
    for name, x in (("generated (ema G)", samples(run.generator, z_dim)), ("real", data.x[idx])):
        _, logp = ext.extract(x)
        y = logp.argmax(1)
        digits = torch.stack([y // 100, (y // 10) % 10, y % 10], 1).numpy()
        freq = [(np.bincount(digits[:, i], minlength=10) / N * 100).round(1).tolist() for i in range(3)]
        print(f"{name}: digit frequency % per channel (0..9): {freq}; mean top probability "
              f"{float(logp.exp().max(1).values.mean()):.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
