"""Real MRML nodes (slicer-core) and the files Slicer writes, read back independently."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import slicerio

from LungLesionQuantLib.scene import mrml
from LungLesionQuantLib.outputs.atomic import atomic_path
from LungLesionQuantLib.outputs.exports import write_segmentation, write_table, write_volume
from LungLesionQuantLib.labels import SEGMENTS


def _nodes(image):
    scene = mrml.new_scene()
    ct = mrml.volume_node(scene, sitk.Cast(image, sitk.sitkInt16) * 0 - 1000, "ct")
    labelmap = mrml.volume_node(scene, image, "labels", labelmap=True)
    return scene, ct, labelmap


def test_segmentation_file_has_named_coloured_coded_segments(phantom, tmp_path):
    image, _ = phantom
    scene, ct, labelmap = _nodes(image)
    seg = mrml.segmentation_node(scene, labelmap, ct, "seg")
    path = write_segmentation(seg, tmp_path / "segmentation.seg.nrrd")
    read = slicerio.read_segmentation(str(path))
    by_name = {s["name"]: s for s in read["segments"]}
    assert list(by_name) == [s.name for s in SEGMENTS]
    for spec in SEGMENTS:
        segment = by_name[spec.name]
        assert segment["labelValue"] == spec.value
        assert np.allclose(segment["color"], spec.color, atol=1e-3)
        assert segment["terminology"]["type"] == list(spec.type)
    # slicerio's voxels are (i, j, k): the transpose of SimpleITK's (k, j, i) array
    voxels = read["voxels"].transpose(2, 1, 0)
    assert np.array_equal(voxels, sitk.GetArrayFromImage(image))


def test_missing_label_still_gets_its_empty_segment(tmp_path):
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:6, 2:6] = 1
    image = sitk.GetImageFromArray(labels)
    scene, ct, labelmap = _nodes(image)
    seg = mrml.segmentation_node(scene, labelmap, ct, "seg")
    ids = mrml.find_segment_ids(seg)
    assert all(ids[s.name] is not None for s in SEGMENTS)
    read = slicerio.read_segmentation(str(write_segmentation(seg, tmp_path / "s.seg.nrrd")))
    assert [s["name"] for s in read["segments"]] == ["LungN", "GGO", "Cons"]


def test_segments_are_found_by_terminology_after_renaming(phantom):
    image, _ = phantom
    scene, ct, labelmap = _nodes(image)
    seg = mrml.segmentation_node(scene, labelmap, ct, "seg")
    segmentation = seg.GetSegmentation()
    ggo_id = mrml.find_segment_ids(seg)["GGO"]
    segmentation.GetSegment(ggo_id).SetName("ground glass (edited)")
    assert mrml.find_segment_ids(seg)["GGO"] == ggo_id


def test_label_map_nifti_keeps_geometry_and_values(phantom, tmp_path):
    image, _ = phantom
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    scene, ct, labelmap = _nodes(image)
    path = write_volume(labelmap, tmp_path / "labels.nii.gz")
    back = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetOrigin() == pytest.approx(image.GetOrigin(), abs=1e-4)
    assert back.GetSpacing() == pytest.approx(image.GetSpacing(), abs=1e-5)
    assert back.GetDirection() == pytest.approx(image.GetDirection(), abs=1e-6)
    assert mrml.image_from_volume_node(labelmap).GetDirection() == pytest.approx(image.GetDirection())


def test_table_csv_round_trips_with_nan(tmp_path):
    scene = mrml.new_scene()
    rows = [{"case": "a", "lung_volume_cm3": 4123.5, "lesion_extent_pct": 3.25},
            {"case": "b", "lung_volume_cm3": 0.0, "lesion_extent_pct": float("nan")}]
    path = write_table(mrml.table_node(scene, rows, "t"), tmp_path / "measurements.csv")
    frame = pd.read_csv(path)
    assert list(frame["case"]) == ["a", "b"]
    assert frame["lung_volume_cm3"].tolist() == [4123.5, 0.0]
    assert frame["lesion_extent_pct"].isna().tolist() == [False, True]
    assert (tmp_path / "measurements.schema.csv").exists()
    assert not list(tmp_path.glob(".*"))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "segmentation.seg.nrrd"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
