"""Chest radiographs end to end: reading (PNG 8/16 bit, DICOM CR/DX, MONOCHROME1), the view
check that keeps CT slices and radiographs apart, segmentation into Lung / Opacity, the
per-case outputs, measurement, evaluation and the risk model's imaging score. Real radiographs
from ../shared/data/cxr_covid_qu_ex."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import slicerio
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.errors import InputError
from LungLesionQuantLib.labels import LUNG_FIELD, OPACITY
from LungLesionQuantLib.radiograph.measure import measure_radiograph_labels, radiograph_columns
from LungLesionQuantLib.radiograph.reading import read_radiograph
from LungLesionQuantLib.input.view_gate import radiograph_probability
from conftest import shared

COVID = "cxr_covid_qu_ex/COVID-19"


def _grey(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


@pytest.fixture(scope="module")
def covid_radiographs():
    folder = shared(COVID)
    return sorted((folder / "images").glob("*.png"))[:3]


def write_cr(path, grey16: np.ndarray, photometric="MONOCHROME2", view="PA", spacing=(0.15, 0.15), modality="CR"):
    """A DICOM CR/DX file of 16-bit pixels, as a radiography system writes one."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition, ds.PatientID = modality, view, "TEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = grey16.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if spacing:
        ds.ImagerPixelSpacing = list(spacing)
    ds.PixelData = grey16.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_reading_png_16bit_and_dicom_monochrome1_give_the_same_image(covid_radiographs, tmp_path):
    grey = _grey(covid_radiographs[0]).astype(np.float64)
    png16 = tmp_path / "r16.png"
    Image.fromarray((grey * 16).astype(np.uint16)).save(png16)
    dcm = write_cr(tmp_path / "r.dcm", (4095 - grey * 16).astype(np.uint16), photometric="MONOCHROME1")
    a = read_radiograph(covid_radiographs[0])
    b = read_radiograph(png16)
    c = read_radiograph(dcm)
    for loaded in (b, c):  # the same picture up to a linear grey map: correlation 1, dense stays bright
        assert np.corrcoef(a.grey.ravel(), loaded.grey.ravel())[0, 1] > 0.999
    assert not a.spacing_known and c.spacing_known
    assert c.image.GetSpacing()[:2] == pytest.approx((0.15, 0.15))
    assert "MONOCHROME1" in c.note


@pytest.mark.parametrize("kind, message", [("lateral", "lateral view"), ("ct", "modality CT"), ("colour", "colour"),
                                           ("blank", "blank image"), ("tiny", "at least 64")])
def test_what_is_not_a_frontal_radiograph_is_refused_in_one_line(covid_radiographs, tmp_path, kind, message):
    grey = _grey(covid_radiographs[0])
    if kind == "lateral":
        path = write_cr(tmp_path / "lat.dcm", grey.astype(np.uint16) * 16, view="LL")
    elif kind == "ct":
        path = write_cr(tmp_path / "ct.dcm", grey.astype(np.uint16) * 16, modality="CT")
    elif kind == "colour":
        rgb = np.stack([grey, np.roll(grey, 9, axis=1), grey // 2], axis=-1)
        path = tmp_path / "photo.png"
        Image.fromarray(rgb.astype(np.uint8)).save(path)
    elif kind == "blank":
        path = tmp_path / "blank.png"
        Image.fromarray(np.full((256, 256), 17, np.uint8)).save(path)
    else:
        path = tmp_path / "tiny.png"
        Image.fromarray(grey[:40, :40]).save(path)
    with pytest.raises(InputError, match=message) as info:
        read_radiograph(path)
    assert "\n" not in str(info.value)


def test_view_check_tells_ct_slices_from_radiographs():
    radiographs = sorted((shared("cxr_covid_qu_ex/Normal") / "images").glob("*.png"))[:20]
    ct_slices = sorted((shared("lesion_labelled") / "images").glob("*.jpg"))[::60][:12]
    assert min(radiograph_probability(_grey(p)) for p in radiographs) > 0.5
    assert max(radiograph_probability(_grey(p)) for p in ct_slices) < 0.5


def test_a_radiograph_given_as_a_ct_slice_is_refused_and_the_reverse(covid_radiographs, tmp_path, capsys):
    assert main(["segment", str(covid_radiographs[0]), "-o", str(tmp_path / "a"), "--device", "cpu"]) == 1
    assert "looks like a chest radiograph" in capsys.readouterr().out
    ct_slice = sorted((shared("lesion_labelled") / "images").glob("*.jpg"))[300]
    assert main(["segment", str(ct_slice), "-o", str(tmp_path / "b"), "--device", "cpu", "--modality", "cxr"]) == 1
    assert "looks like a CT slice" in capsys.readouterr().out
    assert not list((tmp_path / "a").glob("*/labels.nii.gz")) and not list((tmp_path / "b").glob("*/labels.nii.gz"))


def test_segment_cxr_writes_the_case_layout_with_lung_and_opacity(covid_radiographs, tmp_path, capsys):
    out = tmp_path / "out"
    dcm = write_cr(tmp_path / "cr_case.dcm", _grey(covid_radiographs[1]).astype(np.uint16) * 16)
    # the PNGs need --modality cxr; the DICOM CR would be recognised by its Modality on its own
    assert main(["segment", *map(str, covid_radiographs[:1]), str(dcm), "-o", str(out), "--device", "cpu", "--modality", "cxr"]) == 0
    assert main(["segment", str(dcm), "-o", str(tmp_path / "auto"), "--device", "cpu"]) == 0
    assert "opacity" in capsys.readouterr().out
    for case in (covid_radiographs[0].stem, "cr_case"):
        folder = out / case
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
        assert labels.shape[0] == 1 and set(np.unique(labels)) <= {0, LUNG_FIELD, OPACITY}
        assert (labels > 0).mean() > 0.1  # lungs found
        seg = slicerio.read_segmentation(str(folder / "segmentation.seg.nrrd"))
        names = {s["name"]: s for s in seg["segments"]}
        assert set(names) == {"Lung", "Opacity"}
        assert names["Opacity"]["terminology"]["type"] == ["DCM", "112001", "Opacity"]
        assert names["Opacity"]["labelValue"] == OPACITY and names["Lung"]["labelValue"] == LUNG_FIELD
        row = pd.read_csv(folder / "measurements.csv").iloc[0]
        assert row["lung_area_px"] == (labels > 0).sum() and row["opacity_area_px"] == (labels == OPACITY).sum()
        assert row["opacity_pct"] == pytest.approx(100 * (labels == OPACITY).sum() / (labels > 0).sum(), rel=1e-5)
        assert (folder / "overlay.png").stat().st_size > 10_000
        assert json.loads((folder / "provenance.json").read_text())["modality"] == "cxr"
    png_row = pd.read_csv(out / covid_radiographs[0].stem / "measurements.csv").iloc[0]
    dcm_row = pd.read_csv(out / "cr_case" / "measurements.csv").iloc[0]
    assert np.isnan(png_row["lung_area_mm2"])  # no pixel spacing: no mm²
    assert dcm_row["lung_area_mm2"] == pytest.approx(dcm_row["lung_area_px"] * 0.15 * 0.15, abs=1e-3)
    cohort = pd.read_csv(out / "measurements.csv")
    assert len(cohort) == 2 and "opacity_pct" in cohort and "lesion_extent_pct" not in cohort


def test_radiograph_measures_add_up_per_side_and_zone():
    labels = np.zeros((90, 100), np.uint8)
    labels[10:70, 10:40] = LUNG_FIELD   # patient right (image left): 60 x 30
    labels[10:70, 60:90] = LUNG_FIELD   # patient left
    labels[10:30, 10:40] = OPACITY      # the right upper third, all opaque
    m = measure_radiograph_labels(labels, (0.2, 0.5))
    assert set(m) == set(radiograph_columns())
    assert m["lung_area_px"] == 3600 and m["opacity_pct"] == pytest.approx(600 / 3600 * 100)
    assert m["right_upper_opacity_pct"] == 100 and m["right_middle_opacity_pct"] == 0 and m["left_opacity_pct"] == 0
    assert sum(m[f"right_{z}_lung_area_px"] for z in ("upper", "middle", "lower")) == m["right_lung_area_px"]
    assert m["lung_area_mm2"] == pytest.approx(3600 * 0.1)
    empty = measure_radiograph_labels(np.zeros((80, 80), np.uint8), None)
    assert np.isnan(empty["opacity_pct"]) and np.isnan(empty["lung_area_mm2"])


def test_the_model_finds_lungs_and_little_opacity_on_normal_radiographs():
    from LungLesionQuantLib.radiograph.evaluation import score_radiograph
    from LungLesionQuantLib.radiograph.segment import RadiographNet

    folder = shared("cxr_covid_qu_ex/Normal")
    net = RadiographNet(device="cpu", threads=2)
    rows = []
    for path in sorted((folder / "images").glob("*.png"))[:12]:
        lung = _grey(folder / "lung masks" / path.name) > 127
        rows.append(score_radiograph(net.labels(_grey(path).astype(np.float32)), lung, np.zeros_like(lung)))
    frame = pd.DataFrame(rows)
    assert frame.lung_dice.mean() > 0.9
    assert frame.false_opacity_pct.median() < 5


def test_evaluate_cxr_reports_tang_rules(tmp_path, capsys):
    root = shared("cxr_covid_qu_ex")
    images, lungs, opacities = (tmp_path / d for d in ("images", "lungs", "opacity"))
    for folder in (images, lungs, opacities):
        folder.mkdir()
    for cls in ("COVID-19", "Normal"):
        for path in sorted((root / cls / "images").glob("*.png"))[:2]:
            for src, dst in (("images", images), ("lung masks", lungs), ("infection masks", opacities)):
                (dst / path.name).write_bytes((root / cls / src / path.name).read_bytes())
    out = tmp_path / "eval"
    assert main(["evaluate", "--modality", "cxr", "--images", str(images), "--lung-masks", str(lungs),
                 "--opacity-masks", str(opacities), "-o", str(out), "--device", "cpu"]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("measure")
    assert summary.loc["opacity_dice", "n"] == 2 and summary.loc["false_opacity_pct", "n"] == 2
    assert summary.loc["lung_dice", "n"] == 4
    assert "Tang et al." in capsys.readouterr().out


def test_risk_reads_opacity_pct_where_a_case_is_a_radiograph(tmp_path):
    from LungLesionQuantLib.studies.risk import read_extents

    table = pd.DataFrame({"case": ["ct1", "cxr1"], "lesion_extent_pct": [12.5, np.nan], "opacity_pct": [np.nan, 30.0]})
    table.to_csv(tmp_path / "measurements.csv", index=False)
    extents, _quality = read_extents(tmp_path)
    assert extents["ct1"] == 12.5 and extents["cxr1"] == 30.0


def test_slicer_segments_a_radiograph_volume_and_remeasures_edits(covid_radiographs):
    import slicer

    from LungLesionQuantLib.scene import mrml
    from LungLesionQuantLib.radiograph.segment import RadiographNet
    from LungLesionQuantLib.scene.actions import measure_segmentation, segment_volume_node, volume_modality
    from LungLesionQuantLib.scene.actions import _segment_mask
    from test_scene import set_segment_mask

    scene = slicer.vtkMRMLScene()
    volume = mrml.volume_node(scene, read_radiograph(covid_radiographs[2]).image, "cxr")
    assert volume_modality(volume).name == "cxr"
    seg, table, measured = segment_volume_node(scene, volume, RadiographNet(device="cpu"))
    assert {seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())} == {"Lung", "Opacity"}
    before = measured.row
    ids = mrml.find_segment_ids(seg, volume_modality(volume).segments)
    lung, opacity = _segment_mask(seg, ids["Lung"], volume), _segment_mask(seg, ids["Opacity"], volume)
    assert before["lung_area_px"] == lung.sum() + opacity.sum()
    set_segment_mask(seg, ids["Lung"], (lung | opacity).astype(np.uint8), volume)  # the reader calls it all clear
    set_segment_mask(seg, ids["Opacity"], np.zeros_like(opacity, np.uint8), volume)
    _, after = measure_segmentation(scene, seg, volume, table)
    assert after.row["lung_area_px"] == before["lung_area_px"] and after.row["opacity_pct"] == 0
    assert table.GetTable().GetColumnByName("opacity_pct") is not None


def test_segmenting_needs_no_pytorch(covid_radiographs, tmp_path):
    """Inference runs on the product's dependencies alone (a Slicer has no PyTorch): a CT slice
    and a radiograph are segmented with ``import torch`` made to fail."""
    import subprocess
    import sys

    ct_slice = sorted((shared("lesion_labelled") / "images").glob("*.jpg"))[300]
    code = ("import sys; sys.modules['torch'] = None; sys.modules['monai'] = None\n"
            "from LungLesionQuantLib.cli import main\n"
            f"a = main(['segment', {str(ct_slice)!r}, '-o', {str(tmp_path / 'ct')!r}, '--device', 'cpu'])\n"
            f"b = main(['segment', {str(covid_radiographs[0])!r}, '-o', {str(tmp_path / 'cxr')!r}, '--device', 'cpu', '--modality', 'cxr'])\n"
            "sys.exit(10 * a + b)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert list((tmp_path / "ct").glob("*/labels.nii.gz")) and list((tmp_path / "cxr").glob("*/labels.nii.gz"))


def test_an_rgb_radiograph_volume_in_slicer_reads_as_grey_and_a_colour_one_is_refused(covid_radiographs):
    """Issue 26: Slicer loads an RGB PNG/JPEG as a vector volume, which raised a TypeError. Grey
    stored as RGB(A) reads as the grey film, to the pixel; a photograph in colour is refused."""
    import slicer

    from LungLesionQuantLib.errors import InputError
    from LungLesionQuantLib.scene import mrml

    scene = slicer.vtkMRMLScene()
    grey = mrml.volume_node(scene, read_radiograph(covid_radiographs[2]).image, "grey")
    pixels = slicer.util.arrayFromVolume(grey)
    rgba = np.stack([pixels, pixels, pixels, np.full_like(pixels, 255)], axis=-1)
    vector = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgba")
    vector.SetSpacing(grey.GetSpacing())
    slicer.util.updateVolumeFromArray(vector, rgba)
    assert np.array_equal(sitk.GetArrayFromImage(mrml.image_from_volume_node(vector)), pixels)
    rgba[..., 0] = np.clip(rgba[..., 0].astype(int) + 40, 0, 255)
    slicer.util.updateVolumeFromArray(vector, rgba)
    with pytest.raises(InputError, match="found a colour image"):
        mrml.image_from_volume_node(vector)
