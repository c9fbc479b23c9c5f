"""Feature extractors (inception, classifier, raw), the reference cache and evaluate_samples."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torchvision.models import inception as tv

from ganforge.config import DataConfig
from ganforge.data import Dataset, load_dataset
from ganforge.data import idx as data_idx
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import FEATURES, evaluate_samples, fid
from ganforge.metrics import features_classifier as fc
from ganforge.metrics import features_inception as fi
from ganforge.metrics import reference as refmod



@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """GANFORGE_CACHE for module-scoped fixtures: the same directory conftest sets per test."""
    old = os.environ.get("GANFORGE_CACHE")
    path = os.environ.get("GANFORGE_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    os.environ["GANFORGE_CACHE"] = path
    refmod.clear_memory_cache()
    yield path
    refmod.clear_memory_cache()
    if old is None:
        os.environ.pop("GANFORGE_CACHE", None)
    else:
        os.environ["GANFORGE_CACHE"] = old


@pytest.fixture(scope="module")
def digits(cache):
    cfg = DataConfig(name="digits")
    return load_dataset(cfg, "train"), load_dataset(cfg, "test")


@pytest.fixture(scope="module")
def trained(cache, digits):
    """The digits classifier (8x8), trained once for the module and cached in ``cache``."""
    torch.set_num_threads(1)
    train, test = digits
    model, acc = fc.train_classifier(train, test, epochs=10, seed=0, progress=False)
    info = {"dataset": "digits", "image_size": 8, "channels": 1, "num_classes": 10, "test_accuracy": acc, "epochs": 10}
    fc.save_classifier(model, info, fc.classifier_key("digits", 8))
    return model, acc


# ----------------------------------------------------------------------------- inception


def test_inception_architecture_and_state_dict_keys():
    net = fi.fid_inception_v3()
    reference = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    assert set(net.state_dict()) == set(reference.state_dict())  # pytorch-fid's file fits
    assert isinstance(net.Mixed_5b, fi.FIDInceptionA) and isinstance(net.Mixed_6e, fi.FIDInceptionC)
    assert net.Mixed_7b.pool == "avg" and net.Mixed_7c.pool == "max"
    assert net.fc.out_features == 1008
    assert net.Mixed_5b.branch1x1.bn.eps == 1e-3


def _random_state_dict(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    net = fi.fid_inception_v3()
    sd = {}
    for k, v in net.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v.clone()
        elif k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        elif "conv.weight" in k or k == "fc.weight":
            fan_in = v[0].numel()
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            sd[k] = torch.randn(v.shape, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_inception_weights_round_trip(tmp_path, fmt):
    sd = _random_state_dict()
    path = tmp_path / f"w.{fmt}"
    if fmt == "pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    net, key = fi.load_fid_inception(path, download=False)
    assert key.startswith("inception-fid-")
    for k, v in net.state_dict().items():
        assert torch.equal(v, sd[k]), k
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(GanforgeError, match="do not fit"):
        fi.load_fid_inception(bad, download=False)


def test_inception_features_shape_and_batch_invariance(tmp_path):
    net = fi.fid_inception_v3()
    net.load_state_dict(_random_state_dict(1))
    ext = fi.InceptionFeatures(net, "inception-test")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    full, logits = ext.extract(x, batch=3)
    assert full.shape == (3, 2048) and logits.shape == (3, 1008)
    assert torch.isfinite(full).all()
    single = torch.cat([ext.extract(x[i : i + 1], batch=1)[0] for i in range(3)])
    scale = full.abs().max()
    assert (single - full).abs().max() <= 1e-5 * scale
    grey, _ = ext.extract(x[:1, :1], batch=1)  # grey images are repeated to 3 channels
    ref, _ = ext.extract(x[:1, :1].expand(-1, 3, -1, -1), batch=1)
    assert torch.allclose(grey, ref)


def test_inception_offline_without_weights_is_one_line_error(cache):
    with pytest.raises(GanforgeError) as e:
        FEATURES.get("inception")(None, download=False)
    msg = str(e.value)
    assert "\n" not in msg and "--inception-weights" in msg and fi.FID_WEIGHTS_FILE in msg
    with pytest.raises(GanforgeError, match="do not exist"):
        fi.load_fid_inception("/nonexistent/w.pth", download=False)


def test_unknown_extractor_lists_valid_names():
    with pytest.raises(ConfigError, match="valid feature extractors: classifier, inception, raw"):
        FEATURES.get("vgg")


# ----------------------------------------------------------------------------- classifier


def test_classifier_reaches_98_percent_on_digits(trained):
    assert trained[1] >= 0.98


def test_classifier_cache_round_trip_and_batch_invariance(trained, digits, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(fc, "train_and_cache", no_training)
    ext = FEATURES.get("classifier")(digits[1])
    assert ext.key == "classifier-digits-8px" and ext.dim == 128
    x = digits[1].x[:7]
    f_full, lg_full = ext.extract(x, batch=7)
    f_one = torch.cat([ext.extract(x[i : i + 1], batch=1)[0] for i in range(7)])
    assert f_full.shape == (7, 128) and lg_full.shape == (7, 10)
    assert torch.allclose(f_one, f_full, rtol=1e-5, atol=1e-5 * float(f_full.abs().max()))
    f_ref, lg_ref = trained[0](x)
    assert torch.allclose(f_full, f_ref, atol=1e-5) and torch.allclose(lg_full, lg_ref, atol=1e-5)


def test_stacked_classifier_combines_channels(trained, digits):
    train = digits[0]
    x = train.x[:6].reshape(2, 3, 8, 8)
    labels = train.labels[:6].reshape(2, 3)
    ds = Dataset("stacked-digits", x, 100 * labels[:, 0] + 10 * labels[:, 1] + labels[:, 2], num_classes=1000)
    ext = FEATURES.get("classifier")(ds)
    f, lg = ext.extract(x)
    assert f.shape == (2, 384) and lg.shape == (2, 1000)
    per_channel = trained[0](train.x[:6])[1].argmax(1).reshape(2, 3)
    assert lg.argmax(1).tolist() == (100 * per_channel[:, 0] + 10 * per_channel[:, 1] + per_channel[:, 2]).tolist()
    assert torch.allclose(torch.logsumexp(lg.double(), 1), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    from ganforge.metrics import evaluate_samples
    from ganforge.metrics.modes import channel_kl

    m = evaluate_samples(x, ds, ["modes"], features="classifier", progress=False)
    pred = lg.argmax(1)
    assert m["classes"] == len(set(pred.tolist()))
    assert [m[f"kl_channel{i}"] for i in range(3)] == pytest.approx(channel_kl(pred))


def test_packaged_fashion_classifier_is_used_instead_of_training(tmp_path, monkeypatch):
    import hashlib

    def no_training(*a, **k):
        raise AssertionError("the packaged classifier should have been used")

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(fc, "train_and_cache", no_training)
    model, info = fc.get_classifier("fashion-mnist", 28)
    key = fc.classifier_key("fashion-mnist", 28)
    weights = fc.bundled_classifier_dir() / f"{key}.safetensors"
    assert info["source"] == "bundled" and info["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (info["dataset"], info["image_size"], info["channels"], info["num_classes"]) == ("fashion-mnist", 28, 1, 10)
    f, logits = model(torch.zeros(2, 1, 28, 28))
    assert f.shape == (2, 128) and logits.shape == (2, 10) and not model.training
    ext = FEATURES.get("classifier")(Dataset("stacked-fashion", torch.zeros(1, 3, 28, 28), torch.zeros(1, dtype=torch.long), num_classes=1000))
    assert ext.key == key + "-stacked" and ext.info["source"] == "bundled"


@pytest.mark.skipif(not (data_idx.DEBIAN_FASHION_DIRS[0] / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_packaged_fashion_classifier_scores_its_recorded_test_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty"))
    model, info = fc.get_classifier("fashion-mnist", 28, train=False)
    test = load_dataset(DataConfig(name="fashion-mnist"), "test")
    acc = fc.accuracy(model, test.x, test.labels)
    assert len(test) == info["test_samples"] == 10_000
    assert acc == pytest.approx(info["test_accuracy"], abs=2e-3) and acc >= 0.92


def test_classifier_train_says_when_it_shadows_the_packaged_one(tmp_path, monkeypatch, capsys):
    from ganforge.cli import main

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    info = {"dataset": "fashion-mnist", "image_size": 28, "channels": 1, "num_classes": 10, "test_accuracy": 0.5,
            "test_samples": 10, "epochs": 1, "seconds": 0.1}

    def quick(dataset, image_size=None, *a, **k):  # stands in for 12 minutes of training
        fc.save_classifier(fc.SmallCNN(1, 10), info, fc.classifier_key(dataset, 28))
        return None, info

    monkeypatch.setattr(fc, "train_and_cache", quick)
    assert main(["classifier", "train", "fashion-mnist", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "takes precedence over the classifier packaged with ganforge" in out
    assert fc.get_classifier("fashion-mnist", 28, train=False)[1]["source"] == "cache"


def test_cached_classifier_takes_precedence_and_a_damaged_package_copy_is_refused(tmp_path, monkeypatch):
    import json
    import shutil

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    key = fc.classifier_key("fashion-mnist", 28)
    torch.manual_seed(0)
    mine = fc.SmallCNN(1, 10)
    info = {"dataset": "fashion-mnist", "image_size": 28, "channels": 1, "num_classes": 10, "test_accuracy": 0.5}
    path = fc.save_classifier(mine, info, key)
    model, got = fc.get_classifier("fashion-mnist", 28, train=False)
    assert got["source"] == "cache" and got["test_accuracy"] == 0.5
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == got["sha256"]
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(model(x)[1], mine.eval()(x)[1])
    path.with_suffix(".json").write_text(json.dumps(info))  # an older version's entry: no SHA-256 recorded
    assert fc.get_classifier("fashion-mnist", 28, train=False)[1]["sha256"] == got["sha256"]

    damaged = tmp_path / "pkg"
    shutil.copytree(fc.bundled_classifier_dir(), damaged)
    raw = bytearray((damaged / f"{key}.safetensors").read_bytes())
    raw[-1] ^= 1
    (damaged / f"{key}.safetensors").write_bytes(bytes(raw))
    monkeypatch.setattr(fc, "bundled_classifier_dir", lambda: damaged)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty"))
    with pytest.raises(GanforgeError) as e:
        fc.get_classifier("fashion-mnist", 28, train=False)
    msg = str(e.value)
    assert "\n" not in msg and "SHA-256" in msg and "reinstall ganforge" in msg
    assert fc.load_classifier(key, bundled=False) is None


# ----------------------------------------------------------------------------- reference cache + evaluate


def test_reference_statistics_cache_hits(trained, digits):
    ext = FEATURES.get("classifier")(digits[0])
    refmod.clear_memory_cache()
    r1 = refmod.reference_statistics(digits[0], ext, n=500, split="train")
    r2 = refmod.reference_statistics(digits[0], ext, n=500, split="train")
    assert r1.cached == "computed" and r2.cached == "memory" and r2.features is r1.features
    refmod.clear_memory_cache()
    r3 = refmod.reference_statistics(digits[0], ext, n=500, split="train")
    assert r3.cached == "disk"
    assert torch.equal(r3.features, r1.features) and np.array_equal(r3.sigma, r1.sigma)
    assert refmod.reference_statistics(digits[0], ext, n=400, split="train").cached == "computed"


def test_evaluate_samples_images(trained, digits):
    train, test = digits
    out = evaluate_samples(test.x, train, ["fid", "kid", "is", "mode_score", "pr", "dc", "modes", "diversity"])
    assert out["classes"] == 10 and out["kl"] < 0.05
    assert out["is_mean"] > 8 and out["mode_score_mean"] > 8
    assert out["precision"] > 0.8 and out["recall"] > 0.8 and out["coverage"] > 0.8
    assert 0 <= out["fid"]
    # a collapsed generator: one image repeated
    collapsed = test.x[:1].repeat(300, 1, 1, 1)
    bad = evaluate_samples(collapsed, train, ["fid", "kid", "modes", "diversity", "pr"])
    assert bad["classes"] == 1 and bad["fid"] > 5 * out["fid"] and bad["recall"] < 0.05
    assert bad["kid_mean"] > 20 * abs(out["kid_mean"])  # KID's scale depends on the feature norms
    assert bad["diversity_ratio"] < 0.05
    with pytest.raises(GanforgeError, match="shape"):
        evaluate_samples(torch.zeros(10, 1, 16, 16), train, ["fid"])
    with pytest.raises(ConfigError, match="valid metrics"):
        evaluate_samples(test.x, train, ["fidd"])


def test_eval_command_records_which_classifier_scored_the_run(trained, tmp_path, capsys, monkeypatch):
    import json

    import ganforge
    from ganforge.cli import main
    from ganforge.config import resolve

    cfg = resolve("digits-dcgan", ["train.steps=2", "train.progress=false", "train.batch=16", "train.sample_every=2",
                                   "train.checkpoint_every=2", "train.log_every=1", "data.limit=64", "data.image_size=8"])
    cfg.model.g.width = cfg.model.d.width = 8
    ganforge.train(cfg, out=tmp_path / "run")
    assert main(["eval", str(tmp_path / "run"), "--metrics", "modes", "--features", "classifier", "--n", "100", "--quiet"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    key = fc.classifier_key("digits", 8)
    on_disk = json.loads((fc.classifier_dir() / f"{key}.json").read_text())
    assert result["classifier_source"] == "cache" and result["classifier_sha256"] == on_disk["sha256"]
    assert result["classifier_test_accuracy"] == pytest.approx(trained[1])
    assert f"classifier_sha256: {on_disk['sha256']}" in capsys.readouterr().out
    # with no cached classifier, eval trains one first: silently under --quiet, and says so in eval.json
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty"))
    assert main(["eval", str(tmp_path / "run"), "--metrics", "modes", "--features", "classifier", "--n", "100", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["classifier_source"] == "trained" and (tmp_path / "empty" / "classifiers" / f"{key}.safetensors").is_file()


def test_evaluate_samples_points_modes_is_cheap():
    cfg = DataConfig(name="ring8", samples=2500)
    data = load_dataset(cfg, "train")
    gen = load_dataset(cfg, "test")
    out = evaluate_samples(gen.x, data, ["modes", "fid", "pr"])
    assert out["modes"] == 8 and out["hq"] > 0.98 and out["rkl"] < 0.01
    assert out["fid"] < 0.01 and out["precision"] > 0.9
    collapsed = data.modes[torch.arange(2500) % 3] + data.mode_std * torch.randn(2500, 2)
    bad = evaluate_samples(collapsed, data, ["modes", "fid"])
    assert bad["modes"] == 3 and bad["fid"] > out["fid"]
    assert evaluate_samples(gen.x, data, ["modes"], features="raw") == {k: out[k] for k in ("modes", "hq", "rkl")}
    with pytest.raises(GanforgeError, match="images"):
        evaluate_samples(gen.x, data, ["is"])


def test_fid_real_vs_real_in_classifier_space_small(trained, digits):
    train, test = digits
    ext = FEATURES.get("classifier")(train)
    a, _ = ext.extract(train.x)
    b, _ = ext.extract(test.x)
    assert fid(a, a) < 1e-6 and fid(a, b) < fid(a, b[torch.argsort(test.labels)][:50])


def test_a_classifier_of_another_resolution_resizes_its_inputs(tmp_path, monkeypatch):
    """build_classifier(any_size=True, train=False) at 32px takes the packaged 28px Fashion
    classifier and resizes 32px images to 28px first (as the datasets resize); plain lookups
    and evaluation still need the exact resolution."""
    from ganforge.data.base import resize

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    assert fc.classifier_sizes("fashion-mnist") == [28] and fc.classifier_sizes("digits") == []
    ds = Dataset("fashion-mnist", torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long), num_classes=10)
    with pytest.raises(GanforgeError, match="no classifier for fashion-mnist at 32px"):
        fc.build_classifier(ds, train=False)
    ext = fc.build_classifier(ds, train=False, any_size=True)
    assert ext.key == "classifier-fashion-mnist-28px@32px" and ext.input_size == 28
    x = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    feats, logits = ext.extract(x)
    ref_feats, ref_logits = ext.model(resize(x, 28))
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(feats, ref_feats, atol=1e-5)
    exact = fc.build_classifier(Dataset("fashion-mnist", torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long),
                                        num_classes=10), train=False, any_size=True)
    assert exact.key == "classifier-fashion-mnist-28px" and exact.input_size is None
