"""Is a 2D image a CT slice or a chest radiograph? The view gate, run before either is measured.

An 8-bit PNG says nothing about what it shows; a radiograph read as a CT slice (or the reverse)
would be segmented and measured into numbers that mean nothing. The gate is a small CNN
(:mod:`..training.view_gate`, ``Resources/Models/view.onnx``) that sees the image resized to
128×128 after the radiograph preprocessing (:mod:`.grey_levels`). It belongs to reading:
what an image is decides how it is read.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..resources import MODEL_DIR
from ..runtime import StageModel, providers_for
from .grey_levels import resize, to_unit

CLASSES = ("ct_slice", "radiograph")
SIZE = 128
MODEL_FILE = "view.onnx"
# An input is refused only where the gate is confident that it is the other kind: a CT slice
# whose radiograph probability is at least NOT_CT, a radiograph whose is below NOT_RADIOGRAPH.
# Held-out counts at these thresholds are in view.train.json.
NOT_CT = 0.9
NOT_RADIOGRAPH = 0.1
# Where nothing is refused but a kind must be chosen (a one-slice volume in Slicer): even odds.
EVEN_ODDS = 0.5


@lru_cache(maxsize=2)
def _gate(path: Path):
    return StageModel.load(path, providers_for("cpu"), 1)


def radiograph_probability(grey: np.ndarray, model_dir: Path = MODEL_DIR) -> float:
    """The gate's probability that the 2D image ``grey`` (any grey levels) is a chest radiograph."""
    unit = resize(to_unit(np.asarray(grey, np.float32))[None, None], (SIZE, SIZE))
    logits = _gate(Path(model_dir) / MODEL_FILE).session.run(None, {"image": unit})[0][0]
    exp = np.exp(logits - logits.max())
    return float(exp[1] / exp.sum())
