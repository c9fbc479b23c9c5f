"""``ganforge report RUN [RUN ...] --out report.html``: one self-contained HTML page.

No network is needed to view it: images are base64 ``data:`` URIs, the CSS is inline and
there is no JavaScript. Figures are embedded compactly (palette PNG plots, JPEG sample grids
when smaller; see figures.py), and runs shown folded (all but the first of a sweep) get
smaller figures. The page holds, for the runs given (a sweep directory stands for its runs,
in the order of its summary table):

* an overview table: each run's verdict (``healthy`` or the monitor's conditions, each with
  its key evidence), the last sample check (modes, above chance, hq vs chance, diversity),
  status, steps, headline metric, final D outputs;
* for a sweep: its summary table (objective mean ± std, 95% interval per configuration)
  with each configuration's verdict and why, per seed;
* the config keys that differ between the runs, and a gallery of final samples;
* per run: the diagnosis with evidence and remedies, the final samples (2D: generated over
  real points and the mode histogram), the fixed-noise sample grids over training
  (``samples/step_*.png``), loss and D-output curves with moving averages, evaluation /
  monitor metrics over time and at the end (``eval.json``), and the full config.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Sequence

from ..errors import GanforgeError
from ..io import write_text
from .figures import compare_uri, curves_uri, image_uri, metrics_uri, points_uri
from .html_style import CSS

MAX_SERIES = 8  # sample grids shown per run (evenly spaced over training, final included)
FOLDED_SERIES = 4  # the same for a run shown folded (compact: every figure smaller)
OPEN_RUNS = 4  # runs shown expanded (the others fold into <details>)
STRIP_WIDTH = 180  # pixels of the sample thumbnails over training (shown 150 px wide)


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(a, 3) for a in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    return str(v)


# --------------------------------------------------------------------------- collecting


def expand(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """``(run dirs, sweep dirs)`` from run and sweep directories (a sweep's runs in rank order)."""
    from ..runs import find_runs

    runs: list[Path] = []
    sweeps: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            runs.append(p)
            continue
        if not p.is_dir():
            raise GanforgeError(f"{p} is not a run or sweep directory; pass directories written by `ganforge train` or `ganforge sweep`")
        found = find_runs(p)
        if not found:
            raise GanforgeError(f"{p} holds no runs (no config.yaml below it)")
        if (p / "sweep.json").is_file():
            sweeps.append(p)
            order = {Path(r).parts[-2:]: i for i, row in enumerate(sweep_rows(p)) for r in row.get("runs", "").split()}
            found.sort(key=lambda d: (order.get(d.parts[-2:], len(order)), str(d)))
        runs.extend(found)
    return list(dict.fromkeys(runs)), sweeps


def sweep_rows(sweep_dir: Path) -> list[dict]:
    p = Path(sweep_dir) / "summary.csv"
    if not p.is_file():
        return []
    with open(p, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_data(d: Path) -> dict:
    """Everything the page shows about one run."""
    from ..diagnostics import summarize
    from ..runs import run_info
    from ..training.rundir import read_config
    from .plots import read_metrics

    ev = {}
    if (d / "eval.json").is_file():
        try:
            ev = json.loads((d / "eval.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            ev = {}
    steps = sorted((d / "samples").glob("step_*.png"))
    if len(steps) > MAX_SERIES - 1:
        k = len(steps)
        steps = [steps[round(i * (k - 1) / (MAX_SERIES - 2))] for i in range(MAX_SERIES - 1)]
    final = d / "samples" / "final.png"
    return {"dir": d, "cfg": read_config(d), "rows": read_metrics(d / "metrics.jsonl"), "diag": summarize(d),
            "eval": ev, "info": run_info(d), "series": steps + ([final] if final.is_file() else []), "final": final}


def _label(d: Path, base: Path | None) -> str:
    try:
        return str(d.relative_to(base)) if base is not None and d != base else str(d)
    except ValueError:
        return str(d)


# --------------------------------------------------------------------------- pieces


def badges(r: dict) -> str:
    diag, info = r["diag"], r["info"]
    out = []
    if diag.get("source") == "none":
        out.append('<span class="badge mute">no diagnosis</span>')
    elif diag.get("healthy"):
        out.append('<span class="badge ok">healthy</span>')
    for c in diag.get("conditions", []):
        out.append(f'<span class="badge bad" title="{esc(c.get("explanation", ""))}">{esc(c["name"].replace("_", " "))}</span>')
    if info["status"] != "done":
        out.append(f'<span class="badge warn">{esc(info["status"])}</span>')
    return "".join(out)


# the evidence that says most about each condition, in order (others: the first three items)
KEY_EVIDENCE = {
    "low_quality": ("hq", "hq_chance", "modes_above_chance", "modes", "trend"),
    "mode_collapse": ("sign", "modes", "modes_total", "classes", "classes_real", "diversity_ratio", "hq", "peak"),
    "oscillation": ("hops", "modes", "modes_total"),
    "divergence": ("nonfinite", "nonfinite_samples", "loss", "value"),
    "discriminator_overpowering": ("d_real", "d_fake"),
    "vanishing_generator_gradient": ("ratio", "d_fake"),
}


def short_evidence(c: dict) -> str:
    """One condition's key evidence as ``key=value, ...`` (plain text)."""
    ev = c.get("evidence", {})
    keys = [k for k in KEY_EVIDENCE.get(c.get("name"), ()) if k in ev] or list(ev)[:3]
    if c.get("name") == "low_quality" and "modes_above_chance" in ev and "modes_total" in ev:
        parts = [f"hq={_fmt(ev.get('hq'), 3)} (uniform {_fmt(ev.get('hq_chance'), 3)})",
                 f"{ev['modes_above_chance']}/{ev['modes_total']} modes above chance ({ev.get('modes')} hit)",
                 f"{ev.get('trend')}"]
        return ", ".join(parts)
    return ", ".join(f"{k}={_fmt(ev[k], 3)}" for k in keys)


def why(r: dict) -> str:
    """Each condition of a run on one line: name, first step, key evidence."""
    return "".join(f'<div class="why">{esc(c["name"].replace("_", " "))} from step {esc(c.get("step", "?"))}: '
                   f"{esc(short_evidence(c))}</div>" for c in r["diag"].get("conditions", []))


def sample_facts(diag: dict) -> str:
    """The last sample check in a few words: modes (2D), hq with its chance level, classes
    (labelled images), diversity."""
    s = diag.get("summary", {})
    out = []
    if isinstance(s.get("modes"), int) and s.get("modes_total"):
        sig = f" ({s['modes_above_chance']} above chance)" if isinstance(s.get("modes_above_chance"), int) else ""
        out.append(f"{s['modes']}/{s['modes_total']} modes{sig}")
    if isinstance(s.get("hq"), (int, float)):
        out.append(f"hq {_fmt(s['hq'], 3)}" + (f" (uniform {_fmt(s['hq_chance'], 2)})" if isinstance(s.get("hq_chance"), (int, float)) else ""))
    if isinstance(s.get("classes"), int) and isinstance(s.get("classes_real"), int):
        out.append(f"{s['classes']} classes (real sample {s['classes_real']})")
    if isinstance(s.get("diversity_ratio"), (int, float)):
        out.append(f"diversity {_fmt(s['diversity_ratio'], 3)}")
    return " · ".join(out) or "–"


def headline(r: dict) -> str:
    b = r["info"].get("best")
    return "–" if not b else f"{esc(b[0])} = {_fmt(b[1])}"


def overview(runs: list[dict]) -> str:
    rows = []
    for i, r in enumerate(runs):
        last = r["rows"][-1] if r["rows"] else {}
        info = r["info"]
        rows.append(
            f'<tr><td><a href="#run-{i}">{esc(r["label"])}</a></td><td>{badges(r)}{why(r)}</td>'
            f'<td>{esc(sample_facts(r["diag"]))}</td><td>{esc(info["status"])}</td><td class="num">{info["step"]}/{info["steps"]}</td><td>{headline(r)}</td>'
            f'<td class="num">{_fmt(last.get("d/real"), 3)}</td><td class="num">{_fmt(last.get("d/fake"), 3)}</td></tr>')
    return ('<section class="card"><h2>Overview</h2><table><tr><th>run</th><th>verdict (monitor)</th><th>last sample check</th><th>status</th><th>steps</th>'
            '<th>metric</th><th>D(x)</th><th>D(G(z))</th></tr>' + "".join(rows) + "</table></section>")


def sweep_section(sweep_dir: Path, by_dir: dict | None = None) -> str:
    """The sweep's summary table; ``by_dir`` (run dir parts[-2:] -> run data) adds each
    configuration's verdict: the monitor's conditions with their key evidence, per seed."""
    req = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    rows = sweep_rows(sweep_dir)
    keys = list(req.get("params", {}))
    head = "".join(f"<th>{esc(k)}</th>" for k in ["rank", "trial", *keys, f"{req.get('objective')} mean", "std", "95% CI", "seeds", "state", "verdict (monitor)"])
    body = []
    for i, row in enumerate(rows, 1):
        def num(k):
            try:
                return _fmt(float(row[k]))
            except (KeyError, TypeError, ValueError):
                return "–"

        diag = "".join(f'<span class="badge {"ok" if s == "healthy" else "bad"}">{esc(s.replace("_", " "))}</span>'
                       for part in row.get("diagnosis", "").split(";") for s in part.strip().split(",") if s.strip())
        seeds = [by_dir[k] for k in (Path(d).parts[-2:] for d in row.get("runs", "").split()) if by_dir and k in by_dir]
        if seeds:  # the runs' own diagnoses (evidence included) rather than the names in summary.csv
            diag = "".join((f'<div><a href="#run-{r["index"]}">{esc(Path(r["dir"]).name)}</a> ' if len(seeds) > 1 else "<div>")
                           + badges(r) + why(r) + f'<div class="why">{esc(sample_facts(r["diag"]))}</div></div>' for r in seeds)
        cls = ' class="best"' if i == 1 and row.get("mean") else ""
        body.append(f"<tr{cls}><td>{i}</td><td>{esc(row['trial'])}</td>" + "".join(f"<td>{esc(row.get(k, ''))}</td>" for k in keys)
                    + f'<td class="num">{num("mean")}</td><td class="num">{num("std")}</td>'
                    f'<td class="num">[{num("ci95_low")}, {num("ci95_high")}]</td><td class="num">{esc(row.get("seeds", ""))}</td>'
                    f"<td>{esc(row.get('state', ''))}</td><td>{diag}</td></tr>")
    best = sweep_dir / "best.yaml"
    best_html = f"<h3>best recipe ({esc(best)})</h3><pre>{esc(best.read_text(encoding='utf-8'))}</pre>" if best.is_file() else ""
    what = f"{esc(req.get('direction', ''))} {esc(req.get('objective', ''))} over {esc(req.get('seeds', 1))} seed(s), sampler {esc(req.get('sampler', ''))}"
    return (f'<section class="card"><h2>Sweep {esc(sweep_dir)}</h2><p class="meta">recipe {esc(req.get("recipe"))}; {what}; '
            f'best first; interval: 95% bootstrap of the mean</p><div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'
            f"<details><summary>best recipe</summary>{best_html}</details></section>")


def config_diff_section(runs: list[dict]) -> str:
    from ..training.rundir import _flat

    flats = [_flat(r["cfg"].to_dict()) for r in runs]
    keys = sorted({k for f in flats for k in f if k not in ("name", "description")
                   and len({json.dumps(g.get(k), sort_keys=True) for g in flats}) > 1})
    if len(runs) < 2:
        return ""
    if not keys:
        return '<section class="card"><h2>Config differences</h2><p class="meta">the runs share one config</p></section>'
    if len(keys) > len(runs):  # many keys, few runs: one row per key
        head = "<th>key</th>" + "".join(f'<th><a href="#run-{i}">{esc(r["label"])}</a></th>' for i, r in enumerate(runs))
        body = "".join(f"<tr><td><code>{esc(k)}</code></td>" + "".join(f"<td>{esc(_fmt(f.get(k)))}</td>" for f in flats) + "</tr>"
                       for k in keys)
    else:  # one row per run
        head = "".join(f"<th>{esc(k)}</th>" for k in ["run", *keys])
        body = "".join(f'<tr><td><a href="#run-{i}">{esc(r["label"])}</a></td>' + "".join(f"<td>{esc(_fmt(f.get(k)))}</td>" for k in keys)
                       + "</tr>" for i, (r, f) in enumerate(zip(runs, flats)))
    return f'<section class="card"><h2>Config differences</h2><div class="scroll"><table><tr>{head}</tr>{body}</table></div></section>'


def gallery_section(runs: list[dict]) -> str:
    figs = []
    for i, r in enumerate(runs):
        if r["final"].is_file():
            figs.append(f'<figure><a href="#run-{i}"><img alt="final samples of {esc(r["label"])}" src="{image_uri(r["final"], 220, photo=not r["points"])}"></a>'
                        f"<figcaption>{esc(r['label'])}<br>{badges(r)}</figcaption></figure>")
    if len(figs) < 2:
        return ""
    return f'<section class="card"><h2>Final samples</h2><div class="gallery">{"".join(figs)}</div></section>'


def compare_section(runs: list[dict]) -> str:
    if len(runs) < 2:
        return ""
    series = [(r["label"], r["rows"]) for r in runs]
    figs = [u for key in ("monitor/modes", "monitor/diversity_ratio", "loss/d", "loss/g") if (u := compare_uri(series, key))]
    return ('<section class="card"><h2>Runs compared</h2><div class="cols">'
            + "".join(f'<figure><img alt="comparison" src="{u}"></figure>' for u in figs[:3]) + "</div></section>") if figs else ""


def diagnosis_html(diag: dict) -> str:
    conds = diag.get("conditions", [])
    s = diag.get("summary", {})
    facts = ", ".join(f"{k} {_fmt(s[k], 3)}" for k in ("modes", "modes_above_chance", "hq", "hq_chance", "diversity_ratio", "d/real", "d/fake")
                      if k in s)
    if not conds:
        text = "healthy" if diag.get("source") != "none" else "no diagnosis recorded"
        return f'<div class="diag"><b>{text}</b>{" — " + esc(facts) if facts else ""}</div>'
    parts = [f'<div class="diag bad"><b>{len(conds)} condition(s)</b>{" — " + esc(facts) if facts else ""}']
    for c in conds:
        ev = "; ".join(f"{k} = {_fmt(v)}" for k, v in c.get("evidence", {}).items())
        rem = "".join(f"<li><code>{esc(r['option'])}</code> — {esc(r.get('why', ''))}</li>" for r in c.get("remedies", [])[:5])
        parts.append(f"<h4>{esc(c['name'].replace('_', ' '))} <span class='why'>from step {esc(c.get('step'))}"
                     f" to {esc(c.get('last_step'))}</span></h4><div>{esc(c.get('explanation', ''))}</div>"
                     f"<div class='evidence'>evidence: {esc(ev)}</div>" + (f"<ul>{rem}</ul>" if rem else ""))
    return "".join(parts) + "</div>"


def run_section(i: int, r: dict) -> str:
    d, cfg, info = r["dir"], r["cfg"], r["info"]
    secs = r["rows"][-1].get("time") if r["rows"] else None
    meta = (f"{esc(d)} · recipe {esc(cfg.name)} · {info['step']}/{info['steps']} steps · {esc(info['status'])}"
            + (f" · {secs:.0f} s" if isinstance(secs, (int, float)) else "") + f" · seed {cfg.train.seed}")
    top = []
    full = r.get("open", True)  # folded runs (past the first of a sweep) get smaller figures
    try:
        pts = points_uri(d, dpi=80 if full else 56) if r["points"] else None
    except GanforgeError:  # no weights yet (a run that just started)
        pts = None
    if pts is not None:
        top.append(f'<figure><img alt="generated points and mode histogram" src="{pts[0]}"><figcaption>2,500 samples (seed 0)</figcaption></figure>')
    elif r["final"].is_file():
        top.append(f'<figure><img alt="final samples" src="{image_uri(r["final"], 360, photo=True)}"><figcaption>final samples (fixed noise)</figcaption></figure>')
    if (u := curves_uri(r["rows"], title=cfg.name, width=900 if full else 600)) is not None:
        top.append(f'<figure><img alt="training curves" src="{u}"><figcaption>losses and D outputs (light: raw, bold: moving average)</figcaption></figure>')
    strip = "".join(f'<figure><img alt="{esc(p.stem)}" src="{image_uri(p, STRIP_WIDTH if full else 150, photo=not r["points"])}"><figcaption>{esc(_step_name(p))}</figcaption></figure>'
                    for p in (r["series"] if full else thin(r["series"], FOLDED_SERIES)))
    mu = metrics_uri(r["rows"], dpi=80 if full else 56)
    ev = r["eval"].get("metrics", {})
    ev_html = ""
    if ev:
        ctx = ", ".join(f"{k}: {esc(r['eval'][k])}" for k in ("extractor", "reference", "samples") if k in r["eval"])
        ev_html = ('<h3>metrics at the end (eval.json)</h3><div class="scroll"><table><tr>' + "".join(f"<th>{esc(k)}</th>" for k in ev) + "</tr><tr>"
                   + "".join(f'<td class="num">{_fmt(v)}</td>' for v in ev.values()) + f'</tr></table></div><p class="meta">{ctx}</p>')
    body = (f'<p class="meta">{meta}</p>{diagnosis_html(r["diag"])}<div class="cols">{"".join(top)}</div>'
            + (f'<h3>samples over training (fixed noise)</h3><div class="strip">{strip}</div>' if strip else "")
            + (f'<h3>metrics over training</h3><figure><img alt="metrics over training" src="{mu}"></figure>' if mu else "")
            + ev_html + f"<details><summary>config</summary><pre>{esc(cfg.to_yaml())}</pre></details>")
    opened = " open" if r.get("open") else ""
    return (f'<section class="card" id="run-{i}"><details class="run"{opened}><summary>{esc(r["label"])} {badges(r)}</summary>'
            f"{body}</details></section>")


def thin(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spaced, first and last included."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _is_points(r: dict) -> bool:
    from ..data import load_dataset
    import dataclasses

    try:
        return load_dataset(dataclasses.replace(r["cfg"].data, samples=8, limit=8), "train", seed=0).kind == "points"
    except GanforgeError:
        return False


def _step_name(p: Path) -> str:
    return f"step {int(p.stem.split('_')[1])}" if p.stem.startswith("step_") else p.stem


# --------------------------------------------------------------------------- page


def build_html(paths: Sequence[str | Path], title: str | None = None) -> str:
    """The report page for ``paths`` (run or sweep directories) as one HTML string."""
    dirs, sweeps = expand(paths)
    base = sweeps[0] if len(sweeps) == 1 and len(paths) == 1 else None
    pruned = {Path(run).parts[-2:]: row["state"] for s in sweeps for row in sweep_rows(s)
              if row.get("state", "").startswith("pruned") for run in row.get("runs", "").split()}
    runs = []
    for i, d in enumerate(dirs):
        r = run_data(d)
        if d.parts[-2:] in pruned and r["info"]["status"] != "done":
            r["info"]["status"] = pruned[d.parts[-2:]].split(" (")[0]  # "pruned at step N"
        r["label"] = _label(d, base)
        r["points"] = _is_points(r)
        r["index"] = i
        r["open"] = i < (1 if len(dirs) > OPEN_RUNS else OPEN_RUNS)
        runs.append(r)
    title = title or ("sweep " + str(sweeps[0]) if base else "ganforge report: " + ", ".join(r["label"] for r in runs[:4])
                      + (" …" if len(runs) > 4 else ""))
    n_bad = sum(1 for r in runs if r["diag"].get("conditions"))
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<header><h1>{esc(title)}</h1><p>{len(runs)} run(s), {len(runs) - n_bad} healthy, {n_bad} with conditions · generated {when} by ganforge</p></header><main>"]
    by_dir = {Path(r["dir"]).parts[-2:]: r for r in runs}
    parts += [sweep_section(s, by_dir) for s in sweeps]
    parts += [overview(runs), config_diff_section(runs), gallery_section(runs), compare_section(runs)]
    parts += [run_section(i, r) for i, r in enumerate(runs)]
    parts.append("</main></body></html>\n")
    return "".join(parts)


def write_report(paths: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write :func:`build_html` to ``out`` (atomically); returns the path."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise GanforgeError(f"--out {out} should end in .html")
    write_text(out, build_html(paths, title))
    return out
