"""Training loops of the three stages, shared by the final models and the cross-validation folds.

Stages (the cascade of :mod:`LungLesionQuantLib.segmentation.cascade`):
- ``lung``: whole slice → background / lung.
- ``lesion``: lung crop → background / lesion (GGO ∪ Cons).
- ``type``: lung crop + lesion mask → background / GGO / Cons.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from monai.losses import DiceCELoss, DiceFocalLoss

from .augment import AugmentConfig, augment, perturb_mask, random_patch
from .network import build_unet, export_onnx


@dataclass
class StageSpec:
    """What a stage learns: its inputs, classes and training recipe."""

    name: str
    in_channels: int
    classes: list[str]
    ce_weight: list[float]
    steps: int
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 2e-3
    batch: int = 16
    patch: int | None = None
    preprocessing: str = "lung-window-unit-v1"
    loss: str = "dice-ce"
    # bf16 autocast on the CPU too where it pays (:func:`cpu_bf16_pays`); the loss stays float32.
    cpu_bf16: bool = False


LUNG_SIZE = 192
LESION_SIZE = 288
PATCH = 192


def stage_specs(scale: float) -> dict[str, StageSpec]:
    """The recipe of each stage; ``scale`` multiplies the steps (a quick run uses less).

    The lesion and type stages' steps were raised fourfold once a GPU could measure the effect
    (cross-validated lesion Dice 0.693 → 0.717; GGO and Cons unchanged); eightfold gave nothing
    more (0.718). bfloat16 autocast on the CPU as on the GPU that trained the bundled models:
    on an AVX-512 BF16 CPU a lesion-stage step takes 0.12 s against 0.4 s in float32 (27 min for 4000 steps);
    on an AVX2-only CPU float32 (:func:`cpu_bf16_pays`).
    """
    return {
        "lung": StageSpec("lung", 1, ["background", "lung"], [1.0, 1.0], max(20, int(900 * scale)), cpu_bf16=True),
        "lesion": StageSpec("lesion", 1, ["background", "lesion"], [0.5, 1.0], max(20, int(4000 * scale)), patch=PATCH,
                            cpu_bf16=True),
        "type": StageSpec("type", 2, ["background", "GGO", "Cons"], [0.5, 1.0, 1.5], max(20, int(3200 * scale)), patch=PATCH,
                          cpu_bf16=True),
    }


def cpu_bf16_pays() -> bool:
    """Whether bfloat16 autocast speeds up training on this CPU: on AVX-512 (BF16) a lesion-stage
    step took 0.12 s against 0.4 s in float32; on an AVX2-only CPU bfloat16 is emulated and a
    teacher step took 100 s against 4 s (measured 2026-12-05, AMD EPYC with AVX2)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@dataclass
class Pool:
    """One source of training slices and its share of each batch."""

    images: np.ndarray
    labels: np.ndarray
    share: float


def _batch(pools: list[Pool], n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    shares = torch.tensor([p.share for p in pools], dtype=torch.float64)
    which = torch.multinomial(shares, n, replacement=True, generator=gen).tolist()
    xs, ys = [], []
    for k in which:
        i = int(torch.randint(0, len(pools[k].images), (1,), generator=gen))
        xs.append(pools[k].images[i])
        ys.append(pools[k].labels[i])
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys).astype(np.int64))[:, None]


def train_stage(spec: StageSpec, pools: list[Pool], out: Path, seed: int = 0,
                log: Callable[[str], None] = print, init: Path | None = None) -> dict:
    """Train one stage and export ``out`` (ONNX). Returns a record of the run. ``init``: the
    weights (a ``.pt`` state dict of an earlier run) to continue from instead of a fresh start."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_unet(spec.in_channels, len(spec.classes))
    if init is not None:
        model.load_state_dict(torch.load(init, weights_only=True))
    model = model.to(device)
    weight = torch.tensor(spec.ce_weight, device=device)
    if spec.loss == "dice-focal":  # Tang et al. 2020: Dice loss plus focal loss
        loss_fn = DiceFocalLoss(to_onehot_y=True, softmax=True, batch=True, weight=weight)
    else:
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=spec.steps, pct_start=0.15)
    start, losses = time.time(), []
    model.train()
    # On a GPU: augmentation on its tensors, convolutions in bfloat16 (the loss in float32).
    bf16 = device.type == "cuda" or (spec.cpu_bf16 and cpu_bf16_pays())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for step in range(spec.steps):
        image, label = _batch(pools, spec.batch, gen)
        image, label = augment(image.to(device), label.to(device), spec.augment, gen)
        if spec.patch:
            image, label = random_patch(image, label, spec.patch, gen)
        if spec.in_channels == 2:
            image = torch.cat([image, perturb_mask((label > 0).float(), gen)], dim=1)
        with autocast:
            logits = model(image)
        loss = loss_fn(logits.float(), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == spec.steps:
            log(f"{out.name} step {step + 1}/{spec.steps} loss {np.mean(losses[-50:]):.4f} {time.time() - start:.0f}s")
    size = int(pools[0].images.shape[-1])
    record = {"stage": spec.name, "classes": spec.classes, "in_channels": spec.in_channels, "input_size": size,
              "steps": spec.steps, "batch": spec.batch, "patch": spec.patch, "lr": spec.lr, "ce_weight": spec.ce_weight, "loss": spec.loss,
              "seed": seed, "init": str(init) if init else None, "device": str(device),
              "bf16_autocast": bf16,
              "seconds": round(time.time() - start, 1), "final_loss": round(float(np.mean(losses[-50:])), 4),
              "augment": asdict(spec.augment), "pools": [{"slices": len(p.images), "share": p.share} for p in pools]}
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model.cpu(), out, spec.in_channels, size, {"llq_stage": spec.name, "llq_classes": spec.classes,
                                                            "llq_input_size": size, "llq_preprocessing": spec.preprocessing})
    torch.save(model.state_dict(), out.with_suffix(".pt"))  # for ensembles of fold models
    out.with_suffix(".train.json").write_text(json.dumps(record, indent=2))
    return record


@dataclass
class Log:
    """Timestamped lines to stdout and a log file; picklable, so parallel runs share it."""

    path: Path

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


@dataclass
class Run:
    """One training run: a stage's recipe, its data and where its model goes."""

    spec: StageSpec
    pools: list[Pool]
    out: Path
    seed: int = 0
    init: Path | None = None


def _train_run(run: Run, log: Log, threads: int) -> None:
    torch.set_num_threads(threads)
    train_stage(run.spec, run.pools, run.out, seed=run.seed, log=log, init=run.init)


def train_all(runs: list[Run], log: Log, jobs: int, threads: int) -> None:
    """Train the runs one after another, or ``jobs`` at a time in separate processes (on a
    GPU, where one small network leaves it mostly idle; on 2 CPU cores, keep one)."""
    if jobs <= 1:
        for run in runs:
            _train_run(run, log, threads)
        return
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for done in [pool.submit(_train_run, run, log, threads) for run in runs]:
            done.result()
