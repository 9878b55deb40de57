"""Radiograph preprocessing shared by training and inference, so the two can never drift.

A radiograph carries no physical unit comparable between machines (unlike HU on CT): its
grey levels depend on exposure, detector and the look-up table applied. Each image is
therefore scaled by its own percentiles (0.5 % → 0, 99.5 % → 1), and resized, whole, to the
network's square input: the training radiographs (COVID-QU-Ex) were published resized to
256×256 without keeping the aspect ratio, so inference resizes the same way and maps the
result back to the image's own grid.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 256
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
PREPROCESSING_ID = "radiograph-percentile-unit-v1"


def to_unit(image: np.ndarray) -> np.ndarray:
    """Grey levels of any depth → float32 in [0, 1] by the image's own percentiles."""
    values = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def resize(images: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize (N, C, H, W) float arrays to ``shape``: bilinear (Pillow's, antialiased when
    shrinking) or nearest for labels. Pillow, not torch: inference must run where only the
    product's dependencies are installed (a Slicer without PyTorch)."""
    images = np.asarray(images, dtype=np.float32)
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    out = np.empty(images.shape[:2] + tuple(shape), np.float32)
    for index in np.ndindex(*images.shape[:2]):
        out[index] = np.asarray(Image.fromarray(np.ascontiguousarray(images[index])).resize((shape[1], shape[0]), method))
    return out


def network_input(image: np.ndarray) -> np.ndarray:
    """One radiograph (H, W) → the network's (1, 1, SIZE, SIZE) input."""
    return resize(to_unit(image)[None, None], (SIZE, SIZE))
