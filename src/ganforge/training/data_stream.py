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
        self._shuffle(torch.randperm(len(x), generator=self.gen))
        self.epoch = 0

    def _shuffle(self, perm: torch.Tensor) -> None:
        self.perm = perm  # on the CPU (the state); a copy on the device, sent once per epoch
        self.perm_dev = perm.to(self.x.device, non_blocking=True)
        self.pos = 0

    def next_index(self) -> torch.Tensor:
        """Indices of the next batch, a view of the epoch's permutation on the device."""
        span = self.batch * self.world  # the global batch (= batch in a single process)
        if self.pos + span > len(self.perm):
            self._shuffle(torch.randperm(len(self.x), generator=self.gen))
            self.epoch += 1
        start = self.pos + self.rank * self.batch
        self.pos += span
        return self.perm_dev[start : start + self.batch]

    def next(self) -> torch.Tensor:
        return self.x[self.next_index()]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self._shuffle(s["perm"])
        self.pos, self.epoch = int(s["pos"]), int(s["epoch"])
