"""Cross-validated accuracy of the lesion and type stages on the 50 radiologist-labelled slices.

Each fold's held-out slices go through the product's own ONNX cascade with that fold's
lesion and type models (the lung model never saw these slices). Two settings:
``cascade`` — the full cascade, lung stage included; ``given-lung`` — the slice itself as
the lung region (isolates the lesion stages). Dice is per slice; a label empty in both the
reference and the prediction is reported both ways: skipped, and counted as Dice 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from sklearn.model_selection import KFold

from ..cascade import DEFAULT_MODEL_DIR, Cascade
from ..labels import CONS, GGO
from ..overlap import label_dice
from ..preprocessing import grey8_to_hu
from .datasets import load_semiseg_train

N_FOLDS = 5
MEASURES = {"GGO": (GGO,), "Cons": (CONS,), "lesion": (GGO, CONS)}


def slice_dice(reference: np.ndarray, predicted: np.ndarray, labels: tuple[int, ...]) -> float | None:
    """Dice of one label group on a slice (:func:`overlap.label_dice`); None when empty in both."""
    dice = label_dice(np.isin(reference, labels), np.isin(predicted, labels))
    return None if np.isnan(dice) else dice


def summarise(values: list[float | None]) -> dict:
    """Mean ± SD over slices with empty-in-both skipped, and with it counted as 1."""
    defined = [v for v in values if v is not None]
    as_one = [1.0 if v is None else v for v in values]
    return {"mean": float(np.mean(defined)) if defined else None, "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else None,
            "n": len(defined), "empty_both": len(values) - len(defined),
            "mean_empty_as_1": float(np.mean(as_one)), "sd_empty_as_1": float(np.std(as_one, ddof=1))}


def _save_slice(labels: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(labels.astype(np.uint8)[None])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def evaluate(data: Path, fold_dir: Path, model_dir: Path, export: Path | None = None) -> dict:
    """CV Dice per setting and label. ``export`` receives the reference and the held-out
    predictions as 1-slice label maps (lesions only: the reference has no lung labels), ready
    for ``lunglesionquant agreement``."""
    _, native = load_semiseg_train(data, size=192)
    folds = KFold(N_FOLDS, shuffle=True, random_state=0)
    per_setting: dict[str, dict[str, list]] = {s: {m: [] for m in MEASURES} for s in ("cascade", "given-lung")}
    fold_means: dict[str, dict[str, list]] = {s: {m: [] for m in MEASURES} for s in per_setting}
    for k, (_train, test) in enumerate(folds.split(np.arange(len(native)))):
        cascade = Cascade(model_dir, device="cpu", overrides={"lesion": fold_dir / f"fold{k}" / "lesion.onnx",
                                                                  "type": fold_dir / f"fold{k}" / "type.onnx"})
        fold_values: dict[str, dict[str, list]] = {s: {m: [] for m in MEASURES} for s in per_setting}
        for i in test:
            grey, reference = native[i]
            hu = grey8_to_hu(grey)[None]
            reference = np.where(reference == 1, GGO, np.where(reference == 2, CONS, 0))
            for setting in per_setting:
                lung = np.ones(hu.shape, bool) if setting == "given-lung" else None
                predicted = cascade.segment(hu, lung=lung)[0]
                if export is not None:
                    _save_slice(np.where(predicted >= GGO, predicted, 0), export / f"cv_{setting}" / f"slice{i:02d}.nii.gz")
                    _save_slice(reference, export / "reference" / f"slice{i:02d}.nii.gz")
                for name, values in MEASURES.items():
                    d = slice_dice(reference, predicted, values)
                    per_setting[setting][name].append(d)
                    fold_values[setting][name].append(d)
        for setting, measures in fold_values.items():
            for name, values in measures.items():
                fold_means[setting][name].append(summarise(values)["mean"])
    return {setting: {name: {**summarise(values), "fold_means": fold_means[setting][name]} for name, values in measures.items()}
            for setting, measures in per_setting.items()}


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.crossval", description=__doc__)
    parser.add_argument("--data", type=Path, default=repo.parent / "shared" / "data")
    parser.add_argument("--folds", type=Path, default=repo / ".train_cache" / "cv")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_MODEL_DIR / "crossval.json")
    parser.add_argument("--export", type=Path, default=None, help="write reference and CV predictions as label maps here")
    args = parser.parse_args(argv)
    result = evaluate(args.data, args.folds, args.models, args.export)
    args.output.write_text(json.dumps(result, indent=2))
    for setting, measures in result.items():
        for name, s in measures.items():
            spread = ", ".join(f"{v:.3f}" for v in s["fold_means"] if v is not None)
            print(f"{setting:10s} {name:6s} Dice {s['mean']:.3f} ± {s['sd']:.3f} (n={s['n']}, {s['empty_both']} empty in both; "
                  f"empty-as-1: {s['mean_empty_as_1']:.3f} ± {s['sd_empty_as_1']:.3f}) folds [{spread}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
