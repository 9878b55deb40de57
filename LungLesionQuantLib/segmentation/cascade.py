"""The inference cascade: lung → lesion → GGO / Cons, three 2D ONNX networks run slice-wise.

1. ``lung``: each whole axial slice, resized to the network's square input.
2. ``lesion``: the slices that contain lung, cropped to one box around both lungs.
3. ``type``: the same crops with the lesion mask as a second channel, on slices with lesion.

A one-stage lesion network (classes background / GGO / Cons: the teacher of
:mod:`..training.teacher`) takes the place of stages 2 and 3: lesion is p(GGO) + p(Cons) > 0.5,
and GGO vs Cons is decided from its own probabilities.

After the networks: lesion is kept within the lung (in-plane holes filled, grown by 2 mm),
and the lung is the union of the lung and its lesions with in-plane holes filled, so
consolidation enclosed by lung stays inside the lung; specks cut off from the lungs go.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .anatomy import (MIN_VOLUME_SLICES, body_mask, drop_airways, fill_holes_in_plane, in_chest, regions_touching, surface_lesions,
                      smallest_lung_voxels, touches_edge)
from ..runtime import Progress, QualityFlag, Segmented, StageModel, providers_for
from ..input.imageio import to_lps
from ..labels import CONS, GGO, LUNG_NORMAL
from ..resources import MODEL_DIR
from .preprocessing import bounding_fit, clip_to_window, fit_box, unfit_mask, unit_to_hu, whole_slice_fit, window_to_unit

DEFAULT_MODEL_DIR = MODEL_DIR
STAGES = ("lung", "lesion", "type")
# Test-time augmentation of the lesion and type stages (mirrorings averaged with the crop):
# off by default — left-right mirroring gained 0.002 Dice in cross-validation for 1.6x the
# time (Resources/Models/README.md); ``--tta`` turns it on.
TTA_FLIPS: tuple[int, ...] = ()
LEFT_RIGHT = (-1,)
# GGO vs Cons: the type network blended with an attenuation prior centred here (HU; a logistic
# step of this width), weighted as below (cross-validated: Resources/Models/README.md).
CONS_PRIOR_HU = -400.0
CONS_PRIOR_WIDTH_HU = 100.0
HU_PRIOR_WEIGHT = 0.5
# Warn when lung-like air outside the body but joined to the lungs (lung cut by the field of
# view) exceeds this share of the lung.
CUT_WARNING_FRACTION = 0.01

class Cascade:
    """The three stages, loaded once and applied to any number of CTs."""

    modality = "ct"

    def __init__(self, model_dir: Path | str = DEFAULT_MODEL_DIR, device: str = "auto",
                 threads: int | None = None, batch_size: int = 8, overrides: dict[str, Path] | None = None,
                 flips: tuple[int, ...] = TTA_FLIPS, hu_prior_weight: float = HU_PRIOR_WEIGHT) -> None:
        """Load ``lung.onnx``, ``lesion.onnx`` and ``type.onnx`` from ``model_dir``.

        ``overrides`` maps a stage to another file (cross-validation swaps in fold models);
        ``flips`` are the mirrorings averaged by the lesion and type stages;
        ``hu_prior_weight`` the weight of the attenuation prior in GGO vs Cons (0: network only).
        """
        self.flips = tuple(flips)
        self.hu_prior_weight = float(hu_prior_weight)
        self.paths = {name: Path(model_dir) / f"{name}.onnx" for name in STAGES}
        self.paths.update({k: Path(v) for k, v in (overrides or {}).items()})
        self.providers = providers_for(device)
        self.models = {"lesion": StageModel.load(self.paths["lesion"], self.providers, threads)}
        if self.one_stage:
            del self.paths["type"]
        self.models.update({name: StageModel.load(path, self.providers, threads) for name, path in self.paths.items() if name != "lesion"})
        self.batch_size = batch_size

    @property
    def one_stage(self) -> bool:
        """Whether the lesion network also tells GGO from Cons (no type stage)."""
        return self.models["lesion"].classes == ["background", "GGO", "Cons"]

    def provenance(self) -> dict:
        """What produced a result, recorded with it: each model file's SHA-256 and the settings."""
        return {"models": {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in self.paths.items()},
                "settings": {"test_time_flips": list(self.flips), "hu_prior_weight": self.hu_prior_weight,
                             "cons_prior_hu": CONS_PRIOR_HU, "cons_prior_width_hu": CONS_PRIOR_WIDTH_HU,
                             "input_sizes": {name: model.size for name, model in self.models.items()}}}

    def apply(self, image: sitk.Image, progress: Progress | None = None) -> Segmented:
        """The front door: the 0/1/2/3 label image of a CT in HU, on exactly the CT's voxel grid.

        The CT is turned to the cascade's frame (:func:`imageio.to_lps`) once, segmented, and
        the labels resampled back once (neither where the CT is already so indexed). What the
        lung rules removed, and warnings, are the result's findings.
        """
        lps = to_lps(image)
        findings: dict = {}
        labels = self.segment(sitk.GetArrayViewFromImage(lps), progress, spacing_zyx=lps.GetSpacing()[::-1], findings=findings)
        label_lps = sitk.GetImageFromArray(labels)
        label_lps.CopyInformation(lps)
        result = label_lps if lps is image else sitk.Resample(label_lps, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return Segmented(result, findings)

    def segment(self, hu: np.ndarray, progress: Progress | None = None, lung: np.ndarray | None = None,
                spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0), findings: dict | None = None) -> np.ndarray:
        """Label map (Z, Y, X) uint8 — 0 background, 1 LungN, 2 GGO, 3 Cons — for HU slices (Z, Y, X).

        The slices must be axial in radiological orientation, feet to head (see
        :func:`imageio.to_lps`); ``spacing_zyx`` is the voxel size in mm. A given ``lung`` mask
        (e.g. one a person corrected) replaces the lung stage. ``findings``, when given, receives
        what the lung rules removed (cm³) and warnings.
        """
        clipped = clip_to_window(hu)
        spacing_yx = tuple(spacing_zyx[1:])
        findings = {} if findings is None else findings
        findings.setdefault("warnings", [])
        lung = self._lung(clipped, progress, spacing_zyx, findings) if lung is None else lung.astype(bool)
        labels = np.zeros(hu.shape, dtype=np.uint8)
        fit = bounding_fit(lung, self.models["lesion"].size)
        if fit is None:
            return labels
        rows = np.flatnonzero(lung.any(axis=(1, 2)))
        # All later work happens inside the box the lesion stages see, which holds all the lung.
        region = np.s_[rows[0]:rows[-1] + 1, fit.r0:fit.r1, fit.c0:fit.c1]
        lung_box = lung[region]
        crops = window_to_unit(fit_box(clipped[rows], fit))[:, None]
        # p(lesion) of a two-class network; p(GGO), p(Cons) of a one-stage network
        kept = self.models["lesion"].probabilities(crops, self.batch_size, progress, self.flips, keep=lambda p: p[:, 1:])
        lesion_small = kept.sum(axis=1)
        found = np.flatnonzero((lesion_small > 0.5).any(axis=(1, 2)))
        lesion = np.zeros(lung_box.shape, dtype=bool)
        cons = np.zeros(lung_box.shape, dtype=bool)
        if found.size:
            z = rows[found] - rows[0]
            lesion[z] = unfit_mask(lesion_small[found], fit)
            if self.one_stage:
                share = _cons_share(kept[found, 0], kept[found, 1])
            else:
                pair = np.concatenate([crops[found], (lesion_small[found, None] > 0.5).astype(np.float32)], axis=1)
                share = self.models["type"].probabilities(pair, self.batch_size, progress, self.flips,
                                                          keep=lambda p: _cons_share(p[:, 1], p[:, 2]))
            del kept
            cons[z] = unfit_mask(self._consolidation(share, crops[found, 0]), fit, order=0)
            lesion &= _envelope(lung_box, spacing_yx)
        if progress:
            progress("post-processing", 0, 1)
        lung_box = in_chest(fill_holes_in_plane(lung_box | lesion))
        lesion &= lung_box
        if hu.shape[0] >= MIN_VOLUME_SLICES:  # single slices have no slice above or below
            lesion &= ~surface_lesions(lesion, lung_box, (rows[0] == 0, rows[-1] == hu.shape[0] - 1))
        box = labels[region]
        box[lung_box] = LUNG_NORMAL
        box[lesion] = GGO
        box[lesion & cons] = CONS
        if progress:
            progress("post-processing", 1, 1)
        return labels

    def _consolidation(self, share: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Where a lesion is consolidation (1.0) rather than GGO, at network resolution: the
        network's share p(Cons) / (p(GGO) + p(Cons)) (:func:`_cons_share`), blended with an
        attenuation prior — a logistic step at :data:`CONS_PRIOR_HU` — by :attr:`hu_prior_weight`
        (Bartoli et al.: consolidation is the denser opacity)."""
        hu = unit_to_hu(unit)
        prior = 1.0 / (1.0 + np.exp(-(hu - CONS_PRIOR_HU) / CONS_PRIOR_WIDTH_HU))
        w = self.hu_prior_weight
        return ((1.0 - w) * share + w * prior > 0.5).astype(np.float32)

    def lung_mask(self, hu: np.ndarray, progress: Progress | None = None,
                  spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """The lung stage alone on HU slices (Z, Y, X): lung regions of the volume (bool)."""
        return self._lung(clip_to_window(hu), progress, spacing_zyx, {"warnings": []})

    def _lung(self, clipped: np.ndarray, progress: Progress | None, spacing_zyx: tuple[float, float, float],
              findings: dict) -> np.ndarray:
        """The lung network's mask under the rules of :mod:`anatomy`: inside the body, in the
        chest, no airways. The body rule holds for volumes and for single slices that show the
        whole body; not for a single slice cropped through the chest wall (the published 2D
        exports), where lungs reach the image edge."""
        model = self.models["lung"]
        fit = whole_slice_fit(clipped.shape[1:], model.size)
        prob = model.probabilities(window_to_unit(fit_box(clipped, fit))[:, None], self.batch_size, progress, keep=lambda p: p[:, 1])
        lung = np.zeros(clipped.shape, dtype=bool)
        rows = np.flatnonzero((prob > 0.5).any(axis=(1, 2)))
        if rows.size:
            lung[rows] = unfit_mask(prob[rows], fit)
        voxel_cm3 = float(np.prod(spacing_zyx)) / 1000.0
        found = int(lung.sum())
        outside = np.zeros_like(lung)
        body = body_mask(clipped, spacing_zyx[1:])
        if lung.shape[0] >= MIN_VOLUME_SLICES or not touches_edge(body):
            outside = lung & ~body
            lung &= ~outside
        inside = int(lung.sum())
        box = _bounding_box(lung)
        # The gas rule reads HU, which only volumes give for sure (an 8-bit slice's window is estimated).
        volume_hu = clipped[box] if lung.shape[0] >= MIN_VOLUME_SLICES else None
        lung[box] = drop_airways(in_chest(lung[box], smallest_lung_voxels(lung.shape[0], spacing_zyx), volume_hu), float(spacing_zyx[2]))
        kept = int(lung.sum())
        cut = regions_touching(outside, lung).sum() * voxel_cm3
        findings["lung_rules_cm3"] = {"outside_body": round((found - inside) * voxel_cm3, 1),
                                      "outside_body_touching_lung": round(float(cut), 1),
                                      "below_chest_or_airways": round((inside - kept) * voxel_cm3, 1)}
        if cut > CUT_WARNING_FRACTION * kept * voxel_cm3:
            findings["warnings"].append(QualityFlag(
                "lung_cut_by_field_of_view", f"{cut:.0f} cm³ of lung-like air joined to the lungs but open to the image edge was "
                "left out: the field of view may cut through the lungs, so the lung volume may be too small; check the overlay"))
        return lung


def _cons_share(ggo: np.ndarray, cons: np.ndarray) -> np.ndarray:
    """p(Cons) / (p(GGO) + p(Cons)): how much of a lesion's probability says consolidation."""
    return cons / np.maximum(ggo + cons, 1e-6)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """The mask's bounding box, one voxel wider in-plane where the image allows: in the box,
    a region touches the box's in-plane edge only where it touches the image's."""
    if not mask.any():
        return np.s_[0:0, 0:0, 0:0]
    zs, ys, xs = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    return np.s_[zs[0]:zs[-1] + 1, max(ys[0] - 1, 0):ys[-1] + 2, max(xs[0] - 1, 0):xs[-1] + 2]


def _envelope(lung: np.ndarray, spacing_yx: tuple[float, float], margin_mm: float = 2.0) -> np.ndarray:
    """Where lesion may lie: the lung with its in-plane holes filled, grown by ``margin_mm`` in-plane.

    The lesion network also fires on soft tissue of the chest wall and mediastinum, which
    looks like consolidation; the lung network, trained on whole CTs, bounds it.
    """
    grown = fill_holes_in_plane(lung).view(np.uint8)
    for axis, spacing in ((1, spacing_yx[0]), (2, spacing_yx[1])):  # a square, separable: fast
        grown = ndimage.maximum_filter1d(grown, 2 * max(1, int(round(margin_mm / spacing))) + 1, axis=axis)
    return grown.view(bool)
