"""Benchmark of the metrics layer: FID statistics, the Frechet distance (eigh path vs scipy sqrtm), PR.

    /work/venv/bin/python benchmarks/metrics.py            # 50,000 x 2,048 FID, 10,000 x 2,048 PR
    /work/venv/bin/python benchmarks/metrics.py --n 5000 --pr-n 2000   # quick

Features are random with structure (a random rank-``--rank`` factor model plus isotropic
noise, float32, like pool3 activations: many correlated, non-negative-ish features); the
statistics are float64. Prints a markdown table (seconds, speed-up, relative agreement).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from ganforge.metrics import frechet_distance, frechet_distance_sqrtm, gaussian_statistics, precision_recall


def structured_features(n: int, d: int, rank: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """``relu(z W + b) + 0.1 eps`` with z ~ N(0, I_rank), a random W [rank, d]: float32 [n, d]."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rank, d, generator=torch.Generator().manual_seed(1234)) / rank**0.5
    b = torch.rand(d, generator=torch.Generator().manual_seed(99)) * 0.5 + shift
    out = torch.empty(n, d)
    for i in range(0, n, 10_000):
        m = min(10_000, n - i)
        z = torch.randn(m, rank, generator=g)
        out[i : i + m] = torch.relu(z @ w + b) + 0.1 * torch.randn(m, d, generator=g)
    return out


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="samples per FID feature set")
    ap.add_argument("--d", type=int, default=2048, help="feature dimension")
    ap.add_argument("--rank", type=int, default=256, help="rank of the structured part")
    ap.add_argument("--pr-n", type=int, default=10_000, help="samples per set for precision/recall")
    ap.add_argument("--repeat", type=int, default=2, help="repetitions of the Frechet distance (best time)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--skip-scipy", action="store_true", help="skip the slow scipy sqrtm reference")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    x1 = structured_features(args.n, args.d, args.rank, seed=1)
    x2 = structured_features(args.n, args.d, args.rank, seed=2, shift=0.05)
    t_stats, (s1, s2) = timed(lambda: (gaussian_statistics(x1), gaussian_statistics(x2)))
    rows.append((f"statistics, 2 sets of {args.n:,} x {args.d:,} (float32 → float64 mu, sigma)", t_stats, ""))
    (mu1, sig1), (mu2, sig2) = s1, s2

    t_ours, fd = timed(lambda: frechet_distance(mu1, sig1, mu2, sig2), args.repeat)
    rows.append((f"Frechet distance, d = {args.d:,}: ganforge (Cholesky/eigh factor + eigvalsh, 1 BLAS thread)", t_ours, f"FID = {fd:.10g}"))
    if not args.skip_scipy:
        from threadpoolctl import threadpool_limits

        t_ref, fd_ref = timed(lambda: frechet_distance_sqrtm(mu1, sig1, mu2, sig2), 1)
        rows.append((f"Frechet distance, d = {args.d:,}: scipy.linalg.sqrtm (pytorch-fid formula), default BLAS threads", t_ref, f"FID = {fd_ref:.10g}"))
        with threadpool_limits(limits=1, user_api="blas"):
            t_ref1, fd_ref1 = timed(lambda: frechet_distance_sqrtm(mu1, sig1, mu2, sig2), 1)
        rows.append((f"Frechet distance, d = {args.d:,}: scipy.linalg.sqrtm, 1 BLAS thread", t_ref1, f"FID = {fd_ref1:.10g}"))
        t_best = min(t_ref, t_ref1)
        rows.append(("speed-up (best sqrtm time / ganforge)", None, f"{t_best / t_ours:.1f}x"))
        rows.append(("relative agreement, abs(ganforge - sqrtm) / sqrtm", None, f"{abs(fd - fd_ref) / abs(fd_ref):.2e}"))
    del x1, x2

    r = structured_features(args.pr_n, args.d, args.rank, seed=3)
    f = structured_features(args.pr_n, args.d, args.rank, seed=4, shift=0.05)
    t_pr, (p, rc) = timed(lambda: precision_recall(r, f, k=3))
    rows.append((f"precision/recall (k = 3), 2 sets of {args.pr_n:,} x {args.d:,}, float32, chunked", t_pr, f"P = {p:.4f}, R = {rc:.4f}"))

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
          f"torch {torch.__version__}, numpy {np.__version__}, load average at end {load[0]:.2f}")
    print()
    print("| step | seconds | result |")
    print("|---|---:|---|")
    for name, sec, res in rows:
        print(f"| {name} | {'' if sec is None else f'{sec:.2f}'} | {res} |")


if __name__ == "__main__":
    main()
