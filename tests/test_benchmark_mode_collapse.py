"""End-to-end check of benchmarks/mode_collapse.py in its --quick (CI-sized) mode."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "mode_collapse.py"


def _load():
    spec = importlib.util.spec_from_file_location("mode_collapse_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _load()


def test_configs_resolve(bench):
    """Every named configuration is a valid config on both 2D datasets (no training)."""
    from ganforge.config import resolve
    from ganforge.remedies import check_remedies

    for ds in ("ring8", "grid25"):
        for c in bench.CONFIGS:
            recipe, ov = bench.overrides_for(ds, c, None, 1, 0)
            cfg = resolve(recipe, ov)
            check_remedies(cfg, cfg.method)
            assert cfg.data.name == ds and cfg.train.threads == 1 and not cfg.train.monitor


def test_all_is_the_matrix_without_its_ablations(bench):
    """--configs all runs every remedy once; wgangp-l10 (lambda 10) is on request and differs from wgangp only in lambda."""
    from ganforge.config import resolve

    assert "wgangp-l10" in bench.CONFIGS and "wgangp-l10" not in bench.ALL_2D_CONFIGS
    assert [c for c in bench.CONFIGS if c not in bench.ALL_2D_CONFIGS] == list(bench.ABLATIONS)
    toy, image = (resolve(*bench.overrides_for("ring8", c, None, 1, 0)) for c in ("wgangp", "wgangp-l10"))
    assert (toy.loss.name, toy.loss.penalty_weight, image.loss.penalty_weight) == ("wgan-gp", 0.1, 10.0)
    image.loss.penalty_weight = 0.1
    assert image == toy
    small, paper = (resolve(*bench.overrides_for("ring8", c, None, 1, 0)) for c in ("dragan", "dragan-l10"))
    assert (small.loss.penalty, small.loss.penalty_weight, paper.loss.penalty_weight) == ("dragan", 1.0, 10.0)
    paper.loss.penalty_weight = 1.0
    assert paper == small
    plain, sim = (resolve(*bench.overrides_for("ring8", c, None, 1, 0)) for c in ("madgan", "madgan-sim"))
    assert (plain.remedies.madgan_sim, sim.remedies.madgan_sim) == (0.0, 1.0)
    sim.remedies.madgan_sim = 0.0
    assert sim == plain


def test_set_overrides_run_defaults_but_not_seed(bench):
    """--set can turn the benchmark's run defaults back (monitor, checkpoints); seeds stay the benchmark's."""
    from ganforge.config import resolve

    extra = ["train.monitor=true", "train.checkpoint_every=500", "train.seed=99"]
    cfg = resolve(*bench.overrides_for("ring8", "baseline", None, 1, 3, extra))
    assert cfg.train.monitor and cfg.train.checkpoint_every == 500 and cfg.train.seed == 3


def test_mean_se(bench):
    m, se = bench.mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    assert bench.mean_se([5.0]) == (5.0, 0.0)


def test_quick_end_to_end(bench, tmp_path):
    t = time.perf_counter()
    assert bench.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - t < 300  # ~30 s of CPU; generous for a shared, loaded CI machine
    data = json.loads((tmp_path / "results.json").read_text())
    md = (tmp_path / "results.md").read_text()
    runs = data["runs"]
    assert len(runs) == 4  # 2 configs x 2 seeds
    assert {(r["config"], r["seed"]) for r in runs} == {("baseline", 0), ("baseline", 1), ("pack2", 0), ("pack2", 1)}
    for r in runs:
        assert "error" not in r, r.get("error")
        assert r["dataset"] == "ring8" and r["steps"] == 200 and r["samples"] == 2500
        assert 0 <= r["modes"] <= 8
        assert 0.0 <= r["hq"] <= 100.0
        assert 0.0 <= r["rkl"] <= math.log(8) + 1e-9
        assert r["train_s"] > 0
    assert [s["config"] for s in data["summary"]] == ["baseline", "pack2"]
    for s in data["summary"]:
        assert s["runs"] == 2 and 0 <= s["modes"]["mean"] <= 8 and s["modes"]["se"] >= 0
    assert "## ring8" in md and "| baseline † |" in md and "| pack2 † |" in md and "±" in md
    assert all(r["ensemble"] == 2 and r["ensemble_train_s"] > r["train_s"] for r in runs)  # both seeds at once
    assert not (tmp_path / "runs" / "ring8" / "baseline" / "seed0").exists()  # run dirs removed by default


def test_plan_groups_the_seeds_of_ensemble_configs(bench, tmp_path):
    """The seeds of a configuration the seed ensemble supports are one task; others, one task per run."""
    jobs = [{"dataset": "ring8", "config": c, "seed": s, "steps": 10, "threads": 1, "device": "cpu"}
            for c in ("baseline", "r1", "gdrop", "sn", "mbstd", "unrolled", "madgan") for s in (0, 1, 2)]
    tasks = bench.plan(jobs)
    assert [(t[0]["config"], len(t)) for t in tasks] == [
        ("baseline", 3), ("r1", 3), ("gdrop", 3), *[(c, 1) for c in ("sn", "mbstd", "unrolled", "madgan") for _ in range(3)]]
    assert [len(t) for t in bench.plan(jobs, "off")] == [1] * len(jobs)
    two = bench.plan(jobs, parallel=2)  # two workers: each ensemble's seeds split between them
    assert [[j["seed"] for j in t] for t in two[:6]] == [[0, 2], [1]] * 3 and len(two) == 6 + 12
    # --ensemble off: one run at a time, no ensemble marks
    args = ["--datasets", "ring8", "--configs", "baseline", "--seeds", "2", "--steps", "20", "--ensemble", "off",
            "--out", str(tmp_path), "--no-progress"]
    assert bench.main(args) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert len(runs) == 2 and not any("ensemble" in r or "error" in r for r in runs)
    assert "| baseline |" in (tmp_path / "results.md").read_text()


def test_merge_combines_results_files(bench, tmp_path):
    """--merge: the runs of several results.json files as one table; a repeated run keeps the last file's."""
    def run(config, seed, hq):
        return {"dataset": "ring8", "config": config, "seed": seed, "steps": 4000, "samples": 2500, "modes": 8, "hq": hq,
                "rkl": 0.01, "spread": 1.0, "target_met": hq >= 98, "train_s": 60.0, "train_cpu_s": 59.0}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"meta": {"command": "cmd-a", "started": "t1", "machine": "m", "threads": 1, "jobs": 1,
                                      "load_start": "0", "load_end": "0"},
                             "runs": [run("baseline", 0, 50.0), run("baseline", 1, 60.0), run("ttur", 0, 99.0)]}))
    b.write_text(json.dumps({"meta": {"command": "cmd-b", "started": "t2"},
                             "runs": [run("baseline", 1, 70.0), run("flip", 3, 98.5), run("flip", 4, 0.0) | {"spread": float("nan")}]}))
    out = tmp_path / "merged"
    assert bench.main(["--merge", str(a), str(b), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    got = {(r["config"], r["seed"]): r["hq"] for r in data["runs"]}
    assert got == {("baseline", 0): 50.0, ("baseline", 1): 70.0, ("ttur", 0): 99.0, ("flip", 3): 98.5, ("flip", 4): 0.0}
    rows = {s["config"]: s for s in data["summary"]}
    assert list(rows) == ["baseline", "flip", "ttur"]  # the benchmark's config order
    assert rows["baseline"]["hq"]["mean"] == pytest.approx(60.0) and rows["flip"]["target_met"] == 1
    assert rows["flip"]["spread"]["values"] == [1.0]  # a seed with no high-quality sample has no spread
    md = (out / "results.md").read_text()
    assert "`cmd-a`" in md and "`cmd-b`" in md and "| baseline | 4000 | 2 |" in md
    # --only: from the files after the first, just the named dataset/config pairs
    only = tmp_path / "only"
    assert bench.main(["--merge", str(a), str(b), "--only", "ring8/flip", "--out", str(only)]) == 0
    got = {(r["config"], r["seed"]): r["hq"] for r in json.loads((only / "results.json").read_text())["runs"]}
    assert got == {("baseline", 0): 50.0, ("baseline", 1): 60.0, ("ttur", 0): 99.0, ("flip", 3): 98.5, ("flip", 4): 0.0}
    for bad in ("ring8-flip", "ring9/flip", "ring8/nope"):
        with pytest.raises(SystemExit, match="expected DATASET/CONFIG"):
            bench.main(["--merge", str(a), str(b), "--only", bad, "--out", str(only)])
    with pytest.raises(SystemExit, match="use it with --merge"):
        bench.main(["--only", "ring8/flip", "--out", str(only)])
    with pytest.raises(SystemExit, match="not a file"):
        bench.main(["--merge", str(tmp_path / "missing.json"), "--out", str(out)])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a mode_collapse results.json"):
        bench.main(["--merge", str(tmp_path / "bad.json"), "--out", str(out)])


def test_side_by_side_table_reads_each_config_across_the_2d_datasets(bench):
    """One row per configuration with each 2D dataset's means; a missing cell is a dash, one dataset gives no table."""
    def run(ds, config, seed, modes, hq, rkl):
        return {"dataset": ds, "config": config, "seed": seed, "steps": 100, "modes": modes, "hq": hq, "rkl": rkl,
                "spread": 1.0, "target_met": False, "train_s": 1.0, "train_cpu_s": 1.0}

    recs = [run("ring8", "baseline", 0, 8, 50.0, 0.1), run("ring8", "baseline", 1, 7, 61.0, 0.3),
            run("grid25", "baseline", 0, 20, 30.0, 0.5), run("ring8", "ttur", 0, 6, 10.0, 0.9)]
    meta = {"command": "x", "machine": "m", "threads": 1, "jobs": 1, "load_start": "0", "load_end": "0"}
    md = bench.markdown(recs, ["ring8", "grid25"], ["baseline", "ttur"], meta)
    assert "| config | ring8 modes (of 8) | HQ % | reverse KL | seeds | grid25 modes (of 25) | HQ % | reverse KL | seeds |" in md
    assert "| baseline | 7.50 | 55.5 | 0.200 | 2 | 20.00 | 30.0 | 0.500 | 1 |" in md
    assert "| ttur | 6.00 | 10.0 | 0.900 | 1 | – | – | – | – |" in md
    assert md.index("## Side by side") < md.index("## ring8")
    assert "Side by side" not in bench.markdown(recs[:2], ["ring8"], ["baseline"], meta)


def test_merge_files_runs_under_the_config_their_overrides_match(bench, tmp_path):
    """A run recorded under a configuration that was redefined since (wgangp: lambda 10 -> 0.1) is
    filed under the configuration it matches (wgangp-l10); one that matches none is a one-line error."""
    def run(config, seed, overrides):
        return {"dataset": "ring8", "config": config, "seed": seed, "steps": 4000, "samples": 2500, "modes": 8, "hq": 50.0,
                "rkl": 0.1, "spread": 1.0, "target_met": False, "train_s": 60.0, "train_cpu_s": 59.0, "overrides": overrides}

    def wgan(weight, *extra):
        _, ov = bench.overrides_for("ring8", "wgangp", None, 1, 0)
        return [o if not o.startswith("loss.penalty_weight=") else f"loss.penalty_weight={weight}" for o in ov] + list(extra)

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({"meta": {"command": "old"}, "runs": [run("wgangp", 0, wgan(10)), run("wgangp", 1, wgan(10))]}))
    # an override given last (--set) wins, as in the config: this run is lambda 0.1
    new.write_text(json.dumps({"meta": {"command": "new"}, "runs": [run("wgangp", 0, wgan(10, "loss.penalty_weight=0.1"))]}))
    out = tmp_path / "merged"
    assert bench.main(["--merge", str(old), str(new), "--out", str(out)]) == 0
    got = sorted((r["config"], r["seed"]) for r in json.loads((out / "results.json").read_text())["runs"])
    assert got == [("wgangp", 0), ("wgangp-l10", 0), ("wgangp-l10", 1)]
    # round 30: dragan went from lambda 10 to 1; the lambda-1 runs were recorded as dragan-l1
    def dragan(config, weight):
        _, ov = bench.overrides_for("ring8", "dragan", None, 1, 0)
        return run(config, 0, [o if not o.startswith("loss.penalty_weight=") else f"loss.penalty_weight={weight}" for o in ov])

    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps({"meta": {}, "runs": [dragan("dragan", 10), dragan("dragan-l1", 1)]}))
    assert bench.main(["--merge", str(renamed), "--out", str(tmp_path / "m2")]) == 0
    got = sorted(r["config"] for r in json.loads((tmp_path / "m2" / "results.json").read_text())["runs"])
    assert got == ["dragan", "dragan-l10"]
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"meta": {}, "runs": [run("wgangp", 2, wgan(3))]}))
    with pytest.raises(SystemExit, match=r"wgangp/seed 2 was trained with loss.penalty_weight=3 \(now 0.1\)"):
        bench.main(["--merge", str(odd), "--out", str(out)])


def test_resume_continues_an_interrupted_run(bench, tmp_path, monkeypatch):
    """--resume continues a run from its last checkpoint (counting its earlier seconds); Ctrl-C keeps the run."""
    import ganforge

    job = {"dataset": "ring8", "config": "baseline", "seed": 1, "steps": 30, "threads": 1, "device": "cpu",
           "runs": str(tmp_path), "keep_runs": False, "set": ["train.checkpoint_every=10"], "resume": True}
    run_dir = tmp_path / "ring8" / "baseline" / "seed1"
    recipe, ov = bench.overrides_for("ring8", "baseline", 20, 1, 1, job["set"])
    ganforge.train(recipe, out=run_dir, overrides=ov)  # "interrupted" at step 20
    rec = bench.run_one(job)
    assert "error" not in rec, rec.get("error")
    assert rec["resumed_from"] == 20 and rec["steps"] == 30 and 0 <= rec["modes"] <= 8
    assert not run_dir.exists()  # finished: removed as usual
    fresh = bench.run_one(job | {"resume": False, "runs": str(tmp_path / "b")})
    assert "resumed_from" not in fresh and "error" not in fresh

    def interrupted(*a, **k):
        from ganforge.training.loop import Interrupted

        (run_dir / "checkpoints").mkdir(parents=True)
        raise Interrupted(7, run_dir)

    monkeypatch.setattr(ganforge, "train", interrupted)
    with pytest.raises(KeyboardInterrupt, match="ring8/baseline/seed 1 stopped at step 7, checkpoint in") as stop:
        bench.run_one(job | {"resume": False})
    assert run_dir.is_dir()  # kept for the next --resume

    def main(*a):
        raise stop.value

    monkeypatch.setattr(bench, "main", main)  # the command line: one line naming the run and --resume
    with pytest.raises(SystemExit, match=r"^interrupted: ring8/baseline/seed 1 stopped at step 7.*with --resume continues$"):
        bench.cli()
    recipe, ov = bench.overrides_for("stacked-digits", "recommended", None, 1, 0)
    assert f"train.checkpoint_every={bench.STACKED_CHECKPOINT_EVERY}" in ov


def test_an_interrupted_seed_ensemble_continues_with_resume(bench, tmp_path, sigterm_ensemble):
    """SIGTERM in the middle of a seed ensemble keeps every seed's checkpoint; --resume continues
    the ensemble from them to the numbers of an uninterrupted one."""
    jobs = [{"dataset": "ring8", "config": "baseline", "seed": s, "steps": 30, "threads": 1, "device": "cpu",
             "runs": str(tmp_path), "keep_runs": False, "resume": True} for s in (0, 1)]
    with sigterm_ensemble(at=20), pytest.raises(KeyboardInterrupt, match="ring8/baseline/seeds 0-1 stopped at step 20, checkpoints in"):
        bench.run_group(jobs)
    parent = tmp_path / "ring8" / "baseline"
    assert all((parent / f"seed{s}" / "checkpoints" / "last.pt").is_file() for s in (0, 1))
    recs = bench.run_group(jobs)
    assert [r.get("resumed_from") for r in recs] == [20, 20] and all("error" not in r for r in recs)
    assert not (parent / "seed0").exists()  # finished: removed as usual
    ref = bench.run_group([j | {"resume": False, "runs": str(tmp_path / "ref")} for j in jobs])
    assert "resumed_from" not in ref[0]
    assert [(r["modes"], r["hq"], r["rkl"]) for r in recs] == [(r["modes"], r["hq"], r["rkl"]) for r in ref]
    for config in ("baseline", "unrolled"):  # a toy run alone checkpoints too (an unrolled one takes ~17 min)
        _, ov = bench.overrides_for("ring8", config, None, 1, 0)
        assert ov.count(f"train.checkpoint_every={bench.TOY_CHECKPOINT_EVERY}") == 1


@pytest.mark.parametrize("calibrate", [0, 20])
def test_refined_numbers_are_reported_apart_from_the_generators(bench, tmp_path, calibrate):
    """--refine drs adds D-guided numbers under `refined`; the main numbers stay G's own
    (recomputed here from the kept run's generator) and the markdown labels the refined table
    (and says when D was calibrated first, --calibrate)."""
    import ganforge
    from ganforge.data import load_dataset
    from ganforge.metrics import count_modes_2d

    args = ["--datasets", "ring8", "--configs", "recommended", "--seeds", "1", "--steps", "40", "--refine", "drs",
            "--keep-runs", "--set", "model.g.width=32", "--set", "model.d.width=32", "--out", str(tmp_path), "--no-progress",
            "--calibrate", str(calibrate)]
    assert bench.main(args) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    (r,) = data["runs"]
    assert "error" not in r, r.get("error")
    ref = r["refined"]
    assert ref["method"] == "drs" and 0 < ref["accept"] <= 1 and ref["draws"] >= 2500
    assert 0 <= ref["modes"] <= 8 and 0 <= ref["hq"] <= 100 and 0 <= ref["rkl"] <= math.log(8) + 1e-9
    run = ganforge.load(tmp_path / "runs" / "ring8" / "recommended" / "seed0")
    ds = load_dataset(run.config.data, "train", seed=0)
    own = count_modes_2d(run.sample(2500, seed=10_000), ds.modes, ds.mode_std)
    assert r["modes"] == own["modes"] and r["hq"] == pytest.approx(100 * own["hq"]) and r["rkl"] == pytest.approx(own["rkl"])
    (s,) = data["summary"]
    assert s["refined"]["hq"]["values"] == [ref["hq"]] and s["hq"]["min"] == r["hq"]
    md = (tmp_path / "results.md").read_text()
    assert "not the generators' own samples" in md and "| recommended | 1 |" in md
    assert ref.get("calibrate_steps", 0) == calibrate and s["refined"]["calibrate"] == calibrate
    assert ("calibrated on its final G for 20 BCE steps" in md) == bool(calibrate)


def test_stacked_ceiling_and_target(bench):
    """The real-data ceiling is counted like generated samples; the target is relative to it."""
    from ganforge.config import resolve

    cfg = resolve(*bench.overrides_for("stacked-digits", "recommended", 1, 1, 0))
    ceil = bench.real_ceiling(cfg, 3000)
    assert 900 <= ceil["modes"] <= 1000 and 0.0 < ceil["kl"] < 1.0 and ceil["samples"] == 3000
    frac, kf = bench.STACKED_TARGET
    ok = {"modes": math.ceil(frac * ceil["modes"]), "kl": kf * ceil["kl"]}
    assert bench.stacked_target_met(ok, ceil)
    assert not bench.stacked_target_met({**ok, "modes": ok["modes"] - 1}, ceil)
    assert not bench.stacked_target_met({**ok, "kl": ok["kl"] * 1.01}, ceil)
    rec = {"dataset": "stacked-digits", "config": "recommended", "seed": 0, "steps": 10, "modes": 990, "kl": 0.05,
           "kl_channels": [0.01, 0.02, 0.005], "train_s": 1.0, "train_cpu_s": 1.0}
    meta = {"command": "x", "machine": "m", "threads": 1, "jobs": 1, "load_start": "0", "load_end": "0",
            "ceiling": {"stacked-digits": ceil}}
    md = bench.markdown([rec], ["stacked-digits"], ["recommended"], meta)
    assert f"| {ceil['modes']} | {ceil['kl']:.3f} |" in md and "real data (3,000 samples)" in md
    assert "| 0.050 ± 0.000 | 0.035 ± 0.000 |" in md  # KL, then the channel KLs summed


def test_stacked_configs_and_sweep_variants_resolve(bench):
    """The stacked datasets' configurations and every stacked_sweep variant are valid configs."""
    from ganforge.config import resolve
    from ganforge.remedies import check_remedies

    for ds in bench.STACKED:
        for c in ("baseline", "recommended"):
            cfg = resolve(*bench.overrides_for(ds, c, None, 1, 0, device="cuda"))
            assert cfg.data.name == ds and cfg.train.device == "cuda"
    spec = importlib.util.spec_from_file_location("stacked_sweep", ROOT / "benchmarks" / "stacked_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    for name, (ds, sets) in sweep.VARIANTS.items():
        cfg = resolve(bench.RECOMMENDED[ds], sets)
        check_remedies(cfg, cfg.method)
        assert cfg.data.name == ds, name
    # the previous recipe, spelled as overrides, is the hinge/SN recipe's predecessor: NS, BN D, noise
    old = resolve("stacked-digits", sweep.VARIANTS["d-previous"][1])
    assert (old.loss.name, old.model.d.norm, old.model.d.spectral_norm, old.remedies.instance_noise) == ("ns", "batch", False, 0.1)
    # the winner of a dataset: lowest KL among runs with >= 99% of the real data's modes
    recs = [{"variant": "a", "dataset": "stacked-digits", "modes": 985, "kl": 0.01},
            {"variant": "b", "dataset": "stacked-digits", "modes": 995, "kl": 0.2},
            {"variant": "c", "dataset": "stacked-digits", "modes": 1000, "kl": 0.1},
            {"variant": "d", "dataset": "stacked-digits", "error": "boom"}]
    assert sweep.best(recs, {"stacked-digits": {"modes": 1000, "kl": 0.04}}, "stacked-digits") == "c"
    assert sweep.best(recs, {}, "stacked-fashion") is None


def test_resume_keeps_the_counted_ceiling(bench, tmp_path, monkeypatch):
    """--resume takes the real-data ceiling from the earlier results.json (it costs minutes on
    Fashion) when it was counted on as many samples; other sample counts are counted again."""
    ceil = {"modes": 977, "kl": 0.123, "samples": 500, "classifier": {"source": "test"}}
    (tmp_path / "results.json").write_text(json.dumps({"meta": {"ceiling": {"stacked-digits": ceil}}, "runs": []}))
    def argv(samples):
        return ["--datasets", "stacked-digits", "--configs", "recommended", "--seeds", "1", "--steps", "2",
                "--stacked-samples", str(samples), "--resume", "--no-progress", "--out", str(tmp_path)]

    def counted(cfg, n):
        raise AssertionError("the ceiling was counted again")

    monkeypatch.setattr(bench, "real_ceiling", counted)
    assert bench.main(argv(500)) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["meta"]["ceiling"]["stacked-digits"] == ceil and len(payload["runs"]) == 1
    assert "error" not in payload["runs"][0]
    monkeypatch.setattr(bench, "real_ceiling", lambda cfg, n: {**ceil, "samples": n, "kl": 0.5})
    (tmp_path / "results.json").write_text(json.dumps({"meta": {"ceiling": {"stacked-digits": ceil}}, "runs": []}))
    assert bench.main(argv(400)) == 0
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["ceiling"]["stacked-digits"]["samples"] == 400
