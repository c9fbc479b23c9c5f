"""The ``classifier`` extractor: a small CNN that ganforge trains on a dataset and caches.

Offline stand-in for InceptionV3 on MNIST-like data. Its 128-d penultimate activations
serve FID / KID / PR / DC / diversity, its logits serve IS, the MODE score and mode
counting. Frechet distances in this feature space are **not** comparable with Inception
FIDs (nor across datasets, resolutions or retrained classifiers): report the extractor
key (``classifier-<dataset>-<size>px``), the reference set and the sample count.

Trained by ``ganforge classifier train DATASET`` or on first use, on the training split at
the resolution being evaluated; cached as ``<key>.safetensors`` + ``<key>.json`` (dataset,
image size, test accuracy, epochs, seed) under ``$GANFORGE_CACHE/classifiers`` (default
``~/.cache/ganforge/classifiers``). The package ships a pinned Fashion-MNIST classifier
(``classifiers/classifier-fashion-mnist-28px.*``, SHA-256 in its JSON): with no cached one it
is used instead of retraining (12 minutes of CPU), so stacked-fashion numbers agree across
machines; a classifier in the cache (``ganforge classifier train``) takes precedence. Stacked datasets (``stacked-digits``, ...) use the base
dataset's classifier on each channel: features are the three channel features
concatenated, and the 1,000-way log-probabilities are
``log p(100a + 10b + c | x) = log p(a | x_R) + log p(b | x_G) + log p(c | x_B)``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import DataError, GanforgeError
from ..io import atomic_path, write_json
from .features import FEATURES, FeatureExtractor, cache_dir

STACKED_BASE = {"stacked-digits": "digits", "stacked-mnist": "mnist", "stacked-fashion": "fashion-mnist"}


class SmallCNN(nn.Module):
    """conv32-conv32-pool-conv64-conv64-avgpool(4) → fc128 (features) → fc(num_classes)."""

    feature_dim = 128

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(in_channels, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, self.feature_dim), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, H, W]`` in [-1, 1] → (features [B, 128], logits [B, num_classes])."""
        f = self.body(x)
        return f, self.head(self.dropout(f))


def _shift(x: torch.Tensor, generator: torch.Generator, pad: int = 1) -> torch.Tensor:
    """Random translations by up to ``pad`` pixels (background -1) — the only augmentation."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return xp[:, :, dy : dy + h, dx : dx + w]


def default_epochs(n: int) -> int:
    """20 epochs for small sets (digits), ~4,000 steps of 128 at most otherwise (5 for 60k)."""
    return 20 if n < 10_000 else max(2, min(10, math.ceil(300_000 / n)))


@torch.no_grad()
def accuracy(model: SmallCNN, x: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch])[1].argmax(1) == labels[i : i + batch]).sum())
    return correct / max(len(x), 1)


def train_classifier(train, test, epochs: int | None = None, seed: int = 0, batch: int = 128, lr: float = 3e-3, progress: bool = True) -> tuple[SmallCNN, float]:
    """Train :class:`SmallCNN` on ``train`` (a labelled image Dataset) → (model in eval mode, test accuracy).

    AdamW with a one-cycle learning-rate schedule, cross-entropy, +-1 pixel random shifts.
    """
    if train.labels is None or train.kind != "image":
        raise DataError(f"a classifier needs labelled images; dataset {train.name!r} has none")
    epochs = default_epochs(len(train)) if epochs is None else epochs
    if epochs < 1:
        raise GanforgeError(f"--epochs must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = SmallCNN(train.shape[0], int(train.num_classes))
    steps_per_epoch = math.ceil(len(train) / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc=f"training {train.name} classifier", unit="step", leave=False)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), batch):
            idx = order[i : i + batch]
            _, logits = model(_shift(train.x[idx], g))
            loss = F.cross_entropy(logits, train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return model, accuracy(model, test.x, test.labels)


def classifier_key(dataset: str, image_size: int) -> str:
    return f"classifier-{dataset}-{image_size}px"


def classifier_dir() -> Path:
    return cache_dir() / "classifiers"


def _file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_classifier(model: SmallCNN, info: dict, key: str) -> Path:
    """``<key>.safetensors`` + ``<key>.json`` (``info`` and the weights' SHA-256) in :func:`classifier_dir`,
    both written atomically."""
    from safetensors.torch import save_file

    path = classifier_dir() / f"{key}.safetensors"
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(path.with_suffix(".json"), {**info, "sha256": _file_sha256(path)})
    return path


def bundled_classifier_dir() -> Path:
    """Where the package's pinned classifiers live (``<key>.safetensors`` + ``<key>.json``)."""
    return Path(__file__).resolve().parent / "classifiers"


def load_classifier(key: str, bundled: bool = True) -> tuple[SmallCNN, dict] | None:
    """Classifier ``key`` (model in eval mode, info) from the cache, else (``bundled``) the package's
    pinned copy, else None. ``info["source"]`` says which and ``info["sha256"]`` is the weights
    file's (cache entries of older versions recorded none); a pinned file must match its record."""
    from safetensors.torch import load_file

    for source, folder in (("cache", classifier_dir()), ("bundled", bundled_classifier_dir() if bundled else None)):
        if folder is None:
            continue
        path = folder / f"{key}.safetensors"
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()):
            continue
        info = json.loads(meta.read_text(encoding="utf-8"))
        sha = _file_sha256(path)
        if source == "bundled" and sha != info.get("sha256"):
            raise GanforgeError(f"the packaged classifier {path} does not match its SHA-256 (damaged install); "
                                f"reinstall ganforge or run `ganforge classifier train {info.get('dataset', key)}`")
        model = SmallCNN(info["channels"], info["num_classes"])
        model.load_state_dict(load_file(str(path)))
        return model.eval().requires_grad_(False), {**info, "sha256": sha, "source": source}
    return None


def train_and_cache(dataset: str, image_size: int | None = None, data_dir: str | None = None, epochs: int | None = None, seed: int = 0, progress: bool = True) -> tuple[SmallCNN, dict]:
    """Load ``dataset`` (train/test splits), train, cache, return (model, info)."""
    from ..config import DataConfig
    from ..data import load_dataset

    cfg = DataConfig(name=dataset, data_dir=data_dir, image_size=image_size)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    if train.kind != "image" or train.labels is None:
        raise GanforgeError(f"dataset {dataset!r} has no labelled images; a classifier is for labelled image data")
    t0 = time.time()
    model, acc = train_classifier(train, test, epochs, seed, progress=progress)
    size = int(train.shape[-1])
    info = {
        "dataset": dataset, "image_size": size, "channels": int(train.shape[0]), "num_classes": int(train.num_classes),
        "test_accuracy": acc, "test_samples": len(test), "train_samples": len(train),
        "epochs": epochs if epochs is not None else default_epochs(len(train)), "seed": seed,
        "seconds": round(time.time() - t0, 1), "arch": "SmallCNN", "feature_dim": SmallCNN.feature_dim,
    }
    path = save_classifier(model, info, classifier_key(dataset, size))
    return model, {**info, "sha256": _file_sha256(path), "source": "trained"}


def classifier_sizes(dataset: str) -> list[int]:
    """The resolutions at which a classifier of ``dataset`` is cached or packaged, ascending."""
    prefix, sizes = classifier_key(dataset, 0)[: -len("0px")], set()
    for folder in (classifier_dir(), bundled_classifier_dir()):
        for path in folder.glob(f"{prefix}*px.safetensors") if folder.is_dir() else ():
            size = path.name[len(prefix) : -len("px.safetensors")]
            if size.isdigit() and path.with_suffix(".json").is_file():
                sizes.add(int(size))
    return sorted(sizes)


def get_classifier(dataset: str, image_size: int, data_dir: str | None = None, train: bool = True, progress: bool = True) -> tuple[SmallCNN, dict]:
    """The cached (else packaged) classifier of ``dataset`` at ``image_size``; trained and cached if neither."""
    found = load_classifier(classifier_key(dataset, image_size))
    if found is not None:
        return found
    if not train:
        raise GanforgeError(f"no classifier for {dataset} at {image_size}px is cached; "
                            f"`ganforge classifier train {dataset} --image-size {image_size}` trains one")
    return train_and_cache(dataset, image_size, data_dir, progress=progress)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features and logits of a :class:`SmallCNN`; per channel for stacked data.
    With ``input_size``, images are first resized to it (antialiased bilinear, as the datasets
    are): a classifier of another resolution, for the monitor's class counts only."""

    name = "classifier"
    has_logits = True

    def __init__(self, model: SmallCNN, key: str, info: dict | None = None, stacked: bool = False,
                 input_size: int | None = None) -> None:
        super().__init__(key=key, dim=SmallCNN.feature_dim * (3 if stacked else 1))
        self.model, self.info, self.stacked, self.input_size = model.eval(), info or {}, stacked, input_size

    def to(self, device) -> "ClassifierFeatures":
        super().to(device)
        self.model.to(self.device)
        return self

    def _features(self, x: torch.Tensor):
        s = self.input_size
        if s is not None and tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)
        if not self.stacked:
            return self.model(x)
        b = x.shape[0]
        f, lg = self.model(x.reshape(b * 3, 1, *x.shape[2:]))  # channels as separate images
        f = f.reshape(b, -1)  # [B, 3 * 128]
        lp = torch.log_softmax(lg.double(), 1).reshape(b, 3, -1)  # [B, 3, 10]
        joint = lp[:, 0, :, None, None] + lp[:, 1, None, :, None] + lp[:, 2, None, None, :]  # [B, 10, 10, 10]
        return f, joint.reshape(b, -1).float()  # index 100a + 10b + c


@FEATURES.register("classifier")
def build_classifier(dataset=None, data_dir: str | None = None, train: bool = True, progress: bool = True,
                     any_size: bool = False, **opts) -> ClassifierFeatures:
    """Small CNN trained by ganforge on the dataset (offline; not comparable to Inception).
    ``any_size`` (with ``train=False``): when none is at hand at the dataset's resolution, the
    cached or packaged one of the nearest resolution, images resized to it (key
    ``classifier-<dataset>-<n>px@<size>px``)."""
    if dataset is None or dataset.kind != "image":
        raise GanforgeError("the classifier extractor needs an image dataset (use --features raw for points)")
    name = dataset.name
    stacked = name in STACKED_BASE
    base = STACKED_BASE.get(name, name)
    size = native = int(dataset.shape[-1])
    sizes = classifier_sizes(base) if any_size and not train else []
    if sizes and size not in sizes:
        native = min(sizes, key=lambda n: (abs(n - size), -n))  # nearest; the larger of two
    model, info = get_classifier(base, native, data_dir, train, progress)
    key = classifier_key(base, native) + (f"@{size}px" if native != size else "") + ("-stacked" if stacked else "")
    if not stacked and info["channels"] != dataset.shape[0]:
        raise GanforgeError(f"classifier {key} takes {info['channels']} channels, samples have {dataset.shape[0]}")
    return ClassifierFeatures(model, key, info, stacked, input_size=native if native != size else None)


def describe_info(info: dict) -> str:
    keys = ("dataset", "image_size", "test_accuracy", "epochs")
    return ", ".join(f"{k}={info[k]:.4f}" if isinstance(info.get(k), float) else f"{k}={info.get(k)}" for k in keys)


__all__ = [
    "SmallCNN", "train_classifier", "train_and_cache", "get_classifier", "load_classifier", "save_classifier",
    "ClassifierFeatures", "build_classifier", "classifier_key", "classifier_dir", "bundled_classifier_dir", "classifier_sizes",
    "default_epochs",
]
