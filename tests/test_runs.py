"""``ganforge runs``: status (done / interrupted / running), steps, best metric, diagnosis;
the TensorBoard callback."""

import json
import os
import sys
import time

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import resolve
from ganforge.errors import ConfigError
from ganforge.runs import best_metric, checkpoint_step, find_runs, format_runs, run_info
from ganforge.training import Interrupted

torch.set_num_threads(1)

TINY = ["train.steps=12", "train.log_every=2", "train.sample_every=6", "train.checkpoint_every=0", "train.progress=false",
        "train.batch=32", "data.samples=1000", "model.g.width=16", "model.d.width=16"]


def tiny(*extra):
    return resolve("ring8", TINY + list(extra))


class StopAt:
    stop_requested = False

    def __init__(self, step):
        self.step = step

    def on_log(self, trainer, row):
        if trainer.step >= self.step:
            self.stop_requested = True


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ganforge.train(tiny(), out=root / "done")
    with pytest.raises(Interrupted):
        ganforge.train(tiny(), out=root / "sweep" / "trial-000" / "seed-0", callbacks=[StopAt(6)])
    return root


def test_status_steps_and_diagnosis(runs_root):
    found = find_runs(runs_root)
    assert [p.relative_to(runs_root).as_posix() for p in found] == ["done", "sweep/trial-000/seed-0"]
    done = run_info(runs_root / "done")
    assert (done["status"], done["step"], done["steps"], done["name"]) == ("done", 12, 12, "ring8")
    assert done["diagnosis"] in ("healthy", ", ".join(done["conditions"]))
    cut = runs_root / "sweep" / "trial-000" / "seed-0"
    assert checkpoint_step(cut) == 6
    # just written: running; an hour later with no change: interrupted
    assert run_info(cut)["status"] == "running"
    later = run_info(cut, now=time.time() + 3600)
    assert (later["status"], later["step"]) == ("interrupted", 6)


def test_best_metric_prefers_eval_json(runs_root, tmp_path):
    d = runs_root / "done"
    key, value, src = best_metric(d)
    assert (key, src) == ("monitor/modes", "log") and 0 <= value <= 8
    (d / "eval.json").write_text(json.dumps({"metrics": {"modes": 7, "hq": 0.9, "rkl": 0.1}}))
    try:
        assert best_metric(d) == ("modes", 7.0, "eval.json")
        assert "modes=7" in format_runs([run_info(d)])
    finally:
        os.remove(d / "eval.json")


def test_runs_command(runs_root, capsys):
    assert main(["runs", str(runs_root)]) == 0
    out = capsys.readouterr().out
    assert "12/12" in out and "6/12" in out and "done" in out and "ring8" in out
    assert main(["runs", str(runs_root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["step"] for r in rows} == {12, 6}
    assert main(["runs", str(runs_root / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_tensorboard_missing_is_a_one_line_error(monkeypatch):
    from ganforge.experiments.tensorboard import TensorBoardLogger, callbacks_for

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        TensorBoardLogger()
    assert callbacks_for(tiny()) == []  # train.tensorboard unset: no callback, no import


def test_tensorboard_logs_scalars_and_samples(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ganforge.experiments.tensorboard import TensorBoardLogger

    ganforge.train(tiny(), out=tmp_path / "r", callbacks=[TensorBoardLogger()])
    ea = EventAccumulator(str(tmp_path / "r" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    assert {"loss/d", "loss/g", "d/real", "d/fake"} <= set(tags["scalars"])
    assert [e.step for e in ea.Scalars("loss/d")] == [2, 4, 6, 8, 10, 12]
    assert "samples" in tags["images"]
