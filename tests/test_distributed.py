"""Multi-process training: two CPU ranks (gloo) launched by torchrun.

One run directory written by rank 0 alone, statistics averaged over ranks, identical
generators on both ranks, stop requests agreed on, and a resume under torchrun that ends
bit-for-bit where an uninterrupted two-rank run ends.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
pytestmark = pytest.mark.skipif(
    TORCHRUN is None or not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torchrun and torch.distributed with gloo")

RECIPE = """\
name: ring8-ddp
data: {name: ring8, samples: 1000}
model:
  z_dim: 2
  g: {name: mlp, width: 16, depth: 2, norm: batch, activation: relu}
  d: {name: mlp, width: 16, depth: 2, norm: none, activation: leaky_relu}
loss: {name: ns}
train: {steps: 8, batch: 16, log_every: 2, sample_every: 4, checkpoint_every: 4, progress: false,
        threads: 1, device: cpu, ema: 0.9}
"""

# Runs ganforge.train under torchrun; each rank writes the hash of the generator it returns.
DRIVER = """\
import hashlib, json, os, sys
import torch
torch.set_num_threads(1)
import ganforge
from ganforge.training import Interrupted

recipe, out, resume, stop_at, report = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
overrides = sys.argv[6:]
rank = int(os.environ["RANK"])

class StopAt:  # rank 0 alone runs callbacks' on_log: the other rank must learn of the stop
    stop_requested = False
    def on_log(self, trainer, row):
        if trainer.step == stop_at:
            self.stop_requested = True

try:
    run = ganforge.train(recipe, out=out, resume=resume, overrides=overrides, callbacks=[StopAt()] if stop_at else [])
    state = {k: v.detach().cpu().contiguous() for k, v in run.generator.state_dict().items()}
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode()); h.update(state[k].numpy().tobytes())
    result = {"hash": h.hexdigest(), "step": None}
except Interrupted as e:
    result = {"hash": None, "step": e.step}
with open(os.path.join(report, f"rank{rank}.json"), "w") as f:
    json.dump(result, f)
"""


def torchrun(args, cwd, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return p


def weights_hash(path: Path) -> str:
    from safetensors.torch import load_file

    state = load_file(str(path))
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def reports(d: Path) -> list[dict]:
    return [json.loads((d / f"rank{r}.json").read_text()) for r in (0, 1)]


def setup_dirs(tmp_path):
    recipe = tmp_path / "ring8-ddp.yaml"
    recipe.write_text(RECIPE)
    cwd = tmp_path / "cwd"  # the ranks' working directory: nothing may appear here
    cwd.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return recipe, cwd, driver


def strip_time(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_write_one_run_and_resume(tmp_path):
    recipe, cwd, driver = setup_dirs(tmp_path)

    # 1. through the CLI: torchrun -m ganforge train RECIPE --out DIR (4 of the recipe's 8 steps)
    run = tmp_path / "run"
    p = torchrun(["-m", "ganforge", "train", str(recipe), "--out", str(run), "--set", "train.steps=4"], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    files = sorted(str(f.relative_to(run)) for f in run.rglob("*") if f.is_file())
    assert files == ["checkpoints/last.pt", "config.yaml", "curves.png", "diagnosis.json", "generator.safetensors",
                     "metrics.jsonl", "samples/final.png"], files  # no temp files, no per-rank copies
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]  # logged once (by rank 0), not once per rank
    assert all(r["grad/G"] > 0 and 0 <= r["d/real"] <= 1 for r in rows)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["dist"]["world_size"] == 2 and len(ckpt["dist"]["rng"]) == 2
    # the ranks draw their own latents: their torch RNG states differ
    assert not torch.equal(ckpt["dist"]["rng"][0]["torch"], ckpt["dist"]["rng"][1]["torch"])
    assert list(cwd.iterdir()) == []  # the other rank wrote nothing (e.g. no runs/ of its own)

    # 2. resumed under torchrun to 8 steps: both ranks end with the same generator, the one exported
    rep = tmp_path / "rep"
    rep.mkdir()
    p = torchrun([str(driver), str(recipe), str(run), "1", "0", str(rep), "train.steps=8"], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = reports(rep)
    assert r0["hash"] == r1["hash"] == weights_hash(run / "generator.safetensors")
    assert [r["step"] for r in strip_time(run)] == [2, 4, 6, 8]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 8
    assert sorted(f.name for f in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert list(cwd.iterdir()) == []


def test_stop_on_rank0_and_resume_equal_the_uninterrupted_run(tmp_path):
    recipe, cwd, driver = setup_dirs(tmp_path)
    full = tmp_path / "full"
    p = torchrun(["-m", "ganforge", "train", str(recipe), "--out", str(full)], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    exported = weights_hash(full / "generator.safetensors")

    # stopped at step 4 by a callback that only rank 0 runs (the other rank must follow)
    cut, rep = tmp_path / "cut", tmp_path / "rep-cut"
    rep.mkdir()
    p = torchrun([str(driver), str(recipe), str(cut), "0", "4", str(rep)], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    assert [r["step"] for r in reports(rep)] == [4, 4]
    assert torch.load(cut / "checkpoints" / "last.pt", weights_only=True)["step"] == 4

    rep = tmp_path / "rep-resume"
    rep.mkdir()
    p = torchrun([str(driver), str(recipe), str(cut), "1", "0", str(rep)], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = reports(rep)
    assert r0["hash"] == r1["hash"] == exported
    assert strip_time(cut) == strip_time(full)


def test_data_stream_shards_each_global_batch_disjointly():
    from ganforge.training.data_stream import DataStream

    x = torch.arange(50).float()[:, None]
    single = DataStream(x, 8, seed=3)
    ranks = [DataStream(x, 4, seed=3, rank=r, world=2) for r in range(2)]
    for _ in range(20):  # several epochs: 50 // 8 = 6 global batches each
        a, b = (s.next()[:, 0] for s in ranks)
        assert not set(a.tolist()) & set(b.tolist())
        assert torch.equal(torch.cat([a, b]), single.next()[:, 0])  # the global batch of one process
    assert ranks[0].state_dict()["pos"] == ranks[1].state_dict()["pos"] == single.pos


def test_single_process_imports_nothing_distributed(tmp_path, monkeypatch):
    import ganforge
    from ganforge.config import resolve

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    sys.modules.pop("ganforge.training.distributed", None)
    cfg = resolve("ring8", ["train.steps=2", "train.progress=false", "train.batch=16", "data.samples=200",
                            "model.g.width=8", "model.d.width=8", "train.monitor=false"])
    ganforge.train(cfg, out=tmp_path / "r")
    assert "ganforge.training.distributed" not in sys.modules
    assert not torch.distributed.is_initialized()
