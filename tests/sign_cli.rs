//! `edgeloop keygen`, `edgeloop sign` and `edgeloop verify` end to end: a signed image
//! verifies with its public key, and is refused (exit 1, a message naming the problem) with
//! another key, when tampered with, and when unsigned.

use std::path::PathBuf;
use std::process::{Command, Output};

use edgeloop_runtime::image::writer::fix_crc;
use edgeloop_runtime::models::mlp;

fn edgeloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(args)
        .output()
        .expect("running edgeloop")
}

fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn keygen_sign_verify_and_refusals() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sign_cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (keys, other) = (dir.join("keys"), dir.join("other"));
    for k in [&keys, &other] {
        let out = edgeloop(&["keygen", "--out", &s(k)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No silent overwrite of a secret key.
    let again = edgeloop(&["keygen", "--out", &s(&keys)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    let image = dir.join("mlp.img");
    let bytes = mlp::mlp(2, true).build_f32().expect("builds").bytes;
    std::fs::write(&image, &bytes).expect("write image");
    let signed = dir.join("mlp.signed.img");
    let key = s(&keys.join("edgeloop.key"));
    let out = edgeloop(&["sign", &s(&image), "--key", &key, "--out", &s(&signed)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pub_ok = s(&keys.join("edgeloop.pub"));
    let out = edgeloop(&["verify", &s(&signed), "--pub", &pub_ok]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature OK"));

    let refused = |path: &std::path::Path, public: &str, want: &str| {
        let out = edgeloop(&["verify", &s(path), "--pub", public]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "expected '{want}' in: {err}");
    };
    refused(
        &signed,
        &s(&other.join("edgeloop.pub")),
        "signed with another key",
    );
    refused(&image, &pub_ok, "not signed");
    let mut tampered = std::fs::read(&signed).expect("read");
    tampered[bytes.len() - 50] ^= 0x04;
    fix_crc(&mut tampered);
    let t = dir.join("tampered.img");
    std::fs::write(&t, &tampered).expect("write");
    refused(&t, &pub_ok, "does not verify");
    // A secret key given as a public key is named as the wrong kind of file.
    refused(&signed, &key, "expected 'edgeloop-ed25519-public-key-v1'");
}
