"""``ganforge sweep``: search a recipe's settings with Optuna, N seeds per configuration.

One trial = one configuration = ``seeds`` runs under ``SWEEP/trial-NNN/seed-i``; the
trial's value is the mean of the objective over its seeds (std and 95% bootstrap interval
are kept as trial attributes). Samplers: ``grid`` (every combination of the listed values)
and ``tpe``. Median pruning (on by default) watches the first seed's intermediate values:
evaluation rows of the log when the loop writes them, else the monitor's coverage
(``monitor/modes``, ``monitor/hq``); a pruned run stops at once and keeps its checkpoint.

The study lives in ``SWEEP/study.db`` (SQLite) unless ``storage`` names any Optuna storage
URL: several machines running the same command with the same ``--storage`` and study name
work one study. Outputs in ``SWEEP/``: ``sweep.json`` (the request), ``summary.md`` and
``summary.csv`` (one row per trial, best first), ``best.yaml`` (the best configuration as a
recipe: ``ganforge train SWEEP/best.yaml``) and ``report.html``.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config import Experiment, apply_override, resolve, validate
from ..errors import ConfigError
from ..io import write_json, write_text
from .objectives import Objective, default_objective, get_objective, measure
from .seeds import aggregate, data_kind

SAMPLERS = ("grid", "tpe")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("ganforge sweep needs Optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class Param:
    """One searched key: a list of ``values`` or a numeric range ``low:high[:log]`` (TPE only)."""

    key: str
    values: list | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    def suggest(self, trial) -> Any:
        if self.values is not None:
            return trial.suggest_categorical(self.key, self.values)
        if isinstance(self.low, int) and isinstance(self.high, int) and not self.log:
            return trial.suggest_int(self.key, self.low, self.high)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)

    def spec(self) -> str:
        if self.values is not None:
            return ",".join(json.dumps(v) if isinstance(v, str) else str(v) for v in self.values)
        return f"{self.low}:{self.high}" + (":log" if self.log else "")


def _scalar(raw: str) -> Any:
    v = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(v, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            f = float(v)
            v = int(f) if f.is_integer() and "e" not in v.lower() and "." not in v else f
        except ValueError:
            pass
    if not (v is None or isinstance(v, (bool, int, float, str))):
        raise ConfigError(f"--param values must be numbers, strings, true/false or null, got {raw!r}")
    return v


def parse_param(spec: str, base: Experiment) -> Param:
    """``key=v1,v2,...`` or ``key=low:high[:log]`` → :class:`Param`, every value checked
    against ``base`` (unknown key or bad value: one-line ConfigError)."""
    if "=" not in spec:
        raise ConfigError(f"--param {spec!r} must look like section.key=v1,v2 (or low:high[:log]), e.g. optim.g.lr=1e-4,2e-4")
    key, raw = (s.strip() for s in spec.split("=", 1))
    parts = raw.split(":")
    if "," not in raw and len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "log"):
        lo, hi = _scalar(parts[0]), _scalar(parts[1])
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
            raise ConfigError(f"--param {key}: range {raw!r} needs numbers low < high, e.g. 1e-5:1e-3:log")
        p = Param(key, low=lo, high=hi, log=len(parts) == 3)
        checks = [lo, hi]
    else:
        values = [_scalar(v) for v in raw.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--param {key} lists no values; e.g. --param {key}=a,b")
        p = Param(key, values=list(dict.fromkeys(values)))
        checks = p.values
    for v in checks:
        apply_override(copy.deepcopy(base), f"{key}={json.dumps(v)}")
    return p


def configure(base: Experiment, params: dict[str, Any], name: str | None = None) -> Experiment:
    """A copy of ``base`` with ``params`` ({dotted key: value}) applied and checked."""
    cfg = copy.deepcopy(base)
    for k, v in params.items():
        apply_override(cfg, f"{k}={json.dumps(v)}")
    if name:
        cfg.name = name
    validate(cfg)
    return cfg


class PruningCallback:
    """Training callback: reports the objective's value in each log row to the trial and
    stops the run (``stop_requested``) when Optuna's pruner says so."""

    def __init__(self, trial, objective: Objective) -> None:
        self.trial, self.objective = trial, objective
        self.stop_requested = False
        self.pruned_at: int | None = None

    def on_log(self, trainer, row: dict) -> None:
        v = self.objective.row_value(row)
        if v is None or self.stop_requested:
            return None
        step = int(row["step"] if "step" in row else trainer.step)
        self.trial.report(v, step)
        if self.trial.should_prune():
            self.stop_requested, self.pruned_at = True, step
        return None


@dataclass
class Sweep:
    """A sweep request; :meth:`run` works the study, :meth:`finish` writes the outputs."""

    recipe: str
    params: list[str]
    objective: str | None = None
    seeds: int = 1
    trials: int | None = None
    sampler: str = "grid"
    storage: str | None = None
    out: Path | None = None
    overrides: list[str] = field(default_factory=list)
    prune: bool = True
    study_name: str | None = None
    eval_n: int = 2500
    quiet: bool = False
    jobs: int = 1  # worker processes on this machine (each trains with train.threads=1 unless --set)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}")
        self.base = resolve(self.recipe, list(self.overrides))  # what best.yaml starts from
        quiet_runs = ["train.progress=false"] + (["train.threads=1"] if self.jobs > 1 else [])
        self.train_base = resolve(self.recipe, [*quiet_runs, *self.overrides])
        if not self.params:  # no search: one configuration, `seeds` runs of it
            self.sampler = "grid"
        self.space = [parse_param(p, self.base) for p in self.params]
        keys = [p.key for p in self.space]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--param names a key twice: {', '.join(k for k in keys if keys.count(k) > 1)}")
        if self.sampler == "grid" and any(p.values is None for p in self.space):
            raise ConfigError("the grid sampler needs listed values (key=a,b,c); use --sampler tpe for ranges")
        self.obj = get_objective(self.objective) if self.objective else default_objective(data_kind(self.base))
        self.dir = Path(self.out) if self.out is not None else Path("runs") / f"{self.base.name}-sweep"
        self.study_name = self.study_name or self.dir.name
        self.storage_url = self.storage or f"sqlite:///{(self.dir / 'study.db').resolve()}"

    # ------------------------------------------------------------------ request
    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.space if p.values is not None)

    def request(self) -> dict:
        return {"recipe": self.recipe, "overrides": self.overrides, "params": {p.key: p.spec() for p in self.space},
                "objective": self.obj.name, "key": self.obj.key, "direction": self.obj.direction, "seeds": self.seeds,
                "sampler": self.sampler, "study": self.study_name,
                "storage": self.storage or "study.db", "prune": self.prune}

    def _check_dir(self) -> None:
        p = self.dir / "sweep.json"
        if p.is_file():
            old = json.loads(p.read_text(encoding="utf-8"))
            for k in ("recipe", "overrides", "params", "objective", "seeds"):
                if old.get(k) != self.request()[k]:
                    raise ConfigError(f"{self.dir} holds a sweep with other {k} ({old.get(k)!r}); use another --out")
        elif self.dir.is_dir() and any(self.dir.iterdir()):
            raise ConfigError(f"{self.dir} is not empty and holds no sweep; pass --out NEWDIR")
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(p, self.request())

    def study(self):
        optuna = _optuna()
        if not self.space:
            sampler = optuna.samplers.RandomSampler(seed=0)  # nothing to sample
        elif self.sampler == "grid":
            sampler = optuna.samplers.GridSampler({p.key: p.values for p in self.space}, seed=0)
        else:
            sampler = optuna.samplers.TPESampler(seed=None if self.storage else 0)
        steps = self.train_base.train.steps
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=steps // 4)
                  if self.prune else optuna.pruners.NopPruner())
        storage = self.storage_url
        if storage.startswith("sqlite:"):  # several local workers: wait for the file lock, do not fail
            storage = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 120}})
        return optuna.create_study(study_name=self.study_name, storage=storage, sampler=sampler,
                                   pruner=pruner, direction=self.obj.direction, load_if_exists=True)

    # ------------------------------------------------------------------ trials
    def _trial(self, trial) -> float:
        optuna = _optuna()
        from ..diagnostics import summarize
        from ..training import Interrupted
        import ganforge

        params = {p.key: p.suggest(trial) for p in self.space}
        if self.sampler == "grid":  # concurrent workers can be handed a configuration already taken
            live = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            twin = next((t.number for t in trial.study.get_trials(deepcopy=False, states=live)
                         if t.number < trial.number and t.params == params and "duplicate_of" not in t.user_attrs), None)
            if twin is not None:
                trial.set_user_attr("duplicate_of", twin)
                raise optuna.TrialPruned(f"configuration taken by trial {twin}")
        cfg = configure(self.train_base, params, name=f"{self.base.name}-t{trial.number:03d}")
        values, runs, diags, t0 = [], [], [], time.perf_counter()
        for i in range(self.seeds):
            c = copy.deepcopy(cfg)
            c.train.seed = cfg.train.seed + i
            d = self.dir / f"trial-{trial.number:03d}" / f"seed-{i}"
            cb = PruningCallback(trial, self.obj) if (self.prune and i == 0) else None
            try:
                ganforge.train(c, out=d, callbacks=[cb] if cb else [])
            except Interrupted:
                if cb is not None and cb.pruned_at is not None:
                    trial.set_user_attr("pruned_at", cb.pruned_at)
                    trial.set_user_attr("runs", [str(d)])
                    raise optuna.TrialPruned(f"pruned at step {cb.pruned_at}") from None
                if not (d / "diagnosis.json").is_file() or summarize(d).get("healthy", True):
                    raise  # Ctrl-C: stop the sweep
                # the monitor stopped a diverged run: measure what it left (the last checkpoint)
            try:
                values.append(measure(d, self.obj, n=self.eval_n))
            except Exception as e:  # noqa: BLE001 -- e.g. NaN samples of a diverged run
                if not self.quiet:
                    print(f"  {d}: cannot measure {self.obj.name} ({str(e)[:80]})")
                values.append(math.nan)
            diag = summarize(d)
            diags.append("healthy" if diag.get("healthy") else ",".join(c["name"] for c in diag.get("conditions", [])))
            runs.append(str(d))
        agg = aggregate(values)
        for k, v in (("runs", runs), ("values", values), ("std", agg["std"]), ("ci95", agg["ci95"]),
                     ("diagnosis", diags), ("seconds", round(time.perf_counter() - t0, 1))):
            trial.set_user_attr(k, [x if not (isinstance(x, float) and math.isnan(x)) else None for x in v]
                                if isinstance(v, list) else v)
        return agg["mean"] if agg["n"] else math.nan

    def _announce(self, study, trial) -> None:
        if self.quiet or "duplicate_of" in trial.user_attrs:
            return
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        if trial.state.name == "COMPLETE" and trial.value is not None:
            a = trial.user_attrs
            what = f"{self.obj.name} {trial.value:.4g} ± {a.get('std', 0) or 0:.3g} ({', '.join(a.get('diagnosis', []))})"
        else:
            what = trial.state.name.lower() + (f" at step {trial.user_attrs['pruned_at']}" if "pruned_at" in trial.user_attrs else "")
        print(f"trial {trial.number} [{params}]: {what} in {trial.user_attrs.get('seconds', '?')} s", flush=True)

    def kwargs(self) -> dict:
        names = ("recipe", "params", "objective", "seeds", "trials", "sampler", "storage", "out", "overrides", "prune",
                 "study_name", "eval_n", "quiet")
        return {k: getattr(self, k) for k in names} | {"jobs": self.jobs}

    def work(self, n: int | None) -> None:
        """Run up to ``n`` trials in this process (grid: until the grid is taken)."""
        optuna = _optuna()
        study = self.study()
        if self.sampler == "grid":
            taken = sum(t.state != optuna.trial.TrialState.FAIL and "duplicate_of" not in t.user_attrs for t in study.trials)
            n = min(n or self.grid_size, max(0, self.grid_size - taken))
        if n:
            study.optimize(self._trial, n_trials=n, callbacks=[self._announce], catch=())

    def run(self):
        """Work the study with ``jobs`` processes until ``trials`` trials are done (grid: until
        every combination is taken); returns the study."""
        self._check_dir()
        self.study()  # create it once before the workers race to
        n = self.trials if self.trials is not None or self.sampler == "grid" else 20
        if self.jobs == 1:
            self.work(n)
            return self.study()
        import multiprocessing

        share = None if n is None else [n // self.jobs + (i < n % self.jobs) for i in range(self.jobs)]
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(self.kwargs(), share[i] if share else None), daemon=False)
                 for i in range(1, self.jobs)]
        for p in procs:
            p.start()
        try:
            self.work(share[0] if share else None)
        finally:
            for p in procs:
                p.join()
        if any(p.exitcode for p in procs):
            raise ConfigError(f"{sum(bool(p.exitcode) for p in procs)} sweep worker(s) failed; see the messages above")
        return self.study()

    # ------------------------------------------------------------------ outputs
    def table(self, study) -> list[dict]:
        """One row per trial, finished ones best first: trial, params, mean, std, ci95, seeds,
        state, diagnosis, runs."""
        rows = []
        for t in study.trials:
            a = t.user_attrs
            if "duplicate_of" in a:
                continue
            done = t.state.name == "COMPLETE"  # a pruned trial's value is its last intermediate value
            last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values and not done else None
            rows.append({"trial": t.number, **{p.key: t.params.get(p.key) for p in self.space},
                         "mean": t.value if done else None, "std": a.get("std"), "ci95": a.get("ci95"),
                         "seeds": len(a.get("values", [])),
                         "state": t.state.name.lower() + (f" at step {a['pruned_at']}" if "pruned_at" in a else "")
                                  + (f" ({self.obj.name} {last:.4g})" if last is not None else ""),
                         "diagnosis": "; ".join(a.get("diagnosis", [])), "runs": a.get("runs", [])})
        sign = 1 if self.obj.minimize else -1
        return sorted(rows, key=lambda r: (r["mean"] is None or not math.isfinite(r["mean"]),
                                           sign * r["mean"] if r["mean"] is not None and math.isfinite(r["mean"]) else 0, r["trial"]))

    def finish(self, study, report: bool = True) -> dict:
        """Write summary.md/.csv, best.yaml and report.html; return {"rows", "best", "markdown"}."""
        rows = self.table(study)
        md = format_markdown(rows, [p.key for p in self.space], self.obj)
        write_text(self.dir / "summary.md", f"# sweep {self.study_name}: {self.obj.name} ({self.obj.direction})\n\n{md}\n")
        write_text(self.dir / "summary.csv", format_csv(rows, [p.key for p in self.space]))
        best = pick_best(rows)
        out = {"rows": rows, "best": best, "markdown": md}
        if best is not None:
            cfg = configure(self.base, {p.key: best[p.key] for p in self.space}, name=f"{self.base.name}-best")
            cfg.description = (f"best of sweep {self.study_name}: {self.obj.name} {best['mean']:.4g} +/- {best['std'] or 0:.3g} "
                               f"over {best['seeds']} seed(s), trial {best['trial']}"
                               + ("" if healthy(best) else "; no configuration was healthy on every seed"))
            head = "".join(f"# {p.key}: {best[p.key]}\n" for p in self.space)
            write_text(self.dir / "best.yaml", f"# {cfg.description}\n{head}{cfg.to_yaml()}")
            out["best_yaml"] = self.dir / "best.yaml"
        if report:
            from ..report.html import write_report

            out["report"] = write_report([self.dir], self.dir / "report.html")
        return out


def _num(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def format_markdown(rows: list[dict], keys: Sequence[str], obj: Objective) -> str:
    head = ["rank", "trial", *keys, f"{obj.name} mean", "std", "95% CI", "seeds", "state", "diagnosis"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for i, r in enumerate(rows, 1):
        ci = f"[{_num(r['ci95'][0])}, {_num(r['ci95'][1])}]" if r["ci95"] else "–"
        cells = [str(i), str(r["trial"]), *(_num(r[k]) for k in keys), _num(r["mean"]), _num(r["std"], 3), ci,
                 str(r["seeds"]), r["state"], r["diagnosis"] or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_csv(rows: list[dict], keys: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", *keys, "mean", "std", "ci95_low", "ci95_high", "seeds", "state", "diagnosis", "runs"])
    for r in rows:
        ci = r["ci95"] or [None, None]
        w.writerow([r["trial"], *(r[k] for k in keys), r["mean"], r["std"], ci[0], ci[1], r["seeds"], r["state"],
                    r["diagnosis"], " ".join(r["runs"])])
    return buf.getvalue()


def healthy(row: dict) -> bool:
    """True when the monitor judged every seed of a trial healthy."""
    return bool(row["diagnosis"]) and all(d.strip() == "healthy" for d in row["diagnosis"].split(";"))


def pick_best(rows: list[dict]) -> dict | None:
    """The configuration best.yaml holds: the best-ranked finished trial that the monitor
    judged healthy on every seed, else the best-ranked finished one (``rows`` best first).
    A high mode count from samples spread off the modes (``low_quality``) is not a win."""
    finished = [r for r in rows if r["mean"] is not None and math.isfinite(r["mean"])]
    return next((r for r in finished if healthy(r)), finished[0] if finished else None)


def grid_points(space: Sequence[Param]) -> list[dict]:
    """Every combination of a grid's values (for estimates and tests)."""
    return [dict(zip([p.key for p in space], combo)) for combo in itertools.product(*(p.values for p in space))]


def _worker(kwargs: dict, n: int | None) -> None:
    """A sweep worker process (``--jobs``): the same request, the same study."""
    import torch

    torch.set_num_threads(1)
    Sweep(**kwargs).work(n)
