"""edgeloop's quantizer against ONNX Runtime's `quantize_static` on a demo run's models.

On the SAME fp32 ONNX models and the SAME calibration inputs (identical .npz files fed to both
quantizers), for each calibration method both implement (min-max, percentile, entropy):

- the intent classifier (`deploy/v1/model-fp32.onnx`): accuracy and macro F1 on the lab test
  split and the held-out field set, top-1 agreement with fp32 and logit SQNR vs fp32;
- the demo's pretrained tiny GPT (`gpt/model`, exported here to fp32 ONNX with
  `edgeloop train export`): token perplexity on the held-out pretraining text
  (`data/pretrain_val.jsonl`), calibrated on windows of the training text
  (`data/pretrain_train.jsonl`, disjoint from it).

ORT's entropy method through `quantize_static` is min-max in 1.31.1: quantize_static passes no
histogram sizes to its EntropyCalibrater, whose defaults (128 bins, 128 quantized bins) leave
get_entropy_threshold a single candidate threshold, the whole histogram (see quant_ort.py). So ORT's
entropy also runs with a real KL search at given histogram sizes (--ort-entropy-bins, default
2048 histogram bins / 128 quantized bins; a comma-separated list for several), its calibrator's
ranges handed to quantize_static as a calibration cache.

Every ONNX model (fp32, ours int8 QDQ, ORT int8 QDQ) runs in ONNX Runtime on the CPU at graph
optimization Level1 (ORT_ENABLE_BASIC; higher levels fuse QDQ into kernels that saturate on
AVX2 hosts without VNNI). The int8 classifiers and language models (percentile calibration,
ours and ORT's) are also compiled into model images and run on edgeloop's host runtime
(`edgeloop compile` + `edgeloop run`) unless --no-images; each image's memory plan (arena vs
the exact lower bound) is recorded.

Tokenization is edgeloop's own (`edgeloop data tokenize` with the run's tokenizer.json), read
back from the token files (trainer/TOKENS.md); classifier inputs are cut / padded to the
classifier's fixed length with [PAD] exactly as the demo does.

Usage: quantizer_vs_ort.py --run RUN_DIR --bin EDGELOOP --work DIR --json OUT.json --md OUT.md
                           [--percentile 99.99] [--no-images] [--lm-calib N]
                           [--ort-entropy-bins BINS/QUANTIZED_BINS[,...] | --ort-entropy-bins 0]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ["minmax", "percentile", "entropy"]
# edgeloop_quantize::DEFAULT_OP_TYPES (the op types `edgeloop quantize` quantizes by default).
OUR_OP_TYPES = ["Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Sigmoid", "Softmax", "MaxPool",
                "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Squeeze",
                "Unsqueeze", "Concat", "LayerNormalization", "Gelu"]
QUANTIZERS = {"ours": "edgeloop", "onnxruntime": "ORT quantize_static (its default op types)",
              "onnxruntime-ourops": "ORT quantize_static (our op types)"}


def kl_key(bins):
    """Quantizer key of ORT's entropy with a real threshold search at `bins` (histogram bins,
    quantized bins): entropy rows only; main registers its label in QUANTIZERS."""
    return f"onnxruntime-kl{bins[0]}-{bins[1]}"
LM_SEQ = 32


def log(msg):
    print(msg, flush=True)


def rel(path, run, out_dir):
    """`path` as `RUN/...` when under the run folder, else relative to the report's folder."""
    path = os.path.abspath(path)
    if path.startswith(run + os.sep):
        return "RUN/" + os.path.relpath(path, run)
    return os.path.relpath(path, out_dir)


def sh(cmd, quiet=True):
    """Runs a command; on failure prints its output and exits."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    if not quiet:
        log(r.stdout.rstrip())
    return r.stdout


def read_jsonl(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{no}: not JSON ({e})")
    return out


def read_tokens(path):
    """Documents of a token file (format version 1, trainer/TOKENS.md) as lists of ids."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 64 or b[:8] != b"ELTOKENS":
        sys.exit(f"{path}: not a token file")
    version, width = np.frombuffer(b[8:16], "<u4")
    docs, tokens = np.frombuffer(b[16:32], "<u8")
    if version != 1 or width not in (2, 4):
        sys.exit(f"{path}: token file version {version}, width {width}")
    data = np.frombuffer(b[64:64 + int(tokens) * int(width)], "<u2" if width == 2 else "<u4")
    start = ((64 + int(tokens) * int(width) + 7) // 8) * 8
    index = np.frombuffer(b[start:start + (int(docs) + 1) * 8], "<u8")
    if len(index) != docs + 1 or index[-1] != tokens:
        sys.exit(f"{path}: bad index")
    return [data[index[d]:index[d + 1]].astype(np.int64) for d in range(int(docs))]


def tokenize(binary, tokenizer, inputs, out_dir, eos):
    cmd = [binary, "data", "tokenize", "--tokenizer", tokenizer, "--out", out_dir, "--json"]
    for i in inputs:
        cmd += ["--input", i]
    if eos:
        cmd.append("--eos")
    rep = json.loads(sh(cmd))
    return [read_tokens(f["output"]) for f in rep["files"]]


def fixed_length(docs, max_len, pad):
    x = np.full((len(docs), max_len), pad, dtype=np.int64)
    for i, d in enumerate(docs):
        d = d[:max_len]
        x[i, :len(d)] = d
    return x


def session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_rows(path, x):
    """Runs each row of `x` (one sample of batch 1) and stacks the single output."""
    s = session(path)
    name = s.get_inputs()[0].name
    return np.stack([s.run(None, {name: x[i:i + 1]})[0][0] for i in range(len(x))])


def sqnr_db(ref, q):
    noise = float(np.sum((q.astype(np.float64) - ref) ** 2))
    sig = float(np.sum(ref.astype(np.float64) ** 2))
    return "exact" if noise == 0 else 10.0 * math.log10(sig / noise)


def macro_f1(y, p, k):
    """Macro F1 over all `k` classes, 0 where undefined (as edgeloop-eval with ZeroDivision::Zero
    and the demo report it)."""
    f1s = []
    for c in range(k):
        tp = int(np.sum((p == c) & (y == c)))
        fp = int(np.sum((p == c) & (y != c)))
        fn = int(np.sum((p != c) & (y == c)))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def score(y, p, k):
    return {"accuracy": float(np.mean(y == p)), "macro_f1": macro_f1(y, p, k), "n": int(len(y))}


def quantize_both(binary, python, fp32, calib, work, tag, percentile, kl_settings):
    """Our and ORT's int8 QDQ models for each method; returns {(quantizer, method): path}.

    ORT runs twice: with its defaults (every op its QDQ quantizer registers, which includes
    Gather tables and LayerNorm parameters), and restricted to the op types ours quantizes; for
    entropy once more per (bins, quantized bins) of `kl_settings`, with its default op types and
    those histogram sizes."""
    out = {}
    for m in METHODS:
        ours = os.path.join(work, f"{tag}-ours-{m}.onnx")
        t = time.time()
        sh([binary, "quantize", "--model", fp32, "--calib", calib, "--method", m,
            "--percentile", str(percentile), "--out", ours])
        log(f"  {tag}: ours {m} ({time.time() - t:.1f} s)")
        theirs = os.path.join(work, f"{tag}-ort-{m}.onnx")
        t = time.time()
        sh([python, os.path.join(HERE, "quant_ort.py"), "--model", fp32, "--calib", calib,
            "--method", m, "--percentile", str(percentile), "--out", theirs])
        log(f"  {tag}: ORT {m} ({time.time() - t:.1f} s)")
        same = os.path.join(work, f"{tag}-ort-ourops-{m}.onnx")
        sh([python, os.path.join(HERE, "quant_ort.py"), "--model", fp32, "--calib", calib,
            "--method", m, "--percentile", str(percentile), "--out", same,
            "--op-types", ",".join(OUR_OP_TYPES)])
        out[("ours", m)] = ours
        out[("onnxruntime", m)] = theirs
        out[("onnxruntime-ourops", m)] = same
        for kl_bins in kl_settings if m == "entropy" else []:
            kl = os.path.join(work, f"{tag}-ort-kl{kl_bins[0]}-{kl_bins[1]}-{m}.onnx")
            t = time.time()
            sh([python, os.path.join(HERE, "quant_ort.py"), "--model", fp32, "--calib", calib,
                "--method", m, "--out", kl, "--entropy-bins", str(kl_bins[0]),
                "--entropy-quantized-bins", str(kl_bins[1])])
            log(f"  {tag}: ORT {m}, {kl_bins[0]} / {kl_bins[1]} bins ({time.time() - t:.1f} s)")
            out[(kl_key(kl_bins), m)] = kl
    return out


def run_json(out):
    """The JSON object `edgeloop run --json` prints (alone, or as the last line after text)."""
    dec = json.JSONDecoder()
    for i in [0] + [k + 1 for k, c in enumerate(out) if c == "\n"]:
        if out.startswith("{", i):
            try:
                obj, _ = dec.raw_decode(out, i)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "outputs" in obj:
                return obj
    sys.exit(f"`edgeloop run --json` printed no JSON object with \"outputs\":\n{out[-2000:]}")


def compile_image(binary, model):
    """Compiles `model` with `edgeloop compile`; returns the image path and its memory plan and
    size as the compile report states them (arena vs exact lower bound, flash, MACs)."""
    image = os.path.splitext(model)[0] + ".edli"
    out = sh([binary, "--json", "compile", model, "--out", image])
    rep = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]
    plan = {k: rep[k] for k in ("arena_bytes", "lower_bound", "declared_scratch", "total_macs")}
    plan["flash_bytes"] = rep["flash"]["total"]
    plan["plan_method"] = rep["plan_method"]
    return image, plan


def image_run(binary, image, x):
    """Flat first-output values of `image` on the host runtime, one `edgeloop run` per row."""
    outs = []
    for row in x:
        outp = sh([binary, "run", "--image", image, "--input", ",".join(map(str, row)),
                   "--repeat", "1", "--json"])
        outs.append(np.array(run_json(outp)["outputs"][0], dtype=np.float64))
    return np.stack(outs)


def image_predict(binary, model, x, work):
    """Top-1 classes and logits of the compiled image of `model` on the host runtime, and the
    image's memory plan."""
    image, plan = compile_image(binary, model)
    logits = image_run(binary, image, x)
    return np.argmax(logits, axis=1), logits, plan


def classifier(args, work, sizes):
    run = args.run
    fp32 = os.path.join(run, "deploy", "v1", "model-fp32.onnx")
    labels = json.load(open(os.path.join(run, "classifier", "model", "labels.json")))
    tok = json.load(open(os.path.join(run, "data", "tokenizer.json")))
    pad = next((t["id"] for t in tok.get("added_tokens", []) if t["content"] == "[PAD]"), 0)
    max_len = int(sizes["max_len"])
    n_cal = int(sizes["calibration"])
    sets = {
        "lab_test": os.path.join(run, "data", "selected", "test.jsonl"),
        "field_holdout": os.path.join(run, "data", "field_holdout.jsonl"),
        "field_stream": os.path.join(run, "data", "field_stream.jsonl"),
    }
    train = os.path.join(run, "data", "selected", "train.jsonl")
    docs = tokenize(args.bin, os.path.join(run, "data", "tokenizer.json"),
                    [train] + list(sets.values()), os.path.join(work, "tok-classifier"), False)
    calib_x = fixed_length(docs[0][:n_cal], max_len, pad)
    calib = os.path.join(work, "calib-classifier")
    os.makedirs(calib, exist_ok=True)
    np.savez(os.path.join(calib, "calib.npz"), input_ids=calib_x)
    xs, ys = {}, {}
    for (name, path), d in zip(sets.items(), docs[1:]):
        recs = read_jsonl(path)
        if len(recs) != len(d):
            sys.exit(f"{path}: {len(recs)} records but {len(d)} tokenized documents")
        xs[name] = fixed_length(d, max_len, pad)
        ys[name] = np.array([labels.index(r["label"]) for r in recs])
    log(f"classifier: {len(calib_x)} calibration inputs, "
        + ", ".join(f"{k} {len(v)}" for k, v in xs.items()))
    models = {("fp32", None): fp32}
    models.update(quantize_both(args.bin, args.python, fp32, calib, work, "classifier",
                                args.percentile, args.ort_entropy_bins))
    shipped = os.path.join(run, "deploy", "v1", "model-int8.onnx")
    all_x = np.concatenate([xs[k] for k in sets])
    all_y = np.concatenate([ys[k] for k in sets])
    ref = None
    rows = []
    preds = {}
    for (quantizer, method), path in models.items():
        logits = run_rows(path, all_x)
        pred = np.argmax(logits, axis=1)
        preds[(quantizer, method)] = pred
        if ref is None:
            ref = (logits, pred)
        row = {"quantizer": quantizer, "method": method, "runtime": "onnxruntime-level1",
               "model": rel(path, run, args.out_dir)}
        off = 0
        for k in sets:
            n = len(xs[k])
            row[k] = score(ys[k], pred[off:off + n], len(labels))
            off += n
        row["pooled"] = score(all_y, pred, len(labels))
        row["top1_agreement_with_fp32"] = float(np.mean(pred == ref[1]))
        row["logit_sqnr_db"] = None if quantizer == "fp32" else sqnr_db(ref[0], logits)
        rows.append(row)
    # Where ours and an ORT model disagree on being right (all held-out examples pooled): the
    # examples only ours classifies correctly, and those only ORT's does.
    discordant = []
    for (quantizer, method), pred in preds.items():
        if quantizer in ("fp32", "ours"):
            continue
        ours = preds[("ours", method)] == all_y
        other = pred == all_y
        discordant.append({"method": method, "against": quantizer,
                           "ours_only_correct": int(np.sum(ours & ~other)),
                           "other_only_correct": int(np.sum(other & ~ours))})
    images = []
    if not args.no_images:
        # The compiled images on edgeloop's host runtime, on the lab test split (one
        # `edgeloop run` per example), against the same QDQ model in ONNX Runtime.
        n = len(xs["lab_test"])
        for (quantizer, method), path in models.items():
            if quantizer not in ("ours", "onnxruntime") or method != "percentile":
                continue
            t = time.time()
            pred, logits, plan = image_predict(args.bin, path, xs["lab_test"], work)
            onnx_row = next(r for r in rows if r["model"] == rel(path, run, args.out_dir))
            onnx_pred = np.argmax(run_rows(path, xs["lab_test"]), axis=1)
            images.append({
                "quantizer": quantizer, "method": method,
                "image": rel(os.path.splitext(path)[0] + ".edli", run, args.out_dir),
                "lab_test": score(ys["lab_test"], pred, len(labels)),
                "onnx_lab_test": onnx_row["lab_test"],
                "top1_agreement_with_onnx": float(np.mean(pred == onnx_pred)),
                "top1_agreement_with_fp32": float(np.mean(pred == ref[1][:n])),
                "logit_sqnr_db": sqnr_db(ref[0][:n], logits),
                "plan": plan,
            })
            log(f"  image of {quantizer} {method}: {time.time() - t:.1f} s")
    return {
        "fp32_onnx": rel(fp32, run, args.out_dir),
        "demo_int8_onnx_identical_to_ours_percentile": open(shipped, "rb").read()
        == open(models[("ours", "percentile")], "rb").read(),
        "classes": len(labels),
        "max_len": max_len,
        "calibration": {"inputs": len(calib_x),
                        "source": f"first {len(calib_x)} records of data/selected/train.jsonl "
                                  "(the demo's own calibration set)"},
        "eval_sets": {k: len(v) for k, v in xs.items()},
        "rows": rows,
        "discordant": discordant,
        "images": images,
    }


def lm(args, work, sizes):
    run = args.run
    fp32 = os.path.join(work, "lm-fp32.onnx")
    sh([args.bin, "train", "export", "--model", os.path.join(run, "gpt", "model"), "--out", fp32,
        "--head", "lm", "--seq-len", str(LM_SEQ), "--opset", "20"])
    train_docs, val_docs = tokenize(
        args.bin, os.path.join(run, "data", "tokenizer.json"),
        [os.path.join(run, "data", "pretrain_train.jsonl"),
         os.path.join(run, "data", "pretrain_val.jsonl")],
        os.path.join(work, "tok-lm"), True)
    train = np.concatenate(train_docs)
    val = np.concatenate(val_docs)
    # Held-out windows: inputs val[s:s+L], targets val[s+1:s+L+1], stride L (every token but
    # the first predicted exactly once).
    starts = list(range(0, len(val) - LM_SEQ, LM_SEQ))
    if args.lm_eval_windows:
        starts = starts[:args.lm_eval_windows]
    ex = np.stack([val[s:s + LM_SEQ] for s in starts])
    ey = np.stack([val[s + 1:s + LM_SEQ + 1] for s in starts])
    n_cal = args.lm_calib or int(sizes["calibration"])
    span = len(train) - LM_SEQ
    cstarts = [int(i * span / n_cal) for i in range(n_cal)]
    calib_x = np.stack([train[s:s + LM_SEQ] for s in cstarts])
    calib = os.path.join(work, "calib-lm")
    os.makedirs(calib, exist_ok=True)
    np.savez(os.path.join(calib, "calib.npz"), input_ids=calib_x)
    log(f"LM: {len(calib_x)} calibration windows of {LM_SEQ} tokens from the training text, "
        f"{len(ex)} held-out windows ({ey.size} predicted tokens)")
    models = {("fp32", None): fp32}
    models.update(quantize_both(args.bin, args.python, fp32, calib, work, "lm", args.percentile,
                                args.ort_entropy_bins))
    rows = []
    ref = None
    onnx_logits = {}
    for (quantizer, method), path in models.items():
        logits = run_rows(path, ex).astype(np.float64)  # [W, L, V]
        onnx_logits[path] = logits
        if ref is None:
            ref = (logits, logits.argmax(axis=-1))
        rows.append({
            "quantizer": quantizer, "method": method, "runtime": "onnxruntime-level1",
            "model": rel(path, run, args.out_dir),
            **lm_scores(logits, ey, ref),
            "logit_sqnr_db": None if quantizer == "fp32" else sqnr_db(ref[0], logits),
        })
    images = []
    if not args.no_images:
        # The compiled images on edgeloop's host runtime (one `edgeloop run` per window),
        # against fp32 and against the same QDQ model in ONNX Runtime.
        for (quantizer, method), path in models.items():
            if quantizer not in ("ours", "onnxruntime") or method != "percentile":
                continue
            t = time.time()
            image, plan = compile_image(args.bin, path)
            logits = image_run(args.bin, image, ex).reshape(onnx_logits[path].shape)
            same = onnx_logits[path]
            images.append({
                "quantizer": quantizer, "method": method,
                "image": rel(image, run, args.out_dir),
                **lm_scores(logits, ey, ref),
                "onnx_perplexity": lm_scores(same, ey, ref)["perplexity"],
                "top1_agreement_with_onnx": float(np.mean(
                    logits.argmax(axis=-1) == same.argmax(axis=-1))),
                "logit_sqnr_db_vs_onnx": sqnr_db(same, logits),
                "logit_sqnr_db": sqnr_db(ref[0], logits),
                "plan": plan,
            })
            log(f"  LM image of {quantizer} {method}: {time.time() - t:.1f} s")
    return {
        "fp32_onnx": rel(fp32, run, args.out_dir),
        "seq_len": LM_SEQ,
        "calibration": {"windows": len(calib_x),
                        "source": "evenly spaced windows of data/pretrain_train.jsonl"},
        "eval": {"windows": len(ex), "tokens": int(ey.size),
                 "source": "data/pretrain_val.jsonl (held out from pretraining)"},
        "rows": rows,
        "images": images,
    }


def lm_scores(logits, targets, ref):
    """Perplexity, mean NLL, next-token accuracy and top-1 agreement with `ref` (fp32 logits,
    top-1) of LM `logits` [W, L, V] for `targets` [W, L]."""
    m = logits.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))
    nll = lse - np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    pred = logits.argmax(axis=-1)
    mean_nll = float(nll.mean())
    return {"perplexity": math.exp(mean_nll), "nll_nats": mean_nll, "tokens": int(targets.size),
            "next_token_accuracy": float(np.mean(pred == targets)),
            "top1_agreement_with_fp32": float(np.mean(pred == ref[1]))}


def verdicts(cls, lmr):
    """Ours against each ORT variant, method by method (classifier: pooled accuracy; LM:
    perplexity)."""
    out = []
    for m in METHODS:
        c = {r["quantizer"]: r for r in cls["rows"]
             if r["method"] == m and r["runtime"] == "onnxruntime-level1"}
        l = {r["quantizer"]: r for r in lmr["rows"] if r["method"] == m}
        for other in [o for o in QUANTIZERS if o != "ours" and o in c and o in l]:
            a, b = c["ours"]["pooled"]["accuracy"], c[other]["pooled"]["accuracy"]
            d = next(x for x in cls["discordant"] if x["method"] == m and x["against"] == other)
            out.append({"task": "classifier", "method": m, "against": other,
                        "metric": "accuracy (all held-out sets pooled)", "ours": a, "other": b,
                        "ours_only_correct": d["ours_only_correct"],
                        "other_only_correct": d["other_only_correct"],
                        "ours_top1_agreement_with_fp32": c["ours"]["top1_agreement_with_fp32"],
                        "other_top1_agreement_with_fp32": c[other]["top1_agreement_with_fp32"],
                        "ours_logit_sqnr_db": c["ours"]["logit_sqnr_db"],
                        "other_logit_sqnr_db": c[other]["logit_sqnr_db"],
                        "better": "tie" if a == b else ("ours" if a > b else other)})
            a, b = l["ours"]["perplexity"], l[other]["perplexity"]
            out.append({"task": "lm", "method": m, "against": other, "metric": "perplexity",
                        "ours": a, "other": b,
                        "ours_top1_agreement_with_fp32": l["ours"]["top1_agreement_with_fp32"],
                        "other_top1_agreement_with_fp32": l[other]["top1_agreement_with_fp32"],
                        "ours_logit_sqnr_db": l["ours"]["logit_sqnr_db"],
                        "other_logit_sqnr_db": l[other]["logit_sqnr_db"],
                        "better": "tie" if a == b else ("ours" if a < b else other)})
    return out


def fmt_db(v):
    return "—" if v is None else (v if isinstance(v, str) else f"{v:.2f}")


def plan_cell(p):
    """`arena / lower bound` of an image's memory plan (with declared scratch when there is any)."""
    extra = f" + {p['declared_scratch']:,}" if p["declared_scratch"] else ""
    return f"{p['arena_bytes']:,} / {p['lower_bound']:,}{extra}"


def pct(x):
    return f"{100 * x:.1f}%"


def summary_table(res):
    """One compact table: fp32, then ours and ORT's for each method (the README shows it)."""
    c, l = res["classifier"], res["lm"]

    def pick(rows, quantizer, method):
        return next(r for r in rows if r["quantizer"] == quantizer and r["method"] == method
                    and r.get("runtime", "onnxruntime-level1") == "onnxruntime-level1")

    cols = [("fp32", None)] + [(q, m) for m in METHODS for q in ("ours", "onnxruntime")]
    head = ["fp32"] + [f"{'edgeloop' if q == 'ours' else 'ORT'} {m}" for q, m in cols[1:]]
    if res.get("ort_entropy_bins"):
        head[-1] = "ORT entropy (its defaults)"
    for b in res.get("ort_entropy_bins", []):
        cols.append((kl_key(b), "entropy"))
        head.append(f"ORT entropy ({b[0]} / {b[1]} bins)")
    n_lab = c["eval_sets"]["lab_test"]
    n_all = sum(c["eval_sets"].values())
    lines = ["| int8 QDQ, run in ONNX Runtime | " + " | ".join(head) + " |",
             "|---|" + "---:|" * len(head)]
    for label, get in [
        (f"classifier accuracy, lab test ({n_lab})", lambda r: pct(r["lab_test"]["accuracy"])),
        (f"classifier accuracy, all held-out ({n_all})",
         lambda r: pct(r["pooled"]["accuracy"])),
        ("classifier top-1 = fp32", lambda r: pct(r["top1_agreement_with_fp32"])),
    ]:
        lines.append(f"| {label} | " + " | ".join(get(pick(c["rows"], q, m)) for q, m in cols)
                     + " |")
    lines.append(f"| LM perplexity ({l['eval']['tokens']} held-out tokens) | "
                 + " | ".join(f"{pick(l['rows'], q, m)['perplexity']:.3f}" for q, m in cols)
                 + " |")
    return "\n".join(lines)


def same_initializers(a, b):
    """Whether two ONNX models hold identical initializers (every scale, zero point, weight)."""
    ia = {t.name: t.SerializeToString() for t in onnx.load(a).graph.initializer}
    ib = {t.name: t.SerializeToString() for t in onnx.load(b).graph.initializer}
    return ia == ib


def entropy_note(res):
    """The paragraph under the summary on what ORT's entropy rows are, and ours against ORT's
    entropy with a real threshold search, from the figures of this run."""
    c, l = res["classifier"], res["lm"]
    eq = res["ort_entropy_equals_minmax"]
    same = all(eq.values())
    s = ("ORT's entropy method through `quantize_static` is its min-max: ORT 1.31.1's "
         "`quantize_static` (onnxruntime/quantization/quantize.py) forwards only "
         "CalibTensorRangeSymmetric, CalibMovingAverage(Constant), CalibMaxIntermediateOutputs "
         "and CalibPercentile to its calibrator, so `create_calibrator` "
         "(onnxruntime/quantization/calibrate.py) builds the EntropyCalibrater with its default "
         "128 histogram bins and 128 quantized bins; `HistogramCollector.get_entropy_threshold` "
         "tries the thresholds from num_quantized_bins / 2 to num_bins / 2 bins each side of "
         "zero, here one: the whole histogram, [-max |x|, max |x|], clipped to the observed "
         "[min, max]. ")
    s += ("In this run ORT's entropy and min-max models hold identical initializers (every scale "
          "and zero point) for both models. " if same else
          "(In this run ORT's entropy and min-max models differ for: "
          + ", ".join(k for k, v in eq.items() if not v) + ".) ")
    if not res.get("ort_entropy_bins"):
        return s + "ORT's entropy with a real threshold search was not run (--ort-entropy-bins 0)."

    def row(rows, q):
        return next(r for r in rows if r["quantizer"] == q and r["method"] == "entropy"
                    and r.get("runtime", "onnxruntime-level1") == "onnxruntime-level1")

    def disc(q):
        return next(x for x in c["discordant"] if x["method"] == "entropy" and x["against"] == q)

    co, lo = row(c["rows"], "ours"), row(l["rows"], "ours")
    n = co["pooled"]["n"]
    settings = res["ort_entropy_bins"]
    s += ("The `ORT entropy (B / Q bins)` column" + ("s are" if len(settings) > 1 else " is")
          + " ORT's entropy with a real KL search: its own EntropyCalibrater (`create_calibrator` "
          "with num_bins = B, num_quantized_bins = Q) on the same samples, its ranges handed to "
          "`quantize_static` through its `calibration_cache_path`, everything else "
          "quantize_static's own. ORT's histogram is signed ([-max |x|, max |x|]): B / Q bins "
          "are B / 2 bins and Q / 2 levels per sign; ours (fixed, no option) searches 2048 bins "
          "of |x| with 128 levels (int8's per sign), exact zeros left out, the resolution of "
          "ORT's 4096 / 256. Ours against ")
    parts = []
    for b in settings:
        k = row(c["rows"], kl_key(b))
        d = disc(kl_key(b))
        parts.append(
            f"ORT at {b[0]} / {b[1]}: classifier {pct(co['pooled']['accuracy'])} vs "
            f"{pct(k['pooled']['accuracy'])} pooled ({d['ours_only_correct']} of {n} examples "
            f"right only with ours, {d['other_only_correct']} only with ORT's), top-1 = fp32 "
            f"{pct(co['top1_agreement_with_fp32'])} vs {pct(k['top1_agreement_with_fp32'])}, "
            f"logit SQNR {fmt_db(co['logit_sqnr_db'])} vs {fmt_db(k['logit_sqnr_db'])} dB; LM "
            f"perplexity {lo['perplexity']:.3f} vs {row(l['rows'], kl_key(b))['perplexity']:.3f}")
    cd, dd = row(c["rows"], "onnxruntime"), disc("onnxruntime")
    parts.append(
        f"ORT's own (= min-max) entropy: classifier {pct(co['pooled']['accuracy'])} vs "
        f"{pct(cd['pooled']['accuracy'])} ({dd['ours_only_correct']} right only with ours, "
        f"{dd['other_only_correct']} only with ORT's), top-1 = fp32 "
        f"{pct(co['top1_agreement_with_fp32'])} vs {pct(cd['top1_agreement_with_fp32'])}, logit "
        f"SQNR {fmt_db(co['logit_sqnr_db'])} vs {fmt_db(cd['logit_sqnr_db'])} dB")
    return s + "; ".join(parts) + "."


def markdown(res):
    c, l = res["classifier"], res["lm"]
    sets = list(c["eval_sets"])
    s = ["# edgeloop quantizer vs ONNX Runtime `quantize_static`\n",
         f"Run (`RUN` below): `{res['run_dir']}` ({res['size']}). "
         f"ONNX Runtime {res['onnxruntime']}, onnx {res['onnx']}. Both quantizers: QDQ format, "
         f"int8 activations (asymmetric, per tensor) and int8 weights (symmetric, per channel), "
         f"the same fp32 model and the same "
         f"calibration inputs (one .npz file read by both); percentile method at "
         f"{res['percentile']} (both keep p% of the values, cutting half the rest from each "
         f"tail). ORT's quantizer runs twice: with its default op types "
         f"(it also rounds Gather tables and LayerNorm parameters to int8) and restricted to ours; "
         f"for entropy also with set histogram sizes (its own default makes entropy min-max: "
         f"see under the summary). "
         f"Every ONNX model runs in ONNX Runtime (CPU, graph optimization Level1).\n",
         "## Summary\n",
         "ORT = `quantize_static` with its default op types; details and ORT restricted to our "
         "op types below.\n",
         summary_table(res),
         "",
         entropy_note(res) + "\n",
         "Where the two quantizers differ (same weights, same calibration statistics otherwise): "
         "ours keeps an additive attention mask (a constant of magnitude ≥ 1e4, as the GPT's "
         "causal mask) and the Softmax reading it float, where ORT quantizes the masked scores "
         "with one int8 scale over [-1e4, max] (step ≈ 40, every real score rounds to 0: uniform "
         "attention); ours gives a Gather from a constant table the table's range (ORT calibrates "
         "it) and keeps LayerNorm parameters float (ORT rounds them to int8); both give Softmax "
         "outputs the range [0, 1].\n",
         "## Intent classifier\n",
         f"fp32 `{c['fp32_onnx']}`, {c['classes']} classes, {c['max_len']} tokens; calibration: "
         f"{c['calibration']['source']}; evaluated on "
         + ", ".join(f"{k} ({v} examples)" for k, v in c["eval_sets"].items())
         + "; pooled = all of them.\n",
         "| quantizer | method | runs in | " + " | ".join(f"{k} acc / macro F1" for k in sets)
         + " | pooled acc | top-1 = fp32 | logit SQNR dB |",
         "|---|---|---|" + "---:|" * (len(sets) + 3)]
    for r in c["rows"]:
        s.append(f"| {QUANTIZERS.get(r['quantizer'], r['quantizer'])} | {r['method'] or '—'} "
                 f"| {r['runtime']} | "
                 + " | ".join(f"{pct(r[k]['accuracy'])} / {r[k]['macro_f1']:.3f}" for k in sets)
                 + f" | {pct(r['pooled']['accuracy'])} | {pct(r['top1_agreement_with_fp32'])} "
                 f"| {fmt_db(r['logit_sqnr_db'])} |")
    if c["images"]:
        s += ["", "Compiled model images (`edgeloop compile`, run by `edgeloop run` on the host "
              "runtime), lab test split:\n",
              "| QDQ model from | method | image acc / macro F1 | same QDQ in ORT acc "
              "| top-1 = ORT | top-1 = fp32 | logit SQNR dB | arena / lower bound B "
              "| flash B |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in c["images"]:
            s.append(f"| {QUANTIZERS[r['quantizer']]} | {r['method']} "
                     f"| {pct(r['lab_test']['accuracy'])} / {r['lab_test']['macro_f1']:.3f} "
                     f"| {pct(r['onnx_lab_test']['accuracy'])} "
                     f"| {pct(r['top1_agreement_with_onnx'])} "
                     f"| {pct(r['top1_agreement_with_fp32'])} | {fmt_db(r['logit_sqnr_db'])} "
                     f"| {plan_cell(r['plan'])} | {r['plan']['flash_bytes']:,} |")
    s += ["", "## Language model (the demo's pretrained tiny GPT)\n",
          f"fp32 `{l['fp32_onnx']}` ({l['seq_len']}-token windows); calibration: "
          f"{l['calibration']['windows']} {l['calibration']['source']}; evaluation: "
          f"{l['eval']['windows']} windows, {l['eval']['tokens']} predicted tokens of "
          f"{l['eval']['source']}.\n",
          "| quantizer | method | perplexity | NLL (nats/token) | next-token acc | top-1 = fp32 "
          "| logit SQNR dB |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for r in l["rows"]:
        s.append(f"| {QUANTIZERS.get(r['quantizer'], r['quantizer'])} | {r['method'] or '—'} "
                 f"| {r['perplexity']:.3f} | {r['nll_nats']:.4f} "
                 f"| {pct(r['next_token_accuracy'])} | {pct(r['top1_agreement_with_fp32'])} "
                 f"| {fmt_db(r['logit_sqnr_db'])} |")
    if l.get("images"):
        s += ["", "Compiled model images (`edgeloop compile`, run by `edgeloop run` on the host "
              "runtime), the same held-out windows:\n",
              "| QDQ model from | method | image perplexity | same QDQ in ORT perplexity "
              "| next-token acc | top-1 = ORT | top-1 = fp32 | logit SQNR dB vs ORT / vs fp32 "
              "| arena / lower bound B | flash B |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in l["images"]:
            s.append(f"| {QUANTIZERS[r['quantizer']]} | {r['method']} | {r['perplexity']:.3f} "
                     f"| {r['onnx_perplexity']:.3f} | {pct(r['next_token_accuracy'])} "
                     f"| {pct(r['top1_agreement_with_onnx'])} "
                     f"| {pct(r['top1_agreement_with_fp32'])} "
                     f"| {fmt_db(r['logit_sqnr_db_vs_onnx'])} / {fmt_db(r['logit_sqnr_db'])} "
                     f"| {plan_cell(r['plan'])} | {r['plan']['flash_bytes']:,} |")
    s += ["", "## Which is better (same method, same calibration data)\n",
          "| task | method | against | metric | ours | ORT | better | examples right only with "
          "ours / only with ORT | top-1 = fp32 ours / ORT | logit SQNR dB ours / ORT |",
          "|---|---|---|---|---:|---:|---|---:|---|---|"]
    for v in res["verdicts"]:
        f = (lambda x: f"{x:.3f}") if v["metric"] == "perplexity" else pct
        s.append(f"| {v['task']} | {v['method']} | {QUANTIZERS[v['against']]} | {v['metric']} "
                 f"| {f(v['ours'])} | {f(v['other'])} | {QUANTIZERS.get(v['better'], 'tie')} "
                 + (f"| {v['ours_only_correct']} / {v['other_only_correct']} "
                    if "ours_only_correct" in v else "| — ")
                 + f"| {pct(v['ours_top1_agreement_with_fp32'])} / "
                 f"{pct(v['other_top1_agreement_with_fp32'])} "
                 f"| {fmt_db(v['ours_logit_sqnr_db'])} / {fmt_db(v['other_logit_sqnr_db'])} |")
    return "\n".join(s) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, help="demo run folder (edgeloop demo --out)")
    p.add_argument("--bin", required=True, help="the edgeloop binary")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--work", required=True, help="folder for the models and data made here")
    p.add_argument("--json", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--lm-calib", type=int, default=0,
                   help="LM calibration windows (default: the demo's calibration size)")
    p.add_argument("--lm-eval-windows", type=int, default=0, help="cap (0: all)")
    p.add_argument("--no-images", action="store_true")
    p.add_argument("--ort-entropy-bins", default="2048/128",
                   help="BINS/QUANTIZED_BINS[,...]: extra ORT entropy runs with a real threshold "
                        "search at these histogram sizes (quantize_static's own entropy has "
                        "128/128: min-max); 0: none")
    args = p.parse_args()
    settings = []
    for item in [] if args.ort_entropy_bins in ("0", "") else args.ort_entropy_bins.split(","):
        try:
            nb, nq = (int(x) for x in item.split("/"))
        except ValueError:
            sys.exit(f"--ort-entropy-bins: '{item}' is not BINS/QUANTIZED_BINS")
        if nq < 2 or nq > nb:
            sys.exit(f"--ort-entropy-bins: need 2 <= quantized bins <= bins, got {nb}/{nq}")
        settings.append((nb, nq))
        QUANTIZERS[kl_key((nb, nq))] = (f"ORT quantize_static, entropy ranges from its "
                                        f"calibrator at {nb} / {nq} bins (its default op types)")
    args.ort_entropy_bins = settings
    args.run = os.path.abspath(args.run)
    args.out_dir = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(args.work, exist_ok=True)
    summary = os.path.join(args.run, "summary.json")
    if not os.path.isfile(summary):
        sys.exit(f"{summary}: missing (is {args.run} a finished `edgeloop demo` run?)")
    sizes = json.load(open(summary))["sizes"]
    t = time.time()
    cls = classifier(args, args.work, sizes)
    lmr = lm(args, args.work, sizes)
    res = {
        "run_dir": args.run,
        "size": (f"hidden {sizes['hidden']}, {sizes['layers']} layer(s), "
                 f"{sizes['pretrain_steps']} pretraining / {sizes['finetune_steps']} "
                 f"fine-tuning steps"),
        "sizes": sizes,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "percentile": args.percentile,
        "our_op_types": OUR_OP_TYPES,
        "classifier": cls,
        "lm": lmr,
        # ORT's entropy QDQ model against its min-max one, per task and op-type set.
        "ort_entropy_equals_minmax": {
            f"{tag} ({QUANTIZERS[q]})": same_initializers(
                os.path.join(args.work, f"{tag}-{v}-entropy.onnx"),
                os.path.join(args.work, f"{tag}-{v}-minmax.onnx"))
            for tag in ("classifier", "lm")
            for q, v in (("onnxruntime", "ort"), ("onnxruntime-ourops", "ort-ourops"))},
    }
    res["ort_entropy_bins"] = [list(b) for b in args.ort_entropy_bins]
    res["verdicts"] = verdicts(cls, lmr)
    res["seconds"] = time.time() - t
    with open(args.json, "w") as f:
        json.dump(res, f, indent=2, allow_nan=False)
    md = markdown(res)
    with open(args.md, "w") as f:
        f.write(md)
    log(md)
    log(f"wrote {args.json} and {args.md} ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
