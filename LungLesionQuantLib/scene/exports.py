"""A segmentation node as Slicer itself writes it (its MRML storage node), atomically: the file of
a segmentation a person edited in Slicer, kept exactly as Slicer holds it. Everything the command
writes from arrays goes through :mod:`..outputs.case_files` instead."""
from __future__ import annotations

from pathlib import Path

import slicer

from ..outputs.atomic import atomic_path


def _write(node, storage, path: Path) -> Path:
    with atomic_path(path) as tmp:
        storage.SetFileName(str(tmp))
        if not storage.WriteData(node):
            raise RuntimeError(f"Slicer's {storage.GetClassName()} could not write {path}")
    return path


def write_segmentation(node, path: Path) -> Path:
    """A segmentation node as ``.seg.nrrd`` (names, colours, terminology and label values kept)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetUseCompression(1)
    return _write(node, storage, path)
