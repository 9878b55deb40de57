"""Comparing two C-statistics measured on the same patients: DeLong's test for paired ROC curves.

DeLong, DeLong & Clarke-Pearson, Biometrics 1988 — the standard in the CT-prognosis literature
for "model C discriminates better than model A" — in the midrank form of Sun & Xu (IEEE Signal
Processing Letters 2014). No well-kept Python library provides it (scikit-learn and statsmodels
do not), so it lives here, cross-checked against a paired bootstrap in the tests.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _structural_components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components V10 (one per case) and V01 (one per control)."""
    cases, controls = score[y == 1], score[y == 0]
    m, n = cases.size, controls.size
    ranks = stats.rankdata(np.concatenate([cases, controls]))
    v10 = (ranks[:m] - stats.rankdata(cases)) / n
    v01 = 1.0 - (ranks[m:] - stats.rankdata(controls)) / m
    return float(v10.mean()), v10, v01


def delong_paired(y, first, second) -> dict:
    """DeLong's test of AUC(second) − AUC(first) for two scores of the same patients: the two
    AUCs, the difference with its 95 % CI, z and the two-sided p-value."""
    y = np.asarray(y, dtype=int)
    if y.min() == y.max():
        raise ValueError("DeLong's test needs patients with and without the outcome")
    auc1, v10_1, v01_1 = _structural_components(y, np.asarray(first, dtype=float))
    auc2, v10_2, v01_2 = _structural_components(y, np.asarray(second, dtype=float))
    s10 = np.cov(np.vstack([v10_1, v10_2]))
    s01 = np.cov(np.vstack([v01_1, v01_2]))
    cov = s10 / v10_1.size + s01 / v01_1.size
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    difference = auc2 - auc1
    se = np.sqrt(max(variance, 0.0))
    z = difference / se if se > 0 else 0.0
    return {"auc_first": auc1, "auc_second": auc2, "difference": difference,
            "ci": [difference - 1.959964 * se, difference + 1.959964 * se], "z": float(z),
            "p": float(2 * stats.norm.sf(abs(z))) if se > 0 else 1.0}
