"""Loading the real training data of ``../shared/data`` as network-ready arrays.

Every sample becomes a lung-window slice in [0, 1] fitted to the network's square input
(:mod:`..preprocessing`, shared with inference), with its label map at the same size.
How each label was made is stated next to its loader and in the model cards.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from ..input.imageio import read_ct, to_lps
from ..input.grey_window import grey8_to_hu, histogram_landmarks
from ..segmentation.preprocessing import CT_LANDMARKS_UNIT, bounding_fit, fit_box, hu_to_unit, unit_to_hu, whole_slice_fit
from .lung_labels import crop_body_mask, derive_lung_mask

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
# CTs under the lung window (:data:`preprocessing.CT_LANDMARKS_UNIT`).


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


LungFinder = Callable[[np.ndarray], np.ndarray]
"""HU slices (Z, H, W) of one volume → their lung mask; in training, the bundled lung stage."""


@dataclass
class NativeSlices:
    """Slices at their published size: images in [0, 1] (lung window), labels, names, volumes."""

    units: list[np.ndarray]
    labels: list[np.ndarray]
    names: list[str]
    groups: list[str]


def frame_slices(native: NativeSlices, size: int, find_lung: LungFinder | None = None) -> SliceSet:
    """Fit each slice to the network's square input, as the cascade frames it.

    Without ``find_lung``: the whole slice (the lung stage's view). With it: the box around
    the lungs that ``find_lung`` finds in the slice's volume (the lesion stages' view, where
    the lungs fill more of the input); a volume without lung falls back to whole slices.
    """
    images: list[np.ndarray] = [None] * len(native.units)  # type: ignore[list-item]
    labels: list[np.ndarray] = [None] * len(native.units)  # type: ignore[list-item]
    volumes = [(g, u.shape) for g, u in zip(native.groups, native.units)]
    for volume in dict.fromkeys(volumes):
        idx = [i for i, v in enumerate(volumes) if v == volume]
        units = np.stack([native.units[i] for i in idx]).astype(np.float32)
        fit = None
        if find_lung is not None:
            fit = bounding_fit(find_lung(unit_to_hu(units)), size)
        fit = fit or whole_slice_fit(units.shape[-2:], size)
        fitted = fit_box(units, fit, order=1)
        fitted_labels = fit_box(np.stack([native.labels[i] for i in idx]).astype(np.float32), fit, order=0)
        for j, i in enumerate(idx):
            images[i], labels[i] = fitted[j], fitted_labels[j].astype(np.uint8)
    return SliceSet(np.stack(images), np.stack(labels), list(native.names), list(native.groups))


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def read_semiseg_train(data: Path) -> tuple[NativeSlices, list[tuple[np.ndarray, np.ndarray]]]:
    """The 50 radiologist-labelled slices (0 background, 1 GGO, 2 Cons), as published; grey
    read as HU by :func:`..input.grey_window.grey8_to_hu`, then windowed as every input. Each slice
    is its own volume (no patient ids are published).

    Also returns the published (grey 0-255, label) pairs, for evaluation at native size.
    """
    folder = data / "semiseg_train"
    names = sorted((p.stem for p in (folder / "images").glob("*.jpg")), key=int)
    units, labels, native = [], [], []
    for name in names:
        grey = _grey(folder / "images" / f"{name}.jpg")
        label = np.asarray(Image.open(folder / "labels" / f"{name}.png"), dtype=np.uint8)
        native.append((grey, label))
        units.append(hu_to_unit(grey8_to_hu(grey)))
        labels.append(label)
    return NativeSlices(units, labels, names, [f"semiseg:{n}" for n in names]), native


def upright(published: np.ndarray) -> np.ndarray:
    """A transposed published slice (spine on the left) in radiological orientation (spine at the bottom)."""
    return np.flipud(published.T)


def _transposed_slices(images: list[Path], labels: list[Path], patients: list[str]) -> NativeSlices:
    """Published 8-bit slices that are transposed (spine on the left), turned back to radiological
    orientation (spine at the bottom), each patient's intensities re-mapped by its histogram
    landmarks (:data:`CT_LANDMARKS_UNIT`); label PNGs (0/255) to 0/1."""
    greys = [upright(_grey(p)).astype(np.uint8) for p in images]
    landmarks = {v: histogram_landmarks(np.concatenate([g.ravel() for g, w in zip(greys, patients) if w == v]))
                 for v in sorted(set(patients))}
    return NativeSlices([_match_landmarks(g.astype(np.float32), landmarks[v]) for g, v in zip(greys, patients)],
                        [upright(np.asarray(Image.open(p)) > 127).astype(np.uint8) for p in labels],
                        [p.stem for p in images], list(patients))


def read_lesion_labelled(data: Path) -> NativeSlices:
    """677 slices of 6 Coronacases patients, infection (GGO and Cons together) as label 1,
    by radiologists (:func:`_transposed_slices`)."""
    folder = data / "lesion_labelled"
    with open(folder / "slices.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return _transposed_slices([folder / "images" / row["jpg"] for row in rows],
                              [folder / "labels" / f"{Path(row['jpg']).stem}.png" for row in rows],
                              [row["volume"] for row in rows])


def read_radiopaedia_unlabelled(data: Path) -> NativeSlices:
    """481 slices of 10 Radiopaedia COVID-19 patients with *predicted* infection masks
    (Semi-Inf-Net pseudo-labels: used only to add lesions back to derived lung labels, never
    as lesion ground truth), exported under a different window per patient (:func:`_transposed_slices`)."""
    folder = data / "semiseg_unlabeled"
    paths = sorted((folder / "images").glob("*.jpg"))
    return _transposed_slices(paths, [folder / "pseudo_labels" / f"{p.stem}.png" for p in paths],
                              [p.stem.rsplit("_", 1)[0] for p in paths])


# Pixel size assumed for the published 8-bit slices (their DICOM spacing is not published):
# typical of chest CTs reconstructed on a 512 matrix over a 35 cm field of view.
SLICE_PIXEL_MM = 0.7


def with_derived_lungs(native: NativeSlices) -> NativeSlices:
    """The slices with lung labels: the HU rule (:func:`derive_lung_mask` with
    :func:`crop_body_mask`, slice by slice) joined with the lesions that touch it, in-plane
    holes filled, so that consolidated lung counts as lung (lesion specks off the lung, as
    pseudo-labels have at the image edge, are not added)."""
    labels = []
    for unit, lesion in zip(native.units, native.labels):
        hu = unit_to_hu(unit[None])
        lung = derive_lung_mask(hu, (1.0, SLICE_PIXEL_MM, SLICE_PIXEL_MM), crop_body_mask(hu))[0]
        regions, _ = ndimage.label(lesion > 0, np.ones((3, 3), bool))
        touching = np.unique(regions[ndimage.binary_dilation(lung, iterations=2) & (regions > 0)])
        labels.append(ndimage.binary_fill_holes(lung | np.isin(regions, touching)).astype(np.uint8))
    return NativeSlices(native.units, labels, native.names, native.groups)


# A CT of the data without pneumonia (a lung cancer), whose lungs teach "no lesion" (issue 25:
# vessels, bronchial walls and partial volume at the diaphragm are not GGO or Cons).
NO_PNEUMONIA_VOLUME = "dicom/lung_pet_ct_dx_A0001"
COVID_VOLUME = "dicom/ricord_1a_000082"
IGNORE = 255
# Dense (> -300 HU) parts of that lung at least this wide in-plane (mm) — the mass, the liver
# dome in partial volume — are left out of the "no lesion" label rather than taught either way.
COMPACT_DENSE_MM = 10.0


def _lung_rows(data: Path, rel: str, find_lung: LungFinder) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    image = to_lps(read_ct(data / rel).image)
    hu = sitk.GetArrayFromImage(image)
    lung = find_lung(hu)
    rows = np.flatnonzero(lung.any(axis=(1, 2)))
    return hu[rows], lung[rows], image.GetSpacing()[::-1]


def ct_volume_slices(data: Path, find_lung: LungFinder, rel: str = COVID_VOLUME) -> NativeSlices:
    """The slices of a real CT volume (in HU) on which ``find_lung`` finds lung, unlabelled
    (empty label maps): a scanner's own intensities, for learning without labels."""
    hu, _, _ = _lung_rows(data, rel, find_lung)
    units = list(hu_to_unit(hu))
    return NativeSlices(units, [np.zeros(u.shape, np.uint8) for u in units], [f"{rel}:{z}" for z in range(len(units))], [rel] * len(units))


def no_pneumonia_slices(data: Path, find_lung: LungFinder) -> NativeSlices:
    """The lung slices of :data:`NO_PNEUMONIA_VOLUME` labelled "no lesion" (0) everywhere but on
    compact dense regions inside the lungs (:data:`IGNORE`; :data:`COMPACT_DENSE_MM`)."""
    hu, lung, spacing = _lung_rows(data, NO_PNEUMONIA_VOLUME, find_lung)
    r = max(1, int(round(COMPACT_DENSE_MM / 2 / spacing[1])))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (yy ** 2 + xx ** 2 <= r * r)[None]
    filled = np.stack([ndimage.binary_fill_holes(s) for s in lung])
    compact = ndimage.binary_dilation(ndimage.binary_opening(filled & (hu > -300), structure=disc), structure=disc)
    labels = np.where(compact & filled, IGNORE, 0).astype(np.uint8)
    return NativeSlices(list(hu_to_unit(hu)), list(labels), [f"{NO_PNEUMONIA_VOLUME}:{z}" for z in range(len(hu))],
                        [NO_PNEUMONIA_VOLUME] * len(hu))


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
