"""The inference cascade: lung → lesion → GGO / Cons, three 2D ONNX networks run slice-wise.

1. ``lung``: each whole axial slice, resized to the network's square input.
2. ``lesion``: the slices that contain lung, cropped to one box around both lungs.
3. ``type``: the same crops with the lesion mask as a second channel, on slices with lesion.

After the networks: lesion regions must touch the lung (3D connectivity), and the lung is
the union of the lung and its lesions with in-plane holes filled, so consolidation at the
pleura — which a lung network tends to cut away — stays inside the lung.
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
from scipy import ndimage

from .errors import LungLesionQuantError
from .labels import BACKGROUND, CONS, GGO, LUNG_NORMAL
from .preprocessing import bounding_fit, fit_box, hu_to_unit, unfit_box, whole_slice_fit

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
STAGES = ("lung", "lesion", "type")

Progress = Callable[[str, int, int], None]
_IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)


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

    def segment(self, hu: np.ndarray, progress: Progress | None = None, lung: np.ndarray | None = None) -> np.ndarray:
        """Label map (Z, Y, X) uint8 — 0 background, 1 LungN, 2 GGO, 3 Cons — for HU slices (Z, Y, X).

        The slices must be axial in radiological orientation (see :func:`imageio.to_lps`).
        A given ``lung`` mask (e.g. one a person corrected) replaces the lung stage.
        """
        unit = hu_to_unit(hu)
        lung = self._lung(unit, progress) if lung is None else lung.astype(bool)
        labels = np.zeros(hu.shape, dtype=np.uint8)
        fit = bounding_fit(lung, self.models["lesion"].size)
        if fit is None:
            return labels
        rows = np.flatnonzero(lung.any(axis=(1, 2)))
        crops = fit_box(unit[rows], fit)[:, None]
        lesion_small = self.models["lesion"].probabilities(crops, self.batch_size, progress)[:, 1]
        lesion = np.zeros(hu.shape, dtype=bool)
        lesion[rows] = unfit_box(lesion_small, fit, hu.shape[1:]) > 0.5
        lesion = _touching(lesion, lung)
        cons = np.zeros(hu.shape, dtype=bool)
        typed = np.flatnonzero((lesion_small > 0.5).any(axis=(1, 2)) & lesion[rows].any(axis=(1, 2)))
        if typed.size:
            pair = np.concatenate([crops[typed], (lesion_small[typed, None] > 0.5).astype(np.float32)], axis=1)
            probs = self.models["type"].probabilities(pair, self.batch_size, progress)
            cons_small = (probs[:, 2] > probs[:, 1]).astype(np.float32)
            cons[rows[typed]] = unfit_box(cons_small, fit, hu.shape[1:], order=0) > 0.5
        lung = ndimage.binary_fill_holes(lung | lesion, structure=_IN_PLANE)
        labels[lung] = LUNG_NORMAL
        labels[lesion] = GGO
        labels[lesion & cons] = CONS
        return labels

    def _lung(self, unit: np.ndarray, progress: Progress | None) -> np.ndarray:
        model = self.models["lung"]
        fit = whole_slice_fit(unit.shape[1:], model.size)
        prob = model.probabilities(fit_box(unit, fit)[:, None], self.batch_size, progress)[:, 1]
        lung = np.zeros(unit.shape, dtype=bool)
        rows = np.flatnonzero((prob > 0.5).any(axis=(1, 2)))
        if rows.size:
            lung[rows] = unfit_box(prob[rows], fit, unit.shape[1:]) > 0.5
        return _large_regions(lung)


def _large_regions(mask: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Keep the 3D regions at least ``fraction`` of the largest: the lungs, not stray blobs."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return np.isin(labels, np.flatnonzero(sizes >= fraction * sizes.max()) + 1)


def _touching(lesion: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """The lesion regions (3D) that overlap the lung."""
    labels, n = ndimage.label(lesion)
    if n == 0:
        return lesion
    hits = np.unique(labels[lung & lesion])
    return np.isin(labels, hits[hits != BACKGROUND])
