#!/usr/bin/env python3
"""Regenerates the README's number tables from what the project's own tools wrote.

Each table sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` in README.md:

  demo       from the demo's summary.json of a full-size and a --fast run (`--full DIR --fast DIR`)
  footprint  the per-model flash/RAM table of firmware-examples/BENCH.md (scripts/firmware-bench.sh)
  instructions  its executed-instructions-per-MAC table (reference vs DSP kernels)
  speed      bench/RESULTS.md (scripts/bench.sh), when present
  quantizer  bench/quantizer-vs-ort.md (scripts/quantizer-vs-ort.sh), when present

A section whose source is missing is left as it is, and the script says so. Standard library only.

  python3 scripts/readme_tables.py --full runs/full --fast runs/fast
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pct(x):
    return f"{100.0 * x:.1f}%"


def num(x):
    return f"{x:,}"


def form(s, prefix):
    for f in s["v1"]["forms"]:
        if f["form"].startswith(prefix):
            return f
    raise KeyError(prefix)


def image_row(d):
    for f in d["forms"]:
        if f["form"].startswith("int8 image"):
            return f
    raise KeyError("int8 image")


def demo_column(s):
    c = s["train"]["classifier"]
    v1 = s["v1"]
    fl = s["fleet"]
    r = s["retrain"]
    m4 = s.get("cortex_m4", {})
    total = sum(t["seconds"] for t in s["times"])
    fp32, int8, img = form(s, "fp32 ONNX"), form(s, "int8 QDQ ONNX (ONNX Runtime)"), form(s, "int8 image")
    col = {
        "wall time (all stages)": f"{total:.0f} s",
        "intent classifier": f"{num(c['parameters'])} parameters, {c['steps']} steps, validation accuracy {pct(c['val_accuracy'])}",
        "lab test accuracy: fp32 ONNX / int8 ONNX (ORT) / int8 image": " / ".join(pct(f["lab"]["accuracy"]) for f in (fp32, int8, img)),
        "field hold-out accuracy, same three": " / ".join(pct(f["field"]["accuracy"]) for f in (fp32, int8, img)),
        "image vs int8 ONNX, top-1": pct(v1["image_vs_int8_onnx_top1"]),
        "image footprint": f"{num(v1['image_bytes'])} B signed; arena {num(v1['arena_bytes'])} B (lower bound {num(v1['arena_lower_bound'])}); {num(v1['macs'])} MACs",
        "Cortex-M4 (QEMU)": (
            f"{m4['bit_exact']}/{m4['inputs']} outputs bit-exact with the host, stack high-water {num(m4['stack_high_water_bytes'] or 0)} B"
            if m4.get("ran") else f"skipped: {m4.get('skipped', 'not run')}"
        ),
        "field traffic": f"{fl['devices']} devices, {num(fl['inferences'])} inferences, {fl['feedback']} feedback records, {fl['device_alarms']} on-device drift alarms, {num(fl['frames_ingested'])} frames, {fl['corrupt_frames']} corrupt; host drift in {fl['drifted_windows']} of {fl['windows']} windows",
        "v1 on lab-like → field traffic": f"{pct(fl['lab_phase_accuracy'])} → {pct(fl['field_phase_accuracy'])}",
        "retraining set": f"{r['feedback_examples']} feedback examples ({r['leaks_removed']} held-out leaks, {r['duplicates_removed']} duplicates removed) + {num(r['replay_examples'])} replayed",
    }
    if r.get("v2"):
        v1r, v2r = image_row(v1), image_row(r["v2"])
        verdict = "accepted, rollout manifest written" if r["accepted"] else "rejected by the gate, explained"
        col["v2 (int8 image)"] = (
            f"field {pct(v1r['field']['accuracy'])} → {pct(v2r['field']['accuracy'])}, "
            f"lab {pct(v1r['lab']['accuracy'])} → {pct(v2r['lab']['accuracy'])}: {verdict}"
        )
    else:
        col["v2 (int8 image)"] = "not built: " + "; ".join(r["gate"])
    return col


def demo_table(full, fast):
    a, b = demo_column(full), demo_column(fast)
    lines = ["| what | full sizes | `--fast` |", "|---|---|---|"]
    for k in a:
        lines.append(f"| {k} | {a[k]} | {b.get(k, '')} |")
    return "\n".join(lines)


def first_table(path, after=None):
    """The first Markdown table in `path` (after the line containing `after`, when given)."""
    text = path.read_text().splitlines()
    start = 0
    if after:
        start = next((i for i, l in enumerate(text) if after in l), 0)
    rows, inside = [], False
    for line in text[start:]:
        if line.startswith("|"):
            rows.append(line)
            inside = True
        elif inside:
            break
    return "\n".join(rows) if rows else None


def replace(readme, name, body):
    pat = re.compile(
        rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S
    )
    if not pat.search(readme):
        print(f"README has no generated:{name} markers; skipped", file=sys.stderr)
        return readme
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), readme)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=pathlib.Path, help="full-size demo run folder")
    ap.add_argument("--fast", type=pathlib.Path, help="--fast demo run folder")
    ap.add_argument("--readme", type=pathlib.Path, default=ROOT / "README.md")
    args = ap.parse_args()
    readme = args.readme.read_text()
    if args.full and args.fast:
        full = json.loads((args.full / "summary.json").read_text())
        fast = json.loads((args.fast / "summary.json").read_text())
        readme = replace(readme, "demo", demo_table(full, fast))
    else:
        print("no --full/--fast run folders: demo table left as it is", file=sys.stderr)
    sources = {
        "footprint": (ROOT / "firmware-examples/BENCH.md", None),
        "instructions": (ROOT / "firmware-examples/BENCH.md", "Executed instructions"),
        "speed": (ROOT / "bench/RESULTS.md", None),
        "quantizer": (ROOT / "bench/quantizer-vs-ort.md", None),
    }
    for name, (path, after) in sources.items():
        if not path.is_file():
            print(f"{path} not found: {name} table left as it is", file=sys.stderr)
            continue
        table = first_table(path, after)
        if table:
            readme = replace(readme, name, table)
    args.readme.write_text(readme)
    print(f"wrote {args.readme}")


if __name__ == "__main__":
    main()
