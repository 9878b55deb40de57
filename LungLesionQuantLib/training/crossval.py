"""Cross-validated accuracy of the lesion and type stages on the 50 radiologist-labelled slices.

Each fold's held-out slices go through the product's own ONNX cascade with that fold's
lesion and type models (the lung model never saw these slices) and are scored by
:mod:`..evaluation`, as ``lunglesionquant evaluate`` scores them. Two settings:
``cascade`` — the full cascade, lung stage included; ``given-lung`` — the slice itself as
the lung region (isolates the lesion stages). Dice is per slice; a label empty in both the
reference and the prediction is reported both ways: skipped, and counted as Dice 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import SimpleITK as sitk
from sklearn.model_selection import KFold

from ..segmentation.cascade import DEFAULT_MODEL_DIR, HU_PRIOR_WEIGHT, TTA_FLIPS, Cascade
from ..studies.evaluation import CODINGS, Evaluation, apply_coding, score_case, summarise
from ..input.grey_window import grey8_to_hu
from .datasets import read_semiseg_train

N_FOLDS = 5
SETTINGS = ("cascade", "given-lung")
CODING = "ggo-cons"
FLIP_CHOICES = {"none": (), "x": (-1,), "xy": (-1, -2)}


def _slice_image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(array)[None])
    image.SetSpacing((1.0, 1.0, 1.0))  # as imageio reads an 8-bit slice
    return image


def fold_stages(fold_dir: Path) -> Callable[[int], dict[str, Path]]:
    """The lesion and type models of each fold in ``fold_dir`` (``fold<k>/<stage>.onnx``)."""
    return lambda k: {stage: fold_dir / f"fold{k}" / f"{stage}.onnx" for stage in ("lesion", "type")}


def evaluate(data: Path, fold_dir: Path, model_dir: Path, flips: tuple[int, ...] = TTA_FLIPS,
             hu_prior_weight: float = HU_PRIOR_WEIGHT, export: Path | None = None,
             models_of: Callable[[int], dict[str, Path]] | None = None, folds: tuple[int, ...] = tuple(range(N_FOLDS))) -> dict:
    """CV summary per setting and label (:func:`evaluation.summarise` rows, plus per-fold means).

    ``models_of``: fold → the stage files that replace the bundled ones (default: the fold's
    lesion and type stages in ``fold_dir``; the teacher replaces the lesion stage alone);
    ``folds``: the folds scored (all five by default). ``export`` receives the reference and
    the held-out predictions as 1-slice label maps (lesions only: the reference has no lung
    labels), ready for ``lunglesionquant agreement``.
    """
    models_of = models_of or fold_stages(fold_dir)
    _, native = read_semiseg_train(data)
    rows: dict[str, tuple[list, list]] = {s: ([], []) for s in SETTINGS}
    for k, (_train, test) in enumerate(KFold(N_FOLDS, shuffle=True, random_state=0).split(np.arange(len(native)))):
        if k not in folds:
            continue
        cascade = Cascade(model_dir, device="cpu", flips=flips, hu_prior_weight=hu_prior_weight, overrides=models_of(k))
        for i in test:
            grey, raw = native[i]
            hu = grey8_to_hu(grey)[None]
            reference = _slice_image(apply_coding(raw, CODING, f"slice {i}"))
            for setting in SETTINGS:
                lung = np.ones(hu.shape, bool) if setting == "given-lung" else None
                predicted = cascade.segment(hu, lung=lung)
                predicted = _slice_image(np.where(predicted[0] >= 2, predicted[0], 0).astype(np.uint8))
                slices, case_row = score_case(reference, predicted, CODINGS[CODING].groups)
                rows[setting][0].extend({"case": f"slice{i:02d}", "fold": k, **r} for r in slices)
                rows[setting][1].append({"case": f"slice{i:02d}", "fold": k, **case_row})
                if export is not None:
                    for folder, image in ((f"cv_{setting}", predicted), ("reference", reference)):
                        (export / folder).mkdir(parents=True, exist_ok=True)
                        sitk.WriteImage(image, str(export / folder / f"slice{i:02d}.nii.gz"), useCompression=True)
    result = {}
    for setting, (slice_rows, case_rows) in rows.items():
        per_slice, per_case = pd.DataFrame(slice_rows), pd.DataFrame(case_rows)
        groups = CODINGS[CODING].groups
        summary = summarise(Evaluation(per_slice, per_case, groups, {}))
        by_fold = [summarise(Evaluation(per_slice[per_slice.fold == k], per_case[per_case.fold == k], groups, {}))
                   for k in folds]
        result[setting] = {}
        for r in summary.itertuples():
            result[setting][r.label] = {
                "mean": r.dice_mean, "sd": r.dice_sd, "n": r.slices - r.empty_both, "empty_both": r.empty_both,
                "mean_empty_as_1": r.dice_empty_as_1_mean, "sd_empty_as_1": r.dice_empty_as_1_sd,
                "sensitivity": r.sensitivity_mean, "specificity": r.specificity_mean,
                "area_mae_cm2": r.volume_cm3_mae * 10, "area_bias_cm2": r.volume_cm3_bias * 10,
                "fold_means": [float(f.set_index("label").loc[r.label, "dice_mean"]) for f in by_fold]}
    return {"flips": list(flips), "hu_prior_weight": hu_prior_weight, "settings": result}


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.crossval", description=__doc__)
    parser.add_argument("--data", type=Path, default=repo.parent / "shared" / "data")
    parser.add_argument("--folds", type=Path, default=repo / ".train_cache" / "cv")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--flips", choices=list(FLIP_CHOICES), default=next(k for k, v in FLIP_CHOICES.items() if v == TTA_FLIPS),
                        help="test-time mirroring of the lesion and type stages (default: the product's)")
    parser.add_argument("--hu-prior-weight", type=float, default=HU_PRIOR_WEIGHT,
                        help="weight of the attenuation prior in GGO vs Cons (default: the product's; 0: network only)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_MODEL_DIR / "crossval.json")
    parser.add_argument("--export", type=Path, default=None, help="write reference and CV predictions as label maps here")
    args = parser.parse_args(argv)
    result = evaluate(args.data, args.folds, args.models, FLIP_CHOICES[args.flips], args.hu_prior_weight, args.export)
    args.output.write_text(json.dumps(result, indent=2))
    for setting, measures in result["settings"].items():
        for name, s in measures.items():
            spread = ", ".join(f"{v:.3f}" for v in s["fold_means"])
            print(f"{setting:10s} {name:6s} Dice {s['mean']:.3f} ± {s['sd']:.3f} (n={s['n']}, {s['empty_both']} empty in both; "
                  f"empty-as-1: {s['mean_empty_as_1']:.3f} ± {s['sd_empty_as_1']:.3f}) sens {s['sensitivity']:.3f} "
                  f"spec {s['specificity']:.4f} folds [{spread}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
