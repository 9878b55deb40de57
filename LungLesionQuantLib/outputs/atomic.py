"""Writes that cannot lie: write under a hidden name, verify, then rename.

A crash, a full disk or a file-size limit never leaves a half-written file under its final
name (Slicer's storage nodes do not report short writes, so every file is checked after it is
written: its size, and read back where that is cheap). A case folder is written as a whole
(:class:`CaseStage`): every file is written and verified in a hidden staging folder first, and
only then do the new files replace the old ones, so earlier results stay untouched until the
new ones are complete. A lock file keeps two runs from writing one case folder.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import LungLesionQuantError, OutputError

LOCK_FILE = ".lunglesionquant.lock"
STAGING_PREFIX = ".staging-"
MIN_FREE_BYTES = 100 * 2**20


def split_suffix(name: str) -> tuple[str, str]:
    """('segmentation', '.seg.nrrd') for 'segmentation.seg.nrrd': the suffix is all after the first dot."""
    stem, dot, rest = name.partition(".")
    return stem, dot + rest


def verify_file(path: Path, final: Path | None = None) -> None:
    """Raise :class:`OutputError` unless ``path`` is a complete file of its kind (by the suffix
    of ``final``, default ``path``): not empty; compressed streams, NIfTI and NRRD data read to
    the end; PNG, JSON, CSV and PDF read back."""
    final = final or path
    if final.parent.name.startswith(STAGING_PREFIX):  # name the file where it is going
        final = final.parent.parent / final.name
    name = final.name.lower()
    try:
        if path.stat().st_size == 0:
            raise OutputError(f"writing {final} produced an empty file")
        if name.endswith((".nii", ".nii.gz", ".nrrd", ".gz")):
            from ..input.input_checks import check_file

            check_file(path)
        elif name.endswith(".png"):
            from PIL import Image

            with Image.open(path) as im:
                im.verify()
        elif name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".csv"):
            import pandas as pd

            pd.read_csv(path)
        elif name.endswith(".pdf"):
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 1024))
                if b"%%EOF" not in f.read():
                    raise OutputError(f"writing {final} produced a PDF without its end")
    except OutputError:
        raise
    except (LungLesionQuantError, OSError, ValueError, EOFError, gzip.BadGzipFile) as exc:
        raise OutputError(f"writing {final} produced a damaged file ({type(exc).__name__}); "
                          "is the disk full or a file-size limit set?") from None


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final`` with the same suffix; verify the file and
    rename it on success.

    Files a writer puts beside the temporary one under its stem (e.g. the ``.schema.csv`` of a
    table) are verified and renamed along with it; on failure all of them are removed.
    """
    final = Path(final)
    stem, suffix = split_suffix(final.name)
    tmp_stem = f".{stem}_partial{os.getpid()}"
    tmp = final.with_name(tmp_stem + suffix)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if not tmp.exists():
            raise OutputError(f"writing {final} produced no file")
        produced = sorted(final.parent.glob(tmp_stem + "*"))
        for path in produced:
            verify_file(path, final.with_name(stem + path.name[len(tmp_stem):]))
        for path in produced:
            os.replace(path, final.with_name(stem + path.name[len(tmp_stem):]))
    except BaseException as exc:
        for leftover in final.parent.glob(tmp_stem + "*"):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"could not write {final} ({exc.strerror or exc}); expected a writable folder with free space") from None
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(out_dir: Path) -> None:
    for leftover in out_dir.glob(".*"):
        if leftover.name.startswith(STAGING_PREFIX) or "_partial" in leftover.name:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def clear_dead_run(out_dir: Path) -> None:
    """What a run killed in ``out_dir`` left (its lock, staging folder, partial files), for a
    case that is not written again (``--resume`` found it complete); a live run's are kept."""
    lock = Path(out_dir) / LOCK_FILE
    if lock.exists() and CaseStage._holder(lock) is not None:
        return
    _remove_leftovers(Path(out_dir))
    lock.unlink(missing_ok=True)


class CaseStage:
    """One case folder written as a whole: lock it, write into a staging folder, commit.

    ``with CaseStage(out_dir) as stage:`` takes the folder's lock (refusing a folder another
    live process holds; clearing what a dead one left), checks that it is writable with free
    space, and gives ``stage.path(name)`` in a hidden staging folder. :meth:`commit` moves the
    staged files into place, ``commit_last`` ones (the provenance) last. Leaving the block
    removes the staging folder and the lock, on every path.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.staging = self.out_dir / f"{STAGING_PREFIX}{os.getpid()}"
        self._locked = False
        self._created = False

    def __enter__(self) -> "CaseStage":
        try:
            self._created = not self.out_dir.exists()
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"could not create {self.out_dir} ({exc.strerror or exc}); expected a writable output folder") from None
        self._lock()
        try:
            self._clear_dead_runs()
            self.staging.mkdir()
            probe = self.staging / ".probe"
            probe.write_bytes(b"0")
            probe.unlink()
            free = shutil.disk_usage(self.out_dir).free
            if free < MIN_FREE_BYTES:
                raise OutputError(f"{self.out_dir}: found {free / 2**20:.0f} MB free; expected at least {MIN_FREE_BYTES // 2**20} MB")
        except OSError as exc:
            self.__exit__(None, None, None)
            raise OutputError(f"could not write in {self.out_dir} ({exc.strerror or exc}); expected a writable output folder") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._locked:
            (self.out_dir / LOCK_FILE).unlink(missing_ok=True)
            self._locked = False
        if self._created and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()  # a case that failed leaves no empty folder behind

    def _lock(self) -> None:
        lock = self.out_dir / LOCK_FILE
        for _attempt in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._holder(lock)
                if holder is not None:
                    raise OutputError(f"{self.out_dir} is being written by process {holder[0]} on {holder[1]}; "
                                      "expected one run per case folder (wait for it, or remove the lock file "
                                      f"{LOCK_FILE} if that run is gone)") from None
                lock.unlink(missing_ok=True)  # left by a run that died
                continue
            except OSError as exc:
                raise OutputError(f"could not write in {self.out_dir} ({exc.strerror or exc}); expected a writable output folder") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self._locked = True
            return
        raise OutputError(f"could not lock {self.out_dir}; expected one run per case folder")

    @staticmethod
    def _holder(lock: Path) -> tuple[int, str] | None:
        """(pid, host) of a live lock holder; None for a lock a dead process left on this host."""
        try:
            pid_text, host = lock.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        if host == socket.gethostname() and not _alive(pid):
            return None
        return pid, host

    def _clear_dead_runs(self) -> None:
        """Staging folders and hidden partial files of runs that are gone (we hold the lock)."""
        _remove_leftovers(self.out_dir)

    def path(self, name: str) -> Path:
        """Where to write the file that will be ``out_dir/name``."""
        return self.staging / name

    def commit(self, last: tuple[str, ...] = ()) -> None:
        """Move every staged file into the case folder (``last`` ones last)."""
        staged = sorted((p for p in self.staging.iterdir() if not p.name.startswith(".")), key=lambda p: p.name in last)
        try:
            for path in staged:
                os.replace(path, self.out_dir / path.name)
        except OSError as exc:
            raise OutputError(f"could not move results into {self.out_dir} ({exc.strerror or exc})") from None
