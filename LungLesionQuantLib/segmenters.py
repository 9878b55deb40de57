"""The one factory of segmenters: which network serves which modality, built the same way by
the command, its Dask workers, the headless batch and the Slicer module.

A :class:`SegmenterSpec` is small and hashable: it travels to Dask workers instead of loaded
models, and keys the models a worker process (or the Slicer module) keeps loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from .radiograph.segment import RadiographNet
from .resources import MODEL_DIR
from .segmentation.cascade import LEFT_RIGHT, Cascade

Segmenter = Cascade | RadiographNet


@dataclass(frozen=True)
class SegmenterSpec:
    """The segmenter of ``modality`` ('ct': the three-stage cascade; 'cxr': the radiograph
    network) from ``model_dir``, on ``device`` with ``threads``; ``tta``: the CT cascade's
    left-right test-time mirroring."""

    modality: str = "ct"
    model_dir: str = str(MODEL_DIR)
    device: str = "auto"
    threads: int | None = None
    tta: bool = False

    def build(self) -> Segmenter:
        if self.modality == "cxr":
            return RadiographNet(self.model_dir, device=self.device, threads=self.threads)
        return Cascade(self.model_dir, device=self.device, threads=self.threads, flips=LEFT_RIGHT if self.tta else ())


_LOADED: dict[SegmenterSpec, Segmenter] = {}


def loaded(spec: SegmenterSpec) -> Segmenter:
    """The segmenter of ``spec``, built on first use and kept for this process's later cases."""
    if spec not in _LOADED:
        _LOADED[spec] = spec.build()
    return _LOADED[spec]
