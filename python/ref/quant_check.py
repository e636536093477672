"""Validate ONNX models with onnx.checker.check_model(full_check=True).

Usage: quant_check.py MODEL.onnx [MODEL.onnx ...]
Prints one line per model; exits non-zero if any model fails.
"""
import sys

import onnx


def main() -> int:
    failed = 0
    for path in sys.argv[1:]:
        model = onnx.load(path)
        try:
            onnx.checker.check_model(model, full_check=True)
            opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
            print(f"ok {path} opset={opset} ir={model.ir_version}")
        except Exception as e:  # report every model, then fail
            failed += 1
            print(f"FAIL {path}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
