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


def bootstrap_auc(y: np.ndarray, score: np.ndarray, seed: int, n: int = 2000) -> tuple[float, float, float]:
    """AUC and a percentile-bootstrap 95 % CI, resampling cases and controls separately.

    Each resample is held as counts (how often each case and control was drawn), so all of them
    are scored at once: a case's share of controls below it (ties ½) is a cumulative sum of the
    control counts in score order. scikit-learn gives the same AUC per resample, but its input
    checks cost ~11 ms a call: 70 s for the 6,000 resamples of one risk fit, against 0.1 s here.
    """
    y, score = np.asarray(y, dtype=int), np.asarray(score, dtype=float)
    cases, controls = score[y == 1], np.sort(score[y == 0])
    m, k = cases.size, controls.size
    below = np.searchsorted(controls, cases, side="left")
    upto = np.searchsorted(controls, cases, side="right")
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for start in range(0, n, 250):  # blocks bound the memory to 250 × (cases + controls) counts
        size = min(250, n - start)
        case_counts = _counts(rng.integers(0, m, (size, m)), m)
        control_counts = np.zeros((size, k + 1))
        control_counts[:, 1:] = np.cumsum(_counts(rng.integers(0, k, (size, k)), k), axis=1)
        wins = control_counts[:, below] + 0.5 * (control_counts[:, upto] - control_counts[:, below])
        samples[start:start + size] = (case_counts * wins).sum(axis=1) / (m * k)
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return _structural_components(y, score)[0], float(lo), float(hi)


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """Per row of draws (indices into 0..size-1), how often each index was drawn."""
    rows = np.repeat(np.arange(draws.shape[0]), draws.shape[1])
    return np.bincount(rows * size + draws.ravel(), minlength=draws.shape[0] * size).reshape(draws.shape[0], size).astype(float)
