"""Seeds statistics (bootstrap vs a direct implementation), --param parsing, pruning, and a
tiny grid sweep from the CLI end to end (table, best.yaml, report)."""

import csv
import json
import math
import statistics

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.config import resolve
from ganforge.errors import ConfigError
from ganforge.experiments import aggregate, bootstrap_ci, get_objective, run_seeds
from ganforge.experiments.sweep import PruningCallback, Sweep, grid_points, parse_param

torch.set_num_threads(1)

# tiny grid25: small MLPs, few steps; the monitor checks every 5 rows (steps 10, 20)
TINY = ["train.steps=20", "train.log_every=2", "train.sample_every=10", "train.checkpoint_every=0",
        "train.batch=32", "data.samples=1000", "model.g.width=16", "model.d.width=16", "train.threads=1"]


# --------------------------------------------------------------------------- statistics


def _direct_bootstrap(values, n_boot, level, seed):
    """Loops and a hand-written quantile (linear interpolation between order statistics)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = []
    for _ in range(n_boot):
        s = 0.0
        for _ in range(n):
            s += values[int(rng.integers(0, n))]
        means.append(s / n)
    means.sort()

    def q(p):
        h = (len(means) - 1) * p
        lo = math.floor(h)
        return means[lo] + (h - lo) * (means[min(lo + 1, len(means) - 1)] - means[lo])

    return q((1 - level) / 2), q((1 + level) / 2)


@pytest.mark.parametrize("values", [[3.0, 1.0, 4.0, 1.0, 5.0], [0.25, 0.5], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0]])
def test_bootstrap_interval_matches_a_direct_implementation(values):
    lo, hi = bootstrap_ci(values, level=0.95, n_boot=2000, seed=0)
    dlo, dhi = _direct_bootstrap(values, 2000, 0.95, 0)
    assert lo == pytest.approx(dlo, rel=1e-12, abs=1e-12) and hi == pytest.approx(dhi, rel=1e-12, abs=1e-12)
    assert min(values) <= lo <= np.mean(values) <= hi <= max(values)


def test_bootstrap_is_reproducible_and_matches_known_cases():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    assert bootstrap_ci(x) == bootstrap_ci(x)  # fixed seed
    lo, hi = bootstrap_ci(x)
    se = x.std(ddof=0) / math.sqrt(len(x))  # bootstrap SE of the mean
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    # two values {0, 1}: resampled means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([2.5]) == (2.5, 2.5)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_aggregate_reports_mean_sample_std_and_interval():
    v = [1.0, 2.0, 4.0, float("nan")]
    a = aggregate(v)
    assert a["n"] == 3 and a["dropped"] == 1
    assert a["mean"] == pytest.approx(7 / 3)
    assert a["std"] == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    assert tuple(a["ci95"]) == bootstrap_ci([1.0, 2.0, 4.0])
    assert aggregate([5.0])["std"] == 0.0


# --------------------------------------------------------------------------- parameters


def test_param_parsing_checks_keys_and_values():
    base = resolve("grid25")
    p = parse_param("optim.g.lr=1e-4,2e-4,4e-4", base)
    assert p.values == [1e-4, 2e-4, 4e-4]
    assert parse_param("train.batch=32,64", base).values == [32, 64]
    assert parse_param("loss.name=ns,hinge", base).values == ["ns", "hinge"]
    r = parse_param("optim.d.lr=1e-5:1e-3:log", base)
    assert (r.low, r.high, r.log, r.values) == (1e-5, 1e-3, True, None)
    with pytest.raises(ConfigError, match="unknown config key"):
        parse_param("optim.g.nope=1,2", base)
    with pytest.raises(ConfigError, match="integer"):
        parse_param("train.batch=32,big", base)
    with pytest.raises(ConfigError, match="look like"):
        parse_param("train.batch", base)
    with pytest.raises(ConfigError, match="grid sampler needs listed values"):
        Sweep("grid25", ["optim.g.lr=1e-4:1e-3"], sampler="grid")
    space = [parse_param("optim.g.lr=1e-4,2e-4,4e-4", base), parse_param("train.batch=32,64", base)]
    assert len(grid_points(space)) == 6


def test_objectives_know_their_direction_and_read_rows():
    assert get_objective("fid").minimize and not get_objective("modes").minimize
    assert get_objective("modes").row_value({"step": 5, "monitor/modes": 7}) == 7.0
    assert get_objective("fid").row_value({"eval/fid": 12.5}) == 12.5
    assert get_objective("fid").row_value({"monitor/modes": 7}) is None
    with pytest.raises(ConfigError, match="valid objectives"):
        get_objective("accuracy")


def test_pruning_callback_reports_and_stops():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    t = FakeTrial()
    cb = PruningCallback(t, get_objective("modes"))
    cb.on_log(None, {"step": 10, "loss/d": 1.0})  # no objective in the row: nothing reported
    cb.on_log(None, {"step": 20, "monitor/modes": 3})
    assert not cb.stop_requested
    cb.on_log(None, {"step": 30, "monitor/modes": 2})
    assert t.reports == [(20, 3.0), (30, 2.0)] and cb.stop_requested and cb.pruned_at == 30


# --------------------------------------------------------------------------- end to end


def test_grid_sweep_from_the_cli_writes_table_best_recipe_and_report(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "grid25", "--param", "optim.g.lr=1e-4,1e-3", "--seeds", "2", "--out", str(out),
            "--eval-n", "500", *sum((["--set", s] for s in TINY), [])]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| rank | trial | optim.g.lr | modes mean |" in printed
    for f in ("summary.md", "summary.csv", "best.yaml", "report.html", "study.db", "sweep.json"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 2 and {float(r["optim.g.lr"]) for r in rows} == {1e-4, 1e-3}
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True)  # modes: best (highest) first
    for r in rows:
        runs = r["runs"].split()
        assert len(runs) == 2
        vals = [json.loads(open(f"{d}/eval.json").read())["metrics"]["modes"] for d in runs]
        assert float(r["mean"]) == pytest.approx(np.mean(vals))
        assert float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"])
    best = resolve(str(out / "best.yaml"))  # a runnable recipe
    ok = [r for r in rows if all(d.strip() == "healthy" for d in r["diagnosis"].split(";"))]
    assert best.optim.g.lr == float((ok or rows)[0]["optim.g.lr"]) and best.train.steps == 20 and best.name == "grid25-best"
    html = (out / "report.html").read_text()
    assert "trial-000/seed-0" in html and "trial-001/seed-1" in html and "Sweep" in html
    # the grid is exhausted: running the same command again adds no trial
    assert main([*argv, "--no-report"]) == 0
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == 2
    # a different request in the same directory is refused
    assert main([*argv[:3], "optim.g.lr=1e-4,5e-4", *argv[4:]]) == 2


def test_a_pruned_trial_stops_its_run_and_skips_its_other_seeds(tmp_path):
    import optuna

    sw = Sweep("grid25", ["optim.g.lr=1e-4"], seeds=2, out=tmp_path / "p", overrides=TINY, eval_n=300, quiet=True)
    sw._check_dir()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=100.0))
    study.optimize(sw._trial, n_trials=1)
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["pruned_at"] == 10  # the first monitor check
    assert (tmp_path / "p" / "trial-000" / "seed-0" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "p" / "trial-000" / "seed-1").exists()
    (row,) = sw.table(study)
    assert row["mean"] is None and row["state"].startswith("pruned at step 10")


def test_tpe_sweep_with_a_range(tmp_path):
    sw = Sweep("grid25", ["optim.d.lr=1e-5:1e-3:log"], sampler="tpe", trials=2, out=tmp_path / "tpe",
               overrides=TINY, objective="hq", eval_n=300, quiet=True, prune=False)
    study = sw.run()
    assert len(study.trials) == 2 and all(1e-5 <= t.params["optim.d.lr"] <= 1e-3 for t in study.trials)
    out = sw.finish(study, report=False)
    assert out["best"] is not None and (tmp_path / "tpe" / "best.yaml").is_file()


def test_run_seeds_writes_seeds_json(tmp_path):
    res = run_seeds("grid25", 2, out=tmp_path / "s", overrides=TINY, quiet=True)
    data = json.loads((tmp_path / "s" / "seeds.json").read_text())
    assert data["objective"] == "modes" and [r["seed"] for r in data["runs"]] == [0, 1]
    for key in ("modes", "hq", "rkl"):
        vals = [r["metrics"][key] for r in data["runs"]]
        assert data["summary"][key]["mean"] == pytest.approx(np.mean(vals))
        assert data["summary"][key]["ci95"] == pytest.approx(list(bootstrap_ci(vals)))
    assert res["summary"]["modes"]["n"] == 2


def test_best_recipe_is_the_best_healthy_configuration():
    from ganforge.experiments.sweep import pick_best

    def row(t, mean, diag):
        return {"trial": t, "mean": mean, "diagnosis": diag}

    rows = [row(1, 22.3, "low_quality; low_quality; healthy"), row(2, 22.0, "healthy; healthy; healthy"),
            row(0, 20.0, "healthy; healthy; healthy"), row(3, None, "")]  # best first
    assert pick_best(rows)["trial"] == 2  # a higher mode count from off-manifold samples is not a win
    assert pick_best(rows[:1])["trial"] == 1  # nothing healthy: the best-ranked finished trial
    assert pick_best([row(3, None, "")]) is None and pick_best([]) is None
