"""8-bit slices read in their own window (issue 11): Coronacases slices of `lesion_labelled`
come in a window twice as wide as the documented one; read untouched, they must segment as
they do re-encoded to the documented window."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.errors import InputError
from LungLesionQuantLib.input.imageio import read_ct
from LungLesionQuantLib.input.grey_window import DOCUMENTED_WINDOW, GreyWindow, histogram_landmarks
from LungLesionQuantLib.segmentation.preprocessing import CT_LANDMARKS_UNIT, unit_to_hu
from conftest import SAMPLE_CT, shared


def upright_slices(count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first ``count`` slices with infection of one Coronacases patient, turned upright as
    the evaluation protocol hands them over."""
    folder = shared("lesion_labelled")
    with open(folder / "slices.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["volume"] == "coronacases_005"]
    out = []
    for row in rows:
        stem = row["jpg"].rsplit(".", 1)[0]
        label = np.flipud((np.asarray(Image.open(folder / "labels" / f"{stem}.png")) > 127).T)
        if label.sum() > 2000:
            out.append((stem, np.flipud(np.asarray(Image.open(folder / "images" / row["jpg"]).convert("L")).T), label))
        if len(out) == count:
            break
    return out


def save(grey: np.ndarray, path) -> str:
    Image.fromarray(np.ascontiguousarray(grey)).save(path)
    return str(path)


def test_own_window_is_estimated_from_landmarks_and_warned_about(tmp_path):
    _stem, grey, _label = upright_slices(1)[0]
    loaded = read_ct(save(grey, tmp_path / "own.png"))
    assert loaded.window.source.startswith("estimated")
    assert loaded.window.width > 1.5 * DOCUMENTED_WINDOW.width
    assert any("far from the documented" in w for w in loaded.warnings)
    lung, soft = histogram_landmarks(grey)
    hu = sitk.GetArrayViewFromImage(loaded.image)[0]
    for landmark, unit in ((lung, CT_LANDMARKS_UNIT[0]), (soft, CT_LANDMARKS_UNIT[1])):
        assert hu[grey == landmark].mean() == pytest.approx(float(unit_to_hu(np.float32(unit))), abs=1.0)


def test_own_window_and_documented_window_segment_alike(tmp_path, cascade):
    """Untouched vs re-encoded so that the landmarks sit at grey 45 / 211 (the documented export)."""
    slices = upright_slices(3)
    landmarks = histogram_landmarks(np.concatenate([g.ravel() for _, g, _ in slices]))
    for stem, grey, label in slices:
        reencoded = np.clip(np.round(45 + (grey.astype(float) - landmarks[0]) * (211 - 45) / (landmarks[1] - landmarks[0])), 0, 255).astype(np.uint8)
        documented = read_ct(save(reencoded, tmp_path / f"{stem}_doc.png"))
        assert documented.window.source.startswith("documented")
        own = sitk.GetArrayFromImage(cascade.apply(read_ct(save(grey, tmp_path / f"{stem}.png")).image).labels)[0] >= 2
        doc = sitk.GetArrayFromImage(cascade.apply(documented.image).labels)[0] >= 2
        assert 2 * (own & doc).sum() / (own.sum() + doc.sum()) > 0.9
        assert 2 * (own & label).sum() / (own.sum() + label.sum()) > 0.5, stem
        forced = sitk.GetArrayFromImage(cascade.apply(read_ct(tmp_path / f"{stem}.png", DOCUMENTED_WINDOW).image).labels)[0] >= 2
        assert 2 * (forced & label).sum() / max(forced.sum() + label.sum(), 1) < 0.5  # the wrong window fails


def test_window_option_is_used_and_recorded(tmp_path, capsys):
    _stem, grey, _label = upright_slices(1)[0]
    given = GreyWindow.from_width_level(1500, -600, "given")
    hu = sitk.GetArrayFromImage(read_ct(save(grey, tmp_path / "s.png"), given).image)
    assert hu.min() == pytest.approx(-1350 + grey.min() / 255 * 1500, abs=0.01)
    assert main(["segment", str(tmp_path / "s.png"), "-o", str(tmp_path / "out"), "--device", "cpu", "--window", "2800/350"]) == 0
    window = json.loads((tmp_path / "out" / "s" / "provenance.json").read_text())["window"]
    assert window == {"width_hu": 2800.0, "level_hu": 350.0, "source": "given with --window"}
    for given, done in (("2800/350", "skipped s"), ("1500/-600", "ok      s")):  # --resume: a slice's window counts
        assert main(["segment", str(tmp_path / "s.png"), "-o", str(tmp_path / "out"), "--device", "cpu", "--resume", "--window", given]) == 0
        assert done in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(tmp_path / "s.png"), "-o", str(tmp_path / "out2"), "--window", "wide"])
    assert exc.value.code == 2


def test_radiographs_given_as_ct_slices_are_refused_and_ct_slices_are_not(tmp_path):
    """Issue 12: a chest radiograph passed as a CT slice is refused by the view check, naming what
    it found; CT slice exports (published slices, and the sample CT written under a lung, a
    soft-tissue and a bone window) are read."""
    radiographs = sorted(shared("cxr_covid_qu_ex").glob("*/images/*.png"))[::140][:20]
    for path in radiographs:
        with pytest.raises(InputError, match="looks like a chest radiograph"):
            read_ct(path)
    ct_slices = sorted(shared("semiseg_train/images").glob("*.jpg"))[:10] + sorted(shared("lesion_labelled/images").glob("*.jpg"))[::100]
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLE_CT)))
    for z in (10, hu.shape[0] // 2, hu.shape[0] - 10):
        for level, width in ((-600, 1500), (40, 400), (300, 2000)):
            path = tmp_path / f"sample_{z}_{level}.png"
            Image.fromarray(np.clip((hu[z] - level + width / 2) / width * 255, 0, 255).astype(np.uint8)[::-1]).save(path)
            ct_slices.append(path)
    for path in ct_slices:
        assert read_ct(path).image.GetSize()[2] == 1
