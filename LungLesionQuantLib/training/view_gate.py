"""Train the view gate: is a 2D image a CT slice or a chest radiograph?

A radiograph passed where a CT slice is expected (or the reverse) would otherwise be measured
as if it were one: an 8-bit PNG carries nothing that says which it is, and grey-level
statistics overlap (mean absolute row difference: CT slices 4.4-36, radiographs 0.65-7.5). A
small CNN (MONAI ``Classifier``, 128×128 input after the radiograph preprocessing) tells them
apart from their content.

``python -m LungLesionQuantLib.training.view_gate`` first trains on all sources but a held-out
set — radiographs of the Non-COVID class, the Radiopaedia CT slices and the Lung-PET-CT-Dx CT —
and reports the held-out accuracy; then trains on everything and writes
``Resources/Models/view.onnx`` and ``view.train.json``.

CT slices: the 8-bit published slices as they are; the DICOM CTs (RICORD, Lung-PET-CT-Dx,
NY-SBU) rendered under a lung, a soft-tissue and a wide window, as a user's export might be.
Radiographs: COVID-QU-Ex. All eight flips/transposes are augmented for both, so orientation
is never the cue.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.networks.nets import Classifier
from PIL import Image

from ..input.grey_levels import resize, to_unit
from ..input.view_gate import CLASSES, NOT_CT, NOT_RADIOGRAPH, SIZE
from ..radiograph.preprocessing import PREPROCESSING_ID
from .augment import AugmentConfig, augment
from .network import export_onnx

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = ("cxr:Non-COVID", "ct:semiseg_unlabeled", "ct:dicom/lung_pet_ct_dx_A0001")
WINDOWS_HU = ((-600.0, 1500.0), (40.0, 400.0), (350.0, 2750.0))  # (level, width)
STEPS = 600
BATCH = 32


def build_gate() -> torch.nn.Module:
    """A 4-level CNN, 8-64 channels, two outputs (CT slice, radiograph)."""
    return Classifier(in_shape=(1, SIZE, SIZE), classes=len(CLASSES), channels=(8, 16, 32, 64), strides=(2, 2, 2, 2), num_res_units=1)


def _unit(grey: np.ndarray) -> np.ndarray:
    return resize(to_unit(grey)[None, None], (SIZE, SIZE))[0, 0]


def _png_folder(folder: Path, pattern: str) -> list[np.ndarray]:
    return [_unit(np.asarray(Image.open(p).convert("L"), np.float32)) for p in sorted(folder.glob(pattern))]


def _rendered_ct(paths: list[Path]) -> list[np.ndarray]:
    out = []
    for path in paths:
        volume = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
        hu = volume.reshape(-1, *volume.shape[-2:])[0]
        for level, width in WINDOWS_HU:
            grey = np.clip((hu - (level - width / 2)) / width * 255.0, 0, 255).round()
            out.append(_unit(grey))
    return out


def read_gate_data(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels 0 CT / 1 radiograph, source of each) at network size."""
    sources: dict[str, list[np.ndarray]] = {}
    for cls in ("COVID-19", "Non-COVID", "Normal"):
        sources[f"cxr:{cls}"] = _png_folder(data / "cxr_covid_qu_ex" / cls / "images", "*.png")
    sources["ct:semiseg_train"] = _png_folder(data / "semiseg_train" / "images", "*.jpg")
    sources["ct:lesion_labelled"] = _png_folder(data / "lesion_labelled" / "images", "*.jpg")
    sources["ct:semiseg_unlabeled"] = _png_folder(data / "semiseg_unlabeled" / "images", "*.jpg")
    for name in ("dicom/ricord_1a_000082", "dicom/lung_pet_ct_dx_A0001"):
        sources[f"ct:{name}"] = _rendered_ct(sorted((data / name).glob("*.dcm")))
    sources["ct:ny_sbu_slices"] = _rendered_ct(sorted((data / "ny_sbu_slices").glob("*.dcm")))
    images, labels, names = [], [], []
    for source, arrays in sources.items():
        images += arrays
        labels += [int(source.startswith("cxr:"))] * len(arrays)
        names += [source] * len(arrays)
    return np.stack(images).astype(np.float32), np.array(labels), np.array(names)


def train_gate(images: np.ndarray, labels: np.ndarray, steps: int, seed: int, log) -> torch.nn.Module:
    """Class-balanced batches, all flips, CT-slice-like intensity jitter."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_gate()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.15)
    by_class = [np.flatnonzero(labels == c) for c in range(len(CLASSES))]
    config = AugmentConfig(zoom=(0.8, 1.25), rotate_deg=20.0, shift=0.1, window_shift=0.1, noise_std=0.05)
    start, losses = time.time(), []
    model.train()
    for step in range(steps):
        which = torch.randint(0, len(CLASSES), (BATCH,), generator=gen).numpy()
        idx = [by_class[c][int(torch.randint(0, len(by_class[c]), (1,), generator=gen))] for c in which]
        x = torch.from_numpy(images[idx])[:, None]
        x, _ = augment(x, torch.zeros_like(x, dtype=torch.long), config, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.from_numpy(which))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            log(f"view gate step {step + 1}/{steps} loss {np.mean(losses[-100:]):.4f} {time.time() - start:.0f}s")
    return model.eval()


def radiograph_probabilities(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([torch.softmax(model(torch.from_numpy(images[i:i + 256])[:, None]), 1)[:, 1]
                          for i in range(0, len(images), 256)]).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m LungLesionQuantLib.training.view_gate", description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--models", type=Path, default=REPO / "Resources" / "Models")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    images, labels, sources = read_gate_data(args.data)
    log(f"{len(images)} images: {int((labels == 0).sum())} CT slices, {int((labels == 1).sum())} radiographs")
    held = np.isin(sources, HELD_OUT)
    model = train_gate(images[~held], labels[~held], args.steps, 0, log)
    p = radiograph_probabilities(model, images[held])
    held_out = {}
    for source in HELD_OUT:
        mine = sources[held] == source
        truth = source.startswith("cxr:")
        refused = p[mine] < NOT_RADIOGRAPH if truth else p[mine] >= NOT_CT
        held_out[source] = {"images": int(mine.sum()), "correct_at_even_odds": int(((p[mine] >= 0.5) == truth).sum()),
                            "wrongly_refused_at_product_thresholds": int(refused.sum()),
                            "p_radiograph_min": float(p[mine].min()), "p_radiograph_max": float(p[mine].max())}
        log(f"held out {source}: {held_out[source]}")
    final = train_gate(images, labels, args.steps, 1, log)
    out = args.models / "view.onnx"
    export_onnx(final, out, 1, SIZE, {"llq_stage": "view", "llq_classes": list(CLASSES), "llq_input_size": SIZE,
                                     "llq_preprocessing": PREPROCESSING_ID})
    record = {"stage": "view", "classes": list(CLASSES), "input_size": SIZE, "steps": args.steps, "batch": BATCH,
              "sources": {s: int((sources == s).sum()) for s in dict.fromkeys(sources)}, "held_out": held_out,
              "windows_hu": WINDOWS_HU, "thresholds": {"not_ct": NOT_CT, "not_radiograph": NOT_RADIOGRAPH}}
    out.with_suffix(".train.json").write_text(json.dumps(record, indent=2))
    log(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
