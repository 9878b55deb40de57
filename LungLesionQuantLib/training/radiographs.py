"""Train and cross-validate the radiograph network (lung fields and opacity) on COVID-QU-Ex.

``python -m LungLesionQuantLib.training.radiographs train`` trains five fold models (5-fold
cross-validation, folds stratified by class: COVID-19 / Non-COVID / Normal; two rounds, see
:data:`FIRST_ROUND`) and exports their
ensemble — the mean of their softmax probabilities, one ONNX graph — as the bundled
``Resources/Models/radiograph.onnx``. ``… evaluate`` scores each fold's held-out radiographs
through the product's own inference (:mod:`LungLesionQuantLib.radiograph.segment`) the way
Tang et al. 2020 (§4.1) ask empty masks to be treated: overlap metrics on radiographs with
opacity, the false-opacity share on radiographs without.

Labels: the dataset's lung mask (1) and infection mask (2: ground glass and consolidation
together; every infection pixel lies in the lung mask). Non-COVID and Normal radiographs have
empty infection masks and teach the network what no COVID-19 opacity looks like.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.model_selection import StratifiedKFold

from ..input.grey_levels import to_unit
from ..radiograph.preprocessing import PREPROCESSING_ID, SIZE
from ..radiograph.segment import OPACITY_THRESHOLD
from .augment import AugmentConfig
from .network import build_unet, export_onnx
from .train import Log, Pool, Run, StageSpec, train_all

N_FOLDS = 5
CLASSES = ("COVID-19", "Non-COVID", "Normal")
REPO = Path(__file__).resolve().parents[2]
DATASET = "cxr_covid_qu_ex"


# The bundled recipe trains in two rounds of one-cycle learning rate: 2000 steps from scratch,
# then 2500 more from those weights at half the peak rate (cross-validated opacity Dice of fold 0
# after the first round: 0.597; the loss was still falling).
FIRST_ROUND = (2000, 2e-3)
SECOND_ROUND = (2500, 1e-3)


def radiograph_spec(scale: float = 1.0, second_round: bool = False) -> StageSpec:
    """The recipe: 3 classes (background / lung / opacity), Dice + focal loss (Tang et al. 2020),
    upright-only augmentation with milder geometry than CT slices (radiographs are framed alike)."""
    steps, lr = SECOND_ROUND if second_round else FIRST_ROUND
    return StageSpec("radiograph", 1, ["background", "lung", "opacity"], [0.5, 1.0, 1.5], max(20, int(steps * scale)),
                     augment=AugmentConfig(zoom=(0.85, 1.15), rotate_deg=10.0, shift=0.06, window_shift=0.06,
                                           window_scale=(0.8, 1.25), gamma=(0.6, 1.6), noise_std=0.03, dihedral=(0, 1)),
                     lr=lr, preprocessing=PREPROCESSING_ID, loss="dice-focal", cpu_bf16=True)


@dataclass
class Radiographs:
    """The dataset: grey levels as published, network inputs in [0, 1], labels 0/1/2, names, classes."""

    greys: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    classes: list[str]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def read_radiographs(data: Path) -> Radiographs:
    """Every radiograph of ``data/cxr_covid_qu_ex`` with its lung and infection masks."""
    greys, labels, names, classes = [], [], [], []
    for cls in CLASSES:
        folder = data / DATASET / cls
        for path in sorted((folder / "images").glob("*.png")):
            grey = _png(path)
            if grey.shape != (SIZE, SIZE):
                raise ValueError(f"{path}: {grey.shape[1]}x{grey.shape[0]} pixels, expected {SIZE}x{SIZE} as published")
            label = (_png(folder / "lung masks" / path.name) > 127).astype(np.uint8)
            label[_png(folder / "infection masks" / path.name) > 127] = 2
            greys.append(grey)
            labels.append(label)
            names.append(f"{cls}/{path.name}")
            classes.append(cls)
    return Radiographs(np.stack(greys), np.stack([to_unit(g) for g in greys]), np.stack(labels), names, classes)


def folds(data: Radiographs) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 5 (train, test) index splits, stratified by class, fixed by seed."""
    splitter = StratifiedKFold(N_FOLDS, shuffle=True, random_state=0)
    return list(splitter.split(np.zeros(len(data.classes)), data.classes))


class Ensemble(torch.nn.Module):
    """Several fold networks as one: log of their mean softmax, so ``softmax(output)`` is the
    mean probability and the graph keeps the ``logits`` interface of every bundled model."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(image), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-7))


def export_ensemble(fold_dir: Path, out: Path, spec: StageSpec, record: dict) -> None:
    """Bundle the fold models of ``fold_dir`` as one ONNX model at ``out``."""
    members = []
    for k in range(N_FOLDS):
        model = build_unet(spec.in_channels, len(spec.classes))
        model.load_state_dict(torch.load(fold_dir / f"fold{k}" / "radiograph.pt", weights_only=True))
        members.append(model.eval())
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(Ensemble(members), out, spec.in_channels, SIZE,
                {"llq_stage": spec.name, "llq_classes": spec.classes, "llq_input_size": SIZE,
                 "llq_preprocessing": spec.preprocessing, "llq_members": N_FOLDS})
    out.with_suffix(".train.json").write_text(json.dumps(record, indent=2))


def train(data_dir: Path, work: Path, models: Path, scale: float, threads: int, jobs: int) -> None:
    """Train the fold models in both rounds (skipping finished runs: an interrupted training
    goes on where it stopped) and export the bundled ensemble of the second round's models."""
    log = Log(work / "radiograph_train.log")
    data = read_radiographs(data_dir)
    log(f"radiographs: {len(data.names)} ({', '.join(f'{c} {data.classes.count(c)}' for c in CLASSES)})")
    for round_dir, second in (("cv_round1", False), ("cv", True)):
        runs = []
        for k, (train_idx, _test) in enumerate(folds(data)):
            out = work / round_dir / f"fold{k}" / "radiograph.onnx"
            init = work / "cv_round1" / f"fold{k}" / "radiograph.pt" if second else None
            if not out.with_suffix(".pt").exists():
                runs.append(Run(radiograph_spec(scale, second), [Pool(data.images[train_idx], data.labels[train_idx], 1.0)], out,
                                seed=k + 1 + 10 * second, init=init))
        train_all(runs, log, jobs, threads)
    records, first = ([json.loads((work / d / f"fold{k}" / "radiograph.train.json").read_text()) for k in range(N_FOLDS)]
                      for d in ("cv", "cv_round1"))
    export_ensemble(work / "cv", models / "radiograph.onnx", radiograph_spec(scale, True), {"members": records, "first_round_members": first, "folds": N_FOLDS,
                                                                   "stratified_by": list(CLASSES), "dataset": DATASET})
    log("radiograph training done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.radiographs", description=__doc__)
    parser.add_argument("action", choices=["train", "evaluate"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / ".train_cache" / "radiograph")
    parser.add_argument("--models", type=Path, default=REPO / "Resources" / "Models")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the steps (e.g. 0.02 for a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1, help="fold models trained at once (on a GPU)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="evaluate: the CV summary JSON")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[OPACITY_THRESHOLD],
                        help="evaluate: opacity thresholds to compare (the product's is always among them)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.action == "train":
        train(args.data, args.work, args.models, args.steps_scale, args.threads, args.jobs)
        return 0
    from .radiograph_cv import evaluate_folds
    summary = evaluate_folds(read_radiographs(args.data), folds, args.work / "cv", tuple(sorted({*args.thresholds, OPACITY_THRESHOLD})))
    output = args.output or args.models / "radiograph.crossval.json"
    output.write_text(json.dumps(summary, indent=2))
    print(pd.DataFrame(summary["table"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
