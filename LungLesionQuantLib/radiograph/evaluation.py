"""Accuracy of the radiograph model on labelled radiographs, as Tang et al. 2020 (§4.1) ask:
an empty opacity mask has no defined Dice or IoU, so overlap is averaged over radiographs whose
reference shows opacity, and radiographs without opacity are scored by the share of the lung
the model calls opacity (false opacity %). Lung Dice is scored on every radiograph with a lung
mask; opacity % of lung (model vs reference) by MAE, bias and Pearson r.

Used by ``lunglesionquant evaluate --modality cxr`` and by the cross-validation of
:mod:`..training.radiographs`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import InputError
from ..labels import OPACITY
from ..measurement.overlap_metrics import Overlap, dice
from ..input.grey_levels import resize
from ..input.imageio import IMAGE_SUFFIXES, case_name
from .reading import read_radiograph


def score_radiograph(predicted: np.ndarray, lung: np.ndarray | None, opacity: np.ndarray | None) -> dict[str, float]:
    """Scores of one predicted 0/1/4 label map against reference masks (either may be None)."""
    if lung is not None and predicted.shape != lung.shape or opacity is not None and predicted.shape != opacity.shape:
        shape = (lung if lung is not None else opacity).shape
        predicted = resize(predicted[None, None].astype(np.float32), shape, nearest=True)[0, 0].astype(np.uint8)
    pred_lung, pred_opacity = predicted > 0, predicted == OPACITY
    row: dict[str, float] = {"predicted_opacity_pct": 100.0 * pred_opacity.sum() / pred_lung.sum() if pred_lung.any() else float("nan")}
    if lung is not None:
        row["lung_dice"] = dice(lung, pred_lung)
    if opacity is not None:
        row["reference_has_opacity"] = float(opacity.any())
        if opacity.any():
            o = Overlap.of(opacity, pred_opacity)
            row["opacity_dice"], row["opacity_iou"] = o.dice, o.iou
        else:
            row["false_opacity_pct"] = row["predicted_opacity_pct"] if pred_lung.any() else 0.0
        if lung is not None and lung.any():
            row["reference_opacity_pct"] = 100.0 * np.count_nonzero(opacity & lung) / np.count_nonzero(lung)
    return row


def summarise_radiographs(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per measure: mean ± SD, median, 90th percentile and n over the images it applies to."""
    rows = []

    def add(measure: str, values: pd.Series, applies_to: str) -> None:
        v = pd.to_numeric(values, errors="coerce").dropna()
        if len(v):
            rows.append({"measure": measure, "applies_to": applies_to, "n": len(v), "mean": v.mean(), "sd": v.std(ddof=1) if len(v) > 1 else 0.0,
                         "median": v.median(), "p90": v.quantile(0.9)})

    for column, applies in (("lung_dice", "radiographs with a lung mask"), ("opacity_dice", "radiographs with opacity"),
                            ("opacity_iou", "radiographs with opacity"), ("false_opacity_pct", "radiographs without opacity")):
        if column in per_image:
            add(column, per_image[column], applies)
    if "false_opacity_pct" in per_image:
        clean = per_image["false_opacity_pct"].dropna()
        add("any_false_opacity", (clean > 0).astype(float), "radiographs without opacity (share with any)")
    if {"predicted_opacity_pct", "reference_opacity_pct"} <= set(per_image):
        both = per_image[["predicted_opacity_pct", "reference_opacity_pct"]].dropna()
        diff = both.predicted_opacity_pct - both.reference_opacity_pct
        add("opacity_pct_abs_error", diff.abs(), "radiographs with both masks")
        add("opacity_pct_bias", diff, "radiographs with both masks")
        if len(both) > 2 and both.std().min() > 0:
            rows.append({"measure": "opacity_pct_pearson_r", "applies_to": "radiographs with both masks", "n": len(both),
                         "mean": float(np.corrcoef(both.predicted_opacity_pct, both.reference_opacity_pct)[0, 1])})
    return pd.DataFrame(rows)


@dataclass
class RadiographEvaluation:
    per_image: pd.DataFrame
    unmatched: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _mask(folder: Path | None, name: str) -> np.ndarray | None:
    if folder is None:
        return None
    matches = sorted(p for p in Path(folder).iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES) and case_name(p) == name)
    if not matches:
        raise FileNotFoundError(name)
    return np.asarray(Image.open(matches[0]).convert("L")) > 0


def evaluate_radiographs(images: Path, net, lung_masks: Path | None, opacity_masks: Path | None,
                         on_case: Callable[[str], None] | None = None) -> RadiographEvaluation:
    """Segment every radiograph of ``images`` with ``net`` and score it against the masks of the
    same name (any image suffix; non-zero = inside) in ``lung_masks`` and ``opacity_masks``."""
    if lung_masks is None and opacity_masks is None:
        raise InputError("no reference given; expected --lung-masks DIR and/or --opacity-masks DIR")
    for folder in (images, lung_masks, opacity_masks):
        if folder is not None and not Path(folder).is_dir():
            raise InputError(f"{folder}: not a folder; expected a folder of radiographs or masks with matching file names")
    rows, unmatched, failures = [], [], []
    for path in sorted(p for p in Path(images).iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES + (".dcm",))):
        name = case_name(path)
        if on_case:
            on_case(name)
        try:
            lung, opacity = _mask(lung_masks, name), _mask(opacity_masks, name)
        except FileNotFoundError:
            unmatched.append(f"{path.name}: no mask of that name")
            continue
        try:
            loaded = read_radiograph(path, net)
            predicted = net.labels(np.asarray(loaded.grey, np.float32))
        except Exception as exc:  # one bad radiograph must not end the evaluation; it is named
            failures.append(f"{path.name}: {str(exc).splitlines()[0][:200]}")
            continue
        rows.append({"case": name, **score_radiograph(predicted, lung, opacity)})
    return RadiographEvaluation(pd.DataFrame(rows), unmatched, failures)
