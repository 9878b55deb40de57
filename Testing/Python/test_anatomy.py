"""Lung only where lungs can be (issue 11): real CTs changed the ways unseen scans differ.

The lung-cancer CT (Lung-PET-CT-Dx A0001: 5 mm, table and blankets in the field of view) is
given blankets with air between them, a field of view cropped to the body or through the
lungs, a prone position, the reverse slice order, and abdomen slices with bowel gas below the
chest (a whole-body stand-in). "Outside the body" is measured as the issue's protocol does,
independently of the product's own body rule.
"""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from LungLesionQuantLib.input.imageio import read_ct, to_lps
from LungLesionQuantLib.measurement.plausibility import lung_warnings
from LungLesionQuantLib.measurement.quantify import measure_image
from LungLesionQuantLib.segmentation.anatomy import drop_airways
from conftest import shared


def protocol_body(hu: np.ndarray) -> np.ndarray:
    """The evaluation protocol's body: the largest 3D region above -500 HU, holes filled slice
    by slice, grown by 3 voxels in-plane."""
    labels, n = ndimage.label(hu > -500)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    body = labels == 1 + int(np.argmax(sizes))
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    return ndimage.binary_dilation(body, structure=np.ones((1, 3, 3), bool), iterations=3)


def as_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(like.GetSpacing())
    image.SetDirection(like.GetDirection())
    image.SetOrigin(like.GetOrigin())
    return image


@pytest.fixture(scope="module")
def chest():
    ct = to_lps(read_ct(shared("dicom/lung_pet_ct_dx_A0001")).image)
    return ct, sitk.GetArrayFromImage(ct)


@pytest.fixture(scope="module")
def plain(chest, cascade):
    return measure_image(cascade.apply(chest[0]).labels)


def lung_of(labels: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(to_lps(labels)) > 0


def with_blankets(hu: np.ndarray) -> np.ndarray:
    """Three thin arcs of -100 HU over the patient, with air between them and the body."""
    out = hu.copy()
    yy, xx = np.mgrid[:hu.shape[1], :hu.shape[2]]
    radius = np.sqrt((yy - 300.0) ** 2 + ((xx - 256.0) / 1.25) ** 2)
    for r0, half in ((95, 3), (104, 3), (112, 4)):
        band = (np.abs(radius - (300 - r0)) < half) & (yy < 260)
        out[:, band & (hu[0] < -800)] = -100.0
    return out


def test_air_between_blankets_is_not_lung(chest, cascade, plain):
    ct, hu = chest
    blanketed = with_blankets(hu)
    result = cascade.apply(as_image(blanketed, ct))
    labels = result.labels
    lung = lung_of(labels)
    assert not (lung & ~protocol_body(blanketed)).any()
    assert measure_image(labels)["lung_volume_cm3"] == pytest.approx(plain["lung_volume_cm3"], rel=0.02)
    assert result.findings["lung_rules_cm3"]["outside_body"] > 500  # the network did mark that air


def test_field_of_view_cropped_to_the_body(chest, cascade, plain):
    ct, hu = chest
    cropped = hu[:, 40:-40, 60:-60]
    result = cascade.apply(as_image(cropped, ct))
    labels = result.labels
    assert not (lung_of(labels) & ~protocol_body(cropped)).any()
    assert measure_image(labels)["lung_volume_cm3"] == pytest.approx(plain["lung_volume_cm3"], rel=0.02)
    assert result.findings["warnings"] == [] and lung_warnings(labels) == []


def test_field_of_view_through_the_lungs_is_warned_about(chest, cascade):
    ct, hu = chest
    result = cascade.apply(as_image(hu[:, 40:-40, 120:-120], ct))
    labels = result.labels
    assert any("field of view" in w for w in result.findings["warnings"])
    assert any("outside 1-10 L" in w for w in lung_warnings(labels))


def test_prone_and_either_slice_order_give_the_same_lungs(chest, cascade, plain):
    ct, hu = chest
    prone = measure_image(cascade.apply(as_image(hu[:, ::-1, ::-1], ct)).labels)  # turned over: table in front
    assert prone["lung_volume_cm3"] == pytest.approx(plain["lung_volume_cm3"], rel=0.02)
    reversed_order = as_image(hu[::-1], ct)  # the same voxels, stored head to feet
    reversed_order.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    reversed_order.SetOrigin(ct.TransformIndexToPhysicalPoint((0, 0, hu.shape[0] - 1)))
    assert measure_image(cascade.apply(reversed_order).labels)["lung_volume_cm3"] == pytest.approx(plain["lung_volume_cm3"], rel=1e-6)


def test_whole_body_stand_in_has_lung_only_in_the_chest(chest, cascade, plain):
    """90 slices of upper abdomen with tubes of bowel gas under the 64 chest slices."""
    ct, hu = chest
    rng = np.random.default_rng(0)
    abdomen = np.repeat(hu[1:2], 90, axis=0)
    yy, xx = np.mgrid[:hu.shape[1], :hu.shape[2]]
    for _ in range(14):
        cy, cx, z0, length, r = rng.integers(200, 330), rng.integers(150, 370), rng.integers(0, 80), rng.integers(4, 12), rng.integers(8, 25)
        for z in range(z0, min(90, z0 + length)):
            abdomen[z][(yy - cy - 2 * (z - z0)) ** 2 + (xx - cx) ** 2 / 2.0 < r * r] = -990.0
    labels = cascade.apply(as_image(np.concatenate([abdomen, hu]), ct)).labels
    lung = lung_of(labels)
    assert not lung[:90].any()
    assert measure_image(labels)["lung_volume_cm3"] == pytest.approx(plain["lung_volume_cm3"], rel=0.02)


def test_slices_below_the_lungs_hold_no_lung(cascade):
    """NY-SBU single slices through the abdomen (checked by eye): bowel gas, stomach, no lung."""
    for name in ("A027284_19000925-116", "A058062_19001231-084", "A062055_19001127-136"):
        labels = sitk.GetArrayFromImage(cascade.apply(read_ct(shared(f"ny_sbu_slices/{name}.dcm")).image).labels)
        assert not labels.any(), f"{name}: {np.bincount(labels.ravel()).tolist()}"


def test_plausibility_warnings_on_label_maps(phantom):
    image, _ = phantom
    labels = sitk.GetArrayFromImage(image)
    warnings = lung_warnings(image)
    assert any("outside 1-10 L" in w for w in warnings)  # the phantom's lungs are 0.07 L
    three = np.zeros_like(labels)
    three[2:18, 5:18, 4:26] = three[2:18, 22:35, 4:26] = three[2:18, 5:35, 34:56] = 1
    assert any("3 large separate regions" in w for w in lung_warnings(_like(three, image)))
    edge = labels.copy()
    edge[5:8, 10:20, 0:4] = 1
    assert any("edge of the image" in w for w in lung_warnings(_like(edge, image)))
    assert lung_warnings(_like(np.zeros_like(labels), image)) == ["no lung was found; expected a chest CT covering the lungs"]


def _like(array: np.ndarray, image: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def test_airways_are_found_per_slice_as_the_per_slice_rule_finds_them():
    """drop_airways labels every slice at once (issue 24: 3 s of per-slice loops on a CT); the
    result is the per-slice rule's: a small region in the middle of a slice's lungs goes."""
    lung = np.zeros((3, 40, 60), bool)
    lung[:, 5:35, 4:22] = lung[:, 5:35, 38:56] = True   # two lungs on every slice
    lung[0, 10:13, 29:32] = True                          # a central 9-pixel airway on slice 0
    lung[1, 10:13, 5:8] = False                           # (slice 1: a hole, no airway)
    lung[2, 2:4, 23:37] = True                            # slice 2: a wide bar across the middle, 28 px
    out = drop_airways(lung, pixel_mm=1.0)
    assert not out[0, 10:13, 29:32].any() and out[0].sum() == lung[0].sum() - 9
    assert np.array_equal(out[1], lung[1])
    assert not out[2, 2:4, 23:37].any()
    assert np.array_equal(drop_airways(lung, pixel_mm=10.0), lung)  # 10 mm pixels: 9 px are 9 cm², more than an airway


def test_bowel_gas_under_the_lung_bases_alone_is_not_lung(chest, cascade):
    """Issue 25's abdominal CT that reaches only the lung bases: 60 slices of upper abdomen with
    bowel gas (real air noise from outside the patient) under the lowest 12 chest slices, whose
    lung is 200 cm³ — less than the gas. The gas is never lung, and the bases keep their volume."""
    ct, hu = chest
    rng = np.random.default_rng(1)
    air = hu[~protocol_body(hu)]
    air = air[air < -900]
    abdomen = np.repeat(hu[1:2], 60, axis=0)
    gas = np.zeros(abdomen.shape, dtype=bool)
    yy, xx = np.mgrid[:hu.shape[1], :hu.shape[2]]
    for _ in range(12):
        cy, cx, z0, length, r = rng.integers(220, 320), rng.integers(170, 350), rng.integers(0, 50), rng.integers(6, 14), rng.integers(15, 30)
        for z in range(z0, min(60, z0 + length)):
            gas[z] |= (yy - cy - 2 * (z - z0)) ** 2 + (xx - cx) ** 2 / 2.0 < r * r
    abdomen[gas] = rng.choice(air, int(gas.sum()))
    bases = hu[:12]
    alone = measure_image(cascade.apply(as_image(bases, ct)).labels)["lung_volume_cm3"]
    labels = cascade.apply(as_image(np.concatenate([abdomen, bases]), ct)).labels
    assert gas.sum() * np.prod(ct.GetSpacing()) / 1000 > 2 * alone  # the gas outsizes the lungs
    assert not lung_of(labels)[:60].any()
    assert measure_image(labels)["lung_volume_cm3"] == pytest.approx(alone, rel=0.03)


def test_lesion_on_the_lungs_surface_of_thick_slices_is_partial_volume(chest, cascade, plain):
    """Issue 25: on the 5-mm lung-cancer CT (no pneumonia) the dome of the diaphragm shades
    whole one-slice regions into 'lesion'. Those on the lungs' lower or upper surface are lung;
    the tumour (the largest lesion region, 62 cm³, with depth) stays lesion; lung is unchanged."""
    from LungLesionQuantLib.segmentation.anatomy import surface_lesions

    ct, hu = chest
    labels = sitk.GetArrayFromImage(to_lps(cascade.apply(ct).labels))
    lung, lesion = labels > 0, labels > 1
    rows = np.flatnonzero(lung.any(axis=(1, 2)))
    assert not surface_lesions(lesion, lung, (rows[0] == 0, rows[-1] == len(lung) - 1)).any()  # the product applied the rule
    regions, n = ndimage.label(lesion, np.ones((3, 3, 3), bool))
    biggest = np.bincount(regions.ravel())[1:].max() * np.prod(ct.GetSpacing()) / 1000
    assert biggest > 50  # the tumour
    thin = np.zeros_like(lesion)
    thin[1:] = lung[1:] & ~lung[:-1]  # the lowest lung voxel of each column
    thin &= ~ndimage.binary_dilation(lesion, np.ones((3, 3, 3), bool))  # apart from the lesions there are
    assert surface_lesions(thin | lesion, lung, (False, False)).sum() == thin.sum()  # shading on the surface goes, the tumour stays
    assert plain["lesion_extent_pct"] < 1.45 and plain["lung_volume_cm3"] == pytest.approx(5519, abs=5)
