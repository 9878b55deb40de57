"""Volumes and extents are exact on phantoms whose volumes are known analytically."""
import math

import numpy as np
import pytest
import SimpleITK as sitk

from LungLesionQuantLib.measurement.quantify import measure_image, measure_labels, measurement_columns
from conftest import box_phantom


def test_phantom_volumes_and_extents_are_exact(phantom):
    image, expected = phantom
    measured = measure_image(image)
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert set(measured) == set(measurement_columns())


def test_sides_follow_the_patient_not_the_array():
    # Flip the x axis in the array and in the direction: same patient, so same right/left volumes.
    image, expected = box_phantom()
    flipped = sitk.Flip(image, [True, False, False])
    assert flipped.GetDirection()[0] == -1.0
    measured = measure_image(flipped)
    assert measured["right_GGO_volume_cm3"] == pytest.approx(expected["right_GGO_volume_cm3"], rel=1e-12)
    assert measured["left_Cons_volume_cm3"] == pytest.approx(expected["left_Cons_volume_cm3"], rel=1e-12)


def test_extents_of_an_empty_lung_are_undefined_not_zero():
    measured = measure_labels(np.zeros((3, 4, 5), np.uint8), (1.0, 1.0, 1.0))
    assert measured["lung_volume_cm3"] == 0.0
    assert math.isnan(measured["lesion_extent_pct"]) and math.isnan(measured["left_GGO_extent_pct"])


def test_zones_partition_each_lung_exactly(phantom):
    """Zones (issue 13): thirds by slice from apex to base, halves front to back; checked by
    hand on the phantom (right lung: slices 2..17, rows 5..34; GGO on slices 4..7, rows 10..19)."""
    image, expected = phantom
    m = measure_image(image)
    voxel = float(np.prod(image.GetSpacing())) / 1000.0
    assert m["right_lower_GGO_volume_cm3"] == pytest.approx(300 * voxel)  # slices 4, 5, 6 of 2..6
    assert m["right_middle_GGO_volume_cm3"] == pytest.approx(100 * voxel)  # slice 7 of 7..11
    assert m["right_upper_GGO_volume_cm3"] == 0.0
    assert m["right_upper_lung_volume_cm3"] == pytest.approx(6 * 30 * 22 * voxel)  # slices 12..17
    assert m["right_ventral_GGO_volume_cm3"] == pytest.approx(400 * voxel) and m["right_dorsal_GGO_volume_cm3"] == 0.0
    for side in ("right_", "left_"):
        for measure in ("lung", "LungN", "GGO", "Cons", "lesion"):
            whole = m[f"{side}{measure}_volume_cm3"]
            assert sum(m[f"{side}{z}_{measure}_volume_cm3"] for z in ("upper", "middle", "lower")) == pytest.approx(whole, rel=1e-12)
            assert sum(m[f"{side}{z}_{measure}_volume_cm3"] for z in ("ventral", "dorsal")) == pytest.approx(whole, rel=1e-12)
    assert m["right_lower_GGO_extent_pct"] == pytest.approx(100 * 300 / (5 * 30 * 22))


def test_overlap_measures_are_undefined_not_zero_or_one_where_their_denominator_is_empty():
    """The empty-mask rule (Tang et al. 2020), one module for every evaluation."""
    from LungLesionQuantLib.measurement.overlap_metrics import Overlap

    empty, full = np.zeros((4, 4), bool), np.ones((4, 4), bool)
    half = np.zeros((4, 4), bool)
    half[:2] = True
    both_empty = Overlap.of(empty, empty)
    assert np.isnan(both_empty.dice) and np.isnan(both_empty.sensitivity) and np.isnan(both_empty.precision)
    assert both_empty.specificity == 1.0
    missed = Overlap.of(half, empty)
    assert missed.dice == 0.0 and missed.sensitivity == 0.0 and np.isnan(missed.precision)
    found = Overlap.of(half, full)
    assert found.dice == pytest.approx(2 * 8 / 24) and found.sensitivity == 1.0 and found.precision == 0.5
    assert found.iou == 0.5 and found.specificity == 0.0
    assert np.isnan(Overlap.of(full, full).specificity)  # no reference background
