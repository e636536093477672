//! `edgeloop keygen`: writes a new Ed25519 signing key pair (`edgeloop.key`, `edgeloop.pub`)
//! for `edgeloop sign` / `edgeloop compile --sign` and the firmware's signature check.

use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_quantize::sign::{self, hex};

/// Arguments of `edgeloop keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  edgeloop keygen --out keys\n  \
edgeloop compile model-int8.onnx --out model.edli --sign keys/edgeloop.key\n  \
edgeloop verify model.edli --pub keys/edgeloop.pub")]
pub struct Args {
    /// Folder to write `edgeloop.key` (secret, mode 0600) and `edgeloop.pub` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Derive the key from this 32-byte seed (64 hex digits) instead of the OS random source.
    /// Only for reproducible test keys: anyone who knows the seed can sign.
    #[arg(long, value_name = "HEX")]
    pub seed: Option<String>,
    /// Replace an existing secret key in `--out`.
    #[arg(long)]
    pub force: bool,
}

fn parse_seed(s: &str) -> anyhow::Result<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        bail!("--seed has {} characters, expected 64 hex digits", s.len());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .with_context(|| format!("--seed: bad hex digits at column {}", 2 * i + 1))?;
    }
    Ok(out)
}

/// Reads the secret key file given to `flag`; the error names the flag, the file and the fix.
pub(crate) fn secret_key(flag: &str, path: &std::path::Path) -> anyhow::Result<sign::SecretKey> {
    sign::read_secret_key(path).with_context(|| {
        format!(
            "{flag} {}: not a secret key file (write one with `edgeloop keygen --out keys`, \
             then pass keys/edgeloop.key)",
            path.display()
        )
    })
}

/// Reads the public key file given to `flag`; the error names the flag, the file and the fix.
pub(crate) fn public_key(flag: &str, path: &std::path::Path) -> anyhow::Result<sign::PublicKey> {
    sign::read_public_key(path).with_context(|| {
        format!(
            "{flag} {}: not a public key file (`edgeloop keygen --out keys` writes \
             keys/edgeloop.pub next to the secret key)",
            path.display()
        )
    })
}

/// Writes the key pair.
pub fn run(args: Args) -> anyhow::Result<()> {
    let seed = args.seed.as_deref().map(parse_seed).transpose()?;
    let (secret, public) = sign::generate_keypair(seed)?;
    let (sk, pk) = sign::write_keypair(&args.out, &secret, args.force)?;
    crate::say!(
        "wrote {} (secret) and {} (public), key id {}",
        sk.display(),
        pk.display(),
        hex(&public.key_id())
    );
    if seed.is_some() {
        eprintln!("warning: the key was derived from --seed; use it for tests only");
    }
    super::output::summary(&serde_json::json!({
        "secret_key": sk,
        "public_key": pk,
        "key_id": hex(&public.key_id()),
        "seeded": seed.is_some(),
    }))
}
