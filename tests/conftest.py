import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing when pytest-xdist runs workers.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep caches (classifiers, reference statistics) out of the user's home."""
    cache = os.environ.get("GANFORGE_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    monkeypatch.setenv("GANFORGE_CACHE", cache)
    yield
