//! `edgeloop quantize` calibrated from a token file, the trainer's dataset format
//! (`trainer/TOKENS.md`, written by `edgeloop data tokenize`), on the embedding test model
//! (int64 ids [1, 6] → Gather → Transpose); a damaged token file is refused naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgeloop_quantize::{testmodels, OnnxModel};
use edgeloop_trainer::tokenizer::token_file::TokenFileWriter;

fn quantize(model: &Path, calib: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .arg("quantize")
        .args(["--model", model.to_str().expect("utf-8")])
        .args(["--calib", calib.to_str().expect("utf-8")])
        .args(["--pad-id", "0", "--out", out.to_str().expect("utf-8")])
        .output()
        .expect("running edgeloop quantize")
}

#[test]
fn quantize_calibrates_from_a_token_file() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quantize_cli_tokens");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let model = dir.join("emb.onnx");
    std::fs::write(&model, testmodels::embedding().to_bytes()).expect("write model");
    let tokens = dir.join("calib.tokens");
    let mut w = TokenFileWriter::create(&tokens, 32).expect("token file");
    for d in 0..10u32 {
        // Documents of 2..8 tokens: shorter ones are padded, longer ones cut to 6.
        let doc: Vec<u32> = (0..2 + d % 7).map(|i| (d * 3 + i) % 31).collect();
        w.push(&doc).expect("push");
    }
    w.finish().expect("finish");

    let out = dir.join("emb.int8.onnx");
    let r = quantize(&model, &tokens, &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let q = OnnxModel::from_path(&out).expect("QDQ model");
    assert!(q.graph().node.iter().any(|n| n.op_type == "QuantizeLinear"));
    let text = String::from_utf8_lossy(&r.stdout).to_string() + &String::from_utf8_lossy(&r.stderr);
    assert!(text.contains("10 sample(s)"), "{text}");

    let bytes = std::fs::read(&tokens).expect("read tokens");
    let bad = dir.join("bad.tokens");
    std::fs::write(&bad, &bytes[..bytes.len() - 3]).expect("write");
    let r = quantize(&model, &bad, &dir.join("x.onnx"));
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("bad.tokens"), "{err}");
    // Raw text records are not calibration data: the error says what --calib takes.
    let jsonl = dir.join("train.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"turn on the lights\"}\n").expect("write");
    let r = quantize(&model, &jsonl, &dir.join("y.onnx"));
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("edgeloop data tokenize"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
