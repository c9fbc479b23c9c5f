"""ganforge: train, evaluate and diagnose Generative Adversarial Networks.

>>> import ganforge
>>> run = ganforge.train("ring8", overrides=["train.steps=200"])
>>> x = ganforge.load(run.run_dir).sample(64)
"""

from .api import Run, load, train
from .config import Experiment, resolve
from .errors import GanforgeError

__version__ = "0.1.0"
__all__ = ["train", "load", "Run", "Experiment", "resolve", "GanforgeError", "__version__"]
