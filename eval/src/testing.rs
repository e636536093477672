//! Test helpers: seeded randomness and calls into the Python reference implementations.

use std::io::Write;
use std::process::{Command, Stdio};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seeded generator, so failures reproduce.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Runs `python/ref/<script>` with `$EDGELOOP_PYTHON`, JSON on stdin, JSON on stdout.
///
/// Panics (fails the test) when `EDGELOOP_PYTHON` is unset: the reference comparison is the
/// point of these tests, so they must not silently pass without it.
pub fn python_reference(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let python = std::env::var_os("EDGELOOP_PYTHON").unwrap_or_else(|| {
        panic!(
            "EDGELOOP_PYTHON is not set: this test compares against the Python reference \
             packages (scikit-learn, sacrebleu, rouge-score, fairlearn). Run scripts/test.sh, or set \
             EDGELOOP_PYTHON=$HOME/.cache/edgeloop/venv/bin/python"
        )
    });
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../python/ref")
        .join(script);
    let mut child = Command::new(&python)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python:?} {}: {e}", path.display()));
    let body = serde_json::to_vec(input).expect("serializable input");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().expect("python finished");
    writer
        .join()
        .expect("writer thread")
        .expect("input written to python");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed invalid JSON ({e}): {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Asserts `got` equals the reference value within `tol` (absolute). A JSON `null` stands for
/// NaN in the reference output.
pub fn assert_close(got: f64, want: &serde_json::Value, tol: f64, what: &str) {
    match want.as_f64() {
        None => {
            assert!(
                want.is_null(),
                "{what}: reference value {want} is not a number"
            );
            assert!(got.is_nan(), "{what}: got {got}, reference NaN");
        }
        Some(w) => assert!(
            (got - w).abs() <= tol,
            "{what}: got {got}, reference {w} (diff {:e} > {tol:e})",
            (got - w).abs()
        ),
    }
}
