"""Quantize an fp32 ONNX model with ONNX Runtime's own static quantizer, for comparison with
edgeloop-quantize on the same model and calibration data.

QDQ format, int8 activations (asymmetric) and int8 weights (symmetric), per-channel by default.
The calibration directory holds .npz files (one array per model input, named after the input)
or .npy files (single-input models); an array of shape [k*B, ...] for an input [B, ...] gives k
samples, exactly as edgeloop reads it.

Usage: quant_ort.py --model in.onnx --calib DIR --out out.onnx
                    [--method minmax|percentile|entropy] [--percentile P] [--per-tensor]
                    [--op-types A,B,...]
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)


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
    args = p.parse_args()
    model = onnx.load(args.model)
    samples = load_samples(args.calib, input_shapes(model), input_dtypes(model))
    if not samples:
        sys.exit(f"{args.calib}: no calibration samples")
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    op_types = [t for t in args.op_types.split(",") if t] or None
    quantize_static(
        args.model,
        args.out,
        Reader(samples),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=not args.per_tensor,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        extra_options={"CalibPercentile": args.percentile},
    )
    print(f"wrote {args.out} ({len(samples)} calibration samples)")


if __name__ == "__main__":
    main()
