"""``ganforge report``: a self-contained page (data URIs, inline CSS, no script, no network)
with config diff, sample grids, curves, metrics and diagnosis badges; loaded in headless
Chromium without console errors, and its screenshot shows the figures."""

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.diagnostics import EXPLANATIONS, remedies
from ganforge.report.html import write_report

torch.set_num_threads(1)

FAST = ["train.steps=12", "train.log_every=2", "train.sample_every=4", "train.checkpoint_every=0", "train.progress=false",
        "train.batch=16", "data.samples=1000", "data.limit=128"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A 2D run marked with a mode collapse (as the monitor writes it) and an image run."""
    root = tmp_path_factory.mktemp("report")
    pts = resolve("grid25", FAST + ["model.g.width=16", "model.d.width=16"])
    ganforge.train(pts, out=root / "grid")
    diag = json.loads((root / "grid" / "diagnosis.json").read_text())
    diag["healthy"] = False
    diag["conditions"] = [{"name": "mode_collapse", "step": 8, "last_step": 12, "count": 3,
                           "evidence": {"sign": "low coverage", "modes": 3, "modes_total": 25},
                           "explanation": EXPLANATIONS["mode_collapse"], "remedies": remedies("mode_collapse", pts)},
                          {"name": "low_quality", "step": 10, "last_step": 12, "count": 2,
                           "evidence": {"hq": 0.031, "hq_chance": 0.0257, "lift": 1.2, "modes_above_chance": 3, "modes": 21,
                                        "modes_total": 25, "trend": "flat", "window": [0.03, 0.028, 0.031], "hq_limit": 0.128},
                           "explanation": EXPLANATIONS["low_quality"], "remedies": remedies("low_quality", pts)}]
    (root / "grid" / "diagnosis.json").write_text(json.dumps(diag))
    # a two-configuration sweep of the same run: one marked off-manifold, one healthy
    import shutil

    sweep = root / "sweep"
    for t in (0, 1):
        shutil.copytree(root / "grid", sweep / f"trial-{t:03d}" / "seed-0")
    healthy = {**diag, "healthy": True, "conditions": []}
    (sweep / "trial-001" / "seed-0" / "diagnosis.json").write_text(json.dumps(healthy))
    (sweep / "sweep.json").write_text(json.dumps({"recipe": "grid25", "params": {"optim.g.lr": [1e-4, 1e-3]}, "objective": "modes",
                                                  "direction": "maximize", "seeds": 1, "sampler": "grid"}))
    (sweep / "summary.csv").write_text(
        "trial,optim.g.lr,mean,std,ci95_low,ci95_high,seeds,state,diagnosis,runs\n"
        f"1,0.0001,20,0,20,20,1,complete,healthy,{sweep / 'trial-001' / 'seed-0'}\n"
        f"0,0.001,21,0,21,21,1,complete,\"mode_collapse,low_quality\",{sweep / 'trial-000' / 'seed-0'}\n")
    img = resolve("digits-dcgan", FAST + ["data.image_size=16"])
    img.model.g.width = img.model.d.width = 8
    ganforge.train(img, out=root / "digits")
    (root / "digits" / "eval.json").write_text(json.dumps({"metrics": {"fid": 42.5, "coverage": 0.3}, "extractor": "classifier"}))
    return root


@pytest.fixture(scope="module")
def page_path(two_runs):
    return write_report([two_runs / "grid", two_runs / "digits"], two_runs / "r.html")


def test_page_is_self_contained_and_complete(page_path):
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(srcs) >= 10
    for s in srcs:
        data = base64.b64decode(s.split(",", 1)[1])
        if s.startswith("data:image/jpeg;base64,"):  # photo-like sample grids, when smaller than PNG
            assert data[:3] == b"\xff\xd8\xff"
        else:
            assert s.startswith("data:image/png;base64,") and data[:8] == b"\x89PNG\r\n\x1a\n"
            # plots are palette PNGs (or grey images): a few times smaller than full-colour ones
            assert Image.open(io.BytesIO(data)).mode in ("P", "L"), s[:60]
    for text in ("Config differences", "data.name", "grid25", "digits", "samples over training", "step 4", "step 8",
                 "losses and D outputs", "metrics over training", "mode collapse", "healthy", "low coverage",
                 "fid", "42.5", "Final samples", "generated points and mode histogram", "Runs compared",
                 "low quality", "samples off the data manifold", "hq=0.031 (uniform 0.0257)", "3/25 modes above chance (21 hit)",
                 "--set loss.penalty=r1", "verdict (monitor)"):
        assert text in page, text
    assert page.count('class="badge bad"') >= 4  # both conditions in the overview and the run's own header


def test_sweep_table_shows_each_configuration_s_verdict_and_why(two_runs):
    page = write_report([two_runs / "sweep"], two_runs / "sweep.html").read_text()
    table = page[page.index("<h2>Sweep"):page.index("</table>", page.index("<h2>Sweep"))]
    rows = table.split("<tr")[2:]  # header first
    assert len(rows) == 2
    assert "healthy" in rows[0] and "low quality" not in rows[0] and "0.0001" in rows[0]
    assert "low quality" in rows[1] and "hq=0.031 (uniform 0.0257), 3/25 modes above chance (21 hit), flat" in rows[1]
    assert "mode collapse" in rows[1] and "sign=low coverage" in rows[1]


def test_cli_report_of_one_run_defaults_to_its_directory(two_runs, capsys):
    assert main(["report", str(two_runs / "grid")]) == 0
    assert "self-contained" in capsys.readouterr().out
    page = (two_runs / "grid" / "report.html").read_text()
    assert "Config differences" not in page and "mode collapse" in page  # one run: nothing to diff
    assert main(["report", str(two_runs / "nope"), "--out", "x.html"]) == 2
    assert "not a run or sweep directory" in capsys.readouterr().err


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(page_path, tmp_path):
    from PIL import Image

    page = page_path
    shot = tmp_path / "shot.png"
    proc = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           f"--screenshot={shot}", "--window-size=1280,2600", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert shot.is_file(), proc.stderr[-2000:]
    im = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert im.shape[:2] == (2600, 1280)
    # the plots are there: matplotlib's blue (generated points, curves) and red (D loss, mode markers)
    blue = (abs(im - [31, 119, 180]).sum(-1) < 40).sum()
    red = (abs(im - [214, 39, 40]).sum(-1) < 40).sum()
    green = (abs(im - [27, 127, 59]).sum(-1) < 30).sum()  # a healthy badge's text
    # (thresholds with a margin: the plots are small thumbnails; a page without them has ~0 of each)
    assert blue > 250 and red > 100 and green > 20, (blue, red, green)
    # and the grids: many distinct grey levels (digits samples) in the page
    assert len(np.unique(im.reshape(-1, 3), axis=0)) > 500


def test_class_coverage_shows_in_the_facts_and_the_evidence():
    from ganforge.report.html import sample_facts, short_evidence

    diag = {"summary": {"classes": 3, "classes_real": 10, "diversity_ratio": 0.8}}
    assert sample_facts(diag) == "3 classes (real sample 10) · diversity 0.8"
    c = {"name": "mode_collapse", "evidence": {"sign": "low class coverage", "classes": 3, "classes_real": 10, "class_ratio": 0.3}}
    assert short_evidence(c) == "sign=low class coverage, classes=3, classes_real=10"
