"""The ``inception`` extractor: FID-standard InceptionV3 pool3 features (2048-d).

This is the network of TensorFlow's original FID code (``pt_inception-2015-12-05``), as
ported by pytorch-fid and used by torch-fidelity, so the same weights give the same
features. It is torchvision's ``Inception3`` (1008 classes, no aux head, batch-norm eps
1e-3) with the blocks that differ in the 2015 graph replaced:

* ``Mixed_5b/5c/5d`` (InceptionA), ``Mixed_6b..6e`` (InceptionC) and ``Mixed_7b``
  (InceptionE, first): the pooling branch averages over the *valid* pixels only
  (``avg_pool2d(..., count_include_pad=False)``, TensorFlow's SAME average pooling);
* ``Mixed_7c`` (InceptionE, second): the pooling branch is a 3x3 *max* pool (a quirk of
  the 2015 graph).

Input: images in [-1, 1], grey ones repeated to 3 channels, resized to 299x299 with
bilinear interpolation (``align_corners=False``, no antialiasing, as pytorch-fid).
Output: the 2048-d global average pool ("pool3"); logits: the 1008-way ``fc`` (for IS).

Weights: ``weights=PATH`` (``--inception-weights``; a safetensors file or a
``torch.load(..., weights_only=True)`` state dict), else ``~/.cache/ganforge/`` (or
``$GANFORGE_CACHE``), else one download of pytorch-fid's release file into that cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import inception as tv

from ..errors import GanforgeError
from .features import FEATURES, FeatureExtractor, cache_dir

FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


class FIDInceptionA(tv.InceptionA):
    """InceptionA with TensorFlow's average pooling (padding excluded from the mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class FIDInceptionC(tv.InceptionC):
    """InceptionC with TensorFlow's average pooling (padding excluded from the mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class FIDInceptionE(tv.InceptionE):
    """InceptionE; ``pool="avg"`` (Mixed_7b: TF average pooling) or ``"max"`` (Mixed_7c)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


def fid_inception_v3() -> tv.Inception3:
    """The FID InceptionV3 architecture (random weights; state-dict keys as pytorch-fid's file)."""
    net = tv.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, pool="avg")
    net.Mixed_7c = FIDInceptionE(2048, pool="max")
    return net.eval()


_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def pool3(net: tv.Inception3, x: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` in [-1, 1] → pool3 features ``[B, 2048]``."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # [B, 3, 299, 299]
    for name in _TRUNK:
        x = getattr(net, name)(x)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # [B, 2048]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save``-d dict (weights only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GanforgeError(f"inception weights {path} do not exist; pass the path of {FID_WEIGHTS_FILE} (from {FID_WEIGHTS_URL})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GanforgeError(f"cannot read inception weights {path} ({str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise GanforgeError(f"inception weights {path} hold a {type(sd).__name__}, not a state dict")
    return sd


def locate_weights(weights: str | Path | None = None, download: bool = True) -> Path:
    """The weights file: ``weights``, else the cached copy, else one download into the cache."""
    if weights is not None:
        return Path(weights).expanduser()
    cached = cache_dir() / FID_WEIGHTS_FILE
    if cached.is_file():
        return cached
    hint = f"pass --inception-weights PATH to a copy of {FID_WEIGHTS_FILE} ({FID_WEIGHTS_URL}), put it in {cache_dir()}, or use --features classifier"
    if not download:
        raise GanforgeError(f"InceptionV3 FID weights not found; {hint}")
    try:
        sd = torch.hub.load_state_dict_from_url(
            FID_WEIGHTS_URL, model_dir=str(cache_dir()), progress=True, file_name=FID_WEIGHTS_FILE, weights_only=True
        )
        del sd
    except Exception as e:
        why = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise GanforgeError(f"InceptionV3 FID weights not found and the download failed ({why}); {hint}") from None
    return cached


def load_fid_inception(weights: str | Path | None = None, download: bool = True) -> tuple[tv.Inception3, str]:
    """``(network in eval mode, key)``; key = ``inception-fid-<sha256 prefix of the file>``."""
    path = locate_weights(weights, download)
    sd = read_state_dict(path)
    net = fid_inception_v3()
    expected = net.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        raise GanforgeError(
            f"inception weights {path} do not fit the FID InceptionV3 ({len(missing)} missing keys, "
            f"{len(unexpected)} unexpected, {len(shapes)} of another shape, e.g. {(missing + unexpected + shapes)[:2]}); "
            f"use {FID_WEIGHTS_FILE}"
        )
    net.load_state_dict(sd)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return net.eval().requires_grad_(False), f"inception-fid-{h.hexdigest()[:8]}"


class InceptionFeatures(FeatureExtractor):
    """FID InceptionV3: pool3 features ``[N, 2048]`` and 1008-way logits."""

    name = "inception"
    has_logits = True

    def __init__(self, net: tv.Inception3, key: str = "inception-fid", dtype: torch.dtype = torch.float32) -> None:
        super().__init__(key=key, dim=2048)
        self.dtype = dtype
        self.net = net.eval().to(dtype)

    def to(self, device) -> "InceptionFeatures":
        super().to(device)
        self.net.to(self.device)
        return self

    def _features(self, x: torch.Tensor):
        f = pool3(self.net, x.to(self.dtype))
        return f, self.net.fc(f)


@FEATURES.register("inception")
def build_inception(dataset=None, inception_weights: str | None = None, download: bool = True, **opts) -> InceptionFeatures:
    """FID-standard InceptionV3 pool3 (2048-d), pytorch-fid / torch-fidelity weights."""
    if dataset is not None and dataset.kind != "image":
        raise GanforgeError(f"the inception extractor needs images; dataset {dataset.name!r} holds points (use --features raw)")
    net, key = load_fid_inception(inception_weights, download)
    return InceptionFeatures(net, key)
