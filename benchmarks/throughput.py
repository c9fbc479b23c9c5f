"""Training throughput: the textbook DCGAN loop vs ganforge's trainer, alternating.

    python benchmarks/throughput.py                       # 32x32, batch 64, CPU
    python benchmarks/throughput.py --size 64 --batch 256 # bigger
    python benchmarks/throughput.py --fast                # also ganforge with channels_last/bf16
    python benchmarks/throughput.py --device cuda --batch 256 --steps 200 --variants cl+bf16,cl+bf16+graph

(a) textbook: torchvision FashionMNIST + DataLoader(shuffle, workers) with per-sample
    Resize/ToTensor/Normalize, D ending in Sigmoid + BCELoss, ``.item()`` every step
    (pytorch/examples/dcgan). (b) ganforge: the same nets, loss and optimiser through
    ``ganforge.training.Trainer`` (data on the device, BCE-with-logits, stats synced every
    ``log_every`` steps). Both do one D step (real + fake) and one G step per iteration.
Prints images/s for each, the ratio, peak memory, FLOPs per image and the fraction of the
machine's measured matmul peak (float32 for float32 loops, bfloat16 for bf16 ones; on a GPU
both are given against the bf16 peak too).

``--variants`` names extra ganforge runs as '+'-joined options: ``cl`` (train.channels_last),
``bf16`` (train.amp=bf16), ``fused`` / ``foreach`` (train.fused; fused is the default), ``compile`` (train.compile),
``graph`` (train.cuda_graph). The first ``--warmup`` iterations (graph capture and compilation
included) are not timed; the timed ones log every 50 steps, ganforge's default.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


OPTIONS = {"cl": "train.channels_last=true", "bf16": "train.amp=bf16", "fused": "train.fused=fused", "foreach": "train.fused=foreach",
           "compile": "train.compile=true", "graph": "train.cuda_graph=true"}


def matmul_peak(device: torch.device, dtype=torch.float32, n: int | None = None, reps: int = 10) -> float:
    """Measured dense matmul throughput in FLOP/s (2 n^3 per product)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fashion_root(data_dir: str | None) -> Path:
    """A torchvision FashionMNIST root built from the IDX files in ``data_dir`` or Debian's package."""
    from ganforge.data.idx import DEBIAN_FASHION_DIRS

    dirs = [Path(data_dir)] if data_dir else DEBIAN_FASHION_DIRS
    src = next((Path(d) for d in dirs if Path(d).is_dir()), None)
    if src is None:
        sys.exit("needs Fashion-MNIST IDX files: --data-dir DIR or Debian's dataset-fashion-mnist "
                 "(apt-get install -y dataset-fashion-mnist)")
    root = Path(tempfile.mkdtemp(prefix="fmnist-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in src.glob("*-ubyte.gz"):
        with gzip.open(f) as i, open(raw / f.name[:-3], "wb") as o:
            shutil.copyfileobj(i, o)
    return root


def textbook(G: nn.Module, D: nn.Module, size: int, batch: int, steps: int, warmup: int, device, workers: int,
             root: Path, nz: int) -> float:
    """pytorch/examples-style loop; returns images/s over ``steps`` after ``warmup``."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    ds = dset.FashionMNIST(str(root), train=True, download=False, transform=T.Compose(
        [T.Resize(size), T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    Ds = nn.Sequential(D, nn.Sigmoid())
    crit = nn.BCELoss()
    optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    done, t0 = 0, None
    while True:
        for real, _ in loader:
            if done == warmup:
                sync(device)
                t0 = time.perf_counter()
            if done == warmup + steps:
                sync(device)
                return steps * batch / (time.perf_counter() - t0)
            real = real.to(device)
            # D step: real then fake
            D.zero_grad()
            out = Ds(real).view(-1)
            errD_real = crit(out, torch.ones_like(out))
            errD_real.backward()
            fake = G(torch.randn(batch, nz, device=device))
            out = Ds(fake.detach()).view(-1)
            errD_fake = crit(out, torch.zeros_like(out))
            errD_fake.backward()
            optD.step()
            # G step on fresh noise (as ganforge: an independent G minibatch)
            G.zero_grad()
            out = Ds(G(torch.randn(batch, nz, device=device))).view(-1)
            errG = crit(out, torch.ones_like(out))
            errG.backward()
            optG.step()
            _ = errD_real.item() + errD_fake.item(), errG.item()  # the tutorial prints these
            done += 1


def ganforge_trainer(cfg, steps: int, warmup: int) -> float:
    from ganforge.training.loop import Trainer

    cfg.train.steps = warmup + steps
    cfg.train.log_every = warmup
    marks = {}

    class Clock:
        def on_log(self, trainer, row):
            sync(trainer.device)
            marks.setdefault(trainer.step, time.perf_counter())
            trainer.cfg.train.log_every = 50  # timed part: ganforge's default logging

    tr = Trainer(cfg, Path(tempfile.mkdtemp(prefix="gf-bench-")), callbacks=[Clock()])
    tr.finish = lambda: None  # no final grid/export: only the loop is timed
    if tr.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tr.fit()
    sync(tr.device)
    end = time.perf_counter()
    return steps * cfg.train.batch / (end - marks[warmup])


def flops_per_image(G, D, size: int, nz: int, device) -> float:
    """FLOPs of one training iteration (D on real + fake, G step) divided by the batch."""
    from torch.utils.flop_counter import FlopCounterMode

    b = 8
    real = torch.randn(b, 1, size, size, device=device)
    with FlopCounterMode(display=False) as fc:
        fake = G(torch.randn(b, nz, device=device))
        (D(real).mean() + D(fake.detach()).mean()).backward()
        D(G(torch.randn(b, nz, device=device))).mean().backward()
    return fc.get_total_flops() / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed iterations per measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--workers", type=int, default=2, help="textbook DataLoader workers (tutorial default 2)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--fast", action="store_true", help="also time ganforge with channels_last and channels_last+bf16")
    ap.add_argument("--variants", default="", help="comma list of extra ganforge option sets, e.g. cl+bf16+graph "
                    f"({', '.join(OPTIONS)})")
    ap.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: Debian's)")
    args = ap.parse_args()

    import ganforge  # noqa: F401
    from ganforge.config import resolve
    from ganforge.nets import build_discriminator, build_generator
    from ganforge.training.loop import resolve_device

    device = resolve_device(args.device)
    nz = 100
    overrides = [f"data.image_size={args.size}", f"train.batch={args.batch}", "train.progress=false",
                 "train.monitor=false", "train.sample_every=0", "train.checkpoint_every=0", "train.ema=0",
                 f"train.device={device}", "loss.name=ns"] + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    names = (["cl", "cl+bf16"] if args.fast else []) + [v for v in args.variants.split(",") if v]
    for v in names:
        if bad := [o for o in v.split("+") if o not in OPTIONS]:
            sys.exit(f"unknown variant option {bad[0]!r} in {v!r}; valid: {', '.join(OPTIONS)}")
    variants = {"ganforge": overrides, **{f"ganforge {v}": overrides + [OPTIONS[o] for o in v.split("+")] for v in names}}
    root = fashion_root(args.data_dir)
    cfg0 = resolve("fashion-dcgan", overrides)
    G = build_generator(cfg0.model.g, nz, (1, args.size, args.size)).to(device)
    D = build_discriminator(cfg0.model.d, (1, args.size, args.size)).to(device)
    fpi = flops_per_image(G, D, args.size, nz, device)
    peak = matmul_peak(device)
    any_bf16 = any("bf16" in k for k in variants) or device.type == "cuda"
    peak_bf16 = matmul_peak(device, torch.bfloat16) if any_bf16 else peak
    results: dict[str, list[float]] = {"textbook": [], **{k: [] for k in variants}}
    memory: dict[str, float] = {}
    for r in range(args.rounds):
        torch.manual_seed(r)
        G = build_generator(cfg0.model.g, nz, (1, args.size, args.size)).to(device)
        D = build_discriminator(cfg0.model.d, (1, args.size, args.size)).to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        results["textbook"].append(textbook(G, D, args.size, args.batch, args.steps, args.warmup, device,
                                            args.workers, root, nz))
        memory["textbook"] = peak_memory_mb(device)
        for name, ov in variants.items():
            results[name].append(ganforge_trainer(resolve("fashion-dcgan", ov), args.steps, args.warmup))
            memory[name] = peak_memory_mb(device)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in results.items()),
              file=sys.stderr)
    base = statistics.median(results["textbook"])
    print(f"\n{args.size}x{args.size} DCGAN, batch {args.batch}, {device} ({torch.get_num_threads()} threads); "
          f"{fpi / 1e9:.3f} GFLOP/image/iteration; measured fp32 matmul peak {peak / 1e9:.0f} GFLOP/s "
          f"(ceiling {peak / fpi:.0f} img/s)" + (f"; bf16 matmul peak {peak_bf16 / 1e9:.0f} GFLOP/s" if any_bf16 else "") + "\n")
    gpu = device.type == "cuda"
    mem = "peak MiB (CUDA allocated)" if gpu else "process max RSS MiB (so far)"
    print(f"| loop | images/s (median of {args.rounds}) | vs textbook | of matmul peak (its dtype) |"
          + (" of bf16 peak |" if gpu else "") + f" {mem} |")
    print("|---|---|---|---|" + ("---|" if gpu else "") + "---|")
    for k, v in results.items():
        m = statistics.median(v)
        p = peak_bf16 if "bf16" in k else peak
        print(f"| {k} | {m:.1f} | {m / base:.2f}x | {100 * m * fpi / p:.1f}% |"
              + (f" {100 * m * fpi / peak_bf16:.2f}% |" if gpu else "") + f" {memory[k]:.0f} |")


if __name__ == "__main__":
    main()
