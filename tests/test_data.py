"""Data layer: every built-in dataset obeys the one contract, offline, on CPU."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import DATASETS, Dataset, gaussian_mixture, load_dataset, read_idx, resize
from ganforge.data import base as data_base
from ganforge.data import idx as data_idx
from ganforge.data.images import digits_split
from ganforge.errors import ConfigError, DataError

DEBIAN_TRAIN = data_idx.DEBIAN_FASHION_DIRS[0] / "train-images-idx3-ubyte.gz"


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """No test sees (or writes) the user's ~/.cache/ganforge/data."""
    monkeypatch.setattr(data_base, "CACHE_DIR", tmp_path / "cache")


def check_contract(ds: Dataset, n=None, shape=None, classes=None, full_range: bool = True):
    """The contract of every dataset: float32 CPU, images in [-1, 1], int64 labels in range."""
    assert isinstance(ds, Dataset)
    assert ds.x.dtype == torch.float32 and ds.x.device.type == "cpu"
    assert torch.isfinite(ds.x).all()
    assert ds.kind == ("image" if ds.x.dim() == 4 else "points")
    assert ds.shape == tuple(ds.x.shape[1:]) and len(ds) == ds.x.shape[0]
    if ds.kind == "image":
        assert ds.x.min() >= -1.0 and ds.x.max() <= 1.0
        if full_range:  # uses the range, not a sliver of it (not true of downsampled noise)
            assert ds.x.min() < -0.9 and ds.x.max() > 0.9
    if ds.labels is not None:
        assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),)
        assert ds.labels.min() >= 0 and ds.labels.max() < ds.num_classes
    if n is not None:
        assert len(ds) == n
    if shape is not None:
        assert ds.shape == shape
    if classes is not None:
        assert ds.num_classes == classes


# --------------------------------------------------------------------------- registry / api


def test_registry_lists_every_builtin_with_a_description():
    names = {"ring8", "grid25", "digits", "mnist", "fashion-mnist", "cifar10", "image-folder",
             "stacked-digits", "stacked-mnist", "stacked-fashion"}
    assert names <= set(DATASETS.names())
    for n in names:
        desc = DATASETS.describe(n)
        assert desc and "\n" not in desc


def test_unknown_name_is_a_config_error_listing_valid_names():
    with pytest.raises(ConfigError) as e:
        load_dataset(DataConfig(name="mnits"))
    msg = str(e.value)
    assert "mnits" in msg and "digits" in msg and "ring8" in msg and "\n" not in msg


@pytest.mark.parametrize("kwargs", [{"split": "val"}, {"limit": 0}, {"image_size": 0}])
def test_bad_split_limit_or_size_is_a_config_error(kwargs):
    split = kwargs.pop("split", "train")
    with pytest.raises(ConfigError):
        load_dataset(DataConfig(name="digits", **kwargs), split=split)


# --------------------------------------------------------------------------- 2D mixtures


@pytest.mark.parametrize("name,k,std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixture_statistics(name, k, std):
    n = 20_000
    ds = load_dataset(DataConfig(name=name, samples=n))
    check_contract(ds, n=n, shape=(2,), classes=k)
    assert ds.modes.shape == (k, 2) and ds.mode_std == std
    # equal mixture: exactly n / K points per mode
    assert torch.bincount(ds.labels, minlength=k).tolist() == [n // k] * k
    d = ds.x - ds.modes[ds.labels]  # [n, 2] offset from own centre
    # per coordinate: P(|eps| < 3 std) = 99.73%; radially in 2D: 1 - exp(-9/2) = 98.89%
    assert (d.abs() < 3 * std).float().mean() == pytest.approx(0.9973, abs=0.002)
    assert (d.norm(dim=1) < 3 * std).float().mean() == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert d.mean(0).abs().max() < 5 * std / math.sqrt(n / k)
    assert d.std(0).sub(std).abs().max() < 0.03 * std
    # modes are far apart: the nearest centre is the label
    assert torch.equal(torch.cdist(ds.x, ds.modes).argmin(1), ds.labels)


def test_mixture_centres():
    ring = load_dataset(DataConfig(name="ring8", samples=8)).modes
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.allclose(ring[2], torch.tensor([0.0, 1.0]), atol=1e-6)
    grid = load_dataset(DataConfig(name="grid25", samples=25)).modes
    assert sorted(set(grid.flatten().tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(m) for m in grid.tolist()}) == 25


def test_mixture_counts_differ_by_at_most_one_and_pacgan_size():
    ds = load_dataset(DataConfig(name="ring8", samples=2500))
    counts = torch.bincount(ds.labels, minlength=8)
    assert len(ds) == 2500 and counts.max() - counts.min() <= 1


def test_gaussian_mixture_helper():
    g = torch.Generator().manual_seed(3)
    x, y = gaussian_mixture(torch.tensor([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]]), 1.0, 1000, g)
    assert x.shape == (1000, 3) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [500, 500]


@pytest.mark.parametrize("name", ["ring8", "stacked-digits"])
def test_generated_data_is_deterministic_per_seed_and_split(name):
    cfg = DataConfig(name=name, samples=500)
    a, b = load_dataset(cfg, seed=1), load_dataset(cfg, seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.x, load_dataset(cfg, seed=2).x)
    assert not torch.equal(a.x, load_dataset(cfg, split="test", seed=1).x)


def test_limit_applies_to_points():
    assert len(load_dataset(DataConfig(name="grid25", samples=1000, limit=10))) == 10


# --------------------------------------------------------------------------- digits


def test_digits_contract_split_limit_and_size():
    tr, te = load_dataset(DataConfig(name="digits")), load_dataset(DataConfig(name="digits"), "test")
    check_contract(tr, n=1438, shape=(1, 8, 8), classes=10)
    check_contract(te, n=359, shape=(1, 8, 8), classes=10)
    from sklearn.datasets import load_digits

    ref = load_digits()
    itr, ite = digits_split(ref.target)
    assert len(set(itr) | set(ite)) == 1797 and not set(itr) & set(ite)
    assert torch.allclose(tr.x[:, 0], torch.tensor(ref.images[itr] / 8.0 - 1.0, dtype=torch.float32))
    assert torch.equal(tr.labels, torch.tensor(ref.target[itr]))
    frac = np.bincount(ref.target[itr], minlength=10) / np.bincount(ref.target, minlength=10)
    assert np.all(np.abs(frac - 0.8) < 0.01)  # stratified
    small = load_dataset(DataConfig(name="digits", limit=100, image_size=16))
    check_contract(small, n=100, shape=(1, 16, 16))
    assert torch.equal(small.labels, tr.labels[:100])
    assert len(load_dataset(DataConfig(name="digits", limit=10**6))) == 1438


def test_resize_is_antialiased_bilinear_and_keeps_range():
    x = torch.rand(5, 3, 12, 12) * 2 - 1
    y = resize(x, 6)
    assert y.shape == (5, 3, 6, 6) and y.min() >= -1 and y.max() <= 1
    # 2x downsampling with an antialiased triangle filter is close to 2x2 averaging
    assert torch.allclose(y.mean(), x.mean(), atol=0.02)
    assert resize(x, 12) is x


# --------------------------------------------------------------------------- stacked


def test_stacked_digits():
    ds = load_dataset(DataConfig(name="stacked-digits", samples=3000, image_size=16))
    check_contract(ds, n=3000, shape=(3, 16, 16), classes=1000)
    assert len(torch.unique(ds.labels)) > 900  # ~1 - e^-3 of 1000 modes drawn
    raw = load_dataset(DataConfig(name="stacked-digits", samples=50))
    base = load_dataset(DataConfig(name="digits"))
    for i in range(10):  # each channel is a base image whose label is the matching digit
        digits_i = [raw.labels[i] // 100, raw.labels[i] // 10 % 10, raw.labels[i] % 10]
        for c, lab in enumerate(digits_i):
            match = (base.x[:, 0] == raw.x[i, c]).flatten(1).all(1)
            assert (base.labels[match] == lab).any()
    assert len(load_dataset(DataConfig(name="stacked-digits"))) == 25_000  # default samples, capped
    assert len(load_dataset(DataConfig(name="stacked-digits", limit=64))) == 64


# --------------------------------------------------------------------------- IDX (mnist / fashion-mnist)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    code = {1: 0x801, 3: 0x803}[array.ndim]
    data = struct.pack(">I", code) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_mnist(directory: Path, n: int = 20, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, (img, lab) in data_idx._FILES.items():
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        images[0, 0, :2] = (0, 255)
        labels = np.arange(n) % 10
        write_idx(directory / img, images, gz)
        write_idx(directory / lab, labels, gz)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_from_data_dir(tmp_path, name, gz, layout):
    folder = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name]
    d = tmp_path if layout == "flat" else tmp_path / folder / "raw"
    ref = write_mnist(d, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset(DataConfig(name=name, data_dir=str(tmp_path)), split)
        check_contract(ds, n=20, shape=(1, 28, 28), classes=10)
        images, labels = ref[split]
        assert torch.allclose(ds.x[:, 0], torch.tensor(images / 127.5 - 1.0, dtype=torch.float32), atol=1e-6)
        assert ds.x[0, 0, 0, 0] == -1.0 and ds.x[0, 0, 0, 1] == 1.0
        assert torch.equal(ds.labels, torch.tensor(labels))
    ds = load_dataset(DataConfig(name=name, data_dir=str(tmp_path), limit=5, image_size=32))
    check_contract(ds, n=5, shape=(1, 32, 32))


def test_read_idx_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", a), expect_ndim=3), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", a, gz=True)), a)


@pytest.mark.parametrize("corruption", ["magic", "truncated", "gzip", "labels-as-images", "empty"])
def test_corrupt_idx_is_a_data_error_naming_the_file(tmp_path, corruption):
    write_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    raw = p.read_bytes()
    if corruption == "magic":
        p.write_bytes(b"\x12\x34" + raw[2:])
    elif corruption == "truncated":
        p.write_bytes(raw[:-7])
    elif corruption == "gzip":
        p.unlink()
        p = tmp_path / "train-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(raw)[:40])
    elif corruption == "labels-as-images":
        p.write_bytes((tmp_path / "train-labels-idx1-ubyte").read_bytes())
    else:
        p.write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path)))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_mismatched_image_and_label_counts(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(7))
    with pytest.raises(DataError, match="7 labels"):
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path)))


def test_missing_mnist_names_the_fix(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path)))
    msg = str(e.value)
    assert msg.startswith("mnist not found") and "--set data.data_dir=DIR" in msg
    assert "--set data.download=true" in msg and "\n" not in msg


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_idx, "DEBIAN_FASHION_DIRS", [])
    monkeypatch.setattr(data_idx, "SHARE_ROOT", tmp_path / "share")
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="fashion-mnist", data_dir=str(tmp_path)))
    msg = str(e.value)
    assert msg.startswith("fashion-mnist not found: install Debian's dataset-fashion-mnist")
    assert "apt-get install -y dataset-fashion-mnist" in msg and "--set data.download=true" in msg


def test_fashion_mnist_found_under_usr_share_when_debian_dir_moved(tmp_path, monkeypatch):
    monkeypatch.setattr(data_idx, "DEBIAN_FASHION_DIRS", [tmp_path / "nowhere"])
    monkeypatch.setattr(data_idx, "SHARE_ROOT", tmp_path / "share")
    write_mnist(tmp_path / "share" / "other" / "mnist", n=3)  # not fashion: ignored
    write_mnist(tmp_path / "share" / "datasets" / "fashion-mnist", n=12, gz=True)
    assert len(load_dataset(DataConfig(name="fashion-mnist"))) == 12


def test_download_only_when_allowed(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    def fake_mnist(root, train, download):  # what torchvision leaves behind: <root>/MNIST/raw
        calls.append(root)
        write_mnist(Path(root) / "MNIST" / "raw", n=4)

    monkeypatch.setattr(tvd, "MNIST", fake_mnist)
    with pytest.raises(DataError):
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path)))
    assert calls == []
    ds = load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path), download=True))
    assert len(ds) == 4 and calls == [str(tmp_path)]

    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz\nURLError")

    monkeypatch.setattr(tvd, "MNIST", offline)
    with pytest.raises(DataError, match=r"download into .* failed \(Error downloading") as e:
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path / "empty"), download=True))
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not DEBIAN_TRAIN.exists(), reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package():
    te = load_dataset(DataConfig(name="fashion-mnist"), "test")
    check_contract(te, n=10_000, shape=(1, 28, 28), classes=10)
    assert torch.bincount(te.labels).tolist() == [1000] * 10
    tr = load_dataset(DataConfig(name="fashion-mnist", limit=1000, image_size=32))
    check_contract(tr, n=1000, shape=(1, 32, 32), classes=10)


# --------------------------------------------------------------------------- cifar10


def test_missing_cifar10_names_the_fix(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(name="cifar10", data_dir=str(tmp_path)))
    assert "cifar10 not found" in str(e.value) and "--set data.download=true" in str(e.value)


# --------------------------------------------------------------------------- image-folder


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_classes_crop_and_corrupt_files(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("cats", 3), ("dogs", 2)):
        for i in range(n):
            write_png(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8))
    # a 20x30 (h x w) image: centre 20x20 white, side strips black -> crop keeps only white
    strip = np.zeros((20, 30), dtype=np.uint8)
    strip[:, 5:25] = 255
    write_png(tmp_path / "dogs" / "strip.png", strip)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\).*broken\.png"):
        ds = load_dataset(DataConfig(name="image-folder", data_dir=str(tmp_path), image_size=16))
    check_contract(ds, n=6, shape=(3, 16, 16), classes=2, full_range=False)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.all(ds.x[-1] == 1.0)  # strip.png, sorted last


def test_image_folder_grey_flat_and_default_size(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(4):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    ds = load_dataset(DataConfig(name="image-folder", data_dir=str(tmp_path)))
    check_contract(ds, n=4, shape=(1, 64, 64), full_range=False)
    assert ds.labels is None and ds.num_classes is None
    write_png(tmp_path / "colour.jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    ds = load_dataset(DataConfig(name="image-folder", data_dir=str(tmp_path), image_size=8, limit=3))
    check_contract(ds, n=3, shape=(3, 8, 8), full_range=False)


def test_image_folder_empty_or_missing_is_a_data_error(tmp_path):
    for d in (None, str(tmp_path / "missing"), str(tmp_path)):
        with pytest.raises(DataError, match="data.data_dir|image-folder"):
            load_dataset(DataConfig(name="image-folder", data_dir=d))


def test_explicit_data_dir_that_does_not_exist_is_an_error(tmp_path):
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset
    from ganforge.errors import DataError

    with pytest.raises(DataError, match="does not exist; pass the directory"):
        load_dataset(DataConfig(name="fashion-mnist", data_dir=str(tmp_path / "missing")))
