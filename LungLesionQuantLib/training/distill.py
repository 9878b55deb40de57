"""The student: the cascade's fast type stage trained on the teacher's GGO/Cons labels where no
person drew them (issue 23, steps 2 and 3).

The type stage learned GGO against Cons from 50 slices alone. The teacher (:mod:`.teacher`, a
10 M-weight one-stage network) labels, at its own input size and averaged with its mirror image:

- ``split``: the infection slices of the training patients (both framings) — the radiologists'
  infection mask kept as drawn, each of its pixels called GGO or Cons by the teacher;
- ``unlabelled``: the 481 Radiopaedia slices and the lung slices of the COVID-19 CT volume,
  cropped to the lungs — GGO / Cons / background as the teacher calls them, inside the lungs
  the lung stage finds.

The lesion stage keeps its own recipe: through the product the teacher found less of the
radiologists' infection than the lesion stage does (fold 0's patients, Dice 0.49 against 0.62 at
step 2075), so only its GGO/Cons split is taught. A fold's student learns from its fold's teacher
and never from the fold's held-out slices or patients; ``evaluate`` scores it through the
product beside the fold's ``baseline`` type stage (the same recipe without the teacher's sets),
both behind the fold's lesion stage:

    python -m LungLesionQuantLib.training.distill label --fold 0      # the fold's teacher must be trained
    python -m LungLesionQuantLib.training.distill train --fold 0 --variant baseline
    python -m LungLesionQuantLib.training.distill train --fold 0 --variant student
    python -m LungLesionQuantLib.training.distill evaluate --fold 0 --variant student
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..segmentation.cascade import DEFAULT_MODEL_DIR, Cascade
from ..segmentation.preprocessing import unit_to_hu
from .datasets import NativeSlices, SliceSet, ct_volume_slices, frame_slices, read_radiopaedia_unlabelled
from .pools import LesionData
from .held_out import REPO, evaluate_models, fold_arg, fold_dir, fold_split
from .teacher import build_teacher, predict
from .train import LESION_SIZE, Log, Pool, stage_specs, train_stage

# Shares of each student type-stage batch taken by the teacher-labelled sets (the rest: the 50 GGO/Cons slices).
STUDENT_SHARES = {"split": 0.3, "unlabelled": 0.2}
VARIANTS = ("baseline", "student")


@dataclass
class TeacherLabels:
    """The teacher-labelled slice sets (0 background, 1 GGO, 2 Cons) at the student's input size."""

    split: list[SliceSet]
    unlabelled: list[SliceSet]

    def save(self, path: Path) -> None:
        arrays = {f"{kind}{i}_{part}": getattr(s, part) for kind in ("split", "unlabelled")
                  for i, s in enumerate(getattr(self, kind)) for part in ("images", "labels")}
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TeacherLabels":
        with np.load(path) as z:
            def sets(kind: str) -> list[SliceSet]:
                n = sum(1 for k in z.files if k.startswith(kind) and k.endswith("_images"))
                return [SliceSet(z[f"{kind}{i}_images"], z[f"{kind}{i}_labels"], [], []) for i in range(n)]
            return cls(sets("split"), sets("unlabelled"))


def teacher_probabilities(model: torch.nn.Module, images: np.ndarray, teacher_size: int) -> np.ndarray:
    """(N, 3, S, S) softmax of (N, S, S) unit slices: each resized to the teacher's input, scored
    with its mirror image (averaged), and the probabilities resized back to S."""
    size = images.shape[-1]
    x = F.interpolate(torch.from_numpy(images)[:, None].float(), size=teacher_size, mode="bilinear", align_corners=False)[:, 0].numpy()
    probs = (predict(model, x) + predict(model, x[..., ::-1].copy())[..., ::-1]) / 2
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(probs)), size=size, mode="bilinear", align_corners=False).numpy()


def _with_lungs(native: NativeSlices, find_lung) -> NativeSlices:
    """The slices with the lung stage's lungs as their labels (per volume, as the cascade runs)."""
    lungs: list[np.ndarray] = [None] * len(native.units)  # type: ignore[list-item]
    volumes = [(g, u.shape) for g, u in zip(native.groups, native.units)]  # a patient's slices may differ in size
    for volume in dict.fromkeys(volumes):
        idx = [i for i, v in enumerate(volumes) if v == volume]
        for i, lung in zip(idx, find_lung(unit_to_hu(np.stack([native.units[i] for i in idx])))):
            lungs[i] = lung.astype(np.uint8)
    return NativeSlices(native.units, lungs, native.names, native.groups)


def label(model: torch.nn.Module, teacher_size: int, data: Path, fold: int | None, log: Log, size: int = LESION_SIZE) -> TeacherLabels:
    """The teacher's labels on every set the fold may learn from (module docstring)."""
    find_lung = Cascade(DEFAULT_MODEL_DIR, device="cpu").lung_mask
    lesion = LesionData.load(data, find_lung, size=size)
    _, held_patients = fold_split(lesion.n_semiseg, fold)
    keep = ~np.isin(lesion.infection[0].groups, held_patients)
    split = []
    for s in lesion.infection:
        probs = teacher_probabilities(model, s.images[keep], teacher_size)
        cons = probs[:, 2] > probs[:, 1]
        split.append(SliceSet(s.images[keep], np.where(s.labels[keep] > 0, 1 + cons, 0).astype(np.uint8), [], []))
    log(f"teacher split {int(keep.sum())} infection slices x {len(split)} framings")
    unlabelled = []
    for native in (read_radiopaedia_unlabelled(data), ct_volume_slices(data, find_lung)):
        framed = frame_slices(_with_lungs(native, find_lung), size, find_lung)
        labels = teacher_probabilities(model, framed.images, teacher_size).argmax(axis=1).astype(np.uint8)
        labels[framed.labels == 0] = 0  # lesion only inside the lungs the lung stage finds
        unlabelled.append(SliceSet(framed.images, labels, [], []))
        log(f"teacher labelled {len(labels)} slices: {np.bincount(labels.ravel(), minlength=3)[1:].tolist()} GGO/Cons px")
    return TeacherLabels(split, unlabelled)


def type_pools(lesion: LesionData, taught: TeacherLabels | None, semiseg_idx: np.ndarray) -> list[Pool]:
    """The type stage's pools (:meth:`.pools.LesionData.pools`), scaled to leave the teacher-labelled
    sets their :data:`STUDENT_SHARES` (``taught`` None: the baseline, real slices alone)."""
    real = lesion.pools("type", semiseg_idx)
    if taught is None:
        return real
    total = sum(p.share for p in real)
    pools = [Pool(p.images, p.labels, p.share / total * (1 - sum(STUDENT_SHARES.values()))) for p in real]
    for kind, share in STUDENT_SHARES.items():
        sets = getattr(taught, kind)
        pools += [Pool(s.images, s.labels, share / len(sets)) for s in sets]
    return pools


def train(data: Path, work: Path, fold: int | None, variant: str, steps_scale: float, log: Log) -> None:
    """The fold's lesion stage (the bundled recipe; once) and ``variant``'s type stage (the student
    from the fold's teacher labels in ``work/labels.npz``)."""
    lesion = LesionData.load(data, Cascade(DEFAULT_MODEL_DIR, device="cpu").lung_mask)
    idx, held_patients = fold_split(lesion.n_semiseg, fold)
    specs = stage_specs(steps_scale)
    seed = (fold or 0) + 1
    if not (work / "lesion.onnx").exists():
        train_stage(specs["lesion"], lesion.pools("lesion", idx, frozenset(held_patients)), work / "lesion.onnx", seed=seed, log=log)
    taught = TeacherLabels.load(work / "labels.npz") if variant == "student" else None
    pools = type_pools(lesion, taught, idx)
    log(f"{variant} type stage: {sum(len(p.images) for p in pools)} slices in {len(pools)} pools")
    train_stage(specs["type"], pools, work / f"type_{variant}.onnx", seed=seed, log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["label", "train", "evaluate"])
    parser.add_argument("--variant", choices=VARIANTS, default="student", help="train / evaluate: the type stage with the "
                                                                              "teacher's labels, or without them")
    parser.add_argument("--fold", type=fold_arg, default=0, help="0-4: the fold's teacher labels, its student never sees the fold; "
                                                    "'all': the shipped student (labelled by --teacher-fold's teacher)")
    parser.add_argument("--teacher-fold", type=fold_arg, default=None, help="with --fold all: whose teacher labels, 0-4 or 'all' (default: --fold's)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / ".train_cache" / "distill")
    parser.add_argument("--teachers", type=Path, default=REPO / ".train_cache" / "teacher")
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    fold = args.fold
    teacher_fold = fold if args.teacher_fold is None else args.teacher_fold
    if fold is not None and teacher_fold != fold:
        parser.error(f"fold {fold}'s student learns from fold {fold}'s teacher only (any other saw its held-out slices)")
    torch.set_num_threads(args.threads)
    work = fold_dir(args.work, fold)
    log = Log(work / "distill.log")
    if args.command == "label":
        teacher_dir = fold_dir(args.teachers, teacher_fold)
        if not (teacher_dir / "checkpoint.pt").exists():
            parser.error(f"{teacher_dir / 'checkpoint.pt'} does not exist: train that teacher first")
        state = torch.load(teacher_dir / "checkpoint.pt", weights_only=False)
        model = build_teacher()
        model.load_state_dict(state["ema"])
        log(f"labelling with the teacher of {teacher_dir} at step {state['step']}/{state['recipe']['steps']}")
        label(model, state.get("size", 384), args.data, fold, log).save(work / "labels.npz")
        (work / "teacher.json").write_text(json.dumps({"teacher": str(teacher_dir), "step": state["step"]}))
        return 0
    if args.command == "train":
        train(args.data, work, fold, args.variant, args.steps_scale, log)
        return 0
    if fold is None:
        parser.error("evaluate scores a held-out fold: give --fold 0-4")
    result = evaluate_models(args.data, {"lesion": work / "lesion.onnx", "type": work / f"type_{args.variant}.onnx"}, fold)
    result["teacher"] = json.loads((work / "teacher.json").read_text())
    (work / f"evaluation_{args.variant}.json").write_text(json.dumps(result, indent=2))
    log(f"{args.variant} fold {fold} through the product: {json.dumps(result['summary'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
