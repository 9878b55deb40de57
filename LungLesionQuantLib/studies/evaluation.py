"""Accuracy of the cascade on labelled images: ``lunglesionquant evaluate``.

Each image (a 2D PNG/JPG slice, a volume file or a DICOM folder) is segmented by the
product's own cascade and compared with the reference label file of the same case name.
Reference label values differ between sources, so their coding is named (:data:`CODINGS`);
only the labels a coding carries are scored.

Per axial slice and label: Dice, sensitivity and specificity. A label empty in both masks of
a slice has no defined Dice (Tang et al. 2020), so the summary shows it both ways: (a) such
slices skipped and counted, (b) such slices counted as Dice 1 (the convention that rewards
finding nothing where there is nothing, e.g. no lung in abdominal slices). Per case: volume
(and extent, where the reference labels the lung) of each label, with MAE and bias
(prediction − reference) by :func:`agreement.paired_statistics`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import SimpleITK as sitk
from PIL import Image

from .agreement import paired_statistics
from ..outputs.atomic import atomic_path
from ..segmentation.cascade import Cascade
from ..errors import InputError
from ..input.imageio import SLICE_IMAGE_SUFFIXES, case_name, read_ct, to_lps
from ..input.imageio import SEGMENTATION_SUFFIX
from ..input.labelmaps import case_files, read_seg_nrrd
from ..labels import CONS, GGO, LUNG_NORMAL
from ..measurement.overlap_metrics import Overlap, dice
from .overlap import LABEL_GROUPS, on_reference_grid
from ..pipeline import case_inputs
from ..input.grey_window import GreyWindow
from ..measurement.quantify import measure_labels

# The whole lung (references label lung, not normal lung), then the lesion groups of :mod:`.overlap`.
GROUPS = {"lung": (LUNG_NORMAL, GGO, CONS)} | {name: v for name, v in LABEL_GROUPS.items() if name != "LungN"}
EMPTY_RULES = ("(a) slices where the label is empty in both masks are skipped (their number is shown)",
               "(b) such slices count as Dice 1")


@dataclass(frozen=True)
class Coding:
    """How a reference's values map onto LungLesionQuant labels, and which labels it carries."""

    description: str
    values: dict[int, int] | None  # None: any non-zero value is ``nonzero``
    groups: tuple[str, ...]
    nonzero: int = 0


CODINGS = {
    "ggo-cons": Coding("0 background, 1 GGO, 2 Cons (COVID-SemiSeg palette PNGs)", {1: GGO, 2: CONS}, ("GGO", "Cons", "lesion")),
    "llq": Coding("0 background, 1 LungN, 2 GGO, 3 Cons (lunglesionquant labels)", {1: LUNG_NORMAL, 2: GGO, 3: CONS},
                  ("lung", "GGO", "Cons", "lesion")),
    "lung": Coding("any non-zero value is lung (lung masks; left/right labels merged)", None, ("lung",), LUNG_NORMAL),
    "lesion": Coding("any non-zero value is lesion (infection masks)", None, ("lesion",), GGO),
}


def auto_coding(path: Path) -> str:
    """The coding a reference file most likely has: PNG slices as published with the GGO/Cons
    slices, everything else as this tool writes it."""
    return "ggo-cons" if path.name.lower().endswith(SLICE_IMAGE_SUFFIXES) else "llq"


def reference_files(folder: Path) -> dict[str, Path]:
    """Reference label files by case name: PNG slices, label volumes, ``.seg.nrrd`` files and
    case folders in the layout ``segment`` writes."""
    files = case_files(folder)
    files.update({case_name(p): p for p in sorted(Path(folder).iterdir()) if p.name.lower().endswith(".png")})
    return files


def read_reference(path: Path, coding: str, ct: sitk.Image) -> sitk.Image:
    """The reference as a 0/1/2/3 label image; a 2D slice takes the CT slice's geometry."""
    if path.name.lower().endswith(SEGMENTATION_SUFFIX):
        if coding != "llq":
            raise InputError(f"{path}: a .seg.nrrd holds named segments; expected --reference-coding llq (or auto), not {coding}")
        return read_seg_nrrd(path)[0]
    if path.name.lower().endswith(SLICE_IMAGE_SUFFIXES):
        raw = np.asarray(Image.open(path))
        if raw.ndim != 2:
            raise InputError(f"{path}: found an image with {raw.shape[-1]} colour channels; expected a single-channel label image")
        expected = ct.GetSize()[:2][::-1]
        if raw.shape != expected:
            raise InputError(f"{path}: found labels of {raw.shape[1]}x{raw.shape[0]} pixels; expected {expected[1]}x{expected[0]} like its image")
        image = sitk.GetImageFromArray(raw[None].astype(np.uint8))
        image.CopyInformation(ct)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError:
            raise InputError(f"{path}: could not be read; expected a label image") from None
    out = sitk.GetImageFromArray(apply_coding(sitk.GetArrayFromImage(image), coding, str(path)))
    out.CopyInformation(image)
    return out


def apply_coding(raw: np.ndarray, coding: str, source: str = "reference") -> np.ndarray:
    """Reference values → LungLesionQuant labels (uint8) under ``coding``; unknown values are refused."""
    spec = CODINGS[coding]
    if spec.values is None:
        return np.where(raw != 0, spec.nonzero, 0).astype(np.uint8)
    found = set(np.unique(raw).tolist()) - {0}
    if not found <= set(spec.values):
        raise InputError(f"{source}: found label values {sorted(found)[:8]}; expected {spec.description} "
                         f"(--reference-coding: {', '.join(CODINGS)})")
    lookup = np.zeros(max(spec.values) + 1, np.uint8)
    for value, label in spec.values.items():
        lookup[value] = label
    return lookup[raw]


def slice_metrics(reference: np.ndarray, predicted: np.ndarray, groups: tuple[str, ...]) -> list[dict]:
    """Per axial slice of (Z, Y, X) label arrays: Dice (NaN when empty in both), sensitivity
    (NaN without reference), specificity and pixel counts of each label group."""
    rows = []
    for z in range(reference.shape[0]):
        row: dict = {"slice": z}
        for group in groups:
            o = Overlap.of(np.isin(reference[z], GROUPS[group]), np.isin(predicted[z], GROUPS[group]))
            row.update({f"{group}_dice": o.dice, f"{group}_sensitivity": o.sensitivity, f"{group}_specificity": o.specificity,
                        f"{group}_ref_px": o.reference, f"{group}_pred_px": o.predicted})
        rows.append(row)
    return rows


def case_measures(reference: np.ndarray, predicted: np.ndarray, spacing_xyz: tuple[float, float, float],
                  groups: tuple[str, ...]) -> dict:
    """Volumes (cm³) of each label group on both sides (:func:`quantify.measure_labels`), extents
    (% of lung) when the lung is labelled, and the 3D Dice of each group."""
    row: dict = {}
    for side, labels in (("ref", reference), ("pred", predicted)):
        measures = measure_labels(labels, spacing_xyz)
        for group in groups:
            row[f"{side}_{group}_volume_cm3"] = measures[f"{group}_volume_cm3"]
            if "lung" in groups and group != "lung":
                row[f"{side}_{group}_extent_pct"] = measures[f"{group}_extent_pct"]
    for group in groups:
        row[f"{group}_case_dice"] = dice(np.isin(reference, GROUPS[group]), np.isin(predicted, GROUPS[group]))
    return row


def score_case(reference: sitk.Image, predicted: sitk.Image, groups: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Per-slice metrics and per-case measures of one case (label images on one grid)."""
    ref_lps, pred_lps = to_lps(reference), to_lps(predicted)
    ref, pred = sitk.GetArrayFromImage(ref_lps), sitk.GetArrayFromImage(pred_lps)
    return slice_metrics(ref, pred, groups), {"slices": ref.shape[0], **case_measures(ref, pred, ref_lps.GetSpacing(), groups)}


@dataclass
class Evaluation:
    per_slice: pd.DataFrame
    per_case: pd.DataFrame
    groups: tuple[str, ...]
    codings: dict[str, str]
    failures: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    predictions: dict[str, sitk.Image] = field(default_factory=dict)


def evaluate(images: Path, labels: Path, cascade: Cascade, coding: str = "auto",
             on_case: Callable[[str], None] | None = None, window: GreyWindow | None = None) -> Evaluation:
    """Segment every image of ``images`` that has a reference in ``labels`` and score it;
    a broken case is recorded and the others go on (``window``: of 8-bit slices, when known)."""
    for folder in (images, labels):
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: not a folder; expected a folder of images and one of reference label files")
    references = reference_files(labels)
    inputs = {case_name(p): p for p in case_inputs(images)}
    unmatched = [f"{c}: no reference label file" for c in sorted(set(inputs) - set(references))]
    unmatched += [f"{c}: no image" for c in sorted(set(references) - set(inputs))]
    slice_rows, case_rows, failures, codings, predictions = [], [], [], {}, {}
    for case in sorted(set(inputs) & set(references)):
        if on_case:
            on_case(case)
        try:
            name = auto_coding(references[case]) if coding == "auto" else coding
            loaded = read_ct(inputs[case], window)
            reference = read_reference(references[case], name, loaded.image)
            predicted = on_reference_grid(reference, cascade.apply(loaded.image).labels, case)
        except Exception as exc:  # a broken case must not stop the evaluation; it is reported
            failures.append(f"{case}: {exc}".splitlines()[0])
            continue
        codings[case] = name
        predictions[case] = predicted
        slices, row = score_case(reference, predicted, CODINGS[name].groups)
        slice_rows += [{"case": case, **r} for r in slices]
        case_rows.append({"case": case, "coding": name, **row})
    per_case = pd.DataFrame(case_rows)
    groups = tuple(g for g in GROUPS if any(g in CODINGS[c].groups for c in codings.values()))
    return Evaluation(pd.DataFrame(slice_rows), per_case, groups, codings, failures, unmatched, predictions)


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    return (float(values.mean()) if len(values) else np.nan, float(values.std(ddof=1)) if len(values) > 1 else np.nan)


def summarise(result: Evaluation) -> pd.DataFrame:
    """One row per label: Dice under both empty rules, sensitivity, specificity, 3D Dice per
    case, and volume / extent agreement (MAE, bias, SD, p, r, ICC)."""
    rows = []
    for group in result.groups:
        column = f"{group}_dice"
        if column not in result.per_slice:
            continue
        scored = result.per_slice[result.per_slice[f"{group}_ref_px"].notna()]  # slices of cases whose coding has the label
        dice = scored[column].to_numpy(float)
        empty_both = int(np.isnan(dice).sum())
        row = {"label": group, "slices": len(dice), "empty_both": empty_both}
        row["dice_mean"], row["dice_sd"] = _mean_sd(dice)
        row["dice_empty_as_1_mean"], row["dice_empty_as_1_sd"] = _mean_sd(np.where(np.isnan(dice), 1.0, dice))
        row["sensitivity_mean"], row["sensitivity_sd"] = _mean_sd(scored[f"{group}_sensitivity"].to_numpy(float))
        row["specificity_mean"], row["specificity_sd"] = _mean_sd(scored[f"{group}_specificity"].to_numpy(float))
        row["case_dice_mean"], row["case_dice_sd"] = _mean_sd(result.per_case[f"{group}_case_dice"].to_numpy(float))
        for kind in ("volume_cm3", "extent_pct"):
            ref, pred = f"ref_{group}_{kind}", f"pred_{group}_{kind}"
            if ref in result.per_case:
                stats = paired_statistics(result.per_case[ref].to_numpy(float), result.per_case[pred].to_numpy(float))
                row.update({f"{kind}_{k}": stats[k] for k in ("n", "mae", "mae_sd", "bias", "bias_sd", "p", "p_test", "pearson_r", "icc")})
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame, result: Evaluation) -> str:
    """The printed report: what was compared, the empty rule, then one block per label."""
    def pm(mean: float, sd: float, digits: int = 3) -> str:
        return "n/a" if np.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}" if not np.isnan(sd) else f"{mean:.{digits}f}"

    n_slices = len(result.per_slice)
    codings = sorted(set(result.codings.values()))
    lines = [f"{len(result.per_case)} cases, {n_slices} slices; references coded as: "
             + "; ".join(f"{c} = {CODINGS[c].description}" for c in codings),
             "Dice per slice, mean ± SD. A label empty in both masks of a slice: " + "; ".join(EMPTY_RULES) + "."]
    if (result.per_case["slices"] == 1).any():
        lines.append("Single slices (e.g. PNG/JPG) carry no spacing: 1 mm pixels and 1 mm thickness are assumed, "
                     "so their volumes are areas in cm² / 10.")
    for r in summary.itertuples():
        lines.append(f"{r.label:7s} Dice (a) {pm(r.dice_mean, r.dice_sd)} over {r.slices - r.empty_both} slices ({r.empty_both} empty in both)"
                     f" | (b) {pm(r.dice_empty_as_1_mean, r.dice_empty_as_1_sd)} over {r.slices}"
                     f" | sensitivity {pm(r.sensitivity_mean, r.sensitivity_sd)} | specificity {pm(r.specificity_mean, r.specificity_sd, 4)}"
                     + (f" | per-case 3D Dice {pm(r.case_dice_mean, r.case_dice_sd)}" if n_slices > len(result.per_case) else ""))
        for kind, unit in (("volume_cm3", "cm³"), ("extent_pct", "%")):
            if f"{kind}_mae" in summary.columns and not pd.isna(getattr(r, f"{kind}_mae")):
                p = getattr(r, f"{kind}_p")
                lines.append(f"        {kind.split('_')[0]}: MAE {pm(getattr(r, f'{kind}_mae'), getattr(r, f'{kind}_mae_sd'), 2)} {unit}, "
                             f"bias (prediction − reference) {pm(getattr(r, f'{kind}_bias'), getattr(r, f'{kind}_bias_sd'), 2)} {unit}"
                             + ("" if pd.isna(p) else f", p = {p:.3g} ({getattr(r, f'{kind}_p_test')})")
                             + f", r = {getattr(r, f'{kind}_pearson_r'):.3f}, n = {getattr(r, f'{kind}_n')}")
    return "\n".join(lines)


def write_evaluation(result: Evaluation, summary: pd.DataFrame, report: str, out: Path) -> None:
    """per_slice.csv, per_case.csv, summary.csv, report.txt and each case's predicted labels."""
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("per_slice.csv", result.per_slice), ("per_case.csv", result.per_case), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    notes = [report] + [f"Failed: {f}" for f in result.failures] + [f"Unmatched: {u}" for u in result.unmatched]
    with atomic_path(out / "report.txt") as tmp:
        tmp.write_text("\n".join(notes) + "\n")
    (out / "predictions").mkdir(exist_ok=True)
    for case, image in result.predictions.items():
        with atomic_path(out / "predictions" / f"{case}.nii.gz") as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=True)
