"""What a fold of the teacher and student runs holds out, and its score through the product.

Fold K holds out the K-th of the 5 slice folds of the 50 GGO/Cons slices (as :mod:`.crossval`
splits them) and the patients of patient fold K mod 3 (as :mod:`.patient_cv` splits them).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

from ..segmentation.cascade import DEFAULT_MODEL_DIR
from .crossval import N_FOLDS as N_SLICE_FOLDS
from .crossval import evaluate as crossval_evaluate
from .patient_cv import FOLDS as PATIENT_FOLDS
from .patient_cv import score_folds

REPO = Path(__file__).resolve().parents[2]


def fold_arg(value: str) -> int | None:
    """``--fold``: 0-4, or 'all' (None: train on everything, score nothing)."""
    if value == "all":
        return None
    if value not in {str(k) for k in range(N_SLICE_FOLDS)}:
        raise argparse.ArgumentTypeError(f"a fold is 0-{N_SLICE_FOLDS - 1} or 'all', not {value!r}")
    return int(value)


def fold_dir(root: Path, fold: int | None) -> Path:
    """A fold's folder under ``root`` (``fold<K>``, or ``all``), created."""
    work = root / (f"fold{fold}" if fold is not None else "all")
    work.mkdir(parents=True, exist_ok=True)
    return work


def fold_split(n_semiseg: int, fold: int | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The GGO/Cons slices fold ``fold`` trains on and the patients it holds out (None: all, none)."""
    idx = np.arange(n_semiseg)
    if fold is None:
        return idx, ()
    return list(KFold(N_SLICE_FOLDS, shuffle=True, random_state=0).split(idx))[fold][0], PATIENT_FOLDS[fold % len(PATIENT_FOLDS)]


def held_out_slices(n_semiseg: int, fold: int | None) -> np.ndarray:
    """The GGO/Cons slices fold ``fold`` holds out."""
    return np.setdiff1d(np.arange(n_semiseg), fold_split(n_semiseg, fold)[0])


def evaluate_models(data: Path, models: dict[str, Path], fold: int, lung: str = "bundled") -> dict:
    """``models`` in place of the bundled stages of the product's cascade, on fold ``fold``'s
    held-out GGO/Cons slices (:func:`.crossval.evaluate`) and held-out patients
    (:func:`.patient_cv.score_folds`). ``lung``: the lung stage framing the patients — the bundled
    one (it saw their slices) or ``training.patient_cv``'s fold model (trained without them)."""
    slices = crossval_evaluate(data, REPO / ".train_cache", DEFAULT_MODEL_DIR, models_of=lambda k: models, folds=(fold,))
    patient_fold = fold % len(PATIENT_FOLDS)
    lung_model = {} if lung == "bundled" else {"lung": REPO / ".train_cache" / "patient_cv" / f"fold{patient_fold}" / "lung.onnx"}
    patients = score_folds(data, lambda k: {**models, **lung_model}, folds=(patient_fold,))
    given = slices["settings"]["cascade"]
    summary = {name: round(given[name]["mean"], 4) for name in ("GGO", "Cons", "lesion")}
    summary.update(patient_dice=round(patients["patient_dice_mean"], 4),
                   false_lit=f"{patients['lesion_free_slices_with_false_lesion']}/{patients['lesion_free_slices']}")
    return {"fold": fold, "lung": lung, "models": {k: str(v) for k, v in models.items()}, "summary": summary,
            "slices": slices, "patients": patients}
