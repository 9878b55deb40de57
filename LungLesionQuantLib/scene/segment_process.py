"""Segmenting in a separate process, so that Slicer stays responsive while the networks run
(issue 26; as MONAIAuto3DSeg and SlicerNNUnet run their inference).

The module writes the volume's image to a work folder and starts this file as a process
(:class:`SegmentProcess`); the process loads the segmenter, reports each step as a JSON line on
its stdout and leaves ``labels.nrrd`` and ``findings.json`` behind. The module polls it from a
timer (:meth:`SegmentProcess.poll`), shows the steps, can cancel it at any moment (the process
is killed, the work folder removed, the scene untouched), and builds the segmentation from the
result on the main thread. Nothing here imports Slicer: the process is plain Python (Slicer's
``PythonSlicer``).

    python -m LungLesionQuantLib.scene.segment_process WORK MODALITY DEVICE
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..errors import LungLesionQuantError
from ..runtime import Segmented

INPUT, LABELS, FINDINGS = "input.nrrd", "labels.nrrd", "findings.json"


@dataclass
class Step:
    """One progress report of the process: ``stage``, ``done`` of ``total``."""

    stage: str
    done: int
    total: int


def python_executable() -> str:
    """Slicer's own Python (``PythonSlicer``) inside Slicer; else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


class SegmentProcess:
    """One segmentation running in another process; ``image`` is copied to its work folder first."""

    def __init__(self, image: sitk.Image, modality: str = "ct", device: str = "auto", python: str | None = None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="llq-segment-"))
        sitk.WriteImage(image, str(self.work / INPUT))
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        # The core's folder first on the path: inside Slicer it is found through sys.path, which a new process does not inherit.
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        self.process = subprocess.Popen([python or python_executable(), "-m", __name__, str(self.work), modality, device],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        # Pipes read on threads: a full pipe would stall the process, and the timer must never block.
        self._pumps = [threading.Thread(target=self._pump, args=(self.process.stdout, self._lines.put), daemon=True),
                       threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr.append), daemon=True)]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line)

    def poll(self) -> list[Step]:
        """The steps reported since the last call (never blocks)."""
        steps = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return steps
            try:
                steps.append(Step(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a library's own print, not a step

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> Segmented:
        """The finished process's labels and findings. If it failed: its one-line error as
        :class:`LungLesionQuantError` (exit status 2, as the command's), else a RuntimeError with
        the last line it printed. The work folder is removed either way."""
        code = self.process.wait()
        for pump in self._pumps:
            pump.join(timeout=5)
        try:
            if code != 0:
                lines = [line.strip() for line in self._stderr if line.strip()]
                last = lines[-1] if lines else "(nothing printed)"
                if code == 2:
                    raise LungLesionQuantError(last)
                raise RuntimeError(f"the segmentation process ended with exit status {code}: {last}")
            labels = sitk.ReadImage(str(self.work / LABELS))
            return Segmented(labels, json.loads((self.work / FINDINGS).read_text()))
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def cancel(self) -> None:
        """Stop the process now and remove its work folder; nothing reaches the scene."""
        if self.running:
            self.process.kill()
        self.process.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def _report(stage: str, done: int, total: int) -> None:
    print(json.dumps({"stage": stage, "done": done, "total": total}), flush=True)


def main(argv: list[str]) -> int:
    """The process: segment ``WORK/input.nrrd``; labels and findings to ``WORK``."""
    work, modality, device = Path(argv[0]), argv[1], argv[2]
    try:
        from ..segmenters import SegmenterSpec, loaded

        _report("loading the models", 0, 1)
        segmenter = loaded(SegmenterSpec(modality, device=device))
        _report("loading the models", 1, 1)
        segmented = segmenter.apply(sitk.ReadImage(str(work / INPUT), sitk.sitkFloat32), _report)
        partial = work / f".{LABELS}"
        sitk.WriteImage(segmented.labels, str(partial), useCompression=False)
        (work / FINDINGS).write_text(json.dumps(segmented.findings, default=float))
        os.replace(partial, work / LABELS)
    except LungLesionQuantError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
