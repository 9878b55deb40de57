"""Harrell's bootstrap internal validation: how much of a model's apparent C-statistic and
calibration comes from having been fitted (and selected) on the same patients.

Harrell, Lee & Mark, Stat Med 1996 (the method of rms::validate). The whole modelling strategy
(coding, stepwise selection when asked, the fit) is repeated in each bootstrap sample; the
sample's model is scored on the sample (apparent) and on the original data (test); optimism is
the mean of apparent − test over the replicates, and the corrected figure is the original
apparent one minus it. The calibration slope of a logistic fit on its own data is 1 by its
score equations, so the corrected slope is the mean test slope. Not in statsmodels or
scikit-learn; the resampling here is reproduced by hand in the tests: replicate b takes rows
``rng.integers(0, n, n)`` of ``numpy.random.default_rng(seed)``, in order.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score

from ..errors import InputError

BOOTSTRAPS = 200
METHOD = ("Harrell's bootstrap optimism correction on the training split (Harrell, Lee & Mark 1996): the whole strategy, "
          "coding and any stepwise selection included, refitted in each of {n} bootstrap samples (seed {seed}); "
          "corrected = apparent − mean(bootstrap apparent − bootstrap model on the training split)")

# develop(sample) -> {model name: linear predictor of any frame, from the model fitted on that sample}
Develop = Callable[[pd.DataFrame], dict[str, Callable[[pd.DataFrame], np.ndarray]]]


def calibration_slope(y: np.ndarray, linear_predictor: np.ndarray) -> float:
    """Slope of the logistic recalibration of ``y`` on the linear predictor (1: well spread)."""
    return float(sm.GLM(y, sm.add_constant(linear_predictor, has_constant="add"), family=sm.families.Binomial()).fit().params[1])


def optimism_corrected(frame: pd.DataFrame, outcome: str, develop: Develop, bootstraps: int = BOOTSTRAPS, seed: int = 0) -> dict:
    """Per model: apparent C, mean optimism of C and of the calibration slope, corrected C and
    slope; plus the replicates used and those whose strategy could not be fitted (skipped)."""
    if bootstraps < 1:
        raise InputError(f"{bootstraps} bootstrap samples: expected 1 or more (or skip the internal validation)")
    y = frame[outcome].to_numpy(int)
    apparent = {name: float(roc_auc_score(y, lp(frame))) for name, lp in develop(frame).items()}
    c_optimism = {name: [] for name in apparent}
    test_slopes = {name: [] for name in apparent}
    rng = np.random.default_rng(seed)
    skipped = []
    for b in range(bootstraps):
        rows = rng.integers(0, len(frame), len(frame))
        sample, y_sample = frame.iloc[rows], y[rows]
        try:
            if y_sample.min() == y_sample.max():
                raise InputError("one outcome only")
            models = develop(sample)
        except InputError as exc:  # e.g. separation or a constant column in this sample
            skipped.append(f"replicate {b + 1}: {str(exc)[:120]}")
            continue
        for name, lp in models.items():
            on_original = lp(frame)
            c_optimism[name].append(roc_auc_score(y_sample, lp(sample)) - roc_auc_score(y, on_original))
            test_slopes[name].append(calibration_slope(y, on_original))
    used = bootstraps - len(skipped)
    if used == 0:
        raise InputError(f"none of the {bootstraps} bootstrap samples could be fitted (e.g. {skipped[0]})")
    models = {name: {"c_apparent": apparent[name], "c_optimism": float(np.mean(c_optimism[name])),
                     "c_corrected": apparent[name] - float(np.mean(c_optimism[name])),
                     "calibration_slope_optimism": 1.0 - float(np.mean(test_slopes[name])),
                     "calibration_slope_corrected": float(np.mean(test_slopes[name]))} for name in apparent}
    return {"method": METHOD.format(n=bootstraps, seed=seed), "bootstraps": bootstraps, "replicates_used": used,
            "replicates_skipped": skipped[:10], "models": models}
