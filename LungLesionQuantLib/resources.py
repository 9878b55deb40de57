"""Where the bundled files are: beside the core package, in a source checkout and in an
installed extension alike (the extension installs ``Resources/`` beside ``LungLesionQuantLib/``)."""
from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[1] / "Resources"
MODEL_DIR = RESOURCES / "Models"
SAMPLE_CT = RESOURCES / "Sample" / "ricord_000082_sample.nii.gz"
