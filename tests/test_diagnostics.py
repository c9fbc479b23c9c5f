"""The health / mode-collapse monitor: detectors on synthetic histories, the callback's
bookkeeping, and real short runs (a healthy ring8 run raises nothing; a deliberately
collapsing one is flagged within its first quarter)."""

import io
import json
import math
from contextlib import redirect_stderr
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ganforge
from ganforge.config import apply_override, resolve, validate
from ganforge.diagnostics import (
    CONDITIONS,
    Monitor,
    Thresholds,
    above_chance,
    chance_levels,
    class_statistics,
    detect_discriminator_overpowering,
    detect_low_quality,
    detect_divergence,
    detect_mode_collapse,
    detect_oscillation,
    detect_vanishing_generator_gradient,
    format_diagnosis,
    remedies,
    sample_statistics,
    summarize,
)
from ganforge.metrics import count_modes_2d, mean_pairwise_distance
from ganforge.report import read_metrics
from ganforge.training import Interrupted

from test_training import NEEDS_FASHION  # noqa: E402

TH = Thresholds()


def rows_of(n, start=0, **vals):
    """``n`` log rows with the given statistics (values may be callables of the index)."""
    return [{"step": 10 * (start + i + 1), **{k: v(i) if callable(v) else v for k, v in vals.items()}} for i in range(n)]


BALANCED = dict(**{"loss/d": 1.3, "loss/g": 0.8, "d/real": 0.55, "d/fake": 0.45, "grad/G": 0.5, "grad/D": 1.0})


def check(step, ratio=1.0, hist=None, hq=0.5):
    c = {"step": step, "diversity_ratio": ratio}
    if hist is not None:
        c.update(hist=hist, modes=sum(h > 0 for h in hist), modes_total=len(hist), hq=hq)
    return c


# --------------------------------------------------------------------------- row detectors


def test_nan_or_inf_is_divergence():
    rows = rows_of(6, **BALANCED)
    assert detect_divergence(rows) is None
    ev = detect_divergence(rows + rows_of(1, 6, **{**BALANCED, "loss/g": float("nan"), "grad/G": float("inf")}))
    assert ev["nonfinite"] == ["grad/G", "loss/g"]
    # non-finite bookkeeping (lr, time) is not a statistic
    assert detect_divergence(rows + rows_of(1, 6, **{**BALANCED, "time": float("nan")})) is None


def test_exploding_loss_is_divergence_only_when_sustained():
    rows = rows_of(6, **BALANCED)
    boom = {**BALANCED, "loss/d": 1e4}
    assert detect_divergence(rows + rows_of(1, 6, **boom)) is None  # one spike
    ev = detect_divergence(rows + rows_of(2, 6, **boom))
    assert ev["loss"] == "loss/d" and ev["limit"] == pytest.approx(100 * 1.3)


def test_d_real_to_1_and_d_fake_to_0_is_overpowering():
    early = rows_of(5, **BALANCED)
    strong = {**BALANCED, "d/real": 0.98, "d/fake": 0.02, "loss/d": 0.05}
    assert detect_discriminator_overpowering(early) is None
    assert detect_discriminator_overpowering(early + rows_of(3, 5, **strong)) is None  # not sustained yet
    ev = detect_discriminator_overpowering(early + rows_of(4, 5, **strong))
    assert ev["d_real"] == pytest.approx(0.98) and ev["d_fake"] == pytest.approx(0.02) and ev["loss_d"] == pytest.approx(0.05)
    # one balanced row inside the window breaks it
    assert detect_discriminator_overpowering(early + rows_of(2, 5, **strong) + rows_of(1, 7, **BALANCED) + rows_of(1, 8, **strong)) is None


def test_vanishing_generator_gradient_needs_d_winning():
    early = rows_of(5, **BALANCED)  # grad/G early median 0.5
    tiny_grad = {**BALANCED, "grad/G": 0.004}
    assert detect_vanishing_generator_gradient(early + rows_of(4, 5, **tiny_grad)) is None  # D not winning
    ev = detect_vanishing_generator_gradient(early + rows_of(4, 5, **{**tiny_grad, "d/fake": 0.01, "d/real": 0.99}))
    assert ev["ratio"] == pytest.approx(0.008) and ev["grad_g_early"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- sample checks


def test_stable_coverage_raises_no_alarm():
    checks = [check(50 * i, ratio=0.95 + 0.02 * (i % 2), hist=[30 + i % 3] * 8, hq=0.6) for i in range(20)]
    assert detect_mode_collapse(checks) is None
    assert detect_oscillation(checks) is None


def test_low_diversity_sustained_is_collapse_unless_recovering():
    assert detect_mode_collapse([check(50, 0.9), check(100, 0.3), check(150, 0.3)]) is None
    ev = detect_mode_collapse([check(50, 0.3), check(100, 0.25), check(150, 0.2)])
    assert ev["sign"] == "low diversity" and ev["diversity_ratio"] == pytest.approx(0.2)
    assert detect_mode_collapse([check(50, 0.1), check(100, 0.25), check(150, 0.4)]) is None  # growing: G spreading out


def test_few_modes_with_good_samples_is_collapse():
    two = [0, 400, 0, 0, 0, 380, 0, 0]
    ev = detect_mode_collapse([check(50 * i, 0.9, two, hq=0.5) for i in range(3)])
    assert ev["sign"] == "low coverage" and ev["modes"] == 2 and ev["modes_total"] == 8
    # the same counts from barely any high-quality samples are not trusted
    assert detect_mode_collapse([check(50 * i, 0.9, two, hq=0.05) for i in range(3)]) is None


def test_falling_coverage_is_collapse():
    full, fewer = [10] * 25, [10] * 15 + [0] * 10
    checks = [check(50 * i, 0.9, full) for i in range(4)] + [check(200 + 50 * i, 0.9, fewer) for i in range(3)]
    ev = detect_mode_collapse(checks)
    assert ev["sign"] == "falling coverage" and ev["peak"] == 25 and ev["modes"] == 15
    assert detect_mode_collapse(checks[:-1]) is None


def test_mode_hopping_is_oscillation():
    a, b = [500, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 500, 0, 0, 0, 0]
    hopping = [check(50 * i, 0.4, a if i % 2 else b) for i in range(4)]
    ev = detect_oscillation(hopping)
    assert ev["hops"] == 3 and ev["tv"] == [1.0, 1.0, 1.0]
    assert detect_oscillation([check(50 * i, 0.4, a) for i in range(4)]) is None


def test_sample_statistics_match_the_mode_counting_metric():
    modes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    real = modes[torch.randint(0, 4, (1000,), generator=g)] + 0.01 * torch.randn(1000, 2, generator=g)
    fake = modes[torch.randint(0, 2, (500,), generator=g)] + 0.01 * torch.randn(500, 2, generator=g)
    c = sample_statistics(fake, mean_pairwise_distance(real), modes, 0.01)
    ref = count_modes_2d(fake, modes, 0.01)
    assert c["modes"] == ref["modes"] == 2 and c["hq"] == pytest.approx(ref["hq"]) and sum(c["hist"]) == round(ref["hq"] * 500)
    assert 0.3 < c["diversity_ratio"] < 0.9
    bad = sample_statistics(torch.full((10, 2), float("nan")), 1.0)
    assert bad["nonfinite"] == 1.0 and math.isnan(bad["diversity_ratio"])


def test_every_remedy_is_a_valid_option():
    for recipe, extra in (("ring8", ["loss.name=saturating", "optim.n_critic=5"]), ("digits-dcgan", []), ("fashion-wgan-gp", [])):
        cfg = resolve(recipe, extra)
        for name in CONDITIONS:
            rs = remedies(name, cfg)
            assert rs, (recipe, name)
            for r in rs:
                c = resolve(recipe, extra)
                for assignment in r["option"].split("--set")[1:]:
                    apply_override(c, assignment.strip())
                validate(c)
    sat = remedies("vanishing_generator_gradient", resolve("ring8", ["loss.name=saturating"]))
    assert sat[0]["option"] == "--set loss.name=ns"
    assert all("loss.name=ns" not in r["option"] for r in remedies("mode_collapse", resolve("ring8")))
    # off-mode 2D samples: a categorical latent code first, unless G already has one
    code = [r["option"] for r in remedies("low_quality", resolve("ring8", ["model.g.categories=0", "model.z_dim=2"]))]
    assert code[0] == "--set model.g.categories=100 --set model.g.code_scale=0.1"
    assert not any("categories" in r["option"] for r in remedies("low_quality", resolve("ring8", ["model.g.categories=32", "model.z_dim=3"])))


# --------------------------------------------------------------------------- low quality (off the data manifold)

from ganforge.data.mixtures import grid_centres, ring_centres  # noqa: E402


@pytest.mark.parametrize("modes,std", [(ring_centres(), 0.01), (grid_centres(), 0.05)])
def test_chance_level_is_the_discs_share_of_the_data_box(modes, std):
    # independent reference: K disjoint discs of radius 3 std inside the box [min - 3 std, max + 3 std]^2
    k, r = len(modes), 3 * std
    side = (modes.double().max(0).values - modes.double().min(0).values + 2 * r)
    expected = k * math.pi * r * r / float(side.prod())
    p = chance_levels(modes, std)
    assert p.shape == (k,) and float(p.sum()) == pytest.approx(expected, rel=0.01)
    assert float(p.min()) == pytest.approx(expected / k, rel=0.03)  # every disc the same


def box_points(modes, std, n, g):
    lo, hi = modes.min(0).values - 3 * std, modes.max(0).values + 3 * std
    return lo + torch.rand(n, 2, generator=g) * (hi - lo)


def test_points_on_the_modes_vs_points_over_the_square():
    modes, std, n = grid_centres(), 0.05, 2500
    g = torch.Generator().manual_seed(0)
    chance = chance_levels(modes, std)
    real_mpd = 1.0
    # on the modes: every sample within 3 std (noise std/2 per axis: P(r > 3 std) = exp(-18)), every mode clearly above chance
    on = modes[torch.arange(n) % 25] + 0.5 * std * torch.randn(n, 2, generator=g)
    c_on = sample_statistics(on, real_mpd, modes, std, chance=chance)
    assert c_on["hq"] == 1.0 and c_on["modes"] == 25 and c_on["modes_above_chance"] == 25
    # uniform over the square: hq is the chance level (binomial: within 4 sd), every mode is "hit", almost none above chance
    spread = box_points(modes, std, n, g)
    c_sp = sample_statistics(spread, real_mpd, modes, std, chance=chance)
    sd = math.sqrt(c_sp["hq_chance"] * (1 - c_sp["hq_chance"]) / n)
    assert abs(c_sp["hq"] - c_sp["hq_chance"]) < 4 * sd
    assert c_sp["modes"] >= 20 and c_sp["modes_above_chance"] <= 1
    # mostly spread, but 4 modes really held: the count above chance finds exactly those 4
    held = torch.cat([modes[torch.arange(100) % 4] + 0.5 * std * torch.randn(100, 2, generator=g), spread[100:]])
    c_4 = sample_statistics(held, real_mpd, modes, std, chance=chance)
    assert c_4["modes_above_chance"] == 4 and c_4["hq"] < TH.hq_min and c_4["modes"] >= 20
    # the detector: off-manifold on three checks in a row is low quality; on-manifold is not
    ev = detect_low_quality([{**c_sp, "step": 50 * i} for i in range(3)])
    assert ev["hq"] == c_sp["hq"] and ev["lift"] < 2 and ev["modes_above_chance"] == c_sp["modes_above_chance"]
    assert ev["hq_limit"] == pytest.approx(min(TH.hq_min, TH.hq_lift * c_sp["hq_chance"])) and ev["trend"] == "flat"
    assert detect_low_quality([{**c_on, "step": 50 * i} for i in range(3)]) is None
    assert detect_mode_collapse([{**c_sp, "step": 50 * i} for i in range(3)]) is None  # counts at low hq are not coverage


def test_low_quality_must_hold_for_the_whole_window_and_reports_its_trend():
    def c(step, hq):
        return {"step": step, "diversity_ratio": 1.0, "hq": hq, "hq_chance": 0.02, "modes": 20, "modes_total": 25,
                "modes_above_chance": 2}

    limit = min(TH.hq_min, TH.hq_lift * 0.02)  # 0.1
    assert detect_low_quality([c(50, 0.03), c(100, 0.2), c(150, 0.03)]) is None  # one good check breaks it
    assert detect_low_quality([c(50, 0.03), c(100, 0.03)]) is None  # not sustained yet
    # at the last step a short run's result is judged on the checks it has after the warm-up
    assert detect_low_quality([c(50, 0.03), c(100, 0.03)], final=True)["window"] == [0.03, 0.03]
    assert detect_low_quality([c(50, 0.2), c(100, 0.03)], final=True) is None
    assert detect_low_quality([], final=True) is None
    assert detect_low_quality([c(50, 0.03), c(100, 0.05), c(150, limit)]) is None  # at the limit is not below it
    assert detect_low_quality([c(50, 0.02), c(100, 0.05), c(150, 0.09)])["trend"] == "rising"
    assert detect_low_quality([c(50, 0.09), c(100, 0.05), c(150, 0.02)])["trend"] == "falling"
    old = [{k: v for k, v in c(50 * i, 0.01).items() if k != "hq_chance"} for i in range(3)]  # a log written before hq_chance
    assert detect_low_quality(old) is None


def test_above_chance_uses_a_poisson_margin():
    chance = torch.tensor([0.001, 0.001, 0.004])  # n = 2500: expected 2.5, 2.5, 10
    # thresholds 2.5 + 3 sqrt(2.5) = 7.24 and 10 + 3 sqrt(10) = 19.49
    assert above_chance([8, 7, 19], 2500, chance) == 1
    assert above_chance([8, 8, 20], 2500, chance) == 3


# --------------------------------------------------------------------------- the callback


def fake_trainer(tmp_path, steps=400):
    cfg = resolve("ring8", [f"train.steps={steps}", "train.log_every=10", "data.samples=1000"])
    from ganforge.data import load_dataset

    data = load_dataset(cfg.data, "train", seed=0)
    g = torch.Generator().manual_seed(1)
    # a generator stuck on one mode
    return SimpleNamespace(cfg=cfg, data=data, step=0, device=torch.device("cpu"), run_dir=tmp_path,
                           sample=lambda z: data.modes[0] + 0.01 * torch.randn(len(z), 2, generator=g))


def feed(monitor, trainer, rows):
    out = []
    for r in rows:
        trainer.step = r["step"]
        out.append({**r, **(monitor.on_log(trainer, dict(r)) or {})})
    return out


def test_monitor_logs_each_condition_once_and_marks_rows(tmp_path):
    tr = fake_trainer(tmp_path)
    m = Monitor(tr.cfg, check_every=2)
    strong = {**BALANCED, "d/real": 0.97, "d/fake": 0.03}
    err = io.StringIO()
    with redirect_stderr(err):
        out = feed(m, tr, rows_of(5, **BALANCED) + rows_of(15, 5, **strong))
    log = err.getvalue()
    assert log.count("discriminator_overpowering") == 1 and log.count("mode_collapse") == 1
    assert "--set" in log
    alerts = [r.get("monitor/alerts", []) for r in out]
    assert "discriminator_overpowering" in alerts[-1] and "mode_collapse" in alerts[-1]
    assert all("monitor/diversity_ratio" in r for r in out[1::2]) and "monitor/modes" in out[1]
    rec = m.conditions["discriminator_overpowering"]
    assert rec["step"] == 90 and rec["last_step"] == 200 and rec["count"] == 12  # 4th strong row onwards
    assert not m.stop_requested
    d = json.loads((tmp_path / "diagnosis.json").read_text())  # written as soon as a condition appears
    assert not d["healthy"] and {c["name"] for c in d["conditions"]} == {"discriminator_overpowering", "mode_collapse"}


def test_low_quality_waits_for_its_warmup_and_is_announced_once(tmp_path):
    tr = fake_trainer(tmp_path)  # 400 steps, a log row every 10
    g = torch.Generator().manual_seed(2)
    tr.sample = lambda z: box_points(tr.data.modes, tr.data.mode_std, len(z), g)  # spread over the square
    m = Monitor(tr.cfg, check_every=2)
    with redirect_stderr(io.StringIO()) as err:
        out = feed(m, tr, rows_of(40, **BALANCED))
    rec = m.conditions["low_quality"]
    # checks every 20 steps; those from 0.5 x 400 = 200 count; the third of them (step 240) raises it
    assert rec["step"] == 240 and err.getvalue().count("low_quality") == 1
    assert "low_quality" not in out[21].get("monitor/alerts", []) and "low_quality" in out[23]["monitor/alerts"]
    ev = rec["evidence"]
    assert ev["hq"] < ev["hq_limit"] and ev["modes_total"] == 8 and ev["modes_above_chance"] <= 1 and len(ev["window"]) == 3
    assert {"option": "--set train.steps=800", "why": rec["remedies"][0]["why"]} in rec["remedies"][:1]  # the recipe already decays its lr
    assert "mode_collapse" not in m.conditions  # the spread covers everything; diversity is fine
    assert all("monitor/hq_chance" in r and "monitor/modes_above_chance" in r for r in out[1::2])


def test_divergence_requests_a_stop_and_writes_the_diagnosis(tmp_path):
    tr = fake_trainer(tmp_path)
    m = Monitor(tr.cfg)
    with redirect_stderr(io.StringIO()) as err:
        feed(m, tr, rows_of(3, **BALANCED) + rows_of(1, 3, **{**BALANCED, "loss/d": float("nan")}))
    assert m.stop_requested and "stopping" in err.getvalue()
    d = json.loads((tmp_path / "diagnosis.json").read_text())
    assert d["conditions"][0]["name"] == "divergence" and d["conditions"][0]["evidence"]["nonfinite"] == ["loss/d"]


def test_a_generator_that_cannot_be_sampled_turns_sample_checks_off(tmp_path):
    tr = fake_trainer(tmp_path)
    tr.sample = lambda z: (_ for _ in ()).throw(TypeError("needs an input image"))
    m = Monitor(tr.cfg, check_every=1)
    with redirect_stderr(io.StringIO()) as err:
        out = feed(m, tr, rows_of(3, **BALANCED))
    assert err.getvalue().count("sample checks off") == 1 and not any("monitor/diversity_ratio" in r for r in out)
    m.on_end(tr)
    assert json.loads((tmp_path / "diagnosis.json").read_text())["healthy"]


def test_state_dict_round_trip_through_a_safe_checkpoint(tmp_path):
    tr = fake_trainer(tmp_path)
    m = Monitor(tr.cfg, check_every=2)
    strong = {**BALANCED, "d/real": 0.97, "d/fake": float("nan")}
    with redirect_stderr(io.StringIO()):
        feed(m, tr, rows_of(5, **BALANCED) + rows_of(45, 5, **{**strong, "d/fake": 0.03}) + rows_of(1, 50, **strong))
    assert len(m.rows) < 51  # the history is bounded
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = Monitor(tr.cfg, check_every=2)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    assert m2.state_dict() == m.state_dict()
    assert math.isnan(m2.rows[-1]["d/fake"])
    assert m2.diagnosis()["conditions"] == m.diagnosis()["conditions"]
    with redirect_stderr(io.StringIO()) as err:  # known conditions are not announced again
        feed(m2, tr, rows_of(4, 51, **{**strong, "d/fake": 0.03}))
    assert "discriminator_overpowering" not in err.getvalue()


# --------------------------------------------------------------------------- real runs

# Pinned here so that retuning the ring8 recipe does not change what these tests exercise.
SMALL = ["train.progress=false", "train.threads=1", "train.log_every=10", "train.sample_every=0",
         "train.checkpoint_every=0", "model.g.width=128", "model.d.width=128", "remedies.pack=1",
         "optim.g.schedule=constant", "optim.d.schedule=constant", "train.ema=0",
         "model.g.categories=0", "model.z_dim=2", "remedies.code_balance=0"]


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rows_with(run_dir, key):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if key in r]


def test_healthy_ring8_run_raises_no_alarm(tmp_path, one_thread):
    # the ring8 recipe with narrower nets and lr 5e-4: covers 7-8 of 8 modes within 800 steps
    run = ganforge.train("ring8", out=tmp_path / "ok", overrides=SMALL + ["train.steps=800", "optim.g.lr=5e-4", "optim.d.lr=5e-4"])
    d = json.loads((run.run_dir / "diagnosis.json").read_text())
    assert d["healthy"] and d["conditions"] == [], d["conditions"]
    s = d["summary"]
    assert s["modes"] >= 6 and s["diversity_ratio"] > 0.8 and s["checks"] == 16
    assert not rows_with(run.run_dir, "monitor/alerts")
    assert len(rows_with(run.run_dir, "monitor/modes")) == 16
    assert summarize(run.run_dir)["text"].startswith("healthy")


def test_collapsing_run_is_flagged_in_its_first_quarter(tmp_path, one_thread):
    # saturating loss, D 10x G's lr and 5 D steps per G step, no batch norm in G: G
    # collapses onto 2 of the 8 modes (checked on the scatter plot)
    steps = 800
    collapse = SMALL + [f"train.steps={steps}", "loss.name=saturating", "optim.g.lr=1e-4", "optim.d.lr=1e-3",
                        "optim.n_critic=5", "model.g.norm=none", "model.g.depth=2", "model.d.depth=2", "model.d.maxout=0"]
    err = io.StringIO()
    with redirect_stderr(err):
        run = ganforge.train("ring8", out=tmp_path / "bad", overrides=collapse)
    d = summarize(run.run_dir)
    assert not d["healthy"] and d["source"] == "diagnosis.json"
    first = {c["name"]: c["step"] for c in d["conditions"]}
    assert first.get("mode_collapse", steps) <= steps // 4, first
    assert d["summary"]["modes"] <= 3 and d["summary"]["diversity_ratio"] < 0.5
    assert err.getvalue().count("ganforge monitor: step") == len(first)
    assert "mode_collapse" in rows_with(run.run_dir, "monitor/alerts")[-1]["monitor/alerts"]
    # without diagnosis.json the same verdict comes back from metrics.jsonl
    (run.run_dir / "diagnosis.json").unlink()
    again = summarize(run.run_dir)
    assert again["source"] == "metrics.jsonl" and "mode_collapse" in {c["name"] for c in again["conditions"]}


def test_low_quality_run_is_flagged_with_evidence_and_remedies(tmp_path, one_thread):
    # ring8 at lr 1e-5 for 300 steps: G barely moves from its initial blob, under 1% of samples within 3 std of a mode
    err = io.StringIO()
    with redirect_stderr(err):
        run = ganforge.train("ring8", out=tmp_path / "lq", overrides=SMALL + ["train.steps=300", "optim.g.lr=1e-5", "optim.d.lr=1e-5"])
    d = summarize(run.run_dir)
    assert [c["name"] for c in d["conditions"]] == ["low_quality"], d["conditions"]
    c = d["conditions"][0]
    assert TH.quality_warmup * 300 <= c["step"] <= 300 and err.getvalue().count("low_quality") == 1
    ev = c["evidence"]
    assert ev["hq"] < ev["hq_limit"] <= TH.hq_min and ev["hq_chance"] == pytest.approx(0.0053, rel=0.05)
    assert ev["modes_total"] == 8 and ev["trend"] in ("rising", "flat", "falling") and len(ev["window"]) == 3
    assert any(r["option"] == "--set optim.g.lr=5e-05 --set optim.d.lr=5e-05" for r in c["remedies"])
    assert "low_quality" in d["text"] and "above chance" in d["text"]
    (run.run_dir / "diagnosis.json").unlink()  # the same verdict from metrics.jsonl
    assert [c["name"] for c in summarize(run.run_dir)["conditions"]] == ["low_quality"]


@pytest.mark.parametrize("cached", [False, True])
def test_monitor_leaves_training_unchanged_and_handles_images(tmp_path, monkeypatch, cached):
    """Also when a digits classifier is cached: loading it initialises a module from the global
    RNG, which draws the training latents (the monitor forks the RNG around its checks)."""
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    if cached:  # an untrained one: loaded (RNG drawn), then refused for its agreement with the labels
        from ganforge.metrics import features_classifier as fc

        info = {"dataset": "digits", "image_size": 16, "channels": 1, "num_classes": 10, "test_accuracy": 0.1, "epochs": 0}
        fc.save_classifier(fc.SmallCNN(1, 10), info, fc.classifier_key("digits", 16))
    fast = ["train.steps=8", "train.log_every=1", "train.progress=false", "train.batch=16", "data.limit=128",
            "model.g.width=8", "model.d.width=8", "train.checkpoint_every=0", "train.sample_every=0"]
    on = ganforge.train("digits-dcgan", out=tmp_path / "on", overrides=fast)
    off = ganforge.train("digits-dcgan", out=tmp_path / "off", overrides=fast + ["train.monitor=false"])
    assert torch.equal(on.sample(4), off.sample(4))
    assert not (off.run_dir / "diagnosis.json").exists()
    d = json.loads((on.run_dir / "diagnosis.json").read_text())
    assert d["summary"]["checks"] == 2 and "diversity_ratio" in d["summary"] and "modes" not in d["summary"]
    assert ("classifier-digits-16px agrees with only" in d["summary"]["class_coverage"]) == cached


def test_diverging_run_stops_with_a_diagnosis(tmp_path):
    bad = ["train.steps=60", "train.log_every=5", "train.progress=false", "train.batch=32", "data.samples=1000",
           "model.g.width=16", "model.d.width=16", "optim.g.name=sgd", "optim.d.name=sgd", "optim.g.lr=1e3", "optim.d.lr=1e3"]
    with redirect_stderr(io.StringIO()), pytest.raises(Interrupted):
        ganforge.train("ring8", out=tmp_path / "nan", overrides=bad)
    d = summarize(tmp_path / "nan")
    assert [c["name"] for c in d["conditions"]] == ["divergence"] and d["summary"]["step"] < 60


# --------------------------------------------------------------------------- class coverage (labelled images)


def test_class_statistics_count_distinct_predicted_classes():
    g = torch.Generator().manual_seed(0)
    fake, real = torch.randint(0, 7, (300,), generator=g), torch.randint(0, 10, (300,), generator=g)
    c = class_statistics(fake, real)
    ref_fake, ref_real = len(set(fake.tolist())), len(set(real.tolist()))
    assert (c["classes"], c["classes_real"]) == (ref_fake, ref_real) == (7, 10)
    assert c["class_ratio"] == pytest.approx(ref_fake / ref_real)
    # with K = 10 classes, a class counts from n // 40 = 7 predictions on (stray errors do not)
    fake = torch.cat([torch.full((140,), 3), torch.full((140,), 7), torch.arange(20) % 5])  # 4 each of 0..4
    real = torch.randint(0, 10, (300,), generator=g)
    c = class_statistics(fake, real, num_classes=10)
    counts_fake, counts_real = np.bincount(fake.numpy(), minlength=10), np.bincount(real.numpy(), minlength=10)
    assert c["classes"] == int((counts_fake >= 7).sum()) == 2 and c["classes_real"] == int((counts_real >= 7).sum())
    assert class_statistics(fake, real, num_classes=1000)["classes"] == 6  # 0..4 and 7; 300 // 4000 = 0: any prediction counts


def _class_check(step, ratio):
    return {"step": step, "diversity_ratio": 0.9, "classes": round(10 * ratio), "classes_real": 10, "class_ratio": ratio}


def test_class_coverage_collapse_low_or_falling_but_not_healthy():
    healthy = [_class_check(s, r) for s, r in enumerate([0.8, 1.0, 0.9, 1.0, 0.9])]
    assert detect_mode_collapse(healthy, TH) is None
    low = [_class_check(s, r) for s, r in enumerate([0.5, 0.4, 0.3])]
    ev = detect_mode_collapse(low, TH)
    assert ev["sign"] == "low class coverage" and ev["classes"] == 3 and ev["window"] == [0.5, 0.4, 0.3]
    rising = [_class_check(s, r) for s, r in enumerate([0.1, 0.3, 0.5])]  # a run still learning its classes
    assert detect_mode_collapse(rising, TH) is None
    falling = [_class_check(s, r) for s, r in enumerate([1.0, 1.0, 0.7, 0.6, 0.6])]
    ev = detect_mode_collapse(falling, TH)
    assert ev["sign"] == "falling class coverage" and ev["peak"] == 1.0
    assert detect_mode_collapse(falling[:-1] + [_class_check(5, 0.8)], TH) is None  # one recovered check breaks the window


class _FakeTrainer:
    """What the monitor reads of a trainer: data, device, step and a sampler."""

    def __init__(self, data, images, cfg, run_dir):
        self.data, self.device, self.step, self.cfg, self.run_dir = data, torch.device("cpu"), 0, cfg, run_dir
        self.images = images

    def sample(self, z):
        return self.images[torch.arange(len(z)) % len(self.images)]


def _diagnose_generator(cfg, data, images, run_dir) -> dict:
    """diagnosis.json of a 100-step run whose generator draws ``images``, with balanced losses
    and a sample check every 10 steps after the image warm-up (25 % of the steps)."""
    m = Monitor(cfg, check_every=1, verbose=False)
    t = _FakeTrainer(data, images, cfg, run_dir)
    for step in range(30, 100, 10):
        t.step = step
        m.on_log(t, {"step": step, **BALANCED})
    return m.diagnosis(t)


def test_monitor_counts_classes_with_a_cached_classifier_and_flags_a_two_class_generator(tmp_path, monkeypatch):
    from ganforge.data import load_dataset
    from ganforge.metrics import features_classifier as fc

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    cfg = resolve("digits-dcgan", ["data.image_size=8", "train.steps=100", "train.log_every=1"])
    data = load_dataset(cfg.data, "train", seed=0)
    m = Monitor(cfg, check_every=1, verbose=False)
    m.check(_FakeTrainer(data, data.x, cfg, tmp_path))  # no classifier cached: class coverage off, and says how to turn it on
    assert m.class_note.startswith("off: no classifier for digits at 8px is cached") and "ganforge classifier train digits --image-size 8" in m.class_note
    test = load_dataset(cfg.data, "test", seed=0)
    model, acc = fc.train_classifier(data, test, epochs=10, seed=0, progress=False)
    fc.save_classifier(model, {"dataset": "digits", "image_size": 8, "channels": 1, "num_classes": 10, "test_accuracy": acc}, "classifier-digits-8px")

    real = Monitor(cfg, check_every=1, verbose=False)
    c = real.check(_FakeTrainer(data, data.x[torch.randperm(len(data.x), generator=torch.Generator().manual_seed(1))], cfg, tmp_path))
    assert c["classes"] == c["classes_real"] == 10 and c["class_ratio"] == 1.0 and real.class_note.startswith("on: classifier-digits-8px")
    two = data.x[(data.labels == 3) | (data.labels == 7)]  # a generator that only draws 3s and 7s
    d = _diagnose_generator(cfg, data, two, tmp_path)
    assert [c["name"] for c in d["conditions"]] == ["mode_collapse"]
    ev = d["conditions"][0]["evidence"]
    assert ev["sign"] == "low class coverage" and ev["classes"] <= 3 and ev["classes_real"] == 10
    assert d["summary"]["class_coverage"].startswith("on:") and "classes (a real sample: 10)" in format_diagnosis(d)


def test_a_classifier_that_misses_the_real_labels_is_not_used(tmp_path, monkeypatch):
    """An (untrained) 8px digits classifier offered for a 16px run agrees with ~10% of a real
    sample's labels: class coverage stays off and the note says how to get a 16px one."""
    from ganforge.metrics import features_classifier as fc

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    info = {"dataset": "digits", "image_size": 8, "channels": 1, "num_classes": 10, "test_accuracy": 0.1}
    fc.save_classifier(fc.SmallCNN(1, 10), info, "classifier-digits-8px")
    assert fc.classifier_sizes("digits") == [8]
    cfg = resolve("digits-dcgan", ["data.image_size=16", "train.steps=100", "train.log_every=1"])
    from ganforge.data import load_dataset

    data = load_dataset(cfg.data, "train", seed=0)
    m = Monitor(cfg, check_every=1, verbose=False)
    c = m.check(_FakeTrainer(data, data.x, cfg, tmp_path))
    assert "classes" not in c and m.class_note.startswith("off: classifier-digits-8px@16px agrees with only")
    assert "ganforge classifier train digits --image-size 16" in m.class_note


@NEEDS_FASHION
def test_monitor_counts_classes_with_a_classifier_of_another_resolution(tmp_path, monkeypatch):
    """fashion-dcgan runs at 32px; with no 32px classifier the monitor resizes its samples to the
    packaged 28px classifier's size, counts classes and flags a generator of two classes."""
    from ganforge.data import load_dataset

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    cfg = resolve("fashion-dcgan", ["train.steps=100", "train.log_every=1"])
    data = load_dataset(cfg.data, "train", seed=0)
    assert data.shape[-1] == 32
    real = Monitor(cfg, check_every=1, verbose=False)
    c = real.check(_FakeTrainer(data, data.x[torch.randperm(len(data.x), generator=torch.Generator().manual_seed(1))], cfg, tmp_path))
    assert real.class_note.startswith("on: classifier-fashion-mnist-28px@32px (bundled; ")
    assert c["classes"] == c["classes_real"] == 10
    two = data.x[(data.labels == 1) | (data.labels == 8)]  # trousers and bags only
    ev = _diagnose_generator(cfg, data, two, tmp_path)["conditions"][0]["evidence"]
    assert ev["sign"] == "low class coverage" and ev["classes"] <= 3 and ev["classes_real"] == 10
