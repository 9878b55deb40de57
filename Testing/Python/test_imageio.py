"""Reading CTs from real DICOM, volumes and slice images; refusing what is not a CT in HU."""
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LungLesionQuantLib.errors import InputError
from LungLesionQuantLib.input.imageio import case_name, read_ct, to_lps
from LungLesionQuantLib.input.grey_window import GREY8_WINDOW_HU
from conftest import SAMPLE_CT, shared


def test_reads_the_jpeg_lossless_ricord_series():
    loaded = read_ct(shared("dicom/ricord_1a_000082"))
    assert loaded.kind == "dicom"
    assert loaded.image.GetSize() == (512, 512, 255)
    assert loaded.image.GetSpacing() == pytest.approx((0.703125, 0.703125, 1.25))
    hu = sitk.GetArrayViewFromImage(loaded.image)
    assert hu.min() < -900 and hu.max() > 300
    assert len(loaded.dicom_files) == 255


def test_picks_the_ct_series_with_most_slices(tmp_path):
    for name in ("ricord_1a_000082", "lung_pet_ct_dx_A0001"):
        os.symlink(shared(f"dicom/{name}"), tmp_path / name)
    loaded = read_ct(tmp_path)
    assert loaded.image.GetSize()[2] == 255
    assert "most slices among 2 series" in loaded.note


def test_refuses_mr_dicom(tmp_path):
    ds = pydicom.dcmread(next(shared("ny_sbu_slices").glob("*.dcm")))
    ds.Modality = "MR"
    ds.save_as(tmp_path / "mr.dcm")
    with pytest.raises(InputError, match="modality MR; expected CT"):
        read_ct(tmp_path)
    with pytest.raises(InputError, match="modality MR; expected CT"):
        read_ct(tmp_path / "mr.dcm")


def test_refuses_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(InputError, match="found no DICOM series"):
        read_ct(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        read_ct(tmp_path / "absent.nii.gz")


def test_refuses_8bit_volume_and_rgb(tmp_path):
    grey = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 256, (4, 16, 16)).astype(np.uint8))
    sitk.WriteImage(grey, str(tmp_path / "grey.nii.gz"))
    with pytest.raises(InputError, match=r"found values 0\.\.255 \(8-bit greyscale"):
        read_ct(tmp_path / "grey.nii.gz")
    rgb = sitk.GetImageFromArray(np.zeros((16, 16, 3), np.uint8) + np.array([200, 10, 10], np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "colour.png"))
    with pytest.raises(InputError, match="colour image"):
        read_ct(tmp_path / "colour.png")
    sitk.WriteImage(sitk.Compose([sitk.Cast(grey, sitk.sitkInt16)] * 3), str(tmp_path / "vector.nrrd"))
    with pytest.raises(InputError, match="3 components per voxel"):
        read_ct(tmp_path / "vector.nrrd")


def test_refuses_unreadable_file(tmp_path):
    (tmp_path / "broken.nii.gz").write_text("not an image")
    with pytest.raises(InputError, match="could not be read"):
        read_ct(tmp_path / "broken.nii.gz")


def test_slice_image_is_a_one_slice_volume_in_hu():
    loaded = read_ct(shared("semiseg_train/images/0.jpg"))
    assert loaded.kind == "slice-image"
    size = loaded.image.GetSize()
    assert size[2] == 1 and loaded.image.GetSpacing() == (1.0, 1.0, 1.0)
    hu = sitk.GetArrayViewFromImage(loaded.image)
    assert hu.min() == pytest.approx(GREY8_WINDOW_HU[0]) and hu.max() == pytest.approx(GREY8_WINDOW_HU[1])
    assert "documented" in loaded.note and loaded.window.source.startswith("documented")


def test_bundled_sample_and_lps_orientation():
    loaded = read_ct(SAMPLE_CT)
    lps = to_lps(loaded.image)
    assert np.allclose(np.array(lps.GetDirection()).reshape(3, 3), np.eye(3))
    assert case_name(SAMPLE_CT) == "ricord_000082_sample"
    assert case_name(Path("/x/ricord_1a_000082")) == "ricord_1a_000082"


def test_one_case_name_rule_for_inputs_and_label_files(tmp_path):
    """Issue 24: every suffix the tool reads is dropped the same way (a.tif was 'a.tif', a.png 'a')."""
    from LungLesionQuantLib.input.imageio import case_name
    from LungLesionQuantLib.input.labelmaps import case_files

    for name in ("a.tif", "a.TIFF", "a.bmp", "a.png", "a.jpg", "a.nii.gz", "a.nrrd", "a.seg.nrrd", "a.dcm", "a.mha"):
        assert case_name(tmp_path / name) == "a", name
    assert case_name(tmp_path / "a.b.nii.gz") == "a.b" and case_name(tmp_path / "series_folder") == "series_folder"
    (tmp_path / "labels").mkdir()
    for name in ("x.seg.nrrd", "y.nii.gz", "z.nrrd"):
        (tmp_path / "labels" / name).write_bytes(b"")
    assert sorted(case_files(tmp_path / "labels")) == ["x", "y", "z"]


@pytest.mark.parametrize("shape, size", [((3, 512, 512), 192), ((3, 300, 410), 288), ((3, 120, 150), 288)])
def test_network_inputs_are_scipys_grid_mode_zoom(shape, size):
    """fit_box resizes with SimpleITK for speed; it must give what ndimage.zoom (grid_mode, the
    convention the bundled models were trained with) gives, shrinking, padding and enlarging."""
    from scipy import ndimage

    from LungLesionQuantLib.segmentation.preprocessing import bounding_fit, fit_box

    slices = np.random.default_rng(0).normal(-600, 300, shape).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[:, shape[1] // 5:-shape[1] // 6, shape[2] // 7:-shape[2] // 8] = True
    fit = bounding_fit(mask, size)
    square = np.full((shape[0], fit.side, fit.side), -1000.0, np.float32)
    pr, pc = fit.pads
    square[:, pr:pr + fit.r1 - fit.r0, pc:pc + fit.c1 - fit.c0] = slices[:, fit.r0:fit.r1, fit.c0:fit.c1]
    expected = ndimage.zoom(square, (1, size / fit.side, size / fit.side), order=1, mode="nearest", grid_mode=True)
    assert np.allclose(fit_box(slices, fit, pad_value=-1000.0), expected, atol=1e-3)
