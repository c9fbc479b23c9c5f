"""Experiments over many runs: repeated seeds, Optuna sweeps, TensorBoard logging.

* :mod:`.objectives` — which metric a sweep optimises, its direction, how it is measured;
* :mod:`.seeds` — N runs of one configuration: mean, standard deviation and a 95% bootstrap
  interval (``seeds.json``);
* :mod:`.sweep` — ``ganforge sweep``: grid / TPE search on Optuna with median pruning;
* :mod:`.tensorboard` — a training callback that mirrors scalars and sample grids to TensorBoard.
"""

from .objectives import OBJECTIVES, Objective, get_objective
from .seeds import aggregate, bootstrap_ci, run_seeds, summarize_seeds

__all__ = ["OBJECTIVES", "Objective", "aggregate", "bootstrap_ci", "get_objective", "run_seeds", "summarize_seeds"]
