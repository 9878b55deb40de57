"""A SYNTHETIC cohort (not patients) drawn from Model C of Bartoli et al. 2022, Table 3.

For trying the risk study where no cohort with CTs is at hand, and for testing it against known
odds ratios. Every id starts with ``SYNTHETIC-`` and the files say SYNTHETIC in their names, so a
synthetic table is never taken for patients: ``risk fit`` marks its outputs SYNTHETIC from the ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..outputs.atomic import atomic_path
from .risk import EXTENT

ID_PREFIX = "SYNTHETIC-"
COVARIATES = ["AGE", "SEX", "HYPERTENSION", "DIABETES", "CANCER", "RESPIRATORY", "CARDIAC", "SYMPTOMS_GT7D"]

# Bartoli et al. 2022, Table 3, Model C (adjusted ORs); the extent's OR is per SD.
MODEL_C = {"SEX[M]": 1.00, "AGE[45-64]": 2.35, "AGE[>64]": 6.85, "HYPERTENSION": 1.94, "DIABETES": 0.97, "CANCER": 2.34,
           "RESPIRATORY": 0.99, "CARDIAC": 1.52, "SYMPTOMS_GT7D": 0.86, EXTENT: 3.86}
# Prevalences of the covariates (age bands 18-44 / 45-64 / > 64, men, comorbidities) and the
# intercept, which gives about the paper's 14 % with the outcome.
AGE_BAND_SHARES = (0.36, 0.468, 0.172)
PREVALENCE = {"HYPERTENSION": 0.205, "DIABETES": 0.118, "CANCER": 0.046, "RESPIRATORY": 0.119, "CARDIAC": 0.083, "SYMPTOMS_GT7D": 0.348}
INTERCEPT = -3.4


def synthetic_cohort(n: int, seed: int) -> pd.DataFrame:
    """``n`` SYNTHETIC patients: ID, the covariates, OUTCOME (0/1) and their lesion extent."""
    rng = np.random.default_rng(seed)
    age = rng.choice([30, 55, 72], size=n, p=AGE_BAND_SHARES) + rng.integers(-8, 8, n)
    frame = pd.DataFrame({"ID": [f"{ID_PREFIX}{i:05d}" for i in range(n)], "AGE": age,
                          "SEX": rng.choice(["F", "M"], n, p=[0.521, 0.479]),
                          **{c: rng.binomial(1, share, n) for c, share in PREVALENCE.items()}})
    extent = rng.gamma(0.8, 6.0, n)
    z = (extent - extent.mean()) / extent.std(ddof=1)
    eta = INTERCEPT + np.log(MODEL_C["SEX[M]"]) * (frame["SEX"] == "M") + np.log(MODEL_C[EXTENT]) * z
    eta += np.log(MODEL_C["AGE[45-64]"]) * ((age > 44) & (age <= 64)) + np.log(MODEL_C["AGE[>64]"]) * (age > 64)
    for c in PREVALENCE:
        eta += np.log(MODEL_C[c]) * frame[c]
    frame["OUTCOME"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    frame[EXTENT] = extent
    return frame


def write_synthetic(frame: pd.DataFrame, folder: Path, measured: int | None = None) -> tuple[Path, Path]:
    """The SYNTHETIC cohort as ``risk fit`` reads a real one: ``SYNTHETIC_cohort.csv`` without the
    extent, and ``SYNTHETIC_segment/measurements.csv`` as ``segment`` writes it, holding the
    extents of the first ``measured`` ids (all by default). Returns (cohort CSV, segment folder)."""
    folder = Path(folder)
    segment = folder / "SYNTHETIC_segment"
    segment.mkdir(parents=True, exist_ok=True)
    rows = frame.iloc[:measured] if measured else frame
    cohort = folder / "SYNTHETIC_cohort.csv"
    for path, table in ((segment / "measurements.csv", rows[["ID", EXTENT]].rename(columns={"ID": "case"})),
                        (cohort, frame.drop(columns=[EXTENT]))):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return cohort, segment


def is_synthetic(ids: pd.Series) -> bool:
    """Whether every id is one this module made."""
    return bool(len(ids)) and bool(ids.astype(str).str.startswith(ID_PREFIX).all())
