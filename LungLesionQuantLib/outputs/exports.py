"""Files Slicer itself writes, through its MRML storage nodes, each written atomically."""
from __future__ import annotations

from pathlib import Path

import slicer

from .atomic import atomic_path


def _write(node, storage, path: Path) -> Path:
    with atomic_path(path) as tmp:
        storage.SetFileName(str(tmp))
        if not storage.WriteData(node):
            raise RuntimeError(f"Slicer's {storage.GetClassName()} could not write {path}")
    return path


def write_volume(node, path: Path) -> Path:
    """A volume or label map volume node as NIfTI / NRRD (by suffix), compressed."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetUseCompression(1)
    return _write(node, storage, path)


def write_segmentation(node, path: Path) -> Path:
    """A segmentation node as ``.seg.nrrd`` (names, colours, terminology and label values kept)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetUseCompression(1)
    return _write(node, storage, path)


def write_table(node, path: Path) -> Path:
    """A table node as CSV (Slicer adds a ``.schema.csv`` with the column types beside it)."""
    return _write(node, slicer.vtkMRMLTableStorageNode(), path)
