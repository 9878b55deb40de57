"""Golden regression (issue 11): the exact label counts of the bundled sample CT.

Any change of a model, of preprocessing or of post-processing moves these counts and fails
here, in CI, so that it is made on purpose: when it is, re-measure the README's figures and
put the new counts (printed by the failure) here, saying why in the commit.
"""
import numpy as np
import SimpleITK as sitk

from LungLesionQuantLib.input.imageio import read_ct
from conftest import SAMPLE_CT

# 0 background, 1 LungN, 2 GGO, 3 Cons (bundled models of 2026-11-23, anatomy rules of issue 11;
# issue 25's partial-volume rule moved 253 voxels of lesion on the lungs' lower surface to LungN)
GOLDEN_COUNTS = [3982773, 608309, 36361, 9357]


def test_sample_ct_label_counts_are_unchanged(cascade):
    labels = cascade.apply(read_ct(SAMPLE_CT).image).labels
    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=4).tolist()
    assert counts == GOLDEN_COUNTS, f"label counts changed: {counts} (golden {GOLDEN_COUNTS})"
