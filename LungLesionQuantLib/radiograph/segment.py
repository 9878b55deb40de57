"""The radiograph network applied: lung fields and opacity on one frontal chest radiograph.

The network (:mod:`..training.radiographs`: an ensemble of five cross-validation fold models
in one ONNX graph) sees the whole radiograph resized to 256×256; its probabilities are resized
back to the radiograph's own grid. Then: the lung is lung ∪ opacity, kept to the two largest
regions (the two lungs; a region under a tenth of the largest is a speck), holes filled; the
opacity is kept within that lung.

The network also tells which way up a film is stored: it learnt upright, positive films (dense
bright) and finds its lung fields with visibly less confidence on a film turned by quarter turns
or stored as a negative (:meth:`RadiographNet.lung_field_checks`; the reader chooses by it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..runtime import Progress, Segmented, StageModel, providers_for
from ..errors import LungLesionQuantError
from ..labels import LUNG_FIELD, OPACITY
from ..resources import MODEL_DIR
from ..input.grey_levels import resize
from .measure import side_by_side
from .preprocessing import PREPROCESSING_ID, network_input

MODEL_FILE = "radiograph.onnx"
MIN_LUNG_SHARE = 0.1  # of the largest lung region
# Inside the lung, opacity where p(opacity) / (p(lung) + p(opacity)) reaches this. Chosen by
# cross-validation (Resources/Models/README.md): the threshold at which the opacity % of COVID-19
# radiographs is least biased (+1.2 points; argmax, 0.5: -5.7), opacity Dice 0.658 (0.5: 0.608),
# normal radiographs' false opacity still median 0 %, 90th percentile 0.36 %.
OPACITY_THRESHOLD = 0.2


@dataclass(frozen=True)
class Orientation:
    """One way of reading a film: ``turns`` quarter turns anticlockwise (as ``np.rot90``), then
    inverted (a negative: dense dark) or not."""

    turns: int = 0
    inverted: bool = False

    def apply(self, grey: np.ndarray) -> np.ndarray:
        """The (H, W) film read this way; inverting keeps the grey range (a linear map, so the
        network's percentile scaling of the result is exactly 1 minus that of the original)."""
        turned = np.rot90(grey, self.turns)
        return np.ascontiguousarray(turned.max() + turned.min() - turned if self.inverted else turned)

    def describe(self) -> str:
        """What reading the film this way does to it, in words."""
        parts = [("turned 90° anticlockwise", "turned 180°", "turned 90° clockwise")[self.turns - 1]] if self.turns else []
        parts += ["inverted (a negative: dense dark)"] if self.inverted else []
        return " and ".join(parts) or "as stored"


# The eight ways a film can be stored that the reader tells apart: as stored first.
ORIENTATIONS = tuple(Orientation(turns, inverted) for inverted in (False, True) for turns in range(4))


@dataclass(frozen=True)
class LungFieldCheck:
    """How plausible the network's lung fields are on a film read one way: ``confidence`` is its
    mean probability of lung (clear or opaque) over the lung it finds (upright positive films of
    COVID-QU-Ex: 0.92-0.99; the same films turned or inverted: at most 0.957, see
    :mod:`.reading`); ``side_by_side``: two fields, neither above the other."""

    orientation: Orientation
    confidence: float
    side_by_side: bool


class RadiographNet:
    """The radiograph model, loaded once and applied to any number of radiographs."""

    modality = "cxr"

    def __init__(self, model_dir: Path | str = MODEL_DIR, device: str = "auto", threads: int | None = None,
                 path: Path | None = None, opacity_threshold: float = OPACITY_THRESHOLD) -> None:
        self.path = Path(path) if path else Path(model_dir) / MODEL_FILE
        self.opacity_threshold = opacity_threshold
        self.model = StageModel.load(self.path, providers_for(device), threads)
        meta = self.model.session.get_modelmeta().custom_metadata_map
        if meta.get("llq_preprocessing") != PREPROCESSING_ID or self.model.classes != ["background", "lung", "opacity"]:
            raise LungLesionQuantError(f"model file {self.path} is not a radiograph model (preprocessing "
                                       f"{meta.get('llq_preprocessing')}, classes {self.model.classes}); expected {MODEL_FILE} "
                                       "as LungLesionQuant's radiograph training writes it")

    def provenance(self) -> dict:
        """What produced a result, recorded with it: the model file's SHA-256 and the settings."""
        return {"models": {"radiograph": hashlib.sha256(self.path.read_bytes()).hexdigest()},
                "settings": {"modality": "cxr", "input_size": self.model.size, "preprocessing": PREPROCESSING_ID,
                             "opacity_threshold": self.opacity_threshold}}

    def probabilities(self, grey: np.ndarray) -> np.ndarray:
        """Background / lung / opacity probabilities (3, H, W) of a radiograph (H, W)."""
        probs = self.model.probabilities(network_input(grey), 1)
        return resize(probs, grey.shape)[0]

    def lung_field_checks(self, grey: np.ndarray, orientations: tuple[Orientation, ...] = ORIENTATIONS) -> list[LungFieldCheck]:
        """The lung fields' plausibility on the film (H, W) read each way of ``orientations``, in
        one batch on the network's input grid (turning and inverting commute with its resizing and
        percentile scaling, so the film itself is never turned)."""
        unit = network_input(grey)[0, 0]
        batch = np.stack([np.rot90(1.0 - unit if o.inverted else unit, o.turns)[None] for o in orientations])
        checks = []
        for orientation, probs in zip(orientations, self.model.probabilities(batch.astype(np.float32), len(orientations))):
            lung = _two_lungs(probs.argmax(axis=0) > 0)
            confidence = float((probs[1] + probs[2])[lung].mean()) if lung.any() else 0.0
            checks.append(LungFieldCheck(orientation, confidence, side_by_side(lung)))
        return checks

    def labels(self, grey: np.ndarray) -> np.ndarray:
        """The 0 / 1 (lung) / 4 (opacity) label map of a radiograph (H, W)."""
        return self.labels_from(self.probabilities(grey))

    def labels_from(self, probs: np.ndarray) -> np.ndarray:
        """The label map of the network's (3, H, W) probabilities (see the module docstring)."""
        lung = _two_lungs(probs.argmax(axis=0) > 0)
        opacity = probs[2] >= self.opacity_threshold * (probs[1] + probs[2])
        labels = np.zeros(lung.shape, np.uint8)
        labels[lung] = LUNG_FIELD
        labels[lung & opacity] = OPACITY
        return labels

    def apply(self, image: sitk.Image, progress: Progress | None = None) -> Segmented:
        """The label image of a one-slice radiograph image, on its grid."""
        grey = sitk.GetArrayViewFromImage(image)
        if grey.ndim == 3:
            if grey.shape[0] != 1:
                raise LungLesionQuantError(f"found {grey.shape[0]} slices; expected a radiograph (one slice)")
            grey = grey[0]
        if progress:
            progress("radiograph", 0, 1)
        labels = self.labels(np.asarray(grey, np.float32))
        if progress:
            progress("radiograph", 1, 1)
        out = sitk.GetImageFromArray(labels.reshape(sitk.GetArrayViewFromImage(image).shape))
        out.CopyInformation(image)
        return Segmented(out)


def _two_lungs(mask: np.ndarray) -> np.ndarray:
    regions, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, regions, index=np.arange(1, n + 1))
    order = np.argsort(sizes)[::-1][:2]
    keep = [k + 1 for k in order if sizes[k] >= MIN_LUNG_SHARE * sizes[order[0]]]
    return ndimage.binary_fill_holes(np.isin(regions, keep))
