//! `edgeloop sign` and `edgeloop verify`: Ed25519 signatures on model images (the trailer of
//! `runtime/FORMAT.md`). Verification uses the runtime's own no_std verifier, as a device does.

use std::path::PathBuf;

use anyhow::Context;
use edgeloop_quantize::sign::{self, hex};

/// Arguments of `edgeloop sign`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  edgeloop sign model.edli --key keys/edgeloop.key --out model.signed.edli"
)]
pub struct SignArgs {
    /// Model image to sign (an already signed image is signed again).
    pub image: PathBuf,
    /// Secret key file (from `edgeloop keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the signed image.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `edgeloop verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  edgeloop verify model.signed.edli --pub keys/edgeloop.pub   # exit 1 when missing, foreign or invalid"
)]
pub struct VerifyArgs {
    /// Signed model image.
    pub image: PathBuf,
    /// Public key file (from `edgeloop keygen`).
    #[arg(long = "pub", value_name = "PUB")]
    pub public: PathBuf,
}

/// Signs an image file.
pub fn run_sign(args: SignArgs) -> anyhow::Result<()> {
    let secret = super::keygen::secret_key("--key", &args.key)?;
    let image = std::fs::read(&args.image)
        .with_context(|| format!("reading model image {}", args.image.display()))?;
    let signed = sign::sign_image(&image, &secret)
        .with_context(|| format!("signing {}", args.image.display()))?;
    std::fs::write(&args.out, &signed)
        .with_context(|| format!("writing {}", args.out.display()))?;
    crate::say!(
        "wrote {} ({} bytes: image {} + trailer 80), key id {}",
        args.out.display(),
        signed.len(),
        signed.len() - 80,
        hex(&secret.public_key().key_id())
    );
    super::output::summary(&serde_json::json!({
        "out": args.out,
        "bytes": signed.len(),
        "key_id": hex(&secret.public_key().key_id()),
    }))
}

/// Verifies an image file; fails (exit 1) when the signature is missing, from another key, or
/// does not verify.
pub fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let public = super::keygen::public_key("--pub", &args.public)?;
    let v = sign::verify_image_file(&args.image, &public)?;
    crate::say!(
        "{}: signature OK (model '{}' v{}, {} signed bytes, key id {})",
        args.image.display(),
        v.name,
        v.model_version,
        v.image_len,
        hex(&v.key_id)
    );
    super::output::summary(&serde_json::json!({
        "image": args.image,
        "verified": true,
        "model": v.name,
        "model_version": v.model_version,
        "signed_bytes": v.image_len,
        "key_id": hex(&v.key_id),
    }))
}
