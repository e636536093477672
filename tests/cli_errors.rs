//! What a user types never panics the CLI: every subcommand, given missing files, files of the
//! wrong kind, malformed values or bad flags, exits non-zero (1 for a failed command, 2 for bad
//! usage), with an error on stderr that names what is wrong (the file or the flag) — and
//! `edgeloop run --image` prints outputs and timing for a good image (text and `--json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgeloop_runtime::models::{mlp::mlp, Rng};

fn edgeloop(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running edgeloop")
}

/// An empty folder of its own for each test (they run in parallel).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes the int8 MLP image (64 inputs, 10 outputs) as `mlp.edli`; returns its bytes.
fn write_image(dir: &Path) -> Vec<u8> {
    let net = mlp(11, true);
    let mut rng = Rng::new(2);
    let calib: Vec<Vec<f32>> = (0..16).map(|_| rng.vec(net.input_len(), 1.0)).collect();
    let bytes = net.build_i8(&calib).expect("MLP image").0.bytes;
    std::fs::write(dir.join("mlp.edli"), &bytes).expect("write image");
    bytes
}

#[test]
fn bad_input_is_an_error_that_names_it_never_a_panic() {
    let dir = scratch("cli_errors");
    write_image(&dir);
    // 3 KB of bytes that are no known format.
    let junk: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("junk.bin"), &junk).unwrap();
    std::fs::write(dir.join("bad.json"), "{\"a\":").unwrap();
    std::fs::write(dir.join("bad.jsonl"), "not json\n").unwrap();
    std::fs::write(dir.join("three.txt"), "1, 2, 3").unwrap();
    std::fs::write(dir.join("sizes-typo.json"), r#"{"hiden": 96}"#).unwrap();
    std::fs::write(dir.join("sizes-type.json"), r#"{"layers": "three"}"#).unwrap();
    std::fs::write(
        dir.join("sizes-heads.json"),
        r#"{"hidden": 30, "heads": 4}"#,
    )
    .unwrap();

    // (arguments, expected exit code, text stderr must contain)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run", "--image", "missing.edli"], 1, "missing.edli"),
        (&["run", "--image", "junk.bin"], 1, "--image junk.bin"),
        (
            &["run", "--image", "mlp.edli", "--input", "1,2,x"],
            1,
            "not a number: \"x\"",
        ),
        (
            &["run", "--image", "mlp.edli", "--input", "@nope.txt"],
            1,
            "nope.txt",
        ),
        (
            &["run", "--image", "mlp.edli", "--input", "@three.txt"],
            1,
            "needs 64 values",
        ),
        (&["run", "--model", "junk.bin"], 1, "junk.bin"),
        (
            &["run", "--image", "mlp.edli", "--backend", "ort"],
            1,
            "--backend",
        ),
        (
            &["run", "--image", "mlp.edli", "--repeat", "many"],
            2,
            "--repeat",
        ),
        (&["compile", "junk.bin", "--out", "x.edli"], 1, "junk.bin"),
        (
            &["compile", "missing.onnx", "--out", "x.edli"],
            1,
            "missing.onnx",
        ),
        (
            &["flash", "--image", "junk.bin", "--out", "x.hex"],
            1,
            "junk.bin",
        ),
        (
            &["flash", "--image", "missing.edli", "--out", "x.hex"],
            1,
            "missing.edli",
        ),
        (
            &[
                "flash",
                "--image",
                "mlp.edli",
                "--address",
                "zz",
                "--out",
                "x.hex",
            ],
            2,
            "--address",
        ),
        (
            &[
                "flash", "--image", "mlp.edli", "--out", "x.hex", "--pub", "junk.bin",
            ],
            1,
            "--pub junk.bin",
        ),
        (
            &["flash", "--image", "mlp.edli", "--qemu"],
            1,
            "--qemu needs test inputs",
        ),
        (
            &[
                "flash",
                "--image",
                "mlp.edli",
                "--qemu",
                "--texts",
                "bad.jsonl",
                "--tokenizer",
                "bad.json",
                "--device-id",
                "cpu",
            ],
            2,
            "--device-id",
        ),
        (
            &["verify", "mlp.edli", "--pub", "junk.bin"],
            1,
            "--pub junk.bin",
        ),
        (
            &["verify", "mlp.edli", "--pub", "missing.pub"],
            1,
            "missing.pub",
        ),
        (
            &["sign", "mlp.edli", "--key", "junk.bin", "--out", "s.edli"],
            1,
            "--key junk.bin",
        ),
        (&["keygen", "--out", "keys", "--seed", "zz"], 1, "--seed"),
        (
            &[
                "serve",
                "--classifier",
                "mlp.edli",
                "--tokenizer",
                "bad.json",
                "--labels",
                "a,b",
            ],
            1,
            "bad.json",
        ),
        (&["serve"], 1, "give --classifier"),
        (
            &["serve", "--classifier", "mlp.edli", "--listen", "nowhere"],
            2,
            "--listen",
        ),
        (
            &[
                "telemetry",
                "ingest",
                "--input",
                "missing.bin",
                "--store",
                "st",
            ],
            1,
            "missing.bin",
        ),
        (
            &[
                "telemetry",
                "drift",
                "--store",
                "nope",
                "--reference",
                "nope",
                "--out",
                "d",
            ],
            1,
            "--reference nope",
        ),
        (&["retrain", "--run", "nope"], 1, "nope/state.json"),
        (&["rlhf", "--run", "nope"], 1, "nope has no assistant/model"),
        (&["rlhf", "--run", "nope", "--rl-lr", "0"], 1, "--rl-lr"),
        (
            &[
                "eval",
                "classification",
                "--pred",
                "bad.jsonl",
                "--out",
                "e",
            ],
            1,
            "bad.jsonl:1",
        ),
        (
            &[
                "quantize", "--model", "junk.bin", "--calib", "nope", "--out", "q.onnx",
            ],
            1,
            "junk.bin",
        ),
        (
            &["data", "tokenize", "--input", "nope.jsonl", "--out", "tk"],
            1,
            "nope.jsonl",
        ),
        (
            &["kws", "classify", "--image", "junk.bin", "junk.bin"],
            1,
            "junk.bin",
        ),
        (
            &["firmware-assets", "--out", "fa", "--image", "junk.bin"],
            1,
            "--image junk.bin",
        ),
        (
            &["select", "--device", "nope", "--out", "s"],
            1,
            "unknown device profile 'nope'",
        ),
        (
            &["demo", "--out", "/proc/edgeloop-no-such-dir", "--fast"],
            1,
            "/proc/edgeloop-no-such-dir",
        ),
        (&["demo", "--seed", "seven"], 2, "--seed"),
        (
            &["demo", "--fast", "--out", "d1", "--config", "no-sizes.json"],
            1,
            "no-sizes.json",
        ),
        (
            &["demo", "--fast", "--out", "d2", "--config", "bad.json"],
            1,
            "bad.json",
        ),
        (
            &[
                "demo",
                "--fast",
                "--out",
                "d3",
                "--config",
                "sizes-typo.json",
            ],
            1,
            "unknown field `hiden`",
        ),
        (
            &[
                "demo",
                "--fast",
                "--out",
                "d4",
                "--config",
                "sizes-type.json",
            ],
            1,
            "field `layers`",
        ),
        (
            &[
                "demo",
                "--fast",
                "--out",
                "d5",
                "--config",
                "sizes-heads.json",
            ],
            1,
            "multiple of `heads`",
        ),
        (
            &["demo", "--fast", "--out", "d6", "--device", "tpu"],
            1,
            "expected cpu, cuda or cuda:N",
        ),
        (
            &["retrain", "--run", "no-run", "--device", "cuda:x"],
            1,
            "no-run",
        ),
        (&["completions", "nosh"], 2, "nosh"),
        (&["no-such-command"], 2, "no-such-command"),
    ];
    let mut failures = Vec::new();
    for (args, code, want) in cases {
        let out = edgeloop(&dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        let problem = if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            Some("panicked")
        } else if out.status.code() != Some(*code) {
            Some("wrong exit code")
        } else if !err.contains(want) {
            Some("error does not name it")
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!(
                "edgeloop {}: {p} (exit {:?}, want {code}, want {want:?} in stderr):\n{err}",
                args.join(" "),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn run_image_prints_outputs_and_timing() {
    let dir = scratch("cli_run_image");
    write_image(&dir);
    let x: Vec<String> = (0..64)
        .map(|i| format!("{:.3}", (i as f64 - 32.0) / 40.0))
        .collect();
    std::fs::write(dir.join("x.txt"), x.join(" ")).unwrap();

    let out = edgeloop(
        &dir,
        &[
            "run", "--image", "mlp.edli", "--input", "@x.txt", "--repeat", "5",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "model \"mlp\"",
        "input 0: I8 [1, 64]",
        "output 0: I8 [1, 10]",
        "  values: [",
        "  codes:  [",
        "over 5 runs",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }

    // --json: one JSON document on stdout with the outputs and the timing; the same outputs
    // as the text run; status lines on stderr.
    let out = edgeloop(
        &dir,
        &[
            "run", "--json", "--image", "mlp.edli", "--input", "@x.txt", "--repeat", "5",
        ],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let outputs = v["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1);
    let probs: Vec<f64> = outputs[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(probs.len(), 10);
    // Softmax output: int8 probabilities summing to about 1.
    let sum: f64 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 0.05, "softmax sums to {sum}");
    let (mean, min) = (
        v["invoke_us_mean"].as_f64().unwrap(),
        v["invoke_us_min"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= mean, "{mean} {min}");
    let first = format!("{:.4}", probs[0]);
    assert!(
        text.contains(&first),
        "text and JSON outputs differ: {first} not in {text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("model \"mlp\""));

    // --quiet --json: nothing but the JSON.
    let out = edgeloop(
        &dir,
        &[
            "run", "--quiet", "--json", "--image", "mlp.edli", "--input", "@x.txt",
        ],
    );
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON");
}
