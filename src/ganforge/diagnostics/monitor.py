"""The live monitor: a training-loop callback that runs the detectors and writes diagnosis.json.

Every log row (``train.log_every`` steps) the row detectors look at the recent rows; every
``check_every`` rows (and on the last row) the monitor also draws a fixed-size sample from
a fixed latent set (2,500 points for 2D data, as in the PacGAN/VEEGAN protocol; 256 images)
and adds ``monitor/diversity_ratio`` (and ``monitor/modes``, ``monitor/hq``,
``monitor/hq_chance``, ``monitor/modes_above_chance`` for 2D mixtures; ``monitor/classes``,
``monitor/class_ratio`` for labelled images when a classifier for them is cached or packaged,
at the run's resolution or, images resized, another -- the monitor never trains one;
``diagnosis.json`` says when class coverage is off and how to turn it on) to the row. A
condition is announced on stderr the first time it appears, listed
in the row's ``monitor/alerts`` while it holds, and recorded in ``diagnosis.json``
(written when a condition first appears and at the end of training). Divergence also sets
``stop_requested``: the loop checkpoints and stops.

The monitor draws its latents and reference data from private generators, and the training
loop restores the RNG states after its callbacks (loading a classifier initialises a module
from the global RNG, which draws the training latents), so it leaves the run unchanged.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import Experiment
from ..io import write_json
from ..metrics.diversity import mean_pairwise_distance
from .conditions import EXPLANATIONS, remedies
from .detectors import (CHECK_DETECTORS, CHECK_WARMUP, FINAL_VERDICT, ROW_DETECTORS, STAT_PREFIXES, Thresholds, chance_levels,
                        class_statistics, sample_statistics)

DIAGNOSIS = "diagnosis.json"
KEEP_ROWS = 32  # recent log rows kept (besides the first baseline_logs), enough for every window
KEEP_CHECKS = 200  # recent checks kept in the state (the coverage peak is taken over these)


def _clean(x: Any, digits: int | None = 6) -> Any:
    """JSON/checkpoint-safe copy: floats rounded to ``digits`` (None: exact), NaN/inf as
    strings, tuples as lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v, digits) for v in x]
    if isinstance(x, float):
        return (x if digits is None else round(x, digits)) if math.isfinite(x) else str(x)
    return x


MIN_AGREEMENT = 0.5  # the least share of a real sample's labels a classifier must predict to count classes


class Monitor:
    """Training-health and mode-collapse monitor (a :class:`~ganforge.training.loop.Trainer` callback).

    ``check_every``: log rows between sample checks (default 5: every 250 steps at
    ``log_every=50``, well under 2% of a toy run's time); ``n_samples``: generated samples
    per check (default 2,500 for points, 256 for images); ``verbose``: announce conditions
    on stderr; ``classes``: class coverage of labelled images when a classifier is at hand.
    """

    def __init__(self, cfg: Experiment | None = None, check_every: int = 5, n_samples: int | None = None,
                 thresholds: Thresholds | None = None, seed: int = 0, verbose: bool = True, classes: bool = True) -> None:
        if check_every < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        self.cfg, self.check_every, self.n_samples, self.classes = cfg, check_every, n_samples, classes
        self.th = thresholds or Thresholds()
        self.seed, self.verbose = seed, verbose
        self.stop_requested = False
        self.reset()

    def reset(self) -> None:
        self.rows: list[dict] = []  # first baseline_logs rows + the last KEEP_ROWS
        self.checks: list[dict] = []  # sample statistics, oldest first
        self.conditions: dict[str, dict] = {}  # name -> record, in order of appearance
        self.n_logs = 0
        self.seconds = 0.0  # time spent in the monitor
        self._ref: tuple | None = None  # (latents, real MPD, modes, std, chance levels): rebuilt, never saved
        self._clf: tuple | None = None  # (classifier extractor, real sample's predicted classes) for labelled images
        self.class_note: str | None = None  # why class coverage is off for labelled images
        self._new: list[str] = []  # conditions that appeared in the last evaluate()
        self._no_checks = False  # set when the generator cannot be sampled from latents

    # ------------------------------------------------------------------ sampling
    def _reference(self, trainer) -> tuple:
        if self._ref is None:
            data = trainer.data
            n = self.n_samples or (2500 if data.kind == "points" else 256)
            gen = torch.Generator().manual_seed(self.seed + 7919)
            z = torch.randn(n, trainer.cfg.model.z_dim, generator=gen).to(trainer.device)
            pick = torch.randperm(len(data.x), generator=gen)[:n]
            real = data.x[pick]
            real_mpd = mean_pairwise_distance(real, max_samples=1000, seed=0)
            chance = chance_levels(data.modes, data.mode_std) if data.modes is not None else None
            self._ref = (z, real_mpd, data.modes, data.mode_std, chance)
            if self.classes and data.kind == "image" and data.labels is not None and data.num_classes:
                self._clf = self._classifier(data, real, data.labels[pick], trainer.device)
        return self._ref

    def _classifier(self, data, real: torch.Tensor, labels: torch.Tensor, device) -> tuple | None:
        """The dataset's evaluation classifier if one is cached or packaged (never trained
        here; of the nearest resolution, images resized, when none is at the run's), with its
        predictions for the real reference sample; else None and a note. A classifier that
        agrees with fewer than :data:`MIN_AGREEMENT` of that sample's labels is not used."""
        from ..metrics.features_classifier import STACKED_BASE, build_classifier

        try:
            ext = build_classifier(data, train=False, progress=False, any_size=True).to(device)
        except Exception as e:  # noqa: BLE001 -- none cached / damaged / wrong channels: say so, train on
            self.class_note = f"off: {str(e)[:200]}"
            return None
        pred = ext.extract(real.to(device))[1].argmax(1).cpu()
        agree = float((pred == labels.cpu()).float().mean())
        size = int(data.shape[-1])
        if agree < MIN_AGREEMENT:
            self.class_note = (f"off: {ext.key} agrees with only {agree:.0%} of a real sample's labels; "
                               f"`ganforge classifier train {STACKED_BASE.get(data.name, data.name)} --image-size {size}` "
                               f"trains one for {size}px")
            return None
        self.class_note = f"on: {ext.key} ({ext.info.get('source', 'cache')}; {agree:.0%} of a real sample's labels)"
        return ext, pred

    def check(self, trainer) -> dict:
        """Sample statistics of the generator now (see :func:`sample_statistics`), with the
        class coverage (:func:`class_statistics`) when a classifier is at hand."""
        z, real_mpd, modes, std, chance = self._reference(trainer)
        fake = trainer.sample(z)
        c = sample_statistics(fake, real_mpd, modes, std, chance=chance)
        if self._clf is not None and "nonfinite" not in c:
            ext, real_pred = self._clf
            c.update(class_statistics(ext.extract(fake)[1].argmax(1).cpu(), real_pred, trainer.data.num_classes))
        c["step"] = int(trainer.step)
        return c

    def _try_check(self, trainer) -> dict | None:
        """:meth:`check`, or None for good (with one message) when this method's generator
        cannot be sampled from latents alone (e.g. image-to-image translation)."""
        if self._no_checks:
            return None
        try:
            return self.check(trainer)
        except Exception as e:  # noqa: BLE001 -- the monitor must never break training
            self._no_checks = True
            self._say(f"ganforge monitor: sample checks off ({type(e).__name__}: {str(e)[:100]}); loss-based checks go on")
            return None

    # ------------------------------------------------------------------ callback hooks
    def on_log(self, trainer, row: dict) -> dict:
        t0 = time.perf_counter()
        cfg = self.cfg or trainer.cfg
        self.n_logs += 1
        extra: dict[str, Any] = {}
        last = int(row.get("step", trainer.step)) >= cfg.train.steps
        if (self.n_logs % self.check_every == 0 or last) and (c := self._try_check(trainer)) is not None:
            self.checks = self.checks[-(KEEP_CHECKS - 1):] + [c]
            extra.update({f"monitor/{k}": v for k, v in c.items() if k not in ("step", "hist", "modes_total", "diversity", "classes_real")})
        rec = {k: v for k, v in {**row, **extra}.items() if k == "step" or (k.startswith(STAT_PREFIXES) and isinstance(v, (int, float)))}
        self.rows.append(rec)
        b = self.th.baseline_logs
        if len(self.rows) > b + KEEP_ROWS:
            self.rows = self.rows[:b] + self.rows[-KEEP_ROWS:]
        active = self.evaluate(cfg, int(row.get("step", trainer.step)), checked=bool(extra), final=last)
        if active:
            extra["monitor/alerts"] = active
        if "divergence" in active and not self.stop_requested:
            self.stop_requested = True
            self._say(f"ganforge monitor: stopping at step {trainer.step}: training diverged; a checkpoint is written, see {Path(trainer.run_dir) / DIAGNOSIS}")
        self.seconds += time.perf_counter() - t0
        if self._new:
            self.write(trainer.run_dir, trainer)
        return extra

    def on_end(self, trainer) -> None:
        t0 = time.perf_counter()
        if (not self.checks or self.checks[-1]["step"] != trainer.step) and (c := self._try_check(trainer)) is not None:
            self.checks.append(c)
            self.evaluate(self.cfg or trainer.cfg, trainer.step, checked=True, rows=False,
                          final=trainer.step >= (self.cfg or trainer.cfg).train.steps)
        self.seconds += time.perf_counter() - t0
        self.write(trainer.run_dir, trainer)

    # ------------------------------------------------------------------ detection
    def detectors(self, cfg: Experiment | None) -> tuple[dict, dict]:
        """The row and check detectors that apply to ``cfg``: D's sigmoid outputs mean
        nothing for a Wasserstein critic, so overpowering/vanishing-gradient are off there."""
        rows = dict(ROW_DETECTORS)
        if cfg is not None and cfg.loss.name.startswith("wgan"):
            rows = {"divergence": rows["divergence"]}
        return rows, dict(CHECK_DETECTORS)

    def evaluate(self, cfg: Experiment | None, step: int, checked: bool, rows: bool = True, final: bool = False) -> list[str]:
        """Run the detectors on the history; record new conditions; return the active names.
        ``final``: the last check is the last step's (the run's result is judged too)."""
        row_det, check_det = self.detectors(cfg)
        found: dict[str, dict] = {}
        if rows:
            found.update({n: ev for n, f in row_det.items() if (ev := f(self.rows, self.th)) is not None})
        if checked:
            total = cfg.train.steps if cfg is not None else 0
            images = bool(self.checks) and "modes" not in self.checks[-1]  # no known modes: image data
            warmup = self.th.image_warmup if images else self.th.warmup
            nonfinite = self.checks[-1].get("nonfinite") if self.checks else None
            if nonfinite:
                found.setdefault("divergence", {"nonfinite_samples": nonfinite})
            for n, f in check_det.items():
                start = max(warmup, getattr(self.th, CHECK_WARMUP[n])) if n in CHECK_WARMUP else warmup
                kw = {"final": True} if final and n in FINAL_VERDICT else {}
                if (ev := f([c for c in self.checks if c["step"] >= start * total], self.th, **kw)) is not None:
                    found[n] = ev
        self._new = []
        for name, ev in found.items():
            rec = self.conditions.get(name)
            if rec is None:
                rec = self.conditions[name] = {
                    "name": name, "step": step, "evidence": _clean(ev), "explanation": EXPLANATIONS[name],
                    "remedies": remedies(name, cfg), "last_step": step, "count": 0,
                }
                self._new.append(name)
                self._announce(rec)
            rec["last_step"], rec["count"] = step, rec["count"] + 1
        return list(found)

    def _say(self, msg: str) -> None:
        if self.verbose:
            tqdm.write(msg, file=sys.stderr)

    def _announce(self, rec: dict) -> None:
        def show(v):
            if isinstance(v, list):
                return ",".join(map(show, v[:8]))
            return f"{v:.3g}" if isinstance(v, float) else str(v)

        ev = ", ".join(f"{k}={show(v)}" for k, v in rec["evidence"].items())
        fix = "; ".join(r["option"] for r in rec["remedies"][:3])
        self._say(f"ganforge monitor: step {rec['step']}: {rec['name']} ({ev})" + (f"; try {fix}" if fix else ""))

    # ------------------------------------------------------------------ outputs
    def diagnosis(self, trainer=None) -> dict:
        """``{"healthy", "conditions", "summary", "thresholds"}`` (the content of diagnosis.json)."""
        summary: dict[str, Any] = {"checks": len(self.checks), "monitor_seconds": round(self.seconds, 3)}
        if trainer is not None:
            summary.update(step=int(trainer.step), steps=int(trainer.cfg.train.steps))
        if self.checks:
            last = self.checks[-1]
            summary.update({k: v for k, v in last.items() if k not in ("hist",)})
            summary["check_step"] = summary.pop("step")
        for k in ("d/real", "d/fake", "loss/d", "loss/g"):
            if self.rows and k in self.rows[-1]:
                summary[k] = self.rows[-1][k]
        if self.class_note is not None:
            summary["class_coverage"] = self.class_note
        conds = list(self.conditions.values())
        return {"healthy": not conds, "conditions": _clean(conds), "summary": _clean(summary), "thresholds": asdict(self.th)}

    def write(self, run_dir, trainer=None) -> Path:
        path = Path(run_dir) / DIAGNOSIS
        write_json(path, self.diagnosis(trainer))
        return path

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        """Plain containers only (checkpoints load with ``weights_only=True``)."""
        return {"rows": _clean(self.rows, None), "checks": _clean(self.checks, None), "conditions": _clean(self.conditions, None),
                "n_logs": self.n_logs, "seconds": self.seconds}

    def load_state_dict(self, s: dict) -> None:
        def num(x):
            return float(x) if x in ("nan", "inf", "-inf") else x

        self.reset()
        self.rows = [{k: num(v) for k, v in r.items()} for r in s.get("rows", [])]
        self.checks = [{k: num(v) for k, v in c.items()} for c in s.get("checks", [])]
        self.conditions = dict(s.get("conditions", {}))
        self.n_logs, self.seconds = int(s.get("n_logs", 0)), float(s.get("seconds", 0.0))


# --------------------------------------------------------------------------- reading runs


def summarize(run_dir: str | Path) -> dict:
    """A run's diagnosis: ``diagnosis.json`` when present, else re-derived from metrics.jsonl
    (row detectors on the log rows, collapse detector on their ``monitor/*`` numbers).
    Adds ``"source"`` ("diagnosis.json" | "metrics.jsonl" | "none") and ``"text"``, a short
    human-readable account."""
    from ..report import read_metrics

    run_dir = Path(run_dir)
    path = run_dir / DIAGNOSIS
    if path.is_file():
        d = json.loads(path.read_text(encoding="utf-8"))
        d["source"] = DIAGNOSIS
    else:
        rows = read_metrics(run_dir / "metrics.jsonl")
        cfg = None
        if (run_dir / "config.yaml").is_file():
            from ..training.rundir import read_config

            cfg = read_config(run_dir)
        m = Monitor(cfg, verbose=False)
        for r in rows:
            m.rows.append({k: v for k, v in r.items() if k == "step" or (k.startswith(STAT_PREFIXES) and isinstance(v, (int, float)))})
            checked = "monitor/diversity_ratio" in r
            if checked:
                c = {k.split("/", 1)[1]: v for k, v in r.items() if k.startswith("monitor/") and k != "monitor/alerts"}
                m.checks.append({"step": r.get("step", 0), **c})
            m.evaluate(cfg, int(r.get("step", 0)), checked=checked, final=cfg is not None and r.get("step", 0) >= cfg.train.steps)
        d = m.diagnosis()
        d["source"] = "metrics.jsonl" if rows else "none"
    d["text"] = format_diagnosis(d)
    return d


def format_diagnosis(d: dict) -> str:
    """A few lines: healthy or the conditions, each with its first step, evidence and remedies."""
    s = d.get("summary", {})
    cov = ""
    if "modes" in s and "modes_total" in s:
        sig = f" ({s['modes_above_chance']} above chance)" if isinstance(s.get("modes_above_chance"), int) else ""
        chance = f" (uniform: {s['hq_chance']:.3f})" if isinstance(s.get("hq_chance"), (int, float)) else ""
        cov = f"{s['modes']}/{s['modes_total']} modes hit{sig}, hq {s['hq']:.3f}{chance}, "
    if isinstance(s.get("classes"), int):
        real = f" (a real sample: {s['classes_real']})" if isinstance(s.get("classes_real"), int) else ""
        cov += f"{s['classes']} classes{real}, "
    div = f"diversity ratio {s['diversity_ratio']:.2f}" if isinstance(s.get("diversity_ratio"), (int, float)) else ""
    lines = [("healthy" if d.get("healthy") else "conditions: " + ", ".join(c["name"] for c in d.get("conditions", [])))
             + (f" ({cov}{div})" if cov or div else "")]
    for c in d.get("conditions", []):
        lines.append(f"- {c['name']} from step {c['step']}: {c['explanation']}")
        lines.extend(f"    {r['option']}  # {r['why']}" for r in c.get("remedies", []))
    return "\n".join(lines)
