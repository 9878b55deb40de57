"""Rebuild every bundled model from ``../shared/data``: ``python -m LungLesionQuantLib.training``.

Trains the final lung, lesion and type models on all data, then (unless ``--no-cv``) the
5-fold models of the lesion and type stages on the 50 labelled slices, and evaluates the
folds through the product's own inference cascade (``crossval``). Uses a GPU when present.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

from .datasets import load_lesion_labelled, load_lung_slices, load_semiseg_train
from .train import SIZE, Pool, stage_specs, train_stage

N_FOLDS = 5
REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training", description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--models", type=Path, default=REPO / "Resources" / "Models", help="where final models go")
    parser.add_argument("--work", type=Path, default=REPO / ".train_cache", help="fold models and logs")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps (e.g. 0.05 for a smoke run)")
    parser.add_argument("--stages", nargs="+", default=["lung", "lesion", "type"], choices=["lung", "lesion", "type"])
    parser.add_argument("--no-cv", action="store_true", help="train the final models only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    logfile = open(args.work / "train.log", "a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logfile.write(line + "\n")
        logfile.flush()

    specs = stage_specs(args.steps_scale)
    semiseg, _ = load_semiseg_train(args.data, SIZE)
    lesion_sets = load_lesion_labelled(args.data, SIZE) if "lesion" in args.stages else None
    log(f"data: {len(semiseg.images)} GGO/Cons slices" + (f", {len(lesion_sets.images)} infection slices" if lesion_sets else ""))

    def lesion_pools(idx: np.ndarray) -> list[Pool]:
        return [Pool(semiseg.images[idx], (semiseg.labels[idx] > 0).astype(np.uint8), 0.5),
                Pool(lesion_sets.images, lesion_sets.labels, 0.5)]

    def type_pools(idx: np.ndarray) -> list[Pool]:
        return [Pool(semiseg.images[idx], semiseg.labels[idx], 1.0)]

    all_idx = np.arange(len(semiseg.images))
    if "lung" in args.stages:
        lung = load_lung_slices(args.data, SIZE)
        groups = np.array(lung.groups)
        pools = [Pool(lung.images[groups == g], lung.labels[groups == g], share) for g, share in
                 (("dicom/ricord_1a_000082", 0.45), ("dicom/lung_pet_ct_dx_A0001", 0.3))]
        ny = ~np.isin(groups, ["dicom/ricord_1a_000082", "dicom/lung_pet_ct_dx_A0001"])
        pools.append(Pool(lung.images[ny], lung.labels[ny], 0.25))
        log(f"lung data: {len(lung.images)} slices")
        train_stage(specs["lung"], pools, args.models / "lung.onnx", log=log)
    if "lesion" in args.stages:
        train_stage(specs["lesion"], lesion_pools(all_idx), args.models / "lesion.onnx", log=log)
    if "type" in args.stages:
        train_stage(specs["type"], type_pools(all_idx), args.models / "type.onnx", log=log)
    if not args.no_cv:
        folds = KFold(N_FOLDS, shuffle=True, random_state=0)
        for k, (train_idx, _test_idx) in enumerate(folds.split(all_idx)):
            if "lesion" in args.stages:
                train_stage(specs["lesion"], lesion_pools(train_idx), args.work / "cv" / f"fold{k}" / "lesion.onnx", seed=k + 1, log=log)
            if "type" in args.stages:
                train_stage(specs["type"], type_pools(train_idx), args.work / "cv" / f"fold{k}" / "type.onnx", seed=k + 1, log=log)
    log("training done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
