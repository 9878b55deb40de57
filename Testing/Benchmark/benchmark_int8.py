"""int8 static quantisation of the CT networks, measured against fp32 in the same process.

Issue 24 asked for onnxruntime int8 (calibrated on real slices) kept only at equal accuracy.
Each stage is quantised (QDQ or QOperator, per-channel int8 weights, uint8 activations)
with calibration batches of the CT's own slices, then timed against the fp32 model on the same
inputs (median of 3, 2 threads) and compared voxel by voxel (argmax agreement, foreground share).

    python Testing/Benchmark/benchmark_int8.py ../shared/data/dicom/ricord_1a_000082 [--format QDQ|QOperator]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import SimpleITK as sitk
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from LungLesionQuantLib.input.imageio import read_ct, to_lps  # noqa: E402
from LungLesionQuantLib.segmentation.cascade import DEFAULT_MODEL_DIR, Cascade  # noqa: E402
from LungLesionQuantLib.segmentation.preprocessing import (bounding_fit, clip_to_window, fit_box,  # noqa: E402
                                                           whole_slice_fit, window_to_unit)


class Batches(CalibrationDataReader):
    """Every fifth batch of 8 of the CT's own network inputs."""

    def __init__(self, inputs: np.ndarray):
        self.batches = iter([{"image": inputs[i:i + 8]} for i in range(0, len(inputs), 40)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def stage_inputs(path: str) -> dict[str, np.ndarray]:
    """The lung stage's whole slices and the lesion stage's lung crops, as the product makes them."""
    ct = to_lps(read_ct(path).image)
    hu = clip_to_window(sitk.GetArrayFromImage(ct))
    cascade = Cascade(device="cpu")
    lung = cascade.lung_mask(hu, spacing_zyx=ct.GetSpacing()[::-1])
    rows = np.flatnonzero(lung.any(axis=(1, 2)))
    return {"lung": window_to_unit(fit_box(hu, whole_slice_fit(hu.shape[1:], cascade.models["lung"].size)))[:, None],
            "lesion": window_to_unit(fit_box(hu[rows], bounding_fit(lung, cascade.models["lesion"].size)))[:, None]}


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed(model: ort.InferenceSession, inputs: np.ndarray) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(3):
        start = time.perf_counter()
        out = np.concatenate([model.run(None, {"image": inputs[i:i + 16]})[0] for i in range(0, len(inputs), 16)])
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct")
    parser.add_argument("--format", choices=["QDQ", "QOperator"], default="QDQ")
    parser.add_argument("--inputs", type=int, default=64, help="inputs timed per stage")
    args = parser.parse_args()
    inputs = stage_inputs(args.ct)
    with tempfile.TemporaryDirectory() as work:
        for name, x in inputs.items():
            source, prepared, int8 = DEFAULT_MODEL_DIR / f"{name}.onnx", Path(work) / f"{name}.pre.onnx", Path(work) / f"{name}.int8.onnx"
            quant_pre_process(str(source), str(prepared))
            quantize_static(str(prepared), str(int8), Batches(x), quant_format=getattr(QuantFormat, args.format),
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
            t32, fp32 = timed(session(source), x[:args.inputs])
            t8, q8 = timed(session(int8), x[:args.inputs])
            a32, a8 = fp32.argmax(1), q8.argmax(1)
            print(f"{name}: fp32 {t32:.2f} s, int8 {t8:.2f} s for {len(a32)} inputs (int8 speed-up {t32 / t8:.2f}x); "
                  f"argmax agreement {100 * np.mean(a32 == a8):.3f} %; foreground fp32 {100 * np.mean(a32 > 0):.2f} %, "
                  f"int8 {100 * np.mean(a8 > 0):.2f} %")


if __name__ == "__main__":
    main()
