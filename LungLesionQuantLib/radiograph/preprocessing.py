"""Radiograph preprocessing shared by training and inference, so the two can never drift.

A radiograph carries no physical unit comparable between machines (unlike HU on CT): its
grey levels depend on exposure, detector and the look-up table applied. Each image is
therefore scaled by its own percentiles (0.5 % → 0, 99.5 % → 1; :mod:`..input.grey_levels`), and resized, whole, to the
network's square input: the training radiographs (COVID-QU-Ex) were published resized to
256×256 without keeping the aspect ratio, so inference resizes the same way and maps the
result back to the image's own grid.
"""
from __future__ import annotations

import numpy as np

from ..input.grey_levels import resize, to_unit

SIZE = 256
PREPROCESSING_ID = "radiograph-percentile-unit-v1"


def network_input(image: np.ndarray) -> np.ndarray:
    """One radiograph (H, W) → the network's (1, 1, SIZE, SIZE) input."""
    return resize(to_unit(image)[None, None], (SIZE, SIZE))
