"""The Slicer requirements (issue 13): one list of floors that resolves with each supported
Slicer's bundled packages held, and a feature map that names only listed packages."""
import json
import re
import subprocess
import sys

import pytest

from LungLesionQuantLib.dependencies import BUNDLED, FEATURES, requirements
from LungLesionQuantLib.studies.risk import split_patient_text
from LungLesionQuantLib.pipeline import safe_case_name
from conftest import REPO

REQUIREMENTS = REPO / "LungLesionQuant" / "requirements.txt"
CONSTRAINTS = sorted((REPO / "Testing" / "Slicer").glob("constraints-*.txt"))


def test_one_list_of_floors_without_bundled_packages():
    listed = requirements(REQUIREMENTS)
    assert listed and not any("==" in spec for spec in listed.values())
    assert not {name.lower() for name in listed} & {name.lower() for name in BUNDLED + ("slicer-core", "slicer")}
    for feature, names in FEATURES.items():
        assert set(names) <= set(listed), feature
    assert "statsmodels" not in FEATURES["segment"] and "pingouin" not in FEATURES["segment"]


def test_constraints_name_their_slicer_and_source():
    assert [c.name for c in CONSTRAINTS] == ["constraints-5.10.0.txt", "constraints-5.12.3.txt"]
    for path in CONSTRAINTS:
        text = path.read_text()
        assert "External_python-" in text and re.search(r"tag v5\.1[02]\.\d", text)


@pytest.mark.parametrize("constraints", CONSTRAINTS, ids=lambda p: p.stem)
def test_requirements_resolve_with_slicers_bundled_packages_held(constraints, tmp_path):
    """pip's resolver, for Python 3.12 on manylinux x86_64, binaries only, bundled versions held."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--target", str(tmp_path / "t"), "--python-version", "3.12", "--only-binary=:all:",
               "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
               "-r", str(REQUIREMENTS), "-c", str(constraints), "--report", str(tmp_path / "report.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and re.search(r"(Network is unreachable|Failed to establish|Temporary failure in name resolution)", done.stderr):
        pytest.skip("the package index cannot be reached from here")
    assert done.returncode == 0, done.stderr[-2000:]
    installed = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads((tmp_path / "report.json").read_text())["install"]}
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            assert installed.get(name.lower(), version) == version, f"{name} would be replaced"


def test_patient_values_with_spaces_in_names():
    assert split_patient_text("AGE=63 SEX=M DIABETES TYPE II=1") == ["AGE=63", "SEX=M", "DIABETES TYPE II=1"]
    assert split_patient_text("AGE=63, RACE=BLACK OR AFRICAN AMERICAN") == ["AGE=63", "RACE=BLACK OR AFRICAN AMERICAN"]


def test_volume_names_become_safe_folder_names():
    assert safe_case_name("3: CHEST 1.25mm/axial") == "3_ CHEST 1.25mm_axial"
    assert safe_case_name("..") == "case" and "/" not in safe_case_name("a/../b")


def test_the_package_and_the_slicer_module_ask_for_the_same_floors():
    """pyproject.toml (the command) and requirements.txt (Slicer) list each shared package with one floor."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = requirements(REQUIREMENTS)
    specs = list(project["dependencies"]) + [s for extra in project["optional-dependencies"].values() for s in extra]
    package = {}
    for spec in specs:
        name = re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower()
        floor = re.sub(r"\[[^\]]*\]", "", spec)[len(name):]
        assert package.setdefault(name, floor) == floor, f"{name}: {package[name]} and {floor} in pyproject.toml"
    shared = {name.lower(): spec[len(name):] for name, spec in listed.items()}
    assert set(shared) <= set(package), set(shared) - set(package)
    assert {name: package[name] for name in shared} == shared


def test_highdicom_is_not_installed_where_it_cannot_run():
    """Issue 26: on Slicer 5.10 (pydicom 2.4) the only highdicom that installs fails with numpy 2;
    it is not offered there, and is on 5.12 (pydicom 3), as the two constraint files pin them."""
    from LungLesionQuantLib.dependencies import runs_beside

    pinned = {path.stem: dict(line.split("==") for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))
              for path in CONSTRAINTS}
    assert not runs_beside("highdicom", pinned["constraints-5.10.0"])
    assert runs_beside("highdicom", pinned["constraints-5.12.3"])
    assert runs_beside("highdicom", {"pydicom": None}) and runs_beside("pandas", pinned["constraints-5.10.0"])


def test_export_skips_dicom_seg_by_the_same_rule_that_keeps_highdicom_from_installing(monkeypatch):
    """One rule (dependencies.NEEDS) decides both what is installed and whether DICOM SEG is written."""
    from LungLesionQuantLib.outputs import dicom_seg

    assert dicom_seg.dicom_seg_unavailable() == ""  # pydicom 3 here
    monkeypatch.setattr(dicom_seg.pydicom, "__version__", "2.4.4")
    assert "pydicom 2.4.4" in dicom_seg.dicom_seg_unavailable() and "pydicom 3" in dicom_seg.dicom_seg_unavailable()
