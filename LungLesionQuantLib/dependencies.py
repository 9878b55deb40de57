"""Python packages the core needs inside Slicer's own Python, pinned, and which are missing.

Slicer bundles numpy, SimpleITK, pydicom and VTK; the rest is installed with
``slicer.util.pip_install`` only after the user agrees (see the module), never at import time.
"""
from __future__ import annotations

import importlib.util

# import name -> pinned requirement
REQUIREMENTS = {
    "onnxruntime": "onnxruntime==1.32.0",
    "scipy": "scipy==1.17.1",
    "pandas": "pandas==3.1.1",
    "matplotlib": "matplotlib==3.11.2",
    "highdicom": "highdicom==0.28.2",
    "tqdm": "tqdm==4.70.1",
    "slicerio": "slicerio==1.4.0",
    "statsmodels": "statsmodels==0.15.0",
    "sklearn": "scikit-learn==1.9.1",
    "pingouin": "pingouin==0.7.0",
}


def missing_requirements() -> list[str]:
    """The pinned requirements whose module cannot be imported here."""
    return [req for module, req in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
