"""The Python packages the core needs inside Slicer's own Python, per action, and which are missing.

One list, ``LungLesionQuant/requirements.txt`` (floors; installed beside the module in an
extension). Slicer bundles numpy, scipy, SimpleITK, pydicom, pillow and VTK; the rest is
installed (:func:`install`) only after the user agrees (see the module; the headless batch's
``--install-missing``), never at import time, and with every installed distribution held at its
version (:func:`installed_constraints`), so that installing never replaces what Slicer ships.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
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
    "batch": ("onnxruntime", "pandas", "matplotlib", "tqdm"),
    "dicom-seg": ("highdicom",),  # the batch's --dicom-seg
    "agreement": ("pandas", "matplotlib", "slicerio", "statsmodels", "pingouin"),
    "risk": ("pandas", "matplotlib", "statsmodels", "scikit-learn"),
}
# Major versions a package needs of what Slicer bundles, or it cannot run (highdicom >= 0.23 needs
# pydicom 3; 0.22, the last for pydicom 2, fails with numpy 2): not installed where they are older.
NEEDS = {"highdicom": {"pydicom": 3}}
# Distributions Slicer bundles: never listed in requirements.txt (a test holds it).
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
    """The requirements of ``feature`` (all when None) whose module cannot be imported here —
    leaving out those that could not run beside what is installed (:func:`runs_beside`)."""
    listed = requirements()
    names = FEATURES[feature] if feature else tuple(listed)
    installed = {name: _version(name) for needs in NEEDS.values() for name in needs}
    return [listed[name] for name in names
            if importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is None and runs_beside(name, installed)]


def runs_beside(name: str, installed: dict[str, str | None]) -> bool:
    """Whether ``name`` can run beside the ``installed`` versions (name -> version or None):
    :data:`NEEDS` of major versions. Installing a package that cannot run only costs the user
    a download and a broken import (highdicom 0.22 on Slicer 5.10's pydicom 2 and numpy 2)."""
    for dependency, major in NEEDS.get(name, {}).items():
        version = installed.get(dependency)
        if version is not None and int(version.split(".")[0]) < major:
            return False
    return True


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_constraints() -> list[str]:
    """``name==version`` for every distribution installed here — pip's constraints. Holding
    all of them, not only :data:`BUNDLED`, means an install that would upgrade anything Slicer
    ships (or another extension installed) fails with pip's reason instead of replacing it."""
    held = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and dist.version:
            held.setdefault(name.lower(), f"{name}=={dist.version}")
    return sorted(held.values())


def install(missing: list[str]) -> None:
    """pip-install ``missing`` requirements with every installed distribution held
    (:func:`installed_constraints`): through Slicer's ``pip_install`` inside Slicer, else this
    interpreter's pip. Import caches are refreshed, so the new packages import at once."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(installed_constraints()) + "\n")
    try:
        try:
            import slicer

            pip_install = slicer.util.pip_install if getattr(slicer, "app", None) is not None else None
        except ImportError:
            pip_install = None
        if pip_install is not None:
            pip_install(missing + ["-c", constraints.name])
        else:
            subprocess.run([sys.executable, "-m", "pip", "install", *missing, "-c", constraints.name], check=True)
    finally:
        os.unlink(constraints.name)
    importlib.invalidate_caches()
