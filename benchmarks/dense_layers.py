"""DCGAN's first and last layers as matmuls: training step time with and without them.

    python benchmarks/dense_layers.py                                  # stacked-fashion, digits-dcgan; 1 thread
    python benchmarks/dense_layers.py --recipes digits-dcgan --threads 2 --steps 40 --rounds 5

G's first layer (a transposed conv from a 1 x 1 input) and D's head (a conv whose kernel covers
its input) are computed by ``DenseConvTranspose2d`` / ``DenseConv2d`` (ganforge/nets/layers.py)
as one matmul each. This times ``Trainer.iteration`` (one D step and one G step, as in
training) of each recipe with those forward passes and with torch's conv forward passes on
the same modules, alternating rounds; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from ganforge.config import resolve
from ganforge.methods import Context
from ganforge.nets import layers
from ganforge.training.loop import Trainer

DENSE = {cls: cls.forward for cls in (layers.DenseConvTranspose2d, layers.DenseConv2d)}
TORCH = {layers.DenseConvTranspose2d: nn.ConvTranspose2d.forward, layers.DenseConv2d: nn.Conv2d.forward}


def use(forwards: dict) -> None:
    for cls, fwd in forwards.items():
        cls.forward = fwd


def seconds_per_step(trainer: Trainer, ctx: Context, steps: int, warmup: int) -> float:
    def run(n: int) -> None:
        for _ in range(n):
            ctx.step = trainer.step
            trainer.iteration(ctx)
            trainer.step += 1

    run(warmup)
    t = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", default="stacked-fashion,digits-dcgan")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30, help="timed iterations per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every recipe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {args.threads} thread(s), "
          f"{args.steps} steps x {args.rounds} rounds")
    print("| recipe | image | batch | torch convs s/step | dense forms s/step | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.recipes.split(","):
        cfg = resolve(name, ["train.device=cpu", "train.amp=none", f"train.threads={args.threads}", *args.set])
        trainer = Trainer(cfg, tempfile.mkdtemp(prefix="dense-"))
        ctx = Context(modules=trainer.modules, cfg=cfg, real=trainer.stream.next, z=trainer.z, stats=trainer.stats)
        times: dict[str, list[float]] = {"torch": [], "dense": []}
        for _ in range(args.rounds):
            for key, forwards in (("torch", TORCH), ("dense", DENSE)):
                use(forwards)
                times[key].append(seconds_per_step(trainer, ctx, args.steps, args.warmup))
        use(DENSE)
        t0, t1 = statistics.median(times["torch"]), statistics.median(times["dense"])
        shape = "x".join(map(str, trainer.data.shape))
        print(f"| {name} | {shape} | {cfg.train.batch} | {t0:.3f} | {t1:.3f} | {t0 / t1:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
