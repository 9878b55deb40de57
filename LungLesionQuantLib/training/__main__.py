"""Rebuild every bundled model from ``../shared/data``: ``python -m LungLesionQuantLib.training``.

Trains the lung model on all data; then the final lesion and type models on all data and
(unless ``--no-cv``) the 5-fold models of the lesion and type stages on the 50 labelled
slices, which ``crossval`` evaluates through the product's own inference cascade. The lesion
stages are framed by the lung model in ``--models``. Uses a GPU when present (``--jobs 12``
trains the twelve lesion-stage runs at once there).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

from ..segmentation.cascade import Cascade
from .pools import LESION_SHARES, LesionData, lung_pools
from .train import Log, Run, stage_specs, train_all

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
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each training run")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (on a GPU; keep 1 on a small CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.work / "train.log")

    specs = stage_specs(args.steps_scale)
    if "lung" in args.stages:
        pools = lung_pools(args.data)
        log(f"lung data: {sum(len(p.images) for p in pools)} slices in {len(pools)} pools")
        train_all([Run(specs["lung"], pools, args.models / "lung.onnx")], log, 1, args.threads)
    lesion_stages = [s for s in ("lesion", "type") if s in args.stages]
    if not lesion_stages:
        log("training done")
        return 0

    lesion_data = LesionData.load(args.data, Cascade(args.models, device="cpu", threads=args.threads).lung_mask,
                                  pseudo=LESION_SHARES["pseudo_share"] > 0)
    log(f"data: {lesion_data.n_semiseg} GGO/Cons slices, {len(lesion_data.infection[0].images)} infection slices, each framed 2 ways")
    all_idx = np.arange(lesion_data.n_semiseg)
    runs = [Run(specs[stage], lesion_data.pools(stage, all_idx), args.models / f"{stage}.onnx") for stage in lesion_stages]
    if not args.no_cv:
        folds = KFold(N_FOLDS, shuffle=True, random_state=0)
        runs += [Run(specs[stage], lesion_data.pools(stage, train_idx), args.work / "cv" / f"fold{k}" / f"{stage}.onnx", seed=k + 1)
                 for k, (train_idx, _test_idx) in enumerate(folds.split(all_idx)) for stage in lesion_stages]
    train_all(runs, log, args.jobs, args.threads)
    log("training done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
