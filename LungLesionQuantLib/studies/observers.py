"""Several observers' readings of the same cases, paired as in Table 2 of Bartoli et al. 2022.

The paper's columns are "Auto vs. O1a", "O1a vs. O2", "O1a vs. O3" and "O1a vs. O1b": the
software against the ground truth, inter-observer and intra-observer agreement. Here every
reading is named (``--observer O1a=DIR``); a name that ends in a letter after a digit (O1a,
O1b) is that observer's reading a or b, so O1a vs. O1b is intra-observer. The table holds the
software against each reading, then every pair of readings of different observers, then every
pair of readings of the same observer.
"""
from __future__ import annotations

import re
from pathlib import Path

from .agreement import CohortComparison, compare_pairs, set_names
from ..errors import InputError

READING = re.compile(r"^(?P<observer>.*\d)[a-z]$")
SAFE_NAME = re.compile(r"^[\w.-]+$")
SOFTWARE, INTER, INTRA = "software vs. observer", "inter-observer", "intra-observer"


def named_folder(text: str) -> tuple[str, Path]:
    """``"O1a=/data/o1a"`` → ``("O1a", Path("/data/o1a"))``."""
    name, sep, folder = text.partition("=")
    if not sep or not SAFE_NAME.match(name.strip()) or not folder.strip():
        raise InputError(f"--observer {text!r}: expected NAME=FOLDER with a name of letters, digits, '.', '-' or '_' (e.g. O1a=/data/O1a)")
    return name.strip(), Path(folder.strip())


def observer_of(reading: str) -> str:
    """The observer a reading belongs to: 'O1' for O1a and O1b; the name itself otherwise."""
    match = READING.match(reading)
    return match.group("observer") if match else reading


def study_pairs(readings: list[tuple[str, Path]], software: list[tuple[str, Path]]) -> list[tuple[str, str, Path, Path]]:
    """(set name, kind, reference folder, test folder) of every comparison, in Table 2's order."""
    names = [name for name, _ in readings]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"observer name(s) {duplicated} given twice; expected one folder per reading")
    if len(readings) + len(software) < 2 or not readings:
        raise InputError(f"found {len(readings)} observer reading(s) and {len(software)} software folder(s); "
                         "expected at least one --observer and two folders in all")
    pairs = [(f"{sw} vs. {obs}", SOFTWARE, obs_dir, sw_dir) for sw, sw_dir in software for obs, obs_dir in readings]
    observer_pairs = [(a, b) for i, a in enumerate(readings) for b in readings[i + 1:]]
    for kind in (INTER, INTRA):
        for (a, a_dir), (b, b_dir) in observer_pairs:
            same = observer_of(a) == observer_of(b)
            if same == (kind == INTRA):
                pairs.append((f"{a} vs. {b}", kind, a_dir, b_dir))
    return pairs


def compare_observers(readings: list[tuple[str, Path]], software_folders: list[Path]) -> CohortComparison:
    """Every comparison of :func:`study_pairs`, case by case, each set's kind recorded for Table 2."""
    software = list(zip(set_names(software_folders), software_folders))
    clash = sorted({name for name, _ in software} & {name for name, _ in readings})
    if clash:
        raise InputError(f"software folder name(s) {clash} are also observer names; expected different names")
    pairs = study_pairs(readings, software)
    result = compare_pairs([(name, reference, test) for name, _, reference, test in pairs])
    result.kinds = {name: kind for name, kind, _, _ in pairs}
    return result
