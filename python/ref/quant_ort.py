"""Quantize an fp32 ONNX model with ONNX Runtime's own static quantizer, for comparison with
edgeloop-quantize on the same model and calibration data.

QDQ format, int8 activations (asymmetric) and int8 weights (symmetric), per-channel by default.
The calibration directory holds .npz files (one array per model input, named after the input)
or .npy files (single-input models); an array of shape [k*B, ...] for an input [B, ...] gives k
samples, exactly as edgeloop reads it.

Usage: quant_ort.py --model in.onnx --calib DIR --out out.onnx
                    [--method minmax|percentile|entropy] [--percentile P] [--per-tensor]
                    [--op-types A,B,...] [--entropy-bins N --entropy-quantized-bins M]

--entropy-bins / --entropy-quantized-bins (with --method entropy) set the histogram of ORT's
entropy calibration. `quantize_static` (1.31.1) does not pass these through (its extra_options
forward only CalibTensorRangeSymmetric, CalibMovingAverage(Constant), CalibMaxIntermediateOutputs
and CalibPercentile to the calibrator), so its entropy method always runs with EntropyCalibrater's
defaults, 128 histogram bins and 128 quantized bins: get_entropy_threshold then has one candidate
threshold, the whole histogram, and the ranges are the min-max ones. With the options, ORT's own
calibrator (`onnxruntime.quantization.calibrate.create_calibrator`, entropy, the given bins) runs on
the same samples and op types, its ranges are written with ORT's `save_tensors_data`, and
`quantize_static` reads them through its `calibration_cache_path` parameter: everything else is
quantize_static's own.
"""
import argparse
import contextlib
import os
import sys
import tempfile

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry


def input_shapes(model):
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        out[i.name] = [d.dim_value for d in i.type.tensor_type.shape.dim]
    return out


def input_dtypes(model):
    """numpy dtype of each graph input (token ids stay integers; everything else float32)."""
    out = {}
    for i in model.graph.input:
        elem = i.type.tensor_type.elem_type
        out[i.name] = onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else np.float32
    return out


def load_samples(calib_dir, shapes, dtypes):
    samples = []
    for name in sorted(os.listdir(calib_dir)):
        path = os.path.join(calib_dir, name)
        if name.endswith(".npz"):
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            if len(shapes) == 1 and list(arrays) == ["arr_0"]:
                arrays = {next(iter(shapes)): arrays["arr_0"]}
        elif name.endswith(".npy"):
            if len(shapes) != 1:
                sys.exit(f"{path}: .npy needs a single-input model")
            arrays = {next(iter(shapes)): np.load(path)}
        else:
            continue
        counts = set()
        split = {}
        for k, a in arrays.items():
            want = shapes[k]
            if list(a.shape) == want:
                split[k] = [a]
            else:
                n = a.shape[0] // want[0]
                split[k] = [a[i * want[0]:(i + 1) * want[0]] for i in range(n)]
            counts.add(len(split[k]))
        if len(counts) != 1:
            sys.exit(f"{path}: arrays give different sample counts")
        for i in range(counts.pop()):
            samples.append({k: v[i].astype(dtypes.get(k, np.float32)) for k, v in split.items()})
    return samples


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)


def entropy_cache(model, samples, op_types, num_bins, num_quantized_bins, path):
    """Runs ORT's entropy calibrator with the given histogram sizes on `samples` and writes its
    ranges to `path` (ORT's calibration cache format). Calibrates the tensors of the op types
    quantize_static would calibrate (its default: every op type its QLinear and QDQ registries
    know)."""
    ops = op_types or list(set(list(QLinearOpsRegistry) + list(QDQRegistry)))
    with tempfile.TemporaryDirectory(prefix="quant_ort.") as tmp:
        cal = create_calibrator(
            model, ops, augmented_model_path=os.path.join(tmp, "augmented_model.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": num_bins, "num_quantized_bins": num_quantized_bins})
        # ORT prints a few progress lines per tensor set; keep stdout to our one line.
        with contextlib.redirect_stdout(sys.stderr):
            cal.collect_data(Reader(samples))
            ranges = cal.compute_data()
    save_tensors_data(ranges, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--calib", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    p.add_argument("--percentile", type=float, default=99.999,
                   help="percentile kept by --method percentile (ORT's default 99.999)")
    p.add_argument("--per-tensor", action="store_true")
    p.add_argument("--op-types", default="")
    p.add_argument("--entropy-bins", type=int, default=0,
                   help="histogram bins of ORT's entropy calibration (0: quantize_static's own, 128)")
    p.add_argument("--entropy-quantized-bins", type=int, default=0,
                   help="quantized bins of ORT's entropy calibration (0: quantize_static's own, 128)")
    args = p.parse_args()
    custom = bool(args.entropy_bins or args.entropy_quantized_bins)
    if custom and args.method != "entropy":
        sys.exit("--entropy-bins/--entropy-quantized-bins need --method entropy")
    model = onnx.load(args.model)
    samples = load_samples(args.calib, input_shapes(model), input_dtypes(model))
    if not samples:
        sys.exit(f"{args.calib}: no calibration samples")
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    op_types = [t for t in args.op_types.split(",") if t] or None
    cache = None
    if custom:
        cache = args.out + ".calib.json"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cache)
        entropy_cache(args.model, samples, op_types, args.entropy_bins or 128,
                      args.entropy_quantized_bins or 128, cache)
    quantize_static(
        args.model,
        args.out,
        None if cache else Reader(samples),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=not args.per_tensor,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        extra_options={"CalibPercentile": args.percentile},
        calibration_cache_path=cache,
    )
    print(f"wrote {args.out} ({len(samples)} calibration samples)")


if __name__ == "__main__":
    main()
