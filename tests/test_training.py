"""The trunk end to end: dry runs of every recipe, outputs, resume == uninterrupted, load."""

import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge.config import resolve
from ganforge.errors import CheckpointError, ConfigError
from ganforge.training import Interrupted

FAST = ["train.steps=6", "train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4",
        "train.progress=false", "train.batch=16", "data.limit=128", "data.samples=1000"]


def tiny(recipe, *extra):
    cfg = resolve(recipe, FAST + list(extra))
    # shrink the nets so a dry run takes a second on a CPU
    if cfg.model.g.name == "dcgan":
        cfg.model.g.width = cfg.model.d.width = 8
    else:
        cfg.model.g.width = cfg.model.d.width = 16
    return cfg


def _have_fashion() -> bool:
    from pathlib import Path

    from ganforge.data.idx import DEBIAN_FASHION_DIRS

    return any(Path(d).is_dir() for d in DEBIAN_FASHION_DIRS)


NEEDS_FASHION = pytest.mark.skipif(not _have_fashion(), reason="needs Debian's dataset-fashion-mnist (CI installs it)")


@pytest.mark.parametrize("recipe", ["digits-dcgan", "ring8", "grid25", "stacked-digits", pytest.param("fashion-dcgan", marks=NEEDS_FASHION),
                                    pytest.param("fashion-wgan-gp", marks=NEEDS_FASHION), pytest.param("stacked-fashion", marks=NEEDS_FASHION)])
def test_dry_run_of_every_recipe_writes_the_run_directory(recipe, tmp_path):
    cfg = tiny(recipe)
    run = ganforge.train(cfg, out=tmp_path / "run")
    d = run.run_dir
    for f in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "samples/final.png",
              "samples/step_0000004.png", "curves.png", "generator.safetensors"):
        assert (d / f).is_file(), f
    rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        assert np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"])
        assert 0 <= r["d/real"] <= 1 and 0 <= r["d/fake"] <= 1
        assert r["grad/G"] > 0 and r["grad/D"] > 0
    x = ganforge.load(d).sample(5)
    assert x.shape[0] == 5 and torch.isfinite(x).all()
    if x.ndim == 4:
        assert x.min() >= -1 and x.max() <= 1


def _weights(run):
    return {k: v.clone() for k, v in run.generator.state_dict().items()}


@pytest.mark.parametrize("recipe,extra", [("digits-dcgan", []), ("ring8", ["loss.smoothing=0.2", "train.ema=0.9"]),
                                          ("ring8", ["loss.name=wgan-gp", "optim.n_critic=2", "optim.g.schedule=cosine"])])
def test_resume_continues_exactly_where_it_stopped(recipe, extra, tmp_path):
    cfg_args = ["train.steps=10", "train.checkpoint_every=0"] + extra
    full = ganforge.train(tiny(recipe, *cfg_args), out=tmp_path / "full")

    class StopAt:
        stop_requested = False

        def on_log(self, trainer, row):
            if trainer.step == 4:
                self.stop_requested = True

    with pytest.raises(Interrupted):
        ganforge.train(tiny(recipe, *cfg_args), out=tmp_path / "cut", callbacks=[StopAt()])
    resumed = ganforge.train(tiny(recipe, *cfg_args), out=tmp_path / "cut", resume=True)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    rows_b = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "time"} for r in rows]
    assert strip(rows_a) == strip(rows_b)


def test_sigterm_checkpoints_and_resume_continues(tmp_path):
    """SIGTERM (a scheduler's preemption) is answered like Ctrl-C: finish the step, checkpoint, stop."""
    import os
    import signal

    full = ganforge.train(tiny("ring8", "train.steps=8"), out=tmp_path / "full")

    class TermAt4:
        def on_log(self, trainer, row):
            if trainer.step == 4:
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted, match="interrupted at step 4; continue with: ganforge train --resume"):
        ganforge.train(tiny("ring8", "train.steps=8"), out=tmp_path / "cut", callbacks=[TermAt4()])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    resumed = ganforge.train(tiny("ring8", "train.steps=8"), out=tmp_path / "cut", resume=True)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    import shutil

    ref = ganforge.train(tiny("ring8", "train.checkpoint_every=0"), out=tmp_path / "ref")
    dead = tmp_path / "dead"
    shutil.copytree(tmp_path / "ref", dead)
    shutil.rmtree(dead / "checkpoints")  # killed (SIGKILL) before any checkpoint: config and log rows only
    (dead / "generator.safetensors").unlink()
    run = ganforge.train(tiny("ring8", "train.checkpoint_every=0"), out=dead, resume=True)
    assert [r["step"] for r in run.metrics()] == [r["step"] for r in ref.metrics()] == [2, 4, 6]  # no stale rows
    assert all(torch.equal(a, b) for a, b in zip(_weights(ref).values(), _weights(run).values()))

    from ganforge.experiments import run_seeds

    run_seeds(tiny("ring8"), 2, out=tmp_path / "s", quiet=True, ensemble=False)
    shutil.rmtree(tmp_path / "s" / "seed-1" / "checkpoints")
    (tmp_path / "s" / "seed-1" / "generator.safetensors").unlink()
    res = run_seeds(tiny("ring8"), 2, out=tmp_path / "s", quiet=True, ensemble=False)  # seed 1 trains again
    assert (tmp_path / "s" / "seed-1" / "generator.safetensors").is_file() and len(res["runs"]) == 2


def test_refuses_to_overwrite_a_different_run(tmp_path):
    ganforge.train(tiny("ring8"), out=tmp_path / "r")
    before = (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a different run; pass --resume"):
        ganforge.train(tiny("ring8", "loss.name=hinge"), out=tmp_path / "r")
    with pytest.raises(ConfigError, match="was trained with loss.name='ns', not 'hinge'"):
        ganforge.train(tiny("ring8", "loss.name=hinge"), out=tmp_path / "r", resume=True)
    assert (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_of_a_finished_run_can_extend_it(tmp_path):
    ganforge.train(tiny("ring8"), out=tmp_path / "r")
    run = ganforge.train(tiny("ring8", "train.steps=8"), out=tmp_path / "r", resume=True)
    rows = run.metrics()
    assert rows[-1]["step"] == 8


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    ganforge.train(tiny("ring8"), out=tmp_path / "r")
    (tmp_path / "r" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        ganforge.train(tiny("ring8", "train.steps=8"), out=tmp_path / "r", resume=True)


def test_checkpoint_holds_no_code(tmp_path):
    ganforge.train(tiny("digits-dcgan"), out=tmp_path / "r")
    torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)  # would raise on pickled objects


def test_ema_generator_is_what_gets_exported(tmp_path):
    run = ganforge.train(tiny("ring8", "train.ema=0.5"), out=tmp_path / "r")
    loaded = ganforge.load(tmp_path / "r")
    z = torch.randn(7, run.config.model.z_dim)
    run.generator.eval()
    assert torch.allclose(run.generator(z), loaded.generator(z))


def test_load_without_safetensors_uses_the_checkpoint(tmp_path):
    run = ganforge.train(tiny("ring8"), out=tmp_path / "r")
    a = run.sample(9, seed=3)
    (tmp_path / "r" / "generator.safetensors").unlink()
    b = ganforge.load(tmp_path / "r").sample(9, seed=3)
    assert torch.allclose(a, b)


def test_same_seed_same_run(tmp_path):
    a = ganforge.train(tiny("ring8"), out=tmp_path / "a").sample(10)
    b = ganforge.train(tiny("ring8"), out=tmp_path / "b").sample(10)
    c = ganforge.train(tiny("ring8", "train.seed=1"), out=tmp_path / "c").sample(10)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_evaluation_during_training_keeps_best_checkpoint(tmp_path):
    cfg = tiny("ring8", "train.steps=8", "eval.every=4", "eval.metrics=modes", "eval.n=500", "eval.best=rkl")
    run = ganforge.train(cfg, out=tmp_path / "r")
    rows = [r for r in run.metrics() if "eval/rkl" in r]
    assert [r["step"] for r in rows] == [4, 8]
    for r in rows:
        assert 0 <= r["eval/modes"] <= 8 and 0 <= r["eval/hq"] <= 1
    best = min(r["eval/rkl"] for r in rows)
    assert rows[-1]["eval/best_rkl"] == pytest.approx(best)
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["step"] == [r["step"] for r in rows if r["eval/rkl"] == best][0]


def test_callbacks_leave_the_run_unchanged(tmp_path, monkeypatch):
    """Evaluation during training (its classifier is initialised from the global RNG before its
    weights load) and a callback drawing from every RNG leave the run as it is without them."""
    import random

    from ganforge.metrics import features_classifier as fc

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    info = {"dataset": "digits", "image_size": 8, "channels": 1, "num_classes": 10, "test_accuracy": 0.1, "epochs": 0}
    fc.save_classifier(fc.SmallCNN(1, 10), info, fc.classifier_key("digits", 8))

    class Greedy:
        def on_log(self, trainer, row):
            torch.randn(7), np.random.rand(3), random.random()

    fast = ["train.steps=6", "train.log_every=1", "train.progress=false", "train.batch=16", "data.limit=128",
            "model.g.width=8", "model.d.width=8", "train.checkpoint_every=0", "train.sample_every=0",
            "train.monitor=false", "data.image_size=8"]
    plain = ganforge.train("digits-dcgan", out=tmp_path / "plain", overrides=fast)
    ev = ganforge.train("digits-dcgan", out=tmp_path / "eval", callbacks=[Greedy()],
                        overrides=fast + ["eval.every=2", "eval.metrics=fid", "eval.n=64", "eval.features=classifier"])
    assert [r["step"] for r in ev.metrics() if "eval/fid" in r] == [2, 4, 6]
    assert torch.equal(plain.sample(4), ev.sample(4))
    assert [r["loss/d"] for r in plain.metrics()] == [r["loss/d"] for r in ev.metrics()]


def test_eval_every_without_metrics_is_an_error():
    with pytest.raises(ConfigError, match="eval.metrics is empty"):
        resolve("ring8", ["eval.every=10"])


@pytest.mark.filterwarnings("ignore:train.amp=bf16. this CPU has no native bfloat16")  # expected on AVX2 CPUs; tested in test_amp_auto_uses_bf16_only_where_it_is_native
@pytest.mark.parametrize("fast, atol", [(["train.channels_last=true"], 1e-5), (["train.amp=bf16"], 0.05)])
def test_fast_paths_match_the_plain_path(fast, atol, tmp_path):
    base = ["train.steps=4", "train.monitor=false"]
    a = ganforge.train(tiny("digits-dcgan", *base), out=tmp_path / "plain")
    b = ganforge.train(tiny("digits-dcgan", *base, *fast), out=tmp_path / "fast")
    ra, rb = a.metrics()[-1], b.metrics()[-1]
    for k in ("loss/d", "loss/g", "d/real", "d/fake"):
        assert ra[k] == pytest.approx(rb[k], abs=atol), k
    z = torch.randn(6, a.config.model.z_dim)
    assert torch.allclose(a.generator(z), b.generator(z.contiguous()), atol=max(atol, 1e-5) * 4)


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_uses_bf16_only_where_it_is_native(native, tmp_path, monkeypatch):
    """train.amp=auto: bf16 autocast where the device has native bf16, float32 elsewhere; an explicit
    bf16 without native support still autocasts but warns (emulated bf16 is many times slower)."""
    import warnings

    from ganforge.training import loop

    monkeypatch.setattr(loop, "native_bf16", lambda device: native)
    tr = loop.Trainer(tiny("digits-dcgan", "train.steps=1", "train.amp=auto"), tmp_path / "auto")
    assert tr.amp == ("bf16" if native else "none")
    assert isinstance(tr.autocast, torch.autocast) == native
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = loop.Trainer(tiny("digits-dcgan", "train.steps=1", "train.amp=bf16"), tmp_path / "bf16")
    assert tr.amp == "bf16" and isinstance(tr.autocast, torch.autocast)
    assert any("no native bfloat16" in str(w.message) for w in caught) == (not native)
    with pytest.raises(ConfigError, match="valid: none, bf16, auto"):
        resolve("ring8", ["train.amp=fp16"])


def test_compiled_path_matches_the_plain_path(tmp_path):
    base = ["train.steps=3", "train.monitor=false", "model.g.norm=none"]
    a = ganforge.train(tiny("ring8", *base), out=tmp_path / "plain")
    b = ganforge.train(tiny("ring8", *base, "train.compile=true"), out=tmp_path / "compiled")
    z = torch.randn(6, a.config.model.z_dim)
    assert torch.allclose(a.generator(z), b.generator(z), atol=1e-4)
    assert a.metrics()[-1]["loss/d"] == pytest.approx(b.metrics()[-1]["loss/d"], abs=1e-4)


def test_compile_without_a_compiler_falls_back_to_eager(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="running eagerly"):
        ganforge.train(tiny("ring8", "train.steps=2", "train.compile=true"), out=tmp_path / "r")


def test_fused_adam_matches_foreach(tmp_path):
    base = ["train.steps=4", "train.monitor=false"]
    a = ganforge.train(tiny("ring8", *base, "train.fused=foreach"), out=tmp_path / "foreach")
    b = ganforge.train(tiny("ring8", *base, "train.fused=fused"), out=tmp_path / "fused")
    z = torch.randn(6, a.config.model.z_dim)
    assert torch.allclose(a.generator(z), b.generator(z), atol=1e-5)
    assert a.metrics()[-1]["loss/d"] == pytest.approx(b.metrics()[-1]["loss/d"], abs=1e-5)


def test_cuda_graph_off_cuda_runs_eagerly_with_a_warning(tmp_path):
    base = ["train.steps=4", "train.monitor=false"]
    a = ganforge.train(tiny("ring8", *base), out=tmp_path / "plain")
    with pytest.warns(UserWarning, match="cuda_graph=true is not used with device cpu"):
        b = ganforge.train(tiny("ring8", *base, "train.cuda_graph=true"), out=tmp_path / "graph")
    z = torch.randn(6, a.config.model.z_dim)
    assert torch.equal(a.generator(z), b.generator(z))


def test_unknown_optimiser_kernel_is_an_error():
    with pytest.raises(ConfigError, match="unknown train.fused"):
        resolve("ring8", ["train.fused=fast"])


def test_each_phase_computes_gradients_for_its_own_net_only(tmp_path):
    """The G phase's backward runs through D but computes no gradient for D's weights (it was
    discarded at D's next zero_grad anyway); each phase still fills its own net's gradients."""
    from ganforge.training import loop

    tr = loop.Trainer(tiny("ring8", "train.steps=1"), tmp_path / "r")
    fired = []
    for name in ("d", "g"):
        for p in tr.modules[name].parameters():
            p.register_hook(lambda grad, name=name: fired.append(name))
    ctx = loop.Context(modules=tr.modules, cfg=tr.cfg, real=tr.stream.next, z=tr.z, stats=tr.stats)
    ctx.step, ctx.log_step = 0, False
    tr.iteration(ctx)
    n_d, n_g = (sum(1 for _ in tr.modules[k].parameters()) for k in ("d", "g"))
    assert [p.module for p in tr.method.phases] == ["d", "g"]
    assert fired == ["d"] * n_d + ["g"] * n_g
    assert all(p.grad is not None for k in ("d", "g") for p in tr.modules[k].parameters())
