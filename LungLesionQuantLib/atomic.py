"""Write-then-rename, so a crash never leaves a half-written file under its final name."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def split_suffix(name: str) -> tuple[str, str]:
    """('segmentation', '.seg.nrrd') for 'segmentation.seg.nrrd': the suffix is all after the first dot."""
    stem, dot, rest = name.partition(".")
    return stem, dot + rest


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final`` with the same suffix; rename it on success.

    Files a writer puts beside the temporary one under its stem (e.g. the ``.schema.csv`` of a
    table) are renamed along with it; on failure all of them are removed.
    """
    final = Path(final)
    stem, suffix = split_suffix(final.name)
    tmp_stem = f".{stem}_partial{os.getpid()}"
    tmp = final.with_name(tmp_stem + suffix)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        for leftover in final.parent.glob(tmp_stem + "*"):
            leftover.unlink(missing_ok=True)
        raise
    if not tmp.exists():
        raise RuntimeError(f"writing {final} produced no file")
    for produced in sorted(final.parent.glob(tmp_stem + "*")):
        os.replace(produced, final.with_name(stem + produced.name[len(tmp_stem):]))
