"""The inference cascade: lung → lesion → GGO / Cons, three 2D ONNX networks run slice-wise.

1. ``lung``: each whole axial slice, resized to the network's square input.
2. ``lesion``: the slices that contain lung, cropped to one box around both lungs.
3. ``type``: the same crops with the lesion mask as a second channel, on slices with lesion.

After the networks: lesion is kept within the lung (in-plane holes filled, grown by 2 mm),
and the lung is the union of the lung and its lesions with in-plane holes filled, so
consolidation enclosed by lung stays inside the lung; specks cut off from the lungs go.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import SimpleITK as sitk

from .errors import LungLesionQuantError
from .labels import CONS, GGO, LUNG_NORMAL
from .preprocessing import bounding_fit, clip_to_window, fit_box, unfit_box, whole_slice_fit, window_to_unit

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
STAGES = ("lung", "lesion", "type")

Progress = Callable[[str, int, int], None]


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for ``device`` ('auto', 'cpu' or 'cuda')."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise LungLesionQuantError(f"device 'cuda' asked for, but onnxruntime offers only {', '.join(available)}; install onnxruntime-gpu or use --device cpu")
    return ["CPUExecutionProvider"]


@dataclass
class StageModel:
    """One ONNX network with what its metadata says about it."""

    name: str
    session: ort.InferenceSession
    size: int
    classes: list[str]

    @classmethod
    def load(cls, path: Path, providers: list[str], threads: int | None) -> "StageModel":
        if not path.exists():
            raise LungLesionQuantError(f"model file {path} is missing; expected the bundled models in {path.parent}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        meta = session.get_modelmeta().custom_metadata_map
        return cls(meta.get("llq_stage", path.stem), session, int(meta["llq_input_size"]), json.loads(meta["llq_classes"]))

    def probabilities(self, batch_input: np.ndarray, batch_size: int, progress: Progress | None = None) -> np.ndarray:
        """Softmax probabilities (N, K, S, S) for inputs (N, C, S, S), run ``batch_size`` at a time."""
        out = np.empty((batch_input.shape[0], len(self.classes)) + batch_input.shape[2:], dtype=np.float32)
        for start in range(0, batch_input.shape[0], batch_size):
            logits = self.session.run(None, {"image": batch_input[start:start + batch_size]})[0]
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            out[start:start + batch_size] = exp / exp.sum(axis=1, keepdims=True)
            if progress:
                progress(self.name, min(start + batch_size, batch_input.shape[0]), batch_input.shape[0])
        return out


class Cascade:
    """The three stages, loaded once and applied to any number of CTs."""

    def __init__(self, model_dir: Path | str = DEFAULT_MODEL_DIR, device: str = "auto",
                 threads: int | None = None, batch_size: int = 8, overrides: dict[str, Path] | None = None) -> None:
        """Load ``lung.onnx``, ``lesion.onnx`` and ``type.onnx`` from ``model_dir``.

        ``overrides`` maps a stage to another file (cross-validation swaps in fold models).
        """
        self.paths = {name: Path(model_dir) / f"{name}.onnx" for name in STAGES}
        self.paths.update({k: Path(v) for k, v in (overrides or {}).items()})
        self.providers = providers_for(device)
        self.models = {name: StageModel.load(path, self.providers, threads) for name, path in self.paths.items()}
        self.batch_size = batch_size

    def model_hashes(self) -> dict[str, str]:
        """SHA-256 of each model file, recorded with every result for provenance."""
        return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in self.paths.items()}

    def segment(self, hu: np.ndarray, progress: Progress | None = None, lung: np.ndarray | None = None,
                spacing_yx: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
        """Label map (Z, Y, X) uint8 — 0 background, 1 LungN, 2 GGO, 3 Cons — for HU slices (Z, Y, X).

        The slices must be axial in radiological orientation (see :func:`imageio.to_lps`);
        ``spacing_yx`` is their pixel size in mm. A given ``lung`` mask (e.g. one a person
        corrected) replaces the lung stage.
        """
        clipped = clip_to_window(hu)
        lung = self._lung(clipped, progress) if lung is None else lung.astype(bool)
        labels = np.zeros(hu.shape, dtype=np.uint8)
        fit = bounding_fit(lung, self.models["lesion"].size)
        if fit is None:
            return labels
        rows = np.flatnonzero(lung.any(axis=(1, 2)))
        crops = window_to_unit(fit_box(clipped[rows], fit))[:, None]
        lesion_small = self.models["lesion"].probabilities(crops, self.batch_size, progress)[:, 1]
        found = np.flatnonzero((lesion_small > 0.5).any(axis=(1, 2)))
        lesion = np.zeros(hu.shape, dtype=bool)
        cons = np.zeros(hu.shape, dtype=bool)
        if found.size:
            lesion[rows[found]] = unfit_box(lesion_small[found], fit, hu.shape[1:]) > 0.5
            pair = np.concatenate([crops[found], (lesion_small[found, None] > 0.5).astype(np.float32)], axis=1)
            probs = self.models["type"].probabilities(pair, self.batch_size, progress)
            cons_small = (probs[:, 2] > probs[:, 1]).astype(np.float32)
            cons[rows[found]] = unfit_box(cons_small, fit, hu.shape[1:], order=0) > 0.5
            lesion &= _envelope(lung, spacing_yx)
        lung = _large_regions(_fill_holes_in_plane(lung | lesion))
        lesion &= lung
        labels[lung] = LUNG_NORMAL
        labels[lesion] = GGO
        labels[lesion & cons] = CONS
        return labels

    def _lung(self, clipped: np.ndarray, progress: Progress | None) -> np.ndarray:
        model = self.models["lung"]
        fit = whole_slice_fit(clipped.shape[1:], model.size)
        prob = model.probabilities(window_to_unit(fit_box(clipped, fit))[:, None], self.batch_size, progress)[:, 1]
        lung = np.zeros(clipped.shape, dtype=bool)
        rows = np.flatnonzero((prob > 0.5).any(axis=(1, 2)))
        if rows.size:
            lung[rows] = unfit_box(prob[rows], fit, clipped.shape[1:]) > 0.5
        return _large_regions(_drop_border_regions(lung))


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """3D face-connected regions, numbered by decreasing size (SimpleITK: fast on whole CTs)."""
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SortByObjectSizeOn()
    labels = relabel.Execute(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8))))
    return sitk.GetArrayFromImage(labels), list(relabel.GetSizeOfObjectsInPixels())


def _drop_border_regions(mask: np.ndarray) -> np.ndarray:
    """In a volume, drop 3D regions that touch the in-plane image border on most of their slices.

    Lungs lie inside the body; air between the body and the edge of a tightly cropped field
    of view (blankets folded over it look like lung) touches the border slice after slice.
    Single slices (2D crops, where lungs do reach the border) are left alone.
    """
    if mask.shape[0] < 3 or not mask.any():
        return mask
    labels, sizes = _components(mask)
    slices_of = np.zeros(len(sizes) + 1, np.int64)
    border_slices_of = np.zeros(len(sizes) + 1, np.int64)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        plane = labels[z]
        slices_of[np.unique(plane)] += 1
        edge = np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])
        border_slices_of[np.unique(edge)] += 1
    drop = np.flatnonzero(border_slices_of[1:] * 2 > slices_of[1:]) + 1
    return mask & ~np.isin(labels, drop) if drop.size else mask


def _large_regions(mask: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Keep the 3D regions at least ``fraction`` of the largest: the lungs, not stray blobs."""
    if not mask.any():
        return mask
    labels, sizes = _components(mask)
    keep = sum(1 for size in sizes if size >= fraction * sizes[0])
    return (labels > 0) & (labels <= keep)


def _envelope(lung: np.ndarray, spacing_yx: tuple[float, float], margin_mm: float = 2.0) -> np.ndarray:
    """Where lesion may lie: the lung with its in-plane holes filled, grown by ``margin_mm``.

    The lesion network also fires on soft tissue of the chest wall and mediastinum, which
    looks like consolidation; the lung network, trained on whole CTs, bounds it.
    """
    filled = sitk.GetImageFromArray(_fill_holes_in_plane(lung).view(np.uint8))
    filled.SetSpacing((float(spacing_yx[1]), float(spacing_yx[0]), 1.0))
    radius = [max(1, int(round(margin_mm / s))) for s in (spacing_yx[1], spacing_yx[0])] + [0]
    return sitk.GetArrayFromImage(sitk.BinaryDilate(filled, radius, sitk.sitkBall)) > 0


def _fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of each axial slice, within the mask's bounding box."""
    if not mask.any():
        return mask
    zs, ys, xs = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    y0, y1, x0, x1 = max(ys[0] - 1, 0), ys[-1] + 2, max(xs[0] - 1, 0), xs[-1] + 2
    out = mask.copy()
    for z in zs:
        box = sitk.GetImageFromArray(np.ascontiguousarray(mask[z, y0:y1, x0:x1]).view(np.uint8))
        out[z, y0:y1, x0:x1] = sitk.GetArrayFromImage(sitk.BinaryFillhole(box)) > 0  # a copy: the filter output is a temporary
    return out
