"""Grey levels without a physical unit (radiographs, any 2D image before the view gate):
scaled by the image's own percentiles and resized with Pillow, the same in training and inference."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


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


def grey_pixels(image: Image.Image, path: object, expected: str, tolerance: int) -> np.ndarray:
    """The (H, W) grey levels of an opened image file (see :func:`grey_channels`)."""
    pixels = np.asarray(image)
    return pixels if pixels.ndim == 2 else grey_channels(pixels, "A" in image.getbands(), path, expected, tolerance)


def grey_channels(pixels: np.ndarray, alpha: bool, source: object, expected: str, tolerance: float) -> np.ndarray:
    """Grey levels of pixels with channels on the last axis, for CT slice exports, radiographs
    and Slicer's vector volumes alike: an ``alpha`` channel (the last) that hides nothing
    dropped (one that varies refused); grey stored as RGB read as grey (channels apart by more
    than ``tolerance``: refused as colour)."""
    if alpha:
        if pixels[..., -1].min() != pixels[..., -1].max():
            raise InputError(f"{source}: found an image with transparency (an alpha channel that varies); expected an opaque {expected}")
        pixels = pixels[..., :-1]
    channels = pixels[..., :3].astype(np.int32 if np.issubdtype(pixels.dtype, np.integer) else np.float64)
    if np.abs(channels - channels[..., :1]).max() > tolerance:
        raise InputError(f"{source}: found a colour image; expected a {expected}")
    return channels[..., 0]
