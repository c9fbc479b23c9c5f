"""``ganforge report``: a self-contained page (data URIs, inline CSS, no script, no network)
with config diff, sample grids, curves, metrics and diagnosis badges; loaded in headless
Chromium without console errors, and its screenshot shows the figures."""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

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
                           "explanation": EXPLANATIONS["mode_collapse"], "remedies": remedies("mode_collapse", pts)}]
    (root / "grid" / "diagnosis.json").write_text(json.dumps(diag))
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
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for text in ("Config differences", "data.name", "grid25", "digits", "samples over training", "step 4", "step 8",
                 "losses and D outputs", "metrics over training", "mode collapse", "healthy", "low coverage",
                 "fid", "42.5", "Final samples", "generated points and mode histogram", "Runs compared"):
        assert text in page, text
    assert page.count('class="badge bad"') >= 2  # overview and the run's own header


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
    assert blue > 500 and red > 200 and green > 20, (blue, red, green)
    # and the grids: many distinct grey levels (digits samples) in the page
    assert len(np.unique(im.reshape(-1, 3), axis=0)) > 500
