import os

import pytest
import torch

# Two cores on CI shared by two pytest-xdist workers: one torch thread each (oversubscribed
# threads make small CPU ops 10-100x slower).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts with one torch thread (a run with train.threads may change it)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep caches (classifiers, reference statistics) out of the user's home."""
    cache = os.environ.get("GANFORGE_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    monkeypatch.setenv("GANFORGE_CACHE", cache)
    yield


@pytest.fixture
def sigterm_ensemble():
    """``with sigterm_ensemble(at=n): ...``: a seed ensemble trained inside receives SIGTERM
    (as from a scheduler or ``kill``) right after its step n."""
    import contextlib
    import os
    import signal

    from ganforge.training import ensemble

    @contextlib.contextmanager
    def patched(at: int):
        step = ensemble._Ensemble.train_step

        def train_step(self, log):
            step(self, log)
            if self.step == at:
                os.kill(os.getpid(), signal.SIGTERM)

        ensemble._Ensemble.train_step = train_step
        try:
            yield
        finally:
            ensemble._Ensemble.train_step = step

    return patched
