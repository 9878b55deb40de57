"""Radiographs stored in every way a film can be stored wrongly or strangely (issue 27: "wrong
number, exit 0"). One real COVID-19 film of ../shared/data/cxr_covid_qu_ex is stored turned,
as a negative, through a palette, as a JPEG under each EXIF orientation, as DICOM MONOCHROME1,
under degenerate, clipping, sigmoid and rescaled VOI windows, transposed with PatientOrientation;
each must give the original film's opacity % (within a few points, the JPEG's loss) or be
refused in one line, and the plausibility warnings must flag what would otherwise be a silent
number.

``LLQ_HOSTILE_MEASURE=1 python -m pytest -s Testing/Python/test_hostile_radiographs.py -k measurement``
runs the measurement of the issue on 50 films (a few minutes on 2 cores): the opacity % of each
film as stored and after it is stored hostilely and read back, and how many upright films are
refused or turned.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from LungLesionQuantLib.errors import InputError
from LungLesionQuantLib.labels import LUNG_FIELD, OPACITY
from LungLesionQuantLib.radiograph.measure import edge_outline_share, measure_radiograph_labels, radiograph_warnings
from LungLesionQuantLib.radiograph.reading import read_radiograph
from LungLesionQuantLib.radiograph.segment import RadiographNet
from conftest import shared
from test_radiograph import write_cr

FILM = "cxr_covid_qu_ex/COVID-19/images/covid_1014.png"
TOLERANCE_PCT = 3.0  # points of opacity %: a JPEG's loss and a resampling, not a different reading
TURNED = "not stored upright and positive"


@pytest.fixture(scope="module")
def net() -> RadiographNet:
    return RadiographNet(device="cpu", threads=2)


@pytest.fixture(scope="module")
def film() -> np.ndarray:
    return np.asarray(Image.open(shared(FILM)).convert("L"))


@pytest.fixture(scope="module")
def original_pct(film, net) -> float:
    return _opacity_pct(net, film.astype(np.float32))


def _opacity_pct(net: RadiographNet, grey: np.ndarray) -> float:
    return measure_radiograph_labels(net.labels(np.asarray(grey, np.float32)), None)["opacity_pct"]


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(np.ascontiguousarray(array))
    (image.convert(mode, palette=Image.Palette.ADAPTIVE) if mode else image).save(path)
    return path


# EXIF orientation n → how the camera stored the upright picture (exif_transpose undoes it).
EXIF_STORED = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: np.transpose,
               6: lambda a: np.rot90(a, 1), 7: lambda a: a[::-1, ::-1].T, 8: lambda a: np.rot90(a, -1)}


def _exif_jpeg(path: Path, film: np.ndarray, orientation: int) -> Path:
    stored = Image.fromarray(np.ascontiguousarray(EXIF_STORED[orientation](film)))
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif, quality=95)
    return path


def _dicom(path: Path, film: np.ndarray, **tags) -> Path:
    """A DICOM CR of the film as 12-bit values (write_cr of test_radiograph), then ``tags`` set."""
    inverted = tags.pop("photometric", "MONOCHROME2") == "MONOCHROME1"
    values = film.astype(np.uint16) * 16
    write_cr(path, 4095 - values if inverted else values, photometric="MONOCHROME1" if inverted else "MONOCHROME2")
    ds = pydicom.dcmread(path)
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.save_as(path)
    return path


def _rescaled(path: Path, film: np.ndarray) -> Path:
    """Signed stored values under a slope and intercept, windowed on the rescaled values."""
    path = _dicom(path, film, RescaleSlope=2, RescaleIntercept=-3000, WindowCenter=-3000, WindowWidth=8400)
    ds = pydicom.dcmread(path)
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 16, 15
    ds.PixelData = (film.astype(np.int16) * 16 - 2048).tobytes()
    ds.save_as(path)
    return path


# What each stored film must give: None, the original's number; or the refusal's words.
READ_BACK = {
    "turned 90° anticlockwise": (lambda t, f: _png(t / "a.png", np.rot90(f, 1)), TURNED),
    "turned 180°": (lambda t, f: _png(t / "a.png", np.rot90(f, 2)), TURNED),
    "turned 90° clockwise": (lambda t, f: _png(t / "a.png", np.rot90(f, -1)), TURNED),
    "negative": (lambda t, f: _png(t / "a.png", 255 - f), TURNED),
    "negative turned 90°": (lambda t, f: _png(t / "a.png", np.rot90(255 - f, 1)), TURNED),
    "16-bit negative": (lambda t, f: _png(t / "a.png", (65535 - f.astype(np.int32) * 257).astype(np.uint16)), TURNED),
    "palette PNG": (lambda t, f: _png(t / "a.png", f, "P"), None),
    "adaptive palette PNG": (lambda t, f: _png(t / "a.png", np.stack([f] * 3, -1), "P"), None),
    "grey + opaque alpha PNG": (lambda t, f: _png(t / "a.png", f, "LA"), None),
    "TIFF turned 180°": (lambda t, f: _png(t / "a.tif", np.rot90(f, 2)), TURNED),
    **{f"JPEG EXIF orientation {n}": (lambda t, f, n=n: _exif_jpeg(t / "a.jpg", f, n), None) for n in range(1, 9)},
    "DICOM MONOCHROME1": (lambda t, f: _dicom(t / "a.dcm", f, photometric="MONOCHROME1"), None),
    "DICOM MONOCHROME1, window": (lambda t, f: _dicom(t / "a.dcm", f, photometric="MONOCHROME1", WindowCenter=2000, WindowWidth=3800), None),
    "DICOM window 1 wide": (lambda t, f: _dicom(t / "a.dcm", f, WindowCenter=2048, WindowWidth=1), "VOI window 2048/1"),
    "DICOM window clipping most": (lambda t, f: _dicom(t / "a.dcm", f, WindowCenter=200, WindowWidth=100), "black or white"),
    "DICOM window 0 wide": (lambda t, f: _dicom(t / "a.dcm", f, WindowCenter=2048, WindowWidth=0), "was ignored"),
    "DICOM sigmoid window": (lambda t, f: _dicom(t / "a.dcm", f, WindowCenter=2000, WindowWidth=3000, VOILUTFunction="SIGMOID"), None),
    "DICOM rescaled, signed": (lambda t, f: _rescaled(t / "a.dcm", f), None),
    "DICOM transposed (PatientOrientation F/R)": (lambda t, f: _dicom(t / "a.dcm", f[:, ::-1].T, PatientOrientation=["F", "R"]), None),
}


@pytest.mark.parametrize("case", list(READ_BACK))
def test_a_film_stored_hostilely_gives_the_original_number(case, film, net, original_pct, tmp_path):
    make, warned = READ_BACK[case]
    loaded = read_radiograph(make(tmp_path, film))
    pct = _opacity_pct(net, loaded.grey)
    assert pct == pytest.approx(original_pct, abs=TOLERANCE_PCT), f"{case}: {pct:.1f} % (original {original_pct:.1f} %), {loaded.note}"
    film_warnings = [w for w in loaded.warnings if "pixel spacing" not in w]
    if warned:
        assert any(warned in w for w in film_warnings), film_warnings
    else:
        assert not film_warnings


def test_a_negative_the_view_check_takes_for_a_ct_slice_is_read_as_a_negative(net, tmp_path):
    """The view check learnt positive films: it takes some negatives for CT slices (3 of 40); the
    lung fields of the film read inverted lift its refusal."""
    film = np.asarray(Image.open(shared("cxr_covid_qu_ex/COVID-19/images/covid_3678.png")).convert("L"))
    loaded = read_radiograph(_png(tmp_path / "negative.png", 255 - film))
    assert any(TURNED in w and "inverted" in w for w in loaded.warnings)
    assert _opacity_pct(net, loaded.grey) == pytest.approx(_opacity_pct(net, film), abs=TOLERANCE_PCT)


def test_a_turned_non_square_dicom_keeps_its_pixel_sizes_on_their_axes(film, net, tmp_path):
    """A 12-bit film 320 rows by 256 columns of 0.2 x 0.1 mm pixels, stored turned 90° clockwise
    (256 rows of 0.1 mm by 320 columns of 0.2 mm): read back upright, 320 x 256 of 0.2 x 0.1 mm."""
    tall = np.asarray(Image.fromarray(film.astype(np.float32)).resize((256, 320), Image.Resampling.BILINEAR))
    path = _dicom(tmp_path / "turned.dcm", np.rot90(tall, -1).astype(np.uint8))
    ds = pydicom.dcmread(path)
    ds.ImagerPixelSpacing = [0.1, 0.2]
    ds.save_as(path)
    loaded = read_radiograph(path)
    assert loaded.grey.shape == (320, 256) and loaded.image.GetSpacing()[:2] == pytest.approx((0.1, 0.2))  # (x, y)
    assert any(TURNED in w for w in loaded.warnings)
    assert _opacity_pct(net, loaded.grey) == pytest.approx(_opacity_pct(net, tall), abs=0.5)


def _ct_as_dx(tmp_path: Path, film: np.ndarray) -> Path:
    ds = pydicom.dcmread(shared("ny_sbu_slices") / "A002304_19001231-076.dcm")
    ds.Modality = "DX"
    ds.save_as(tmp_path / "ct.dcm")
    return tmp_path / "ct.dcm"


def _stack_dicom(tmp_path: Path, film: np.ndarray) -> Path:
    path = _dicom(tmp_path / "stack.dcm", film)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)
    return path


def _stack_tiff(tmp_path: Path, film: np.ndarray) -> Path:
    frames = [Image.fromarray(film), Image.fromarray(film[::-1].copy())]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    return tmp_path / "stack.tif"


def _colour_palette(tmp_path: Path, film: np.ndarray) -> Path:
    image = Image.fromarray(film).convert("P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(tmp_path / "colour.png")
    return tmp_path / "colour.png"


REFUSED = {
    "CT slice stored as DICOM DX": (_ct_as_dx, "looks like a CT slice"),
    "tiny image": (lambda t, f: _png(t / "a.png", f[:40, :50]), "at least 64"),
    "constant image": (lambda t, f: _png(t / "a.png", np.full_like(f, 90)), "blank image"),
    "constant 16-bit DICOM": (lambda t, f: _dicom(t / "a.dcm", np.full_like(f, 7)), "blank image"),
    "multi-frame TIFF stack": (_stack_tiff, "2 frames"),
    "multi-frame DICOM stack": (_stack_dicom, "2 frames"),
    "colour palette PNG": (_colour_palette, "colour image"),
    "grey + varying alpha PNG": (lambda t, f: _png(t / "a.png", np.stack([f, f], -1), "LA"), "transparency"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_cannot_be_read_right_is_refused_in_one_line(case, film, tmp_path):
    make, words = REFUSED[case]
    with pytest.raises(InputError, match=words) as info:
        read_radiograph(make(tmp_path, film))
    assert "\n" not in str(info.value)


def _labels(**boxes) -> sitk.Image:
    labels = np.zeros((100, 100), np.uint8)
    for value, (rows, cols) in boxes.items():
        labels[rows, cols] = {"lung": LUNG_FIELD, "opacity": OPACITY}[value.rstrip("0123456789")]
    return sitk.GetImageFromArray(labels[None])


PLAUSIBILITY = {
    "two lung fields": (dict(lung1=(slice(15, 80), slice(15, 42)), lung2=(slice(15, 80), slice(58, 85))), None),
    "one lung field": (dict(lung=(slice(15, 80), slice(15, 85))), "1 lung field found"),
    "fields one above the other": (dict(lung1=(slice(10, 40), slice(15, 85)), lung2=(slice(55, 90), slice(15, 85))), "one above the other"),
    "fields off the image": (dict(lung1=(slice(0, 100), slice(0, 40)), lung2=(slice(0, 100), slice(60, 100))), "run off the image"),
    "tiny fields": (dict(lung1=(slice(40, 50), slice(30, 38)), lung2=(slice(40, 50), slice(60, 68))), "cover 1.6 %"),
    "all opacity": (dict(opacity1=(slice(15, 80), slice(15, 42)), opacity2=(slice(15, 80), slice(58, 85))), "opacity fills 100.0 %"),
}


@pytest.mark.parametrize("case", list(PLAUSIBILITY))
def test_implausible_lung_fields_are_never_a_silent_number(case):
    boxes, words = PLAUSIBILITY[case]
    warnings = radiograph_warnings(_labels(**boxes))
    assert (any(words in w for w in warnings) if words else not warnings), warnings


@pytest.mark.skipif(not os.environ.get("LLQ_HOSTILE_MEASURE"), reason="the measurement of issue 27; set LLQ_HOSTILE_MEASURE=1 (a few minutes)")
def test_measurement_50_films_read_back_alike(net, tmp_path):
    """Opacity % of 50 films (25 COVID-19, 13 Normal, 12 Non-COVID) as stored and stored
    hostilely: every film as an EXIF-rotated JPEG (orientations 2-8 in turn) and as a palette
    PNG; the first 6 also turned 90°, 180°, 270° and as a negative (the costly search)."""
    root = shared("cxr_covid_qu_ex")
    films = []
    for cls, n in (("COVID-19", 25), ("Normal", 13), ("Non-COVID", 12)):  # evenly over each class's sorted names
        names = sorted((root / cls / "images").glob("*.png"))
        films += names[11::len(names) // n][:n]
    rows, refused_upright, turned_upright = [], [], []
    for k, path in enumerate(films):
        film = np.asarray(Image.open(path).convert("L"))
        try:
            loaded = read_radiograph(path)
        except InputError as exc:
            refused_upright.append(f"{path.name}: {exc}")
            continue
        if any(TURNED in w for w in loaded.warnings):
            turned_upright.append(path.name)
        labels = net.labels(loaded.grey.astype(np.float32))
        base = measure_radiograph_labels(labels, None)["opacity_pct"]
        lung = np.asarray(Image.open(root / path.parts[-3] / "lung masks" / path.name).convert("L")) > 127
        infection = np.asarray(Image.open(root / path.parts[-3] / "infection masks" / path.name).convert("L")) > 127
        warned = radiograph_warnings(sitk.GetImageFromArray(labels[None]))
        variants = {"exif": lambda t, f, n=2 + k % 7: _exif_jpeg(t / "e.jpg", f, n), "palette": lambda t, f: _png(t / "p.png", f, "P")}
        if k < 6:
            variants.update({"rot90": lambda t, f: _png(t / "r1.png", np.rot90(f, 1)), "rot180": lambda t, f: _png(t / "r2.png", np.rot90(f, 2)),
                             "rot270": lambda t, f: _png(t / "r3.png", np.rot90(f, 3)), "negative": lambda t, f: _png(t / "n.png", 255 - f)})
        for kind, make in variants.items():
            try:
                pct = _opacity_pct(net, read_radiograph(make(tmp_path, film)).grey)
            except InputError:
                pct = float("nan")
            rows.append((path.name, kind, base, pct))
        print(f"{path.name:24s} {base:6.1f} % (reference {100 * infection.sum() / max(lung.sum(), 1):5.1f} %, lung outline on the edge "
              f"{edge_outline_share(labels > 0):.2f}) "
              + " ".join(f"{r[1]} {r[3]:.1f}" for r in rows if r[0] == path.name) + (f"  WARN {warned}" if warned else ""))
    diffs = {kind: np.array([abs(r[3] - r[2]) for r in rows if r[1] == kind]) for kind in dict.fromkeys(r[1] for r in rows)}
    for kind, d in diffs.items():
        print(f"{kind:9s} n {d.size:3d}  refused {np.isnan(d).sum()}  |Δ| median {np.nanmedian(d):.2f}  max {np.nanmax(d):.2f}  over 3 points {(d > 3).sum()}")
    print(f"upright films refused: {len(refused_upright)} {refused_upright}; turned or inverted: {len(turned_upright)} {turned_upright}")
    assert not refused_upright and not turned_upright and all(np.nanmax(d) <= TOLERANCE_PCT and not np.isnan(d).any() for d in diffs.values())
