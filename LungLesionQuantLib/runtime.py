"""Running the bundled ONNX networks: one loader and one softmax for every model of every
modality (the CT cascade, the radiograph network, the view gate), with onnxruntime only, so
inference runs where PyTorch is absent (a Slicer); and what a segmenter hands on (:class:`Segmented`,
its findings and :class:`QualityFlag` s)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import SimpleITK as sitk

from .errors import LungLesionQuantError

Progress = Callable[[str, int, int], None]


class QualityFlag(str):
    """A warning (the text) with its code for the table's ``quality`` column and whether it
    withholds the extents (:mod:`.measurement.quality`)."""

    code: str
    withholds_extent: bool

    def __new__(cls, code: str, message: str, withholds_extent: bool = False) -> QualityFlag:
        flag = super().__new__(cls, message)
        flag.code, flag.withholds_extent = code, withholds_extent
        return flag

    def __getnewargs__(self) -> tuple[str, str, bool]:  # so that flags cross to Dask workers and back
        return self.code, str(self), self.withholds_extent


@dataclass
class Segmented:
    """What a segmenter found in one image: the label image on the input's voxel grid, and its
    findings — what its rules removed (cm³) and the warnings they raised (``findings['warnings']``)."""

    labels: sitk.Image
    findings: dict = field(default_factory=dict)


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
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
            meta = session.get_modelmeta().custom_metadata_map
            return cls(meta.get("llq_stage", path.stem), session, int(meta["llq_input_size"]), json.loads(meta["llq_classes"]))
        except Exception as exc:  # onnxruntime raises its own kinds on a damaged or foreign file
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise LungLesionQuantError(f"model file {path} could not be loaded ({first}); expected an ONNX model "
                                       "written by LungLesionQuant's training (with its llq_* metadata)") from None

    def probabilities(self, batch_input: np.ndarray, batch_size: int, progress: Progress | None = None,
                      flips: tuple[int, ...] = (), keep: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Softmax probabilities (N, K, S, S) for inputs (N, C, S, S), run ``batch_size`` at a time,
        averaged with those of the inputs mirrored along each axis in ``flips`` (test-time augmentation).

        ``keep`` maps each batch's probabilities to what the caller needs of them (one class, a
        ratio): only that is kept for all N inputs — on a CT, K full maps cost hundreds of MB."""
        out: np.ndarray | None = None
        for start in range(0, batch_input.shape[0], batch_size):
            chunk = batch_input[start:start + batch_size]
            probs = self._softmax(chunk)
            for axis in flips:
                probs += np.flip(self._softmax(np.ascontiguousarray(np.flip(chunk, axis))), axis)
            kept = (keep or (lambda p: p))(probs / (1 + len(flips)))
            if out is None:
                out = np.empty((batch_input.shape[0],) + kept.shape[1:], dtype=kept.dtype)
            out[start:start + batch_size] = kept
            if progress:
                progress(self.name, min(start + batch_size, batch_input.shape[0]), batch_input.shape[0])
        if out is None:
            return np.empty((0, len(self.classes)) + batch_input.shape[2:], np.float32)
        return out

    def _softmax(self, chunk: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"image": chunk})[0]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
