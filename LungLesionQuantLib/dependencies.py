"""The Python packages the core needs inside Slicer's own Python, per action, and which are missing.

One list, ``LungLesionQuant/requirements.txt`` (floors; installed beside the module in an
extension). Slicer bundles numpy, scipy, SimpleITK, pydicom, pillow and VTK; the rest is
installed with ``slicer.util.pip_install`` only after the user agrees (see the module), never at
import time, and with the bundled packages held at their installed versions
(:func:`bundled_constraints`), so that installing never replaces what Slicer ships.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

_LIB = Path(__file__).resolve().parent
# The module's folder in a source checkout; the module's install folder in a built extension.
REQUIREMENTS_CANDIDATES = (_LIB.parent / "LungLesionQuant" / "requirements.txt", _LIB.parent / "requirements.txt")
# Distribution name -> import name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn"}
# What each action of the module (and the headless batch) imports, by distribution name.
FEATURES = {
    "segment": ("onnxruntime", "pandas", "matplotlib"),
    "export": ("onnxruntime", "pandas", "matplotlib", "highdicom"),
    "batch": ("onnxruntime", "pandas", "matplotlib", "highdicom", "tqdm"),
    "agreement": ("pandas", "matplotlib", "slicerio", "statsmodels", "pingouin"),
    "risk": ("pandas", "matplotlib", "statsmodels", "scikit-learn"),
}
# Distributions Slicer bundles: held at their installed versions when installing.
BUNDLED = ("numpy", "scipy", "pydicom", "pillow", "SimpleITK", "vtk")


def requirements_file() -> Path:
    for path in REQUIREMENTS_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError(f"LungLesionQuant's requirements.txt is missing; looked in {', '.join(map(str, REQUIREMENTS_CANDIDATES))}")


def requirements(path: Path | None = None) -> dict[str, str]:
    """Distribution name -> requirement (e.g. 'onnxruntime' -> 'onnxruntime>=1.19') from the list."""
    out = {}
    for line in (path or requirements_file()).read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            out[re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0]] = spec
    return out


def missing_requirements(feature: str | None = None) -> list[str]:
    """The requirements of ``feature`` (all when None) whose module cannot be imported here."""
    listed = requirements()
    names = FEATURES[feature] if feature else tuple(listed)
    return [listed[name] for name in names if importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is None]


def bundled_constraints() -> list[str]:
    """``name==version`` for each bundled distribution installed here: pip's constraints."""
    held = []
    for name in BUNDLED:
        try:
            held.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return held
