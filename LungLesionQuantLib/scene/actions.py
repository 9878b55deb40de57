"""What the Slicer module does to a scene, callable without the GUI and tested with slicer-core.

- :func:`segment_volume_node` — a CT volume node in, a *new* segmentation node and a table
  node out (an existing, possibly edited, segmentation is never replaced).
- :func:`labels_from_segmentation` / :func:`measure_segmentation` — re-measure a segmentation
  as it is now, after Segment Editor edits. Segments are found by terminology, else by name.
  Defined results for irregular edits (each also returned as a warning):
  a missing segment counts as empty; a voxel in several segments counts once, with priority
  Cons > GGO > LungN; lesion not touching LungN (e.g. painted outside the lung) still counts,
  as lesion and so as lung, since lung = LungN + GGO + Cons.
- :func:`export_segmentation` — the CLI's per-case layout from the node as it is, plus the
  report and, for a CT that came from DICOM, a DICOM SEG.
- :func:`compare_segmentation_nodes` — observer agreement of two segmentation nodes.
The study panels (cohort agreement, risk) are in :mod:`study_panels`, so that segmenting needs
none of the statistics packages.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from scipy import ndimage

from . import mrml
from .exports import write_segmentation
from ..runtime import Progress, Segmented
from ..segmentation.cascade import Cascade
from ..errors import InputError
from ..input.input_checks import validate_ct
from ..labels import RADIOGRAPH_SEGMENTS, SegmentSpec
from ..modalities import CT, CXR, Modality, modality_of
from ..studies.overlap import LABEL_GROUPS, compare
from ..pipeline import CaseOutputs, CaseResult, safe_case_name, write_case
from ..input.view_gate import EVEN_ODDS, radiograph_probability


@dataclass
class Measured:
    """A segmentation's label map on the reference grid, its measures, and what was irregular."""

    label_image: sitk.Image
    row: dict
    warnings: list[str]


def volume_modality(volume_node) -> Modality:
    """CXR for a one-slice volume that the view gate calls a radiograph, else CT (a radiograph
    loaded in Slicer is a one-slice volume, like a CT slice exported as PNG)."""
    image = mrml.image_from_volume_node(volume_node)
    if image.GetDimension() == 3 and image.GetSize()[2] == 1:
        grey = sitk.GetArrayViewFromImage(image)[0]
        if np.ptp(grey) > 0 and radiograph_probability(grey) >= EVEN_ODDS:
            return CXR
    return CT


def _validate(image: sitk.Image, modality: Modality, source: str) -> None:
    if modality is CT:
        validate_ct(image, source)
    elif image.GetSize()[2] != 1 or not np.isfinite(sitk.GetArrayViewFromImage(image)).all():
        raise InputError(f"{source}: found {image.GetSize()[2]} slices or non-finite values; expected one radiograph (a one-slice volume)")


def segment_volume_node(scene, volume_node, cascade: Cascade, progress: Progress | None = None):
    """Segment a CT volume node (or, with the radiograph model as ``cascade``, a radiograph) in
    this process; returns (new segmentation node, new table node, Measured).

    ``progress(stage, done, total)`` hears of reading the volume, each network, the
    post-processing and the node creation; raising in it cancels, leaving the scene as it was.
    """
    report = progress or (lambda stage, done, total: None)
    modality = modality_of(cascade)
    report("reading the volume", 0, 1)
    image = volume_image(volume_node, modality)
    report("reading the volume", 1, 1)
    segmented = cascade.apply(image, progress)
    report("creating the segmentation", 0, 1)
    out = add_segmentation(scene, volume_node, segmented, modality)
    report("creating the segmentation", 1, 1)
    return out


def volume_image(volume_node, modality: Modality) -> sitk.Image:
    """The node's image (float32, with its geometry) checked as ``modality`` wants it: the part of
    segmenting that needs the scene, done before the slow part (here or in another process)."""
    image = mrml.image_from_volume_node(volume_node)
    _validate(image, modality, f"volume '{volume_node.GetName()}'")
    return sitk.Cast(image, sitk.sitkFloat32)


def add_segmentation(scene, volume_node, segmented: Segmented, modality: Modality):
    """A new segmentation node (and table) for ``volume_node`` from a segmenter's result, under the
    volume's parent transform; returns (segmentation node, table node, Measured)."""
    name = volume_node.GetName()
    label_node = mrml.volume_node(scene, segmented.labels, scene.GenerateUniqueName(f"{name} labels"), labelmap=True)
    seg_node = mrml.segmentation_node(scene, label_node, volume_node, scene.GenerateUniqueName(f"{name} LungLesionQuant"),
                                      modality.segments)
    scene.RemoveNode(label_node)
    # Under the volume's parent transform (a registration, a re-orientation), or it lies misplaced.
    seg_node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
    table, measured = measure_segmentation(scene, seg_node, volume_node)
    measured.warnings[:0] = segmented.findings.get("warnings", [])
    return seg_node, table, measured


def _segment_mask(seg_node, segment_id: str, reference_node) -> np.ndarray:
    """One segment as a mask on the reference volume's grid. The export goes through a temporary
    label map node, which gains a display node and a colour table: all three are removed, or
    every re-measure would leave two nodes behind in the user's scene (and its saved file)."""
    scene = seg_node.GetScene()
    existing = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(seg_node, ids, labelmap, reference_node):
            raise RuntimeError(f"could not export segment {segment_id} of {seg_node.GetName()}")
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:  # only what the export added: a colour table Slicer shares stays
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes()) if scene.GetNthNode(i).GetID() not in existing]
        for node in added:
            scene.RemoveNode(node)


def segmentation_modality(seg_node) -> Modality:
    """CXR for a segmentation with an Opacity segment and neither GGO nor Cons, else CT."""
    ct_ids = mrml.find_segment_ids(seg_node)
    cxr_ids = mrml.find_segment_ids(seg_node, RADIOGRAPH_SEGMENTS)
    return CXR if cxr_ids["Opacity"] and not (ct_ids["GGO"] or ct_ids["Cons"]) else CT


def labels_from_segmentation(seg_node, reference_node, segments: tuple[SegmentSpec, ...] | None = None) -> tuple[sitk.Image, list[str]]:
    """The label image (0/1/2/3, or 0/1/4 for a radiograph's segments) of a segmentation node on
    the reference volume's grid; ``segments`` default to those of :func:`segmentation_modality`."""
    segments = segments or segmentation_modality(seg_node).segments
    reference = mrml.image_from_volume_node(reference_node)
    voxel_cm3 = float(np.prod(reference.GetSpacing())) / 1000.0
    shape = sitk.GetArrayViewFromImage(reference).shape
    ids = mrml.find_segment_ids(seg_node, segments)
    warnings = []
    masks = {}
    for spec in segments:
        if ids[spec.name] is None:
            warnings.append(f"segment {spec.name} is missing: counted as empty")
            masks[spec.value] = np.zeros(shape, bool)
        else:
            masks[spec.value] = _segment_mask(seg_node, ids[spec.name], reference_node)
    count = sum(m.astype(np.uint8) for m in masks.values())
    if (count > 1).any():
        order = " over ".join(spec.name for spec in reversed(segments))
        warnings.append(f"{(count > 1).sum() * voxel_cm3:.2f} cm³ lie in more than one segment: counted once ({order})")
    labels = np.zeros(shape, np.uint8)
    for spec in segments:  # ascending value: later (higher) labels win overlaps
        labels[masks[spec.value]] = spec.value
    base = segments[0]
    lesion = labels > base.value
    full = np.ones((3, 3, 3), bool)
    regions, n = ndimage.label(lesion, structure=full)
    if n:
        touching = np.unique(regions[ndimage.binary_dilation(labels == base.value, structure=full) & lesion])
        outside = lesion & ~np.isin(regions, touching[touching > 0])
        if outside.any():
            warnings.append(f"{outside.sum() * voxel_cm3:.2f} cm³ of lesion do not touch {base.name} (outside the lung?): counted as lesion and lung")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    return image, warnings


def measure_segmentation(scene, seg_node, reference_node, table_node=None):
    """Measure a segmentation as it is now; fills ``table_node`` (or a new one). Returns (table, Measured)."""
    modality = segmentation_modality(seg_node)
    label_image, warnings = labels_from_segmentation(seg_node, reference_node, modality.segments)
    measured, warnings = modality.assess(label_image, warnings)
    row = {"case": reference_node.GetName(), **measured}
    table_node = mrml.table_node(scene, [row], scene.GenerateUniqueName(f"{reference_node.GetName()} measurements"), table_node)
    return table_node, Measured(label_image, row, warnings)


def export_segmentation(seg_node, reference_node, folder: Path, case: str | None = None,
                        dicom_files: list[str] | None = None, overwrite: bool = False) -> CaseResult:
    """Write ``folder/<case>/`` as the CLI does, from the node as edited, plus ``report.pdf`` and DICOM SEG."""
    case = safe_case_name(case or reference_node.GetName())
    modality = segmentation_modality(seg_node)
    label_image, warnings = labels_from_segmentation(seg_node, reference_node, modality.segments)
    outputs = CaseOutputs(label_image, partial(write_segmentation, seg_node), warnings=warnings, report=modality is CT,
                          dicom_files=list(dicom_files or []) if modality is CT else [], modality=modality)
    return write_case(case, mrml.image_from_volume_node(reference_node), outputs, Path(folder) / case,
                      source=f"volume node '{reference_node.GetName()}'", overwrite=overwrite)


def compare_segmentation_nodes(scene, reference_seg, test_seg, reference_volume, table_node=None):
    """Agreement of two segmentation nodes of one CT (segments matched by terminology or name):
    one row of :func:`overlap.compare`, shown as a table node. Returns (table, row, warnings)."""
    reference, w1 = labels_from_segmentation(reference_seg, reference_volume)
    test, w2 = labels_from_segmentation(test_seg, reference_volume)
    row = {"reference": reference_seg.GetName(), "test": test_seg.GetName(), **compare(reference, test)}
    lines = [{"label": label, "Dice": row[f"{label}_dice"], "sensitivity": row[f"{label}_sensitivity"],
              "precision": row[f"{label}_precision"], "HD95 mm": row[f"{label}_hd95_mm"], "MSD mm": row[f"{label}_msd_mm"],
              "status": row[f"{label}_status"]} for label in LABEL_GROUPS]
    table_node = mrml.table_node(scene, lines, scene.GenerateUniqueName("agreement"), table_node)
    return table_node, row, [f"reference: {w}" for w in w1] + [f"test: {w}" for w in w2]
