"""Seed ensembles (training/ensemble.py): each seed equals its sequential run, run dirs load."""

import json

import pytest
import torch

import ganforge
from ganforge.config import resolve
from ganforge.errors import ConfigError
from ganforge.io import load_torch
from ganforge.training.ensemble import StackedNet, check_ensemble, train_ensemble

TINY = ["train.steps=4", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
        "train.progress=false", "train.batch=16", "data.samples=1000", "model.g.width=16",
        "model.d.width=12", "train.monitor=false", "train.threads=1", "remedies.code_balance=0"]


def tiny(*extra):
    return resolve("grid25", TINY + list(extra))


def close(a: dict, b: dict, atol=2e-5, rtol=1e-4):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=rtol, atol=atol), k


@pytest.mark.parametrize("extra", [
    [],  # the grid25 recipe (categorical code, top-k, cosine lr), without code balancing (TINY)
    ["optim.n_critic=2", "train.ema=0.9", "optim.g.weight_decay=1e-3", "model.d.norm=batch",
     "remedies.pack=1", "loss.name=saturating", "optim.d.name=rmsprop"],
    # code balancing (the learned code prior) every 2 steps, with PacGAN packing 2
    ["remedies.code_balance=0.5", "remedies.code_balance_every=2", "remedies.code_balance_start=0",
     "remedies.code_balance_samples=4", "remedies.pack=2"],
    # the remedies drawn from the RNG (label smoothing + flipping, instance noise, dropout in G), with an R1 penalty
    ["loss.smoothing=0.2", "loss.flip=0.1", "remedies.instance_noise=0.3", "model.g.dropout=0.2",
     "loss.penalty=r1", "loss.penalty_weight=0.5", "model.g.norm=batch"],
    # one-sided smoothing, DRAGAN, historical averaging, feature matching and pull-away
    ["loss.real_label=0.9", "loss.penalty=dragan", "remedies.historical_averaging=0.01", "remedies.feature_matching=1",
     "remedies.pull_away=0.1", "remedies.pack=1"],
    # WGAN-GP with n_critic 2 (interpolates from each seed's RNG); R2
    ["loss.name=wgan-gp", "optim.n_critic=2", "remedies.top_k=0"],
    # R2, with the PacGAN authors' N(0, 0.02^2) initial weights
    ["loss.name=ns", "loss.penalty=r2", "loss.penalty_weight=1", "model.g.init_std=0.02", "model.d.init_std=0.02"],
    # weight clipping (a bound of 0.01 leaves G gradients near Adam's eps, where rounding decides the step)
    ["loss.name=wgan", "remedies.top_k=0", "loss.clip=0.5"],
])
def test_each_seed_matches_its_sequential_trainer_run(tmp_path, extra):
    cfg = tiny(*extra)
    seeds = [0, 1, 2] if not extra else [3, 4]
    runs = train_ensemble(cfg, seeds, tmp_path / "ens")
    assert [r.config.train.seed for r in runs] == seeds
    for s, run in zip(seeds, runs):
        if "remedies.code_balance=0.5" in extra:  # the prior moved (and is compared with the rest of G's state)
            assert not torch.allclose(run.generator.code.log_weights, torch.zeros(100))
        seq = ganforge.train(tiny(*extra, f"train.seed={s}"), out=tmp_path / f"seq-{s}")
        # G (EMA weights and BN running statistics included), D and the optimiser states
        close(run.generator.state_dict(), seq.generator.state_dict())
        a, b = (load_torch(d / "checkpoints" / "last.pt") for d in (run.run_dir, seq.run_dir))
        close(a["modules"]["d"], b["modules"]["d"])
        sq_a, sq_b = ({str(k): v["exp_avg_sq"] for k, v in o["optims"]["g"]["state"].items() if "exp_avg_sq" in v} for o in (a, b))
        # second moments square the gradients' rounding differences (batched vs unbatched float32 matmuls)
        close(sq_a, sq_b, atol=2e-5 * max(float(v.abs().max()) for v in sq_b.values()), rtol=1e-3)
        assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])  # the same latents were drawn
        ra, rb = run.metrics(), seq.metrics()
        assert [r["step"] for r in ra] == [r["step"] for r in rb] == [1, 2, 3, 4]
        for x, y in zip(ra, rb):
            assert x.keys() == y.keys()
            for k in x:
                if k != "time":
                    assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), k


def test_run_dirs_load_sample_and_resume_sequentially(tmp_path):
    const = ["optim.g.schedule=constant", "optim.d.schedule=constant"]  # (cosine's horizon is train.steps)
    runs = train_ensemble(tiny("train.sample_every=2", *const), [5, 7], tmp_path)
    for s, run in zip([5, 7], runs):
        d = tmp_path / f"seed-{s}"
        assert run.run_dir == d
        for f in ("config.yaml", "metrics.jsonl", "generator.safetensors", "samples/final.png",
                  "samples/step_0000002.png", "curves.png", "checkpoints/last.pt"):
            assert (d / f).is_file(), f
        loaded = ganforge.load(d)
        assert loaded.config.train.seed == s
        x = loaded.sample(10, seed=0)
        assert x.shape == (10, 2) and torch.isfinite(x).all()
        assert torch.allclose(x, run.sample(10, seed=0))
    # the ensemble's checkpoint continues like the sequential run: 4 ensemble + 2 Trainer steps == 6 Trainer steps
    cont = ganforge.train(tiny("train.steps=6", "train.seed=5", *const), out=tmp_path / "seed-5", resume=True)
    ref = ganforge.train(tiny("train.steps=6", "train.seed=5", *const), out=tmp_path / "ref")
    close(cont.generator.state_dict(), ref.generator.state_dict())


@pytest.mark.parametrize("code", [[], ["model.g.categories=5", "model.g.code_scale=0.3"]])
def test_stacked_net_shapes_and_batch_independence(code):
    from ganforge.nets import build_discriminator, build_generator

    cfg = tiny(*code)
    torch.manual_seed(0)
    Gs = [build_generator(cfg.model.g, 2, (2,)) for _ in range(3)]
    Ds = [build_discriminator(cfg.model.d, (4,)) for _ in range(3)]
    G, D = StackedNet(Gs), StackedNet(Ds)
    z = torch.randn(3, 8, 2)
    with torch.no_grad():
        x = G.generator(z, train=False)  # eval mode: running statistics
        logits = D.discriminator(x.reshape(3, 4, 4))
    assert x.shape == (3, 8, 2) and logits.shape == (3, 4)
    for s in range(3):  # seed s alone, through the ordinary modules
        assert torch.allclose(x[s], Gs[s].eval()(z[s]), atol=1e-5)
        assert torch.allclose(logits[s], Ds[s](x[s].reshape(4, 4)), atol=1e-5)


@pytest.mark.parametrize("override", ["model.d.spectral_norm=true", "method=unrolled", "model.g.name=dcgan",
                                      "remedies.minibatch_std=true", "remedies.minibatch_discrimination=4", "model.d.dropout=0.1",
                                      ("remedies.code_balance=0.2", "model.d.norm=batch")])
def test_unsupported_configs_are_one_line_config_errors(override, tmp_path):
    cfg = tiny(*([override] if isinstance(override, str) else override))
    with pytest.raises(ConfigError, match="seed ensembles do not support .*; supported: method standard") as e:
        train_ensemble(cfg, [0, 1], tmp_path)
    assert "\n" not in str(e.value)
    check_ensemble(tiny())  # the recipe itself is fine
    with pytest.raises(ConfigError, match="distinct seeds"):
        train_ensemble(tiny(), [1, 1], tmp_path)


def test_run_seeds_trains_new_seeds_as_an_ensemble(tmp_path, monkeypatch):
    from ganforge.experiments import seeds as seeds_mod
    from ganforge.training import ensemble

    called = []
    real = ensemble.train_ensemble
    monkeypatch.setattr(ensemble, "train_ensemble", lambda *a, **k: called.append(a[1]) or real(*a, **k))
    res = seeds_mod.run_seeds(tiny("train.monitor=true"), 2, out=tmp_path / "s", quiet=True)
    assert called == [[0, 1]] and [r["seed"] for r in res["runs"]] == [0, 1]
    assert (tmp_path / "s" / "seed-1" / "diagnosis.json").is_file()
    assert json.loads((tmp_path / "s" / "seeds.json").read_text())["summary"]["modes"]["n"] == 2
    monkeypatch.setenv("GANFORGE_ENSEMBLE", "0")
    seeds_mod.run_seeds(tiny(), 2, out=tmp_path / "t", quiet=True)
    assert called == [[0, 1]]  # opted out: sequential


def test_run_seeds_continues_an_interrupted_ensemble_as_an_ensemble(tmp_path, monkeypatch, sigterm_ensemble):
    from ganforge.experiments import seeds as seeds_mod
    from ganforge.training import Interrupted
    from ganforge.training import ensemble

    real = ensemble.train_ensemble
    with sigterm_ensemble(at=2), pytest.raises(Interrupted):
        seeds_mod.run_seeds(tiny(), 2, out=tmp_path / "s", quiet=True)
    called = []
    monkeypatch.setattr(ensemble, "train_ensemble", lambda *a, **k: called.append((a[1], k.get("resume", False))) or real(*a, **k))
    res = seeds_mod.run_seeds(tiny(), 2, out=tmp_path / "s", quiet=True)
    assert called == [([0, 1], True)]
    ref = seeds_mod.run_seeds(tiny(), 2, out=tmp_path / "ref", quiet=True)
    assert [r["metrics"] for r in res["runs"]] == [r["metrics"] for r in ref["runs"]]


def test_resume_continues_the_ensembles_historical_averages(tmp_path):
    """The running means of historical averaging go into the checkpoint as the Trainer's
    avg_g / avg_d modules: 4 ensemble + 2 Trainer steps == 6 Trainer steps."""
    over = ["optim.g.schedule=constant", "optim.d.schedule=constant", "remedies.historical_averaging=0.5",
            "loss.smoothing=0.1", "model.g.dropout=0.1"]
    train_ensemble(tiny(*over), [5, 6], tmp_path)
    ck = load_torch(tmp_path / "seed-5" / "checkpoints" / "last.pt")
    assert int(ck["modules"]["avg_g"]["count"]) == 4 and int(ck["modules"]["avg_d"]["count"]) == 4
    cont = ganforge.train(tiny("train.steps=6", "train.seed=5", *over), out=tmp_path / "seed-5", resume=True)
    ref = ganforge.train(tiny("train.steps=6", "train.seed=5", *over), out=tmp_path / "ref")
    close(cont.generator.state_dict(), ref.generator.state_dict())
    a, b = (load_torch(d / "checkpoints" / "last.pt") for d in (cont.run_dir, ref.run_dir))
    for k in ("avg_g", "avg_d"):
        close(a["modules"][k], b["modules"][k])


def _state(run_dir):
    ck = load_torch(run_dir / "checkpoints" / "last.pt")
    return {**{f"g.{k}": v for k, v in ck["modules"]["g"].items()}, **{f"d.{k}": v for k, v in ck["modules"]["d"].items()},
            **{f"ema.{k}": v for k, v in ck.get("ema", {}).items()}}


def _rows(run_dir):
    return [{k: v for k, v in json.loads(r).items() if k != "time"} for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("extra", [
    [],  # the grid25 recipe: categorical code, top-k, packing, cosine lr (per-step schedule state)
    ["remedies.code_balance=0.5", "remedies.code_balance_every=2", "remedies.code_balance_start=0",
     "remedies.code_balance_samples=4", "train.ema=0.9", "model.g.norm=batch", "model.g.dropout=0.1",
     "remedies.historical_averaging=0.01", "loss.smoothing=0.1", "optim.d.name=rmsprop", "train.monitor=true"],
])
def test_an_interrupted_ensemble_resumes_bit_for_bit(tmp_path, extra, sigterm_ensemble):
    """SIGTERM after step 3 of 6: every seed is checkpointed, and resume=True continues to the
    same weights, optimiser states and log rows as an uninterrupted ensemble (and periodic
    checkpoints change nothing)."""
    import signal

    from ganforge.training import Interrupted

    cfg = lambda *more: tiny("train.steps=6", *extra, *more)
    full = train_ensemble(cfg("train.checkpoint_every=0"), [0, 1], tmp_path / "full")
    periodic = train_ensemble(cfg("train.checkpoint_every=2"), [0, 1], tmp_path / "periodic")
    with sigterm_ensemble(at=3), pytest.raises(Interrupted, match="interrupted at step 3; continue with: the same `ganforge seeds` command, or train_ensemble"):
        train_ensemble(cfg("train.checkpoint_every=0"), [0, 1], tmp_path / "cut")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    assert load_torch(tmp_path / "cut" / "seed-1" / "checkpoints" / "last.pt")["step"] == 3
    resumed = train_ensemble(cfg("train.checkpoint_every=0"), [0, 1], tmp_path / "cut", resume=True)
    for a, b, c in zip(full, periodic, resumed):
        sa, sb, sc = _state(a.run_dir), _state(b.run_dir), _state(c.run_dir)
        assert sa.keys() == sc.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]) and torch.equal(sa[k], sc[k]), k
        oa, oc = (load_torch(r.run_dir / "checkpoints" / "last.pt")["optims"] for r in (a, c))
        for k in ("g", "d"):
            for i, st in oa[k]["state"].items():
                for n, v in st.items():
                    assert torch.equal(v, oc[k]["state"][i][n]), (k, i, n)
        assert _rows(a.run_dir) == _rows(c.run_dir) and len(_rows(a.run_dir)) == 6


def test_ensemble_resume_refuses_missing_or_uneven_checkpoints(tmp_path):
    from ganforge.errors import CheckpointError
    from ganforge.io import save_torch

    train_ensemble(tiny(), [0, 1], tmp_path / "e")
    ck = load_torch(tmp_path / "e" / "seed-1" / "checkpoints" / "last.pt")
    ck["step"] = 2
    save_torch(ck, tmp_path / "e" / "seed-1" / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match=r"different steps \(\[2, 4\]\)"):
        train_ensemble(tiny("train.steps=6"), [0, 1], tmp_path / "e", resume=True)
    (tmp_path / "e" / "seed-1" / "checkpoints" / "last.pt").unlink()
    with pytest.raises(CheckpointError, match="no checkpoints/last.pt"):
        train_ensemble(tiny("train.steps=6"), [0, 1], tmp_path / "e", resume=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_ensemble(tiny(), [0, 1], tmp_path / "new", resume=True)


def test_maxout_piece_max_matches_amax_and_routes_the_gradient_to_the_winning_pieces():
    """The ensemble's maxout reduction: forward = amax over the pieces; backward = the output
    gradient at every piece equal to the max (float64 NumPy reference), ties included."""
    import numpy as np

    from ganforge.training.ensemble_nets import _MaxPieces

    torch.manual_seed(0)
    y = torch.randn(2, 3, 4, 5)  # [S, pieces, out, N]
    y[0, 2, 1, 3] = y[0, 0, 1, 3] = y[0, :, 1, 3].max() + 1  # an exact tie between pieces 0 and 2
    y.requires_grad_(True)
    g = torch.randn(2, 4, 5)
    out = _MaxPieces.apply(y)
    (grad,) = torch.autograd.grad(out, y, g)
    yn, gn = y.detach().double().numpy(), g.double().numpy()
    np.testing.assert_array_equal(out.detach().numpy(), y.detach().amax(1).numpy())
    want = np.where(yn == yn.max(1, keepdims=True), gn[:, None], 0.0)
    np.testing.assert_allclose(grad.double().numpy(), want, rtol=0, atol=0)
    assert grad[0, 0, 1, 3] == grad[0, 2, 1, 3] == g[0, 1, 3]  # each tied piece gets the whole gradient
