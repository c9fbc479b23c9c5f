"""Batches drawn by index from a dataset held as one tensor on the training device."""

from __future__ import annotations

import torch


class DataStream:
    """Epochs of random permutations over ``x`` (shuffled without replacement, as a DataLoader
    with ``shuffle=True, drop_last=True`` would), with a resumable state.

    The permutation is drawn on the CPU from its own generator, so the order depends only on
    the seed, not on the device; one index tensor per batch goes to the device.
    """

    def __init__(self, x: torch.Tensor, batch: int, seed: int, rank: int = 0, world: int = 1):
        if batch > len(x):
            from ..errors import ConfigError

            raise ConfigError(f"train.batch={batch} is larger than the dataset ({len(x)} samples); lower train.batch")
        # --- distributed (training/distributed.py): rank r of world W takes slice r of each
        # global batch of W * batch indices; same seed on every rank, so an epoch is shared.
        if batch * world > len(x):
            from ..errors import ConfigError

            raise ConfigError(f"train.batch={batch} x {world} processes is larger than the dataset ({len(x)} samples); "
                              "lower train.batch (it is the per-process batch)")
        self.rank, self.world = rank, world
        # --- end distributed
        self.x = x
        self.batch = batch
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(x), generator=self.gen)
        self.pos = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        span = self.batch * self.world  # the global batch (= batch in a single process)
        if self.pos + span > len(self.perm):
            self.perm = torch.randperm(len(self.x), generator=self.gen)
            self.pos = 0
            self.epoch += 1
        start = self.pos + self.rank * self.batch
        idx = self.perm[start : start + self.batch]
        self.pos += span
        return self.x[idx.to(self.x.device, non_blocking=True)]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self.perm, self.pos, self.epoch = s["perm"], int(s["pos"]), int(s["epoch"])
