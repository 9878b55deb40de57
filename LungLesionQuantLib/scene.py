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
- :func:`fit_risk_to_table` / :func:`predict_from_table` — the risk panel: fit, odds-ratio table,
  and this patient's predicted probability.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from scipy import ndimage

from . import mrml
from .cascade import Cascade, Progress, findings_of
from .input_checks import validate_ct
from .labels import SEGMENTS
from .agreement import compare_folders, summarise, table2, write_study
from .overlap import LABEL_GROUPS, compare
from .pipeline import CaseOutputs, CaseResult, write_case
from .plausibility import lung_warnings
from .quantify import measure_image
from .risk import EXTENT, FittedModel, fit_study, load_cohort, parse_patient, predict_patient
from .risk import write_study as write_risk_study


@dataclass
class Measured:
    """A segmentation's label map on the reference grid, its measures, and what was irregular."""

    label_image: sitk.Image
    row: dict
    warnings: list[str]


def segment_volume_node(scene, volume_node, cascade: Cascade, progress: Progress | None = None):
    """Segment a CT volume node; returns (new segmentation node, new table node, Measured)."""
    name = volume_node.GetName()
    image = mrml.image_from_volume_node(volume_node)
    validate_ct(image, f"volume '{name}'")
    label_image = cascade.apply(sitk.Cast(image, sitk.sitkFloat32), progress)
    label_node = mrml.volume_node(scene, label_image, scene.GenerateUniqueName(f"{name} labels"), labelmap=True)
    seg_node = mrml.segmentation_node(scene, label_node, volume_node, scene.GenerateUniqueName(f"{name} LungLesionQuant"))
    scene.RemoveNode(label_node)
    table, measured = measure_segmentation(scene, seg_node, volume_node)
    measured.warnings[:0] = findings_of(label_image).get("warnings", [])
    return seg_node, table, measured


def _segment_mask(seg_node, segment_id: str, reference_node) -> np.ndarray:
    scene = seg_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(seg_node, ids, labelmap, reference_node)
    mask = slicer.util.arrayFromVolume(labelmap) > 0
    scene.RemoveNode(labelmap)
    return mask


def labels_from_segmentation(seg_node, reference_node) -> tuple[sitk.Image, list[str]]:
    """The 0/1/2/3 label image of a segmentation node on the reference volume's grid."""
    reference = mrml.image_from_volume_node(reference_node)
    voxel_cm3 = float(np.prod(reference.GetSpacing())) / 1000.0
    shape = sitk.GetArrayViewFromImage(reference).shape
    ids = mrml.find_segment_ids(seg_node)
    warnings = []
    masks = {}
    for spec in SEGMENTS:
        if ids[spec.name] is None:
            warnings.append(f"segment {spec.name} is missing: counted as empty")
            masks[spec.value] = np.zeros(shape, bool)
        else:
            masks[spec.value] = _segment_mask(seg_node, ids[spec.name], reference_node)
    count = sum(m.astype(np.uint8) for m in masks.values())
    if (count > 1).any():
        warnings.append(f"{(count > 1).sum() * voxel_cm3:.2f} cm³ lie in more than one segment: counted once (Cons over GGO over LungN)")
    labels = np.zeros(shape, np.uint8)
    for spec in SEGMENTS:  # ascending value: later (higher) labels win overlaps
        labels[masks[spec.value]] = spec.value
    lesion = labels >= 2
    full = np.ones((3, 3, 3), bool)
    regions, n = ndimage.label(lesion, structure=full)
    if n:
        touching = np.unique(regions[ndimage.binary_dilation(labels == 1, structure=full) & lesion])
        outside = lesion & ~np.isin(regions, touching[touching > 0])
        if outside.any():
            warnings.append(f"{outside.sum() * voxel_cm3:.2f} cm³ of lesion do not touch LungN (outside the lung?): counted as lesion and lung")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    return image, warnings


def measure_segmentation(scene, seg_node, reference_node, table_node=None):
    """Measure a segmentation as it is now; fills ``table_node`` (or a new one). Returns (table, Measured)."""
    label_image, warnings = labels_from_segmentation(seg_node, reference_node)
    warnings += lung_warnings(label_image)
    row = {"case": reference_node.GetName(), **measure_image(label_image)}
    table_node = mrml.table_node(scene, [row], scene.GenerateUniqueName(f"{reference_node.GetName()} measurements"), table_node)
    return table_node, Measured(label_image, row, warnings)


def export_segmentation(scene, seg_node, reference_node, folder: Path, case: str | None = None,
                        dicom_files: list[str] | None = None, overwrite: bool = False) -> CaseResult:
    """Write ``folder/<case>/`` as the CLI does, from the node as edited, plus ``report.pdf`` and DICOM SEG."""
    case = case or reference_node.GetName()
    label_image, warnings = labels_from_segmentation(seg_node, reference_node)
    outputs = CaseOutputs(label_image, scene=scene, seg_node=seg_node, warnings=warnings, report=True,
                          dicom_files=list(dicom_files or []))
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


def compare_folders_to_table(scene, reference: Path, test: Path, output: Path, table_node=None):
    """The cohort study of ``lunglesionquant agreement`` (files in ``output``), its Table-2
    summary as a table node. Returns (table, written files, CohortComparison)."""
    result = compare_folders(Path(reference), [Path(test)])
    written = write_study(result, Path(output))
    rows = table2(summarise(result.per_case)).reset_index().to_dict("records") if len(result.per_case) else []
    table_node = mrml.table_node(scene, rows, scene.GenerateUniqueName("agreement summary"), table_node)
    return table_node, written, result


def fit_risk_to_table(scene, cohort: Path, id_column: str, outcome: str, covariates: list[str],
                      extent_from: Path | None, score: str | None, output: Path, table_node=None):
    """``lunglesionquant risk fit`` (files in ``output``), its odds ratios as a table node.
    Returns (table, written files, RiskStudy)."""
    frame, notes = load_cohort(Path(cohort), id_column, outcome, covariates, Path(extent_from) if extent_from else None, score)
    study = fit_study(frame, id_column, outcome, covariates, score, notes=notes)
    written = write_risk_study(study, frame, Path(output))
    table_node = mrml.table_node(scene, study.odds_ratios.to_dict("records"), scene.GenerateUniqueName("odds ratios"), table_node)
    return table_node, written, study


def predict_from_table(model_path: Path, items: list[str], measurements_table=None) -> tuple[dict, FittedModel]:
    """A fitted model applied to typed ``NAME=VALUE`` items, the lesion extent taken from the
    measurements table node when the model needs it and it was not typed."""
    model = FittedModel.from_json(Path(model_path).read_text())
    values = parse_patient(items)
    if EXTENT in [c.name for c in model.codings] and EXTENT not in values and measurements_table is not None:
        values[EXTENT] = float(slicer.util.dataframeFromTable(measurements_table)[EXTENT].iloc[0])
    return predict_patient(model, values), model
