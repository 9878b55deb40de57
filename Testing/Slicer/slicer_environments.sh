#!/usr/bin/env bash
# Issue 26: the module's logic in Python 3.12 environments that hold exactly what each supported
# Slicer bundles (constraints-<version>.txt, read from its SuperBuild files) plus slicer-core; the
# module's requirements are then installed by the module's own logic (dependencies.install:
# every installed package held), and the scene, export and panel tests run. numpy / pydicom /
# highdicom breakage shows here before a user meets it. Usage: slicer_environments.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-.slicer-envs}"
python312=""
for candidate in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then python312="$candidate"; break; fi
done
if [ -z "$python312" ]; then
  echo "slicer_environments: no Python 3.12 here (python3.12, pyenv); expected the Python of Slicer 5.10/5.12" >&2
  exit 2
fi
for constraints in Testing/Slicer/constraints-*.txt; do
  version="$(basename "$constraints" .txt)"; version="${version#constraints-}"
  env="$work/slicer-$version"
  rm -rf "$env"
  "$python312" -m venv "$env"
  "$env/bin/pip" install -q uv
  # What Slicer bundles, at its versions, and the MRML stand-in for Slicer itself.
  "$env/bin/uv" pip install -q --python "$env/bin/python" -c "$constraints" numpy scipy pydicom pillow SimpleITK slicer-core pytest
  # The module's own install path: what every action needs, everything installed held.
  "$env/bin/python" -c "import sys; sys.path.insert(0, '$PWD'); from LungLesionQuantLib.dependencies import install, missing_requirements; install(missing_requirements())"
  echo "Slicer $version: $("$env/bin/python" -c 'import numpy, pydicom, importlib.util as u; print("numpy", numpy.__version__, "pydicom", pydicom.__version__, "highdicom", "installed" if u.find_spec("highdicom") else "not installed")')"
  # MRML export, segment + export (.seg.nrrd, NIfTI, report, DICOM SEG or its warning), the risk panel.
  PYTHONPATH="$PWD" "$env/bin/python" -m pytest -q -p no:cacheprovider Testing/Python/test_mrml_exports.py Testing/Python/test_scene.py \
    -k "mrml_exports or export_round_trips or risk_panel or another_process"
done
