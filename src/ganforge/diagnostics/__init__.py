"""Online training-health and mode-collapse diagnosis.

:class:`Monitor` is a training-loop callback (on by default: ``train.monitor``); the
detectors are pure functions of the logged history, one per named condition:

==============================  ==============================================================
condition                       sign (thresholds: :class:`Thresholds`)
==============================  ==============================================================
divergence                      NaN/inf in a logged statistic or in samples; a loss 100x its early level
discriminator_overpowering      D(x) >= 0.9 and D(G(z)) <= 0.1 on 4 consecutive log rows
vanishing_generator_gradient    grad/G < 0.1 x its early median while D(G(z)) <= 0.1, 4 rows
mode_collapse                   diversity ratio < 0.5, or <= 50% of modes covered, or 30% of the
                                best coverage lost, on 3 consecutive sample checks
oscillation                     mode histogram jumps (total variation >= 0.5) twice in 4 checks
                                while coverage stays <= 50%
low_quality                     2D, after 50% of the steps: on 3 consecutive checks the high-quality
                                fraction is below min(0.2, 5 x that of a uniform spread over the data's
                                box): samples off the data manifold; evidence: hq, chance level, modes
                                hit and modes above chance, trend
==============================  ==============================================================

:func:`summarize` reads a run's diagnosis (``diagnosis.json``, or re-derives it from
``metrics.jsonl``) for reports.
"""

from .conditions import CONDITIONS, EXPLANATIONS, remedies
from .detectors import (
    CHECK_DETECTORS,
    ROW_DETECTORS,
    Thresholds,
    above_chance,
    chance_levels,
    class_statistics,
    detect_discriminator_overpowering,
    detect_low_quality,
    detect_divergence,
    detect_mode_collapse,
    detect_oscillation,
    detect_vanishing_generator_gradient,
    sample_statistics,
    total_variation,
)
from .monitor import DIAGNOSIS, Monitor, format_diagnosis, summarize

__all__ = [
    "CHECK_DETECTORS", "CONDITIONS", "DIAGNOSIS", "EXPLANATIONS", "Monitor", "ROW_DETECTORS", "Thresholds",
    "above_chance", "chance_levels", "detect_discriminator_overpowering", "detect_divergence", "detect_low_quality", "detect_mode_collapse", "detect_oscillation",
    "detect_vanishing_generator_gradient", "format_diagnosis", "remedies", "sample_statistics", "class_statistics", "summarize",
    "total_variation",
]
