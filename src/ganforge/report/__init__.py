"""Sample grids, scatter plots and training curves."""

from .grids import save_image_grid, save_samples, save_scatter
from .plots import plot_curves, read_metrics

__all__ = ["save_image_grid", "save_samples", "save_scatter", "plot_curves", "read_metrics"]
