"""Patient-wise cross-validation on the 677 infection slices of 6 Coronacases patients.

The slice-wise CV of :mod:`.crossval` scores GGO/Cons on 50 slices without patient ids; this
one answers what a user's unseen patient gets: each fold holds out two whole patients, retrains
the lung stage without their slices (it learns from them otherwise) and the lesion stage
without them, then runs their slices through the product exactly as ``lunglesionquant
evaluate`` does: each slice an upright 8-bit PNG as published, its window estimated from the
slice itself. Lesion Dice per slice and per patient (all its slices pooled), and how many
lesion-free slices show more than 50 pixels of lesion.

    python -m LungLesionQuantLib.training.patient_cv train --variant bundled
    python -m LungLesionQuantLib.training.patient_cv evaluate --variant bundled -o Resources/Models/patient_cv.json
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..segmentation.cascade import DEFAULT_MODEL_DIR, Cascade
from ..studies.evaluation import evaluate as evaluate_folder
from .datasets import upright
from .pools import LESION_SHARES, LesionData, lung_pools
from .train import Log, stage_specs, train_stage

# Two patients held out a fold, balanced by slice count (214 / 242 / 221 slices).
FOLDS = (("coronacases_001", "coronacases_009"), ("coronacases_002", "coronacases_005"),
         ("coronacases_006", "coronacases_008"))
FALSE_LESION_PX = 50
# The shares of each lesion-stage batch in each variant (:data:`pools.LESION_SHARES`; the rest of
# a batch is GGO/Cons slices).
VARIANTS = {"bundled": LESION_SHARES, "no-infection": {"infection_share": 0.0, "pseudo_share": 0.0},
            "pseudo-labels": {"infection_share": 0.4, "pseudo_share": 0.2}}
REPO = Path(__file__).resolve().parents[2]


def train(data: Path, work: Path, variant: str, steps_scale: float, log: Log) -> None:
    """Each fold's lung model (shared by every variant; trained once) and ``variant``'s lesion model."""
    specs = stage_specs(steps_scale)
    for k, held in enumerate(FOLDS):
        held_out = frozenset(held)
        lung = work / f"fold{k}" / "lung.onnx"
        if not lung.exists():
            train_stage(specs["lung"], lung_pools(data, held_out), lung, seed=k + 1, log=log)
        lesion_data = LesionData.load(data, Cascade(DEFAULT_MODEL_DIR, device="cpu", overrides={"lung": lung}).lung_mask,
                                      pseudo=VARIANTS[variant]["pseudo_share"] > 0)
        pools = lesion_data.pools("lesion", np.arange(lesion_data.n_semiseg), held_out, **VARIANTS[variant])
        train_stage(specs["lesion"], pools, work / variant / f"fold{k}" / "lesion.onnx", seed=k + 1, log=log)


def _write_patient(data: Path, patient: str, folder: Path) -> None:
    """The patient's slices as a user has them: upright 8-bit PNGs, references 0/255 beside them."""
    with open(data / "lesion_labelled" / "slices.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["volume"] == patient]
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
    for row in rows:
        stem = Path(row["jpg"]).stem
        for sub, suffix in (("images", ".jpg"), ("labels", ".png")):
            pixels = upright(np.asarray(Image.open(data / "lesion_labelled" / sub / f"{stem}{suffix}").convert("L")))
            Image.fromarray(pixels).save(folder / sub / f"{stem}.png")


def evaluate(data: Path, work: Path, variant: str) -> dict:
    """Held-out scores of ``variant`` per patient and over all six (per-slice and per-patient Dice)."""
    return {"variant": variant, "recipe": VARIANTS[variant], "folds": [list(f) for f in FOLDS],
            **score_folds(data, lambda k: {"lung": work / f"fold{k}" / "lung.onnx", "lesion": work / variant / f"fold{k}" / "lesion.onnx"})}


def score_folds(data: Path, models_of: Callable[[int], dict[str, Path]], folds: tuple[int, ...] = tuple(range(len(FOLDS)))) -> dict:
    """Each fold's held-out patients through the product with ``models_of(fold)`` in place of
    the bundled stages: :func:`patient_scores` over them."""
    slices = []
    for k in folds:
        cascade = Cascade(DEFAULT_MODEL_DIR, device="cpu", overrides=models_of(k))
        for patient in FOLDS[k]:
            with tempfile.TemporaryDirectory() as tmp:
                _write_patient(data, patient, Path(tmp))
                result = evaluate_folder(Path(tmp) / "images", Path(tmp) / "labels", cascade, "lesion")
            if result.failures:
                raise RuntimeError(f"{patient}: {result.failures[0]}")
            slices.append(result.per_slice.assign(patient=patient, fold=k))
    return patient_scores(pd.concat(slices, ignore_index=True))


def patient_scores(table: pd.DataFrame) -> dict:
    """Per-slice rows (:func:`..studies.evaluation.slice_metrics`, with ``patient``) → lesion Dice
    per patient (its slices pooled) and per slice, and the lesion-free slices showing lesion."""
    # Pixels both masks call lesion, recovered from each slice's Dice and pixel counts.
    overlap = (table.lesion_dice.fillna(0) * (table.lesion_ref_px + table.lesion_pred_px) / 2).round()
    table = table.assign(overlap_px=overlap, false_lesion=(table.lesion_ref_px == 0) & (table.lesion_pred_px > FALSE_LESION_PX))
    per_patient = {}
    for patient, t in table.groupby("patient"):
        per_patient[str(patient)] = {
            "slices": len(t), "patient_dice": float(2 * t.overlap_px.sum() / (t.lesion_ref_px.sum() + t.lesion_pred_px.sum())),
            "slice_dice_mean": float(t.lesion_dice.mean()), "lesion_free_slices": int((t.lesion_ref_px == 0).sum()),
            "lesion_free_slices_with_false_lesion": int(t.false_lesion.sum()),
            "lesion_px_bias_per_slice": float((t.lesion_pred_px.sum() - t.lesion_ref_px.sum()) / len(t))}
    return {"patient_dice_mean": float(np.mean([p["patient_dice"] for p in per_patient.values()])),
            "slice_dice_mean": float(table.lesion_dice.mean()), "slices_scored": int(table.lesion_dice.notna().sum()),
            "lesion_free_slices": int((table.lesion_ref_px == 0).sum()),
            "lesion_free_slices_with_false_lesion": int(table.false_lesion.sum()), "patients": per_patient}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.patient_cv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--variant", choices=list(VARIANTS), default="bundled")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / ".train_cache" / "patient_cv")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps (e.g. 0.05 for a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="where evaluate writes its JSON (default: WORK/VARIANT.json; the model cards read "
                             "Resources/Models/patient_cv.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "train":
        train(args.data, args.work, args.variant, args.steps_scale, Log(args.work / "train.log"))
        return 0
    result = evaluate(args.data, args.work, args.variant)
    (args.output or args.work / f"{args.variant}.json").write_text(json.dumps(result, indent=2))
    print(f"{args.variant}: patient lesion Dice {result['patient_dice_mean']:.3f} (per slice {result['slice_dice_mean']:.3f}, "
          f"{result['slices_scored']} slices); lesion-free slices with > {FALSE_LESION_PX} px lesion: "
          f"{result['lesion_free_slices_with_false_lesion']} of {result['lesion_free_slices']}")
    for patient, p in result["patients"].items():
        print(f"  {patient}: patient Dice {p['patient_dice']:.3f}, per slice {p['slice_dice_mean']:.3f}, "
              f"false lesion on {p['lesion_free_slices_with_false_lesion']} of {p['lesion_free_slices']} lesion-free slices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
