"""CUDA-only paths (CUDA graphs, fused Adam on the GPU, bf16 + channels_last + compile).

CI has no GPU, so these run where a CUDA device is present (the speed benchmark's machine);
their CPU fallbacks are tested in test_training.py.
"""

import warnings

import pytest
import torch

import ganforge
from ganforge.training.loop import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from test_training import tiny  # noqa: E402

BASE = ["train.device=cuda", "train.monitor=false", "train.steps=12", "train.log_every=6", "train.sample_every=0",
        "train.checkpoint_every=0", "train.fused=fused", "remedies.instance_noise=0"]


def fit(cfg, path, strict=True):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path.mkdir(parents=True, exist_ok=True)
        tr = Trainer(cfg, path)
        tr.fit()
    msgs = [str(w.message) for w in caught if "cuda_graph" in str(w.message)]
    if strict:
        assert not msgs, msgs
    return tr


def test_cuda_graph_replays_match_the_eager_loop(tmp_path):
    a = fit(tiny("digits-dcgan", *BASE), tmp_path / "eager")
    b = fit(tiny("digits-dcgan", *BASE, "train.cuda_graph=true"), tmp_path / "graph")
    assert b.graph is not None and b.graph.graph is not None and not b.graph.failed
    assert a.stream.state_dict()["pos"] == b.stream.state_dict()["pos"]  # same data order consumed
    ra, rb = [r for r in a.run_dir.joinpath("metrics.jsonl").read_text().splitlines()], \
        [r for r in b.run_dir.joinpath("metrics.jsonl").read_text().splitlines()]
    assert len(ra) == len(rb) == 2
    import json

    la, lb = json.loads(ra[-1]), json.loads(rb[-1])
    for k in ("loss/d", "loss/g", "d/real", "d/fake"):  # means over steps 7..12, 5 of them replayed
        assert la[k] == pytest.approx(lb[k], abs=2e-3), k


def test_cuda_graph_statistics_count_every_step(tmp_path):
    tr = fit(tiny("ring8", *BASE, "remedies.code_balance=0", "train.cuda_graph=true", "train.steps=40", "train.log_every=20"),
             tmp_path / "g")
    assert tr.graph.graph is not None
    assert tr.stats._counts["loss/d"] == 0  # read and reset at the last log step
    import json

    rows = [json.loads(r) for r in tr.run_dir.joinpath("metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40]
    for r in rows:
        assert 0.0 < r["d/real"] < 1.0 and 0.0 < r["loss/d"] < 10.0


def test_categorical_code_is_captured_and_code_balancing_falls_back(tmp_path):
    # the ring8 recipe's generator draws one of 32 codes from z_0 (model.g.categories): capturable
    code = ["remedies.code_balance=0", "train.steps=40", "train.log_every=20"]
    a = fit(tiny("ring8", *BASE, *code), tmp_path / "eager")
    b = fit(tiny("ring8", *BASE, *code, "train.cuda_graph=true"), tmp_path / "graph")
    assert b.graph is not None and b.graph.graph is not None and not b.graph.failed
    assert b.cfg.model.g.categories == 32
    import json

    la, lb = (json.loads(t.run_dir.joinpath("metrics.jsonl").read_text().splitlines()[-1]) for t in (a, b))
    for k in ("d/real", "d/fake"):  # same data and model; the noise differs, so only loosely equal
        assert la[k] == pytest.approx(lb[k], abs=0.15), k
    G = b.modules[b.method.generator].eval()
    with torch.no_grad():
        x = G(torch.randn(500, b.cfg.model.z_dim, device="cuda"))
    assert x.shape == (500, 2) and torch.isfinite(x).all()
    # code balancing updates the prior on the host between steps: eager, with a warning, still trains
    c = fit(tiny("ring8", *BASE, "train.steps=40", "train.cuda_graph=true"), tmp_path / "bal", strict=False)
    assert c.graph is None and c.step == 40


def test_cuda_graph_follows_the_lr_schedule(tmp_path):
    tr = fit(tiny("ring8", *BASE, "remedies.code_balance=0", "train.cuda_graph=true", "optim.g.schedule=cosine", "optim.g.min_lr=0.0",
                  "optim.d.schedule=cosine", "optim.d.min_lr=0.0"), tmp_path / "g")
    assert float(tr.optims["g"].param_groups[0]["lr"]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("extra", [["train.channels_last=true", "train.amp=bf16"],
                                   ["train.channels_last=true", "train.amp=bf16", "train.compile=true"]])
def test_fast_options_together_train_and_resume(extra, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ganforge.train(tiny("digits-dcgan", *BASE, "train.cuda_graph=true", *extra), out=tmp_path / "r")
        run = ganforge.train(tiny("digits-dcgan", *BASE, "train.cuda_graph=true", *extra, "train.steps=18"),
                             out=tmp_path / "r", resume=True)
    assert not [str(w.message) for w in caught if "cuda_graph" in str(w.message)]  # captured, no eager fallback
    rows = run.metrics()
    assert [r["step"] for r in rows] == [6, 12, 18] and all(torch.isfinite(torch.tensor(r["loss/d"])) for r in rows)
    assert run.sample(4).isfinite().all()


def test_fused_adam_on_cuda_matches_foreach(tmp_path):
    base = [o for o in BASE if not o.startswith("train.fused")]
    torch.manual_seed(0)
    a = fit(tiny("ring8", *base, "train.fused=foreach"), tmp_path / "a")
    b = fit(tiny("ring8", *base, "train.fused=fused"), tmp_path / "b")
    for p, q in zip(a.modules["g"].parameters(), b.modules["g"].parameters()):
        assert torch.allclose(p, q, atol=1e-4)
