"""The teacher: one wide network (background / GGO / Cons) trained for hours on the CPU with every
signal the data has, to label GGO and Cons where no person did (issue 23).

The cascade's lesion and type stages are light (0.7 M weights at 288 px) so that a CT takes
seconds; a wider one-stage network at full slice resolution was ahead of them on held-out
slices in a first calibration (Cons 0.41 against 0.33). This one learns from:

- the 50 GGO/Cons slices: a 3-class loss (Dice + cross-entropy, class weights 0.5 / 1 / 1.5);
- the 677 infection slices of 6 patients: a 2-class loss on p(GGO) + p(Cons) against the
  radiologists' infection mask (no GGO/Cons split there, but where lesion is and is not);
- the lung slices of a CT without pneumonia (:func:`.datasets.no_pneumonia_slices`): the same
  loss against "no lesion", so vessels, bronchi and the diaphragm's partial volume are not lesion;
- unlabelled slices — the 481 Radiopaedia slices and the lung slices of the COVID-19 CT
  volume — by mean-teacher consistency (Tarvainen and Valpola 2017): an exponential moving
  average of the network labels one intensity view of a slice, the network learns to agree
  on another view of the same geometry. The real CTs are in HU, the 8-bit slices in many
  export windows: agreement across windows is what the product needs on an unseen scanner.

Every slice comes framed both ways the cascade frames it (whole, and cropped to the lungs).
A run holds out one fold (``--fold K``: the K-th of the 5 slice folds of the 50 GGO/Cons
slices and the patients of patient fold K mod 3, as :mod:`.crossval` and :mod:`.patient_cv`
split them) and logs the held-out Dice every ``--eval-every`` steps; ``--fold all`` trains on
everything. It writes a checkpoint every 15 minutes and continues from it with ``--resume``:

    nohup python -m LungLesionQuantLib.training.teacher train --fold 0 --resume > /dev/null 2>&1 &

The held-out figures logged here are measured at network resolution on the lung crops that
the bundled lung stage finds (which saw the held-out patients' slices: a framing-only leak);
the figures reported in the model card come from the product's own path.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from monai.networks.nets import UNet
from ..measurement.overlap_metrics import dice
from ..segmentation.cascade import DEFAULT_MODEL_DIR, Cascade
from .augment import AugmentConfig, geometric, intensity, random_patch
from .datasets import IGNORE, SliceSet, ct_volume_slices, frame_slices, no_pneumonia_slices, read_radiopaedia_unlabelled
from .network import export_onnx
from .held_out import REPO, evaluate_models, fold_arg, fold_dir, fold_split, held_out_slices
from .pools import LesionData
from .train import Log, Pool, _batch, cpu_bf16_pays

SIZE = 384
CLASSES = ["background", "GGO", "Cons"]
CHECKPOINT_SECONDS = 15 * 60
# The slices without pneumonia, against each framing of the infection slices (1.0 each).
NEGATIVE_SHARE = 0.3
# Window and contrast augmentation wider than the cascade's: the 8-bit exports differ.
TEACHER_AUGMENT = AugmentConfig(window_shift=0.12, window_scale=(0.7, 1.45), gamma=(0.5, 1.8), noise_std=0.05)


def build_teacher() -> torch.nn.Module:
    """MONAI ``UNet``, six levels 32…512 channels, two residual units a level (≈ 10 M weights).

    The first convolution already strides: full-resolution layers dominate a CPU step, and the
    weights sit where they are cheap (a batch of ten 256-px patches: about 3 s a step on two AVX2 cores).
    """
    return UNet(spatial_dims=2, in_channels=1, out_channels=len(CLASSES), channels=(32, 64, 128, 256, 512, 512),
                strides=(2, 2, 2, 2, 2), num_res_units=2)


@dataclass
class Recipe:
    """What the teacher's batches hold and how long it learns."""

    steps: int = 4000
    lr: float = 1e-3
    patch: int = 256
    ggo_cons_batch: int = 4
    infection_batch: int = 4
    unlabelled_batch: int = 2
    ce_weight: tuple[float, float, float] = (0.5, 1.0, 1.5)
    consistency: float = 1.0
    consistency_ramp: int = 800
    ema_decay: float = 0.995
    augment: AugmentConfig = field(default_factory=lambda: TEACHER_AUGMENT)

    def scaled(self, scale: float) -> "Recipe":
        return Recipe(**{**asdict(self), "augment": self.augment, "steps": max(4, int(self.steps * scale)),
                         "consistency_ramp": max(1, int(self.consistency_ramp * scale))})


@dataclass
class TeacherData:
    """The teacher's pools and the held-out fold it is scored on."""

    ggo_cons: list[Pool]
    infection: list[Pool]
    unlabelled: list[Pool]
    held_ggo_cons: SliceSet | None
    held_infection: SliceSet | None

    @classmethod
    def load(cls, data: Path, fold: int | None, log: Log, size: int = SIZE) -> "TeacherData":
        find_lung = Cascade(DEFAULT_MODEL_DIR, device="cpu").lung_mask
        lesion = LesionData.load(data, find_lung, size=size)
        idx, held_patients = fold_split(lesion.n_semiseg, fold)
        held_idx = held_out_slices(lesion.n_semiseg, fold)
        ggo_cons = [Pool(s.images[idx], s.labels[idx], 1.0) for s in lesion.semiseg]
        keep = ~np.isin(lesion.infection[0].groups, held_patients)
        infection = [Pool(s.images[keep], s.labels[keep], 1.0) for s in lesion.infection]
        negatives = frame_slices(no_pneumonia_slices(data, find_lung), size, find_lung)
        infection.append(Pool(negatives.images, negatives.labels, NEGATIVE_SHARE))
        radiopaedia = read_radiopaedia_unlabelled(data)
        volumes = ct_volume_slices(data, find_lung)
        unlabelled = [Pool(s.images, s.labels, 1.0) for s in (frame_slices(radiopaedia, size), frame_slices(radiopaedia, size, find_lung),
                                                                frame_slices(volumes, size, find_lung))]
        crop = lesion.semiseg[1]
        held_gc = SliceSet(crop.images[held_idx], crop.labels[held_idx], [crop.names[i] for i in held_idx],
                           [crop.groups[i] for i in held_idx]) if held_idx.size else None
        inf = lesion.infection[1]
        rows = np.flatnonzero(~keep)
        held_inf = SliceSet(inf.images[rows], inf.labels[rows], [inf.names[i] for i in rows],
                            [inf.groups[i] for i in rows]) if rows.size else None
        log(f"teacher data (fold {fold}): {len(idx)} GGO/Cons slices, {int(keep.sum())} infection slices, "
            f"{len(negatives.images)} slices without pneumonia, "
            f"{sum(len(p.images) for p in unlabelled)} unlabelled framings; held out {held_idx.size} GGO/Cons slices, "
            f"patients {', '.join(held_patients) or 'none'} ({rows.size} slices)")
        return cls(ggo_cons, infection, unlabelled, held_gc, held_inf)


def _lesion_log_prob(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(background) and log p(GGO or Cons) of 3-class logits (B, 3, H, W)."""
    log_norm = torch.logsumexp(logits, dim=1)
    return logits[:, 0] - log_norm, torch.logsumexp(logits[:, 1:], dim=1) - log_norm


class TeacherLoss:
    """3-class loss on GGO/Cons slices, lesion-vs-background loss on every labelled slice
    (pixels labelled :data:`.datasets.IGNORE` left out)."""

    def __init__(self, ce_weight: tuple[float, float, float]) -> None:
        self.three = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, weight=torch.tensor(ce_weight))
        self.dice = DiceLoss(batch=True)

    def __call__(self, logits: torch.Tensor, label: torch.Tensor, n_ggo_cons: int) -> tuple[torch.Tensor, torch.Tensor]:
        three = self.three(logits[:n_ggo_cons], label[:n_ggo_cons])
        log_bg, log_lesion = _lesion_log_prob(logits)
        valid = (label[:, 0] != IGNORE).float()
        target = ((label[:, 0] > 0) & (label[:, 0] != IGNORE)).float()
        bce = -((target * log_lesion + (1 - target) * log_bg) * valid).sum() / valid.sum().clamp(min=1.0)
        binary = bce + self.dice((log_lesion.exp() * valid)[:, None], target[:, None])
        return three, binary


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)


def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """Softmax probabilities (N, 3, S, S) of (N, S, S) unit slices (bf16 autocast where it pays)."""
    out = []
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16_pays()):
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch]))[:, None].float()
            out.append(torch.softmax(model(x).float(), dim=1).numpy())
    return np.concatenate(out)


def held_out_scores(model: torch.nn.Module, data: TeacherData) -> dict:
    """Per-slice Dice of GGO, Cons and lesion on the held-out GGO/Cons slices (empty-in-both
    skipped), patient Dice and lesion-free slices with > 50 px of lesion on the held-out patients."""
    scores: dict = {}
    if data.held_ggo_cons is not None:
        probs = predict(model, data.held_ggo_cons.images)
        lesion = probs[:, 0] < 0.5
        cons = lesion & (probs[:, 2] > probs[:, 1])
        ref = data.held_ggo_cons.labels
        for name, pred, truth in (("GGO", lesion & ~cons, ref == 1), ("Cons", cons, ref == 2), ("lesion", lesion, ref > 0)):
            scores[name] = float(np.nanmean([dice(p, t) for p, t in zip(pred, truth)]))
    if data.held_infection is not None:
        lesion = predict(model, data.held_infection.images)[:, 0] < 0.5
        ref = data.held_infection.labels > 0
        groups = np.array(data.held_infection.groups)
        scores["patient_dice"] = float(np.mean([dice(lesion[groups == g], ref[groups == g]) for g in sorted(set(groups))]))
        empty = ~ref.any(axis=(1, 2))
        scores["false_lit"] = f"{int((lesion[empty].sum(axis=(1, 2)) > 50).sum())}/{int(empty.sum())}"
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(data: TeacherData, recipe: Recipe, work: Path, log: Log, resume: bool, eval_every: int, seed: int = 0) -> Path:
    """Train (or continue) the teacher in ``work``; returns the exported ONNX file (the EMA weights)."""
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "checkpoint.pt"
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, ema = build_teacher(), build_teacher()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.05)
    step, history = 0, []
    if checkpoint.exists():
        if not resume:
            raise SystemExit(f"{checkpoint} exists: continue it with --resume, or remove {work} to start again")
        state = torch.load(checkpoint, weights_only=False)
        if state["recipe"]["steps"] != recipe.steps:
            raise SystemExit(f"{checkpoint} was planned for {state['recipe']['steps']} steps, not {recipe.steps}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        step, history = state["step"], state["history"]
        log(f"resumed at step {step}/{recipe.steps}")

    def save() -> None:
        _atomic_save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                      "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step, "history": history,
                      "recipe": asdict(recipe), "size": int(data.ggo_cons[0].images.shape[-1])}, checkpoint)

    loss_fn = TeacherLoss(recipe.ce_weight)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16_pays())
    n_gc, n_inf, n_u = recipe.ggo_cons_batch, recipe.infection_batch, recipe.unlabelled_batch
    saved_at, start, losses = time.time(), time.time(), []
    while step < recipe.steps:
        model.train()
        parts = [_batch(pools, n, gen) for pools, n in ((data.ggo_cons, n_gc), (data.infection, n_inf), (data.unlabelled, n_u)) if n]
        image = torch.cat([p[0] for p in parts])
        label = torch.cat([p[1] for p in parts])
        image, label = geometric(image, label, recipe.augment, gen)
        image, label = random_patch(image, label, recipe.patch, gen)
        n_lab = n_gc + n_inf
        student_view = intensity(image, recipe.augment, gen)
        with autocast:
            logits = model(student_view).float()
        three, binary = loss_fn(logits[:n_lab], label[:n_lab], n_gc)
        loss = three + binary
        consistency = torch.zeros(())
        if n_u:
            with torch.no_grad(), autocast:
                target = torch.softmax(ema(intensity(image[n_lab:], recipe.augment, gen)).float(), dim=1)
            ramp = float(np.exp(-5.0 * (1.0 - min(1.0, step / recipe.consistency_ramp)) ** 2))
            consistency = F.mse_loss(torch.softmax(logits[n_lab:], dim=1), target)
            loss = loss + recipe.consistency * ramp * consistency
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        _ema_update(ema, model, min(recipe.ema_decay, (1.0 + step) / (10.0 + step)))
        losses.append((float(three.detach()), float(binary.detach()), float(consistency.detach())))
        if step % 50 == 0 or step == recipe.steps:
            m = np.mean(losses[-50:], axis=0)
            log(f"step {step}/{recipe.steps} loss 3-class {m[0]:.4f} lesion {m[1]:.4f} consistency {m[2]:.5f} "
                f"lr {sched.get_last_lr()[0]:.2e} {time.time() - start:.0f}s")
        if (eval_every and step % eval_every == 0) or step == recipe.steps:
            scores = held_out_scores(ema, data)
            if scores:
                history.append({"step": step, **scores})
                log(f"held out at step {step} (EMA): {json.dumps(scores)}")
        if time.time() - saved_at > CHECKPOINT_SECONDS or step == recipe.steps:
            save()
            saved_at = time.time()
    return export(work, log)


def export(work: Path, log: Log) -> Path:
    """The EMA weights of ``work``'s last checkpoint as ``teacher.onnx``, with its recipe, step and
    held-out history in ``teacher.train.json``: the end of a run, or a look at one still training
    (the running process is not disturbed; its own export at the end replaces this one)."""
    state = torch.load(work / "checkpoint.pt", weights_only=False)
    ema = build_teacher()
    ema.load_state_dict(state["ema"])
    size = state.get("size", SIZE)  # checkpoints written before the size was stored are at SIZE
    out = work / "teacher.onnx"
    export_onnx(ema.eval(), out, 1, size, {"llq_stage": "lesion", "llq_classes": CLASSES, "llq_input_size": size,
                                            "llq_preprocessing": "lung-window-unit-v1", "llq_one_stage": True})
    (work / "teacher.train.json").write_text(json.dumps({"recipe": state["recipe"], "steps": state["step"],
                                                          "history": state["history"],
                                                          "weights": sum(p.numel() for p in ema.parameters())}, indent=2))
    log(f"teacher at step {state['step']}/{state['recipe']['steps']} exported to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "export", "evaluate"],
                        help="export: the last checkpoint's EMA weights as teacher.onnx (a run still training is not "
                             "disturbed); evaluate: the fold's exported teacher through the product (its held-out GGO/Cons "
                             "slices, as training.crossval scores them, and its held-out patients, as training.patient_cv does)")
    parser.add_argument("--lung", choices=["bundled", "fold"], default="bundled",
                        help="evaluate: the lung stage framing the patients — the bundled one (it saw their slices) or "
                             "training.patient_cv's fold model (trained without them; it must exist)")
    parser.add_argument("--fold", type=fold_arg, default=0, help="0-4: hold out that fold and score it; 'all': train on everything")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / ".train_cache" / "teacher")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the steps (e.g. 0.001 for a smoke run)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--resume", action="store_true", help="continue from the fold's last checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fold = args.fold
    work = fold_dir(args.work, fold)
    log = Log(work / "train.log")
    if args.command == "export":
        if not (work / "checkpoint.pt").exists():
            parser.error(f"{work / 'checkpoint.pt'} does not exist: train the fold first")
        export(work, log)
        return 0
    if args.command == "evaluate":
        if fold is None:
            parser.error("evaluate scores a held-out fold: give --fold 0-4")
        result = evaluate_models(args.data, {"lesion": work / "teacher.onnx"}, fold, args.lung)
        result["teacher_step"] = json.loads((work / "teacher.train.json").read_text())["steps"]
        (work / f"evaluation_{args.lung}_lung.json").write_text(json.dumps(result, indent=2))
        log(f"teacher fold {fold} at step {result['teacher_step']} through the product ({args.lung} lung stage): "
            f"{json.dumps(result['summary'])}")
        return 0
    data = TeacherData.load(args.data, fold, log)
    train(data, Recipe().scaled(args.steps_scale), work, log, args.resume, args.eval_every, seed=0 if fold is None else fold + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
