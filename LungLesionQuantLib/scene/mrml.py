"""Slicer MRML nodes in and out: volumes, label maps, segmentations and tables.

Only MRML classes that exist both in the Slicer application and in the ``slicer-core``
package are used, so the module's logic and the CLI share this code and CI tests it with
real nodes. Geometry crosses between SimpleITK (LPS) and MRML (RAS) here and nowhere else.
"""
from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from ..labels import SEGMENTS, SegmentSpec, find_segment, terminology_type_code

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def new_scene() -> "slicer.vtkMRMLScene":
    """A scene with the segmentation converter rules registered (needed to create segments)."""
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    scene._llq_segmentations_logic = logic  # keep the logic (and its rules) alive with the scene
    return scene


def _set_geometry(node, image: sitk.Image) -> None:
    direction = _LPS_TO_RAS @ np.array(image.GetDirection()).reshape(3, 3)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, direction[r, c])
    node.SetIJKToRASDirectionMatrix(matrix)
    node.SetSpacing(image.GetSpacing())
    node.SetOrigin(*(_LPS_TO_RAS @ np.array(image.GetOrigin())))


def volume_node(scene, image: sitk.Image, name: str, labelmap: bool = False):
    """A scalar (or label map) volume node holding a 3D SimpleITK image."""
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    _set_geometry(node, image)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    return node


def image_from_volume_node(node) -> sitk.Image:
    """The SimpleITK image (LPS) of a volume node."""
    image = sitk.GetImageFromArray(slicer.util.arrayFromVolume(node).copy())
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(matrix)
    direction = _LPS_TO_RAS @ np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    image.SetDirection(tuple(direction.ravel()))
    image.SetSpacing(node.GetSpacing())
    image.SetOrigin(tuple(_LPS_TO_RAS @ np.array(node.GetOrigin())))
    return image


def _style_segment(segment, spec: SegmentSpec) -> None:
    segment.SetName(spec.name)
    segment.SetColor(*spec.color)
    segment.SetLabelValue(spec.value)
    segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology_entry())


def segmentation_node(scene, labelmap_node, reference_node, name: str, segments: tuple[SegmentSpec, ...] = SEGMENTS):
    """A segmentation node with ``segments`` (LungN, GGO and Cons from a 0/1/2/3 label map node
    by default; Lung and Opacity for radiographs).

    Every segment exists even when its label is absent (then it is empty), so scripts and
    the Segment Editor always find the three by name.
    """
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node, seg_node):
        raise RuntimeError(f"could not import label map {labelmap_node.GetName()} into a segmentation")
    segmentation = seg_node.GetSegmentation()
    by_value = {segmentation.GetSegment(sid).GetLabelValue(): sid for sid in segmentation.GetSegmentIDs()}
    for spec in segments:
        if spec.value in by_value:
            _style_segment(segmentation.GetSegment(by_value[spec.value]), spec)
        else:
            segmentation.AddEmptySegment(spec.name, spec.name, list(spec.color))
            _style_segment(segmentation.GetSegment(spec.name), spec)
    seg_node.CreateDefaultDisplayNodes()
    return seg_node


def find_segment_ids(seg_node, segments: tuple[SegmentSpec, ...] = SEGMENTS) -> dict[str, str | None]:
    """Segment id for each of ``segments`` (LungN / GGO / Cons), found by terminology code, else by name.

    Position is never used: a user may reorder, add or delete segments in the Segment Editor.
    """
    segmentation = seg_node.GetSegmentation()
    found = []
    for sid in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(sid)
        tag = vtk.mutable("")
        code = terminology_type_code(str(tag)) if segment.GetTag(segment.GetTerminologyEntryTagName(), tag) else None
        found.append((sid, code, segment.GetName()))
    return {spec.name: find_segment(spec, found) for spec in segments}


def table_node(scene, rows: list[dict], name: str, node=None):
    """A table node with one row per dict; numbers become double columns, the rest strings.

    With ``node``, that table node's content is replaced instead (the module's tables are
    updated in place, so views showing them follow).
    """
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.RemoveAllColumns()
    table = node.GetTable()
    columns = list(rows[0].keys()) if rows else []
    for col in columns:
        numeric = all(isinstance(r.get(col), (int, float, np.floating, np.integer)) for r in rows)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(col)
        for r in rows:
            value = r.get(col)
            if numeric:
                array.InsertNextValue(float(value))
            else:
                array.InsertNextValue("" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))
        table.AddColumn(array)
    node.Modified()
    return node
