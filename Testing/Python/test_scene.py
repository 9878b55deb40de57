"""The module's logic on real MRML nodes: segment, edit segments, re-measure, export, re-run.

Also run by .ci/run in Python 3.12 environments holding exactly the packages Slicer 5.10 and
5.12 bundle (Testing/Slicer/slicer_environments.sh)."""
import importlib.util

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import slicer
import slicerio
import vtk
from vtk.util import numpy_support

from LungLesionQuantLib.scene import mrml
from LungLesionQuantLib.input.imageio import read_ct
from LungLesionQuantLib.scene.actions import export_segmentation, measure_segmentation, segment_volume_node
from conftest import SAMPLE_CT, shared


def set_segment_mask(seg_node, segment_id, mask, reference_node):
    """Replace a segment's binary labelmap, as the Segment Editor's effects do."""
    image = slicer.vtkOrientedImageData()
    nz, ny, nx = mask.shape
    image.SetDimensions(nx, ny, nz)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nz, ny, nx)[:] = mask
    matrix = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic.SetBinaryLabelmapToSegment(image, seg_node, segment_id, logic.MODE_REPLACE, image.GetExtent())


def segment_mask(seg_node, name, reference_node):
    from LungLesionQuantLib.scene.actions import _segment_mask

    return _segment_mask(seg_node, mrml.find_segment_ids(seg_node)[name], reference_node)


def fresh_segmentation(scene, ct, cascade):
    """A new segmentation of the CT, its measures, the voxel volume and each segment's mask."""
    seg, table, measured = segment_volume_node(scene, ct, cascade)
    masks = {name: segment_mask(seg, name, ct) for name in ("LungN", "GGO", "Cons")}
    return seg, table, measured, np.prod(ct.GetSpacing()) / 1000, masks


@pytest.fixture(scope="module")
def segmented(cascade):
    scene = mrml.new_scene()
    ct = mrml.volume_node(scene, read_ct(SAMPLE_CT).image, "sample")
    seg, table, measured = segment_volume_node(scene, ct, cascade)
    return scene, ct, seg, table, measured


def test_segment_creates_named_segments_and_a_table(segmented):
    scene, ct, seg, table, measured = segmented
    assert set(mrml.find_segment_ids(seg).values()) == set(seg.GetSegmentation().GetSegmentIDs())
    frame = slicer.util.dataframeFromTable(table)
    assert frame["case"].tolist() == ["sample"]
    assert 3000 < frame["lung_volume_cm3"][0] < 8000
    assert frame["GGO_volume_cm3"][0] == pytest.approx(measured.row["GGO_volume_cm3"])
    assert not any("more than one segment" in w or "missing" in w for w in measured.warnings)


def test_edits_change_the_table_by_exactly_the_edited_volume(segmented, cascade):
    scene, ct, _, _, _ = segmented
    seg, table, before, voxel_cm3, masks = fresh_segmentation(scene, ct, cascade)
    ggo, lung_n, cons = masks["GGO"], masks["LungN"], masks["Cons"]
    # erase every GGO voxel in the lower half of the slices
    erase = np.zeros_like(ggo)
    erase[: ggo.shape[0] // 2] = True
    erased = int((ggo & erase).sum())
    assert erased > 0
    set_segment_mask(seg, mrml.find_segment_ids(seg)["GGO"], ggo & ~erase, ct)
    # paint a block of normal lung as Cons, taking it out of LungN (the editor's "overwrite other segments")
    z, y, x = np.argwhere(lung_n)[len(np.argwhere(lung_n)) // 2]
    paint = np.zeros_like(cons)
    paint[z - 1:z + 2, y - 3:y + 4, x - 3:x + 4] = True
    painted = int((paint & lung_n).sum())
    set_segment_mask(seg, mrml.find_segment_ids(seg)["Cons"], cons | (paint & lung_n), ct)
    set_segment_mask(seg, mrml.find_segment_ids(seg)["LungN"], lung_n & ~paint, ct)
    table, after = measure_segmentation(scene, seg, ct, table)
    a, b = after.row, before.row
    assert a["GGO_volume_cm3"] - b["GGO_volume_cm3"] == pytest.approx(-erased * voxel_cm3, rel=1e-9)
    assert a["Cons_volume_cm3"] - b["Cons_volume_cm3"] == pytest.approx(painted * voxel_cm3, rel=1e-9)
    assert a["LungN_volume_cm3"] - b["LungN_volume_cm3"] == pytest.approx(-painted * voxel_cm3, rel=1e-9)
    assert a["lung_volume_cm3"] - b["lung_volume_cm3"] == pytest.approx(-erased * voxel_cm3, rel=1e-9)
    assert slicer.util.dataframeFromTable(table)["Cons_volume_cm3"][0] == pytest.approx(a["Cons_volume_cm3"])
    assert not any("more than one segment" in w for w in after.warnings)


def test_irregular_edits_get_warnings_and_defined_results(segmented, cascade):
    scene, ct, _, _, _ = segmented
    seg, _, before, voxel_cm3, masks = fresh_segmentation(scene, ct, cascade)
    lung_n, ggo, cons = masks["LungN"], masks["GGO"], masks["Cons"]
    # overlap: paint Cons over normal lung without removing it from LungN
    z, y, x = np.argwhere(lung_n)[0]
    overlap = np.zeros_like(lung_n)
    overlap[z, y, x] = True
    set_segment_mask(seg, mrml.find_segment_ids(seg)["Cons"], cons | overlap, ct)
    # lesion outside the lung: a GGO block in a corner of the volume, far from any lung
    outside = np.zeros_like(ggo)
    outside[:2, :3, :3] = True
    set_segment_mask(seg, mrml.find_segment_ids(seg)["GGO"], ggo | outside, ct)
    _, measured = measure_segmentation(scene, seg, ct)
    text = " | ".join(measured.warnings)
    assert "more than one segment" in text and "do not touch LungN" in text
    assert measured.row["Cons_volume_cm3"] == pytest.approx(before.row["Cons_volume_cm3"] + voxel_cm3, rel=1e-9)
    assert measured.row["GGO_volume_cm3"] == pytest.approx(before.row["GGO_volume_cm3"] + 18 * voxel_cm3, rel=1e-9)
    # a deleted segment counts as empty
    seg.GetSegmentation().RemoveSegment(mrml.find_segment_ids(seg)["Cons"])
    _, measured = measure_segmentation(scene, seg, ct)
    assert "segment Cons is missing" in " | ".join(measured.warnings)
    assert measured.row["Cons_volume_cm3"] == 0.0


def test_a_second_run_leaves_the_edited_node_untouched(segmented, cascade):
    scene, ct, seg, _, _ = segmented
    ggo = segment_mask(seg, "GGO", ct)
    edited = ggo.copy()
    edited[ggo.shape[0] // 2:] = False
    set_segment_mask(seg, mrml.find_segment_ids(seg)["GGO"], edited, ct)
    second, _, _ = segment_volume_node(scene, ct, cascade)
    assert second is not seg and second.GetName() != seg.GetName()
    assert np.array_equal(segment_mask(seg, "GGO", ct), edited)


def test_export_round_trips_seg_nrrd_nifti_and_dicom_seg(cascade, tmp_path):
    loaded = read_ct(shared("dicom/lung_pet_ct_dx_A0001"))
    scene = mrml.new_scene()
    ct = mrml.volume_node(scene, loaded.image, "A0001")
    seg, _, measured = segment_volume_node(scene, ct, cascade)
    result = export_segmentation(seg, ct, tmp_path, dicom_files=loaded.dicom_files)
    case = tmp_path / "A0001"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
    assert np.array_equal(labels, sitk.GetArrayFromImage(measured.label_image))
    read = slicerio.read_segmentation(str(case / "segmentation.seg.nrrd"))
    assert [s["name"] for s in read["segments"]] == ["LungN", "GGO", "Cons"]
    assert pd.read_csv(case / "measurements.csv")["lung_volume_cm3"][0] == pytest.approx(result.measurements["lung_volume_cm3"])
    assert (case / "report.pdf").read_bytes()[:5] == b"%PDF-"
    if importlib.util.find_spec("highdicom") is None or int(pydicom.__version__.split(".")[0]) < 3:  # Slicer 5.10
        assert not (case / "segmentation.dcm").exists()
        assert any(w.startswith("DICOM SEG needs highdicom") for w in result.warnings), result.warnings
        return
    import highdicom as hd

    dicom_seg = hd.seg.segread(str(case / "segmentation.dcm"))
    assert [d.SegmentLabel for d in dicom_seg.SegmentSequence] == ["LungN", "GGO", "Cons"]
    sources = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in loaded.dicom_files),
                     key=lambda ds: float(ds.ImagePositionPatient[2]))
    z_order = np.argsort([ct_index(loaded.image, ds) for ds in sources])
    pixels = dicom_seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources], combine_segments=True, relabel=False)
    assert np.array_equal(pixels[z_order], labels)


def ct_index(image, ds):
    return image.TransformPhysicalPointToIndex(tuple(float(v) for v in ds.ImagePositionPatient))[2]


def test_two_segmentation_nodes_are_compared_by_segment_names(segmented, cascade):
    from LungLesionQuantLib.scene.actions import compare_segmentation_nodes

    scene, ct, seg, _, _ = segmented
    other, _, _ = segment_volume_node(scene, ct, cascade)
    ggo = segment_mask(other, "GGO", ct)
    ids = mrml.find_segment_ids(other)
    set_segment_mask(other, ids["LungN"], segment_mask(other, "LungN", ct) | ggo, ct)  # GGO called normal lung:
    set_segment_mask(other, ids["GGO"], np.zeros_like(ggo), ct)                          # no lesion is cut off the lung
    other.GetSegmentation().GetSegment(ids["LungN"]).SetName("lungn")  # found by code
    table, row, warnings = compare_segmentation_nodes(scene, other, other, ct)
    assert row["LungN_dice"] == 1.0 and row["GGO_status"] == "empty in both" and warnings == []
    frame = slicer.util.dataframeFromTable(table)
    assert frame["label"].tolist() == ["LungN", "GGO", "Cons", "lesion"]
    table, row, _ = compare_segmentation_nodes(scene, seg, other, ct, table)
    assert row["GGO_status"] in ("empty in test", "empty in both")
    assert slicer.util.dataframeFromTable(table)["status"][1] == row["GGO_status"]


def test_risk_panel_logic_fits_and_predicts_with_this_ct_extent(segmented, tmp_path):
    from LungLesionQuantLib.scene.study_panels import fit_risk_to_table, predict_from_table
    from LungLesionQuantLib.studies.synthetic_cohort import synthetic_cohort, write_synthetic

    scene, ct, seg, table, measured = segmented
    cohort, seg_out = write_synthetic(synthetic_cohort(1500, seed=5), tmp_path)
    odds, written, study = fit_risk_to_table(scene, cohort, "ID", "OUTCOME", ["AGE", "SEX"], seg_out, None, tmp_path / "risk")
    assert set(slicer.util.dataframeFromTable(odds)["model"]) == {"A", "C"}
    assert written["calibration.png"].read_bytes()[:4] == b"\x89PNG"  # shown under the ROC in the panel
    result, model = predict_from_table(written["model.json"], ["AGE=70", "SEX=M"], table)
    direct = model.predict(pd.DataFrame([{"AGE": 70, "SEX": "M", "lesion_extent_pct": measured.row["lesion_extent_pct"]}])).iloc[0]
    assert result["probability"] == pytest.approx(direct["probability"])


def test_segments_are_found_by_terminology_type_not_region(segmented, cascade):
    """A user's segment whose anatomic *region* is Lung is not LungN; one named GGO with
    Slicer's default terminology is GGO (issue 13)."""
    scene, ct, _, _, _ = segmented
    seg, _, _, _, _ = fresh_segmentation(scene, ct, cascade)
    segmentation = seg.GetSegmentation()
    ids = mrml.find_segment_ids(seg)
    nodule = segmentation.AddEmptySegment("", "Nodule")
    segmentation.GetSegment(nodule).SetTag(
        segmentation.GetSegment(nodule).GetTerminologyEntryTagName(),
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~"
        "Anatomic codes - DICOM master list~SCT^39607008^Lung~^^")
    segmentation.RemoveSegment(ids["LungN"])
    segmentation.GetSegment(ids["GGO"]).SetTag(segmentation.GetSegment(ids["GGO"]).GetTerminologyEntryTagName(),
                                               "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~^^~^^")
    found = mrml.find_segment_ids(seg)
    assert found["LungN"] is None and found["GGO"] == ids["GGO"] and found["Cons"] == ids["Cons"]


def test_progress_reports_every_stage_and_cancels_cleanly(cascade):
    """The logic's progress (issue 13): reading, each network, post-processing, node creation;
    raising in the callback cancels and leaves no new node in the scene."""
    scene = mrml.new_scene()
    ct = mrml.volume_node(scene, read_ct(SAMPLE_CT).image, "sample")
    stages = []
    segment_volume_node(scene, ct, cascade, lambda stage, done, total: stages.append(stage))
    assert list(dict.fromkeys(stages)) == ["reading the volume", "lung", "lesion", "type", "post-processing", "creating the segmentation"]

    class Stop(Exception):
        pass

    def cancel(stage, done, total):
        if stage == "lesion":
            raise Stop

    before = scene.GetNumberOfNodes()
    with pytest.raises(Stop):
        segment_volume_node(scene, ct, cascade, cancel)
    assert scene.GetNumberOfNodes() == before


def test_measuring_again_and_again_leaves_no_nodes_behind(segmented):
    """Issue 26: each re-measure used to leave a label map display node and a colour table in
    the scene (saved with it). Four re-measures and an agreement add only their tables."""
    from LungLesionQuantLib.scene.actions import compare_segmentation_nodes

    scene, ct, seg, table, _ = segmented
    before = scene.GetNumberOfNodes()
    for _ in range(4):
        measure_segmentation(scene, seg, ct, table)
    assert scene.GetNumberOfNodes() == before
    compare_segmentation_nodes(scene, seg, seg, ct)
    assert scene.GetNumberOfNodes() == before + 1  # the agreement table


def test_a_volume_under_a_transform_gets_its_segmentation_under_it_too(cascade):
    """Issue 26: a CT under a parent transform (here a 10 cm shift and a 30° turn) gets its
    segmentation under the same transform, so the two overlay; the measures are the
    untransformed CT's."""
    scene = mrml.new_scene()
    ct = mrml.volume_node(scene, read_ct(SAMPLE_CT).image, "sample")
    plain, _, plain_measured = segment_volume_node(scene, ct, cascade)
    moved = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    matrix = vtk.vtkTransform()
    matrix.Translate(100, 0, 0)
    matrix.RotateZ(30)
    moved.SetMatrixTransformToParent(matrix.GetMatrix())
    ct.SetAndObserveTransformNodeID(moved.GetID())
    seg, _, measured = segment_volume_node(scene, ct, cascade)
    assert seg.GetTransformNodeID() == moved.GetID() and plain.GetTransformNodeID() is None
    assert measured.row["lung_volume_cm3"] == pytest.approx(plain_measured.row["lung_volume_cm3"])


def test_segmenting_in_another_process_gives_the_same_segmentation_and_cancels_cleanly(segmented, tmp_path):
    """Issue 26: the module segments in a separate process that it polls, so Slicer stays
    responsive; same labels as in this process, every step heard, a cancel kills it and leaves
    nothing, a bad input comes back as its one-line message."""
    import time

    import onnxruntime

    from LungLesionQuantLib.errors import LungLesionQuantError
    from LungLesionQuantLib.modalities import CT
    from LungLesionQuantLib.scene.actions import add_segmentation, volume_image
    from LungLesionQuantLib.scene.segment_process import SegmentProcess

    scene, ct, seg, _, measured = segmented
    job = SegmentProcess(volume_image(ct, CT), "ct", "cpu")
    steps, deadline = [], time.time() + 300
    while job.running and time.time() < deadline:
        steps += job.poll()
        time.sleep(0.2)
    steps += job.poll()
    work = job.work
    background = job.result()
    assert not work.exists()
    assert {"loading the models", "lung", "lesion", "type", "post-processing"} <= {s.stage for s in steps}
    nodes = scene.GetNumberOfNodes()
    seg2, _, measured2 = add_segmentation(scene, ct, background, CT)
    assert np.array_equal(sitk.GetArrayFromImage(measured2.label_image), sitk.GetArrayFromImage(measured.label_image))
    assert measured2.row["lesion_volume_cm3"] == measured.row["lesion_volume_cm3"] and scene.GetNumberOfNodes() > nodes

    job = SegmentProcess(volume_image(ct, CT), "ct", "cpu")
    job.cancel()
    assert not job.running and not job.work.exists()

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        job = SegmentProcess(volume_image(ct, CT), "ct", "cuda")
        with pytest.raises(LungLesionQuantError, match="device 'cuda' asked for"):
            job.result()
        assert not job.work.exists()
