"""Loading the real training data of ``../shared/data`` as network-ready arrays.

Every sample becomes a lung-window slice in [0, 1] fitted to the network's square input
(:mod:`..preprocessing`, shared with inference), with its label map at the same size.
How each label was made is stated next to its loader and in the model cards.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from ..imageio import read_ct, to_lps
from ..preprocessing import bounding_fit, fit_box, grey8_to_hu, hu_to_unit, whole_slice_fit
from .lung_labels import derive_lung_mask

# NY-SBU single slices, each checked by eye against its derived lung mask (2026-11-22):
# "derived" where the HU rule outlines the lungs well, "empty" where the slice lies below the
# lungs (bowel gas must not be called lung), left out where dense disease defeats the HU rule.
NY_SBU_USE = {
    "A002304_19001231-076": "derived", "A048383_19001231-30": "derived",
    "A048383_19010410-30": "derived", "A056642_19010107-111": "derived",
    "A072894_19001203-066": "derived", "A098752_19001231-32": "derived",
    "A027284_19000925-116": "empty", "A027284_19001231-131": "empty",
    "A058062_19001231-084": "empty", "A058062_19010108-078": "empty",
    "A062055_19001127-136": "empty", "A062055_19001228-131": "empty",
}
LUNG_VOLUMES = ("dicom/ricord_1a_000082", "dicom/lung_pet_ct_dx_A0001")

# The Coronacases slices were exported under a much wider window than the lung window
# (aerated lung near grey 14, soft tissue near 101, nothing above ~170). Each patient's slices
# are re-mapped linearly so that these two histogram landmarks land where they lie on real HU
# CTs under the lung window: grey 79 / 210 (RICORD) and 57 / 234 (Lung-PET-CT-Dx), measured
# by :func:`histogram_landmarks` on the slices' lung-box crops; their means, as unit values:
CT_LANDMARKS_UNIT = (68 / 255, 222 / 255)


def histogram_landmarks(grey: np.ndarray) -> tuple[int, int]:
    """The aerated-lung and soft-tissue modes of 8-bit slices: the histogram peaks below and
    above the Otsu threshold (the lowest grey levels and saturation excluded)."""
    hist = np.convolve(np.bincount(grey.ravel(), minlength=256).astype(float), np.ones(5) / 5, mode="same")
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.GetImageFromArray(grey.reshape(1, -1)))
    threshold = int(otsu.GetThreshold())
    return 3 + int(np.argmax(hist[3:threshold])), threshold + int(np.argmax(hist[threshold:252]))


def _match_landmarks(grey: np.ndarray, landmarks: tuple[int, int]) -> np.ndarray:
    lung, soft = landmarks
    lo, hi = CT_LANDMARKS_UNIT
    return np.clip(lo + (grey - lung) * (hi - lo) / (soft - lung), 0.0, 1.0).astype(np.float32)


@dataclass
class SliceSet:
    """Fitted slices (N, S, S) in [0, 1], labels (N, S, S) uint8, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    groups: list[str]


def _fit_pair(image_unit: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    fit = whole_slice_fit(image_unit.shape[-2:], size)
    img = fit_box(image_unit[None].astype(np.float32), fit, order=1)[0]
    lab = fit_box(label[None].astype(np.float32), fit, order=0)[0]
    return img, lab.astype(np.uint8)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def load_semiseg_train(data: Path, size: int) -> tuple[SliceSet, list[tuple[np.ndarray, np.ndarray]]]:
    """The 50 radiologist-labelled slices (0 background, 1 GGO, 2 Cons), as published; grey
    read as HU by :func:`preprocessing.grey8_to_hu`, then windowed as every input.

    Also returns the published (grey 0-255, label) pairs, for evaluation at native size.
    """
    folder = data / "semiseg_train"
    names = sorted((p.stem for p in (folder / "images").glob("*.jpg")), key=int)
    images, labels, native = [], [], []
    for name in names:
        grey = _grey(folder / "images" / f"{name}.jpg")
        unit = hu_to_unit(grey8_to_hu(grey))
        label = np.asarray(Image.open(folder / "labels" / f"{name}.png"), dtype=np.uint8)
        native.append((grey, label))
        img, lab = _fit_pair(unit, label, size)
        images.append(img)
        labels.append(lab)
    return SliceSet(np.stack(images), np.stack(labels), names, ["semiseg"] * len(names)), native


def load_lesion_labelled(data: Path, size: int) -> SliceSet:
    """677 slices of 6 Coronacases patients, infection (GGO and Cons together) as label 1.

    The published slices are transposed (spine on the left); they are turned back to
    radiological orientation (spine at the bottom). Intensities: see :data:`CT_LANDMARKS_UNIT`.
    """
    folder = data / "lesion_labelled"
    with open(folder / "slices.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    greys = {row["jpg"]: np.flipud(_grey(folder / "images" / row["jpg"]).T).astype(np.uint8) for row in rows}
    landmarks = {}
    for volume in sorted({row["volume"] for row in rows}):
        stack = np.concatenate([greys[row["jpg"]].ravel() for row in rows if row["volume"] == volume])
        landmarks[volume] = histogram_landmarks(stack)
    images, labels, names, groups = [], [], [], []
    for row in rows:
        stem = Path(row["jpg"]).stem
        unit = _match_landmarks(greys[row["jpg"]].astype(np.float32), landmarks[row["volume"]])
        label = np.flipud((np.asarray(Image.open(folder / "labels" / f"{stem}.png")) > 127).T).astype(np.uint8)
        img, lab = _fit_pair(unit, label, size)
        images.append(img)
        labels.append(lab)
        names.append(stem)
        groups.append(row["volume"])
    return SliceSet(np.stack(images), np.stack(labels), names, groups)


def load_lung_slices(data: Path, size: int) -> SliceSet:
    """Axial slices in HU with lung labels derived by :func:`derive_lung_mask`.

    Sources: the RICORD COVID-19 CT, the Lung-PET-CT-Dx CT (a mass, no COVID) and the NY-SBU
    slices listed in :data:`NY_SBU_USE`. Each slice comes twice: whole, and cropped to the
    box around the lungs of its volume — the framing of the published 2D slices, which a
    user may segment one at a time.
    """
    images, labels, names, groups = [], [], [], []

    def add(hu: np.ndarray, lung: np.ndarray, name: str, group: str) -> None:
        fits = [("whole", whole_slice_fit(hu.shape[-2:], size)), ("crop", bounding_fit(lung, size, margin=0.03))]
        for framing, fit in fits:
            if fit is None:
                continue
            images.extend(fit_box(hu_to_unit(hu), fit, order=1))
            labels.extend(fit_box(lung.astype(np.float32), fit, order=0).astype(np.uint8))
            names.extend(f"{name}:{z}:{framing}" for z in range(hu.shape[0]))
            groups.extend([group] * hu.shape[0])

    for rel in LUNG_VOLUMES:
        image = to_lps(read_ct(data / rel).image)
        hu = sitk.GetArrayFromImage(image)
        add(hu, derive_lung_mask(hu, image.GetSpacing()[::-1]), rel, rel)
    for stem, use in sorted(NY_SBU_USE.items()):
        image = to_lps(read_ct(data / "ny_sbu_slices" / f"{stem}.dcm").image)
        hu = sitk.GetArrayFromImage(image)
        lung = derive_lung_mask(hu, image.GetSpacing()[::-1]) if use == "derived" else np.zeros(hu.shape, bool)
        add(hu, lung, stem, stem.split("_")[0])
    return SliceSet(np.stack(images), np.stack(labels), names, groups)
