"""The Slicer module glue: it compiles, its widget names exist in the .ui, and the headless batch runs."""
import ast
import py_compile
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd

from conftest import REPO, SAMPLE_CT

MODULE = REPO / "LungLesionQuant" / "LungLesionQuant.py"
BATCH = REPO / "LungLesionQuantLib" / "batch.py"
UI = REPO / "LungLesionQuant" / "Resources" / "UI" / "LungLesionQuant.ui"


def test_module_files_compile():
    for path in (MODULE, BATCH):
        py_compile.compile(str(path), doraise=True)


def test_every_widget_the_module_uses_exists_in_the_ui():
    names = {w.get("name") for w in ET.parse(UI).iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text()))
    assert used, "the module uses no widgets?"
    assert used <= names, f"missing in the .ui: {sorted(used - names)}"


def test_ui_parameter_bindings_match_the_parameter_node():
    tree = ast.parse(MODULE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LungLesionQuantParameterNode")
    fields = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}
    bound = {p.find("string").text for p in ET.parse(UI).iter("property") if p.get("name") == "SlicerParameterName"}
    assert bound and bound <= fields, f"bound to unknown parameters: {sorted(bound - fields)}"


def test_cmake_lists_name_files_that_exist():
    text = (REPO / "LungLesionQuant" / "CMakeLists.txt").read_text()
    for name in ("LungLesionQuant.py", "Resources/UI/LungLesionQuant.ui", "Resources/Icons/LungLesionQuant.png"):
        assert name.replace("LungLesionQuant", "${MODULE_NAME}") in text
        assert (REPO / "LungLesionQuant" / name).exists(), name
    assert "slicerMacroBuildScriptedModule" in text and "slicer_add_python_unittest" in text


def test_headless_batch_writes_the_cli_layout_and_reports_failures(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "sample.nii.gz").symlink_to(SAMPLE_CT)
    (cases / "broken.nrrd").write_text("not an image")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(BATCH), "--", "--input-dir", str(cases), "--output", str(out), "--device", "cpu"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr
    assert "2 cases: 1 done, 1 failed" in run.stdout
    for name in ("labels.nii.gz", "segmentation.seg.nrrd", "measurements.csv", "overlay.png"):
        assert (out / "sample" / name).exists()
    assert pd.read_csv(out / "measurements.csv")["case"].tolist() == ["sample"]
    # every option of 'segment' passes through (issue 24): --resume with --threads and --window
    again = subprocess.run([sys.executable, str(BATCH), "--", "--input", str(cases / "sample.nii.gz"), "--output", str(out),
                            "--device", "cpu", "--resume", "--threads", "1", "--window", "1500/-600"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "skipped sample" in again.stdout, again.stderr


def test_module_folder_holds_only_the_module():
    """Slicer loads every .py of a module folder as a module (issue 13: the batch script moved to the core)."""
    assert sorted(p.name for p in (REPO / "LungLesionQuant").glob("*.py")) == ["LungLesionQuant.py"]


def _batch_with(prelude: str, *args: str) -> subprocess.CompletedProcess:
    """The headless batch as Slicer runs it (the script as __main__), after ``prelude``."""
    code = f"import runpy, sys\n{prelude}\nsys.argv = {[str(BATCH), '--', *args]!r}\nrunpy.run_path({str(BATCH)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_headless_batch_asks_only_for_what_it_needs_and_always_exits(tmp_path):
    """Issue 26: the batch checked every feature's packages (highdicom too), and an unexpected
    error left Slicer running. Now: tqdm missing is named alone; highdicom only with --dicom-seg;
    an unexpected error prints its traceback and exits 3."""
    out = str(tmp_path / "out")
    no_tqdm = _batch_with("sys.modules['tqdm'] = None", "--input", str(SAMPLE_CT), "--output", out)
    assert no_tqdm.returncode == 2 and "missing Python packages tqdm>=" in no_tqdm.stderr and "highdicom" not in no_tqdm.stderr
    assert "--install-missing" in no_tqdm.stderr
    no_highdicom = "sys.modules['highdicom'] = None"
    without = _batch_with(no_highdicom, "--input", str(SAMPLE_CT), "--output", out, "--dicom-seg")
    assert without.returncode == 2 and "missing Python packages highdicom>=" in without.stderr
    broken = _batch_with("import LungLesionQuantLib.cli as cli\ncli.main = lambda argv: 1 / 0", "--input", str(SAMPLE_CT), "--output", out)
    assert broken.returncode == 3 and "ZeroDivisionError" in broken.stderr and "exit status 3" in broken.stderr


def test_installs_hold_every_installed_distribution():
    """The install constraints pin every installed distribution (not only five bundled ones)."""
    import importlib.metadata

    from LungLesionQuantLib.dependencies import installed_constraints

    held = dict(line.split("==") for line in installed_constraints())
    assert held["numpy"] == importlib.metadata.version("numpy") and held["onnxruntime"] == importlib.metadata.version("onnxruntime")
    assert len(held) == len({d.metadata["Name"].lower() for d in importlib.metadata.distributions()})


def test_extensions_index_entry_agrees_with_the_extension_build():
    """The catalog entry for Slicer's ExtensionsIndex (schema v1.0.1: no other keys) names the
    category and repository of CMakeLists.txt, whose icon and screenshot URLs point at files here."""
    import json

    entry = json.loads((REPO / "Resources" / "ExtensionsIndex" / "LungLesionQuant.json").read_text())
    assert set(entry) <= {"$schema", "build_dependencies", "build_subdirectory", "category", "scm_revision", "scm_type", "scm_url", "tier"}
    cmake = dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', (REPO / "CMakeLists.txt").read_text()))
    assert entry["category"] == cmake["EXTENSION_CATEGORY"] and entry["scm_url"].startswith(cmake["EXTENSION_HOMEPAGE"])
    for key in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        for url in cmake[key].split():
            assert (REPO / url.split(f"/{entry['scm_revision']}/", 1)[1]).is_file(), url
