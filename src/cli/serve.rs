//! `edgeloop serve`: serve model images over HTTP (see `crate::serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use edgeloop_quantize::sign::{PublicKey, PUBLIC_KEY_TAG};
use edgeloop_trainer::tokenizer::Tokenizer;

use crate::serve::{self, ModelSource, ServeConfig};

/// Arguments of `edgeloop serve`.
///
/// Tokens come from the environment, never the command line (where `ps` shows them):
/// `EDGELOOP_ADMIN_TOKEN` enables `POST /admin/*`, `EDGELOOP_INGEST_TOKEN` enables
/// `POST /v1/feedback` and `POST /v1/telemetry`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  EDGELOOP_ADMIN_TOKEN=… EDGELOOP_INGEST_TOKEN=… \\
  edgeloop serve --classifier runs/demo/intent.img --tokenizer runs/demo/tokenizer.json \\
      --labels lights_on,lights_off,music,weather --public-key keys/edgeloop.pub
  curl -s localhost:8080/v1/predict -H 'content-type: application/json' -d '{\"text\": \"turn on the lamp\"}'")]
pub struct Args {
    /// Classifier model image served at POST /v1/predict.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Tokenizer (`tokenizer.json`, or a WordPiece `vocab.txt`) for the classifier's text input.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Class names in output order: comma separated, or `@FILE` with one per line.
    #[arg(long)]
    pub labels: Option<String>,
    /// Generator (KV-cache decoder, one token per step) image served at POST /v1/generate.
    #[arg(long)]
    pub generator: Option<PathBuf>,
    /// Tokenizer of the generator (default: --tokenizer).
    #[arg(long)]
    pub generator_tokenizer: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the Parquet telemetry store (inference and feedback records).
    #[arg(long, default_value = "serve-telemetry")]
    pub store: PathBuf,
    /// Write the store every N records (and at shutdown).
    #[arg(long, default_value_t = 1000)]
    pub flush_every: usize,
    /// Also write the store every S seconds (0: never by time).
    #[arg(long, default_value_t = 30)]
    pub flush_interval_s: u64,
    /// Device id in the records' headers (decimal or 0x-hex); give each replica its own.
    #[arg(long, default_value = "1")]
    pub device_id: String,
    /// Ed25519 public key file (32 raw bytes or 64 hex digits): only images signed with it
    /// are loaded or swapped in.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Largest JSON request body, bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Largest image upload or telemetry body, bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_upload_bytes: usize,
    /// Time limit per request, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Most tokens one generate request may ask for.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Predictions in the live drift window.
    #[arg(long, default_value_t = 1000)]
    pub drift_window: usize,
    /// Copy up to 32 input token ids into feedback records (off by default: no user input is stored).
    #[arg(long)]
    pub sample_inputs: bool,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

fn tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    Tokenizer::load(path).with_context(|| format!("loading the tokenizer {}", path.display()))
}

/// Reads a public key: the key file `edgeloop keygen` writes (`edgeloop.pub`), 32 raw bytes, or
/// 64 hex digits (surrounding whitespace ignored).
pub fn parse_public_key(bytes: &[u8], path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.trim_start().starts_with(PUBLIC_KEY_TAG) {
            return Ok(PublicKey::from_text(text, &path.display().to_string())?.0);
        }
    }
    if bytes.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(bytes);
        return Ok(k);
    }
    let text = std::str::from_utf8(bytes).unwrap_or("").trim();
    if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
        }
        return Ok(k);
    }
    bail!(
        "{}: a public key file holds 32 raw bytes or 64 hex digits; this one has {} bytes",
        path.display(),
        bytes.len()
    )
}

fn parse_labels(spec: &str) -> anyhow::Result<Vec<String>> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the labels file {path}"))?,
        None => spec.replace(',', "\n"),
    };
    let labels: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.len() < 2 {
        bail!("--labels: give at least two class names (comma separated or @FILE, one per line)");
    }
    Ok(labels)
}

/// Parses a telemetry device id (`--device-id`, on `serve` and `flash --qemu`): decimal or
/// `0x`-hex, a u64.
pub(crate) fn parse_device(s: &str) -> anyhow::Result<u64> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.with_context(|| format!("--device-id {s:?}: expected a decimal or 0x-hex u64"))
}

/// Turns the arguments into a [`ServeConfig`].
pub fn config(args: &Args) -> anyhow::Result<ServeConfig> {
    if args.classifier.is_none() && args.generator.is_none() {
        bail!("nothing to serve: give --classifier and/or --generator");
    }
    let mut c = ServeConfig::new(args.store.clone());
    c.listen = args.listen;
    let tok = args.tokenizer.as_deref().map(tokenizer).transpose()?;
    if let Some(p) = &args.classifier {
        c.classifier = Some(ModelSource {
            image: read(p, "classifier image")?,
            tokenizer: tok.clone(),
        });
    }
    if let Some(p) = &args.generator {
        let gen_tok = match &args.generator_tokenizer {
            Some(t) => Some(tokenizer(t)?),
            None => tok.clone(),
        };
        c.generator = Some(ModelSource {
            image: read(p, "generator image")?,
            tokenizer: gen_tok,
        });
    }
    c.labels = args.labels.as_deref().map(parse_labels).transpose()?;
    c.flush_every = args.flush_every.max(1);
    c.flush_interval =
        (args.flush_interval_s > 0).then(|| Duration::from_secs(args.flush_interval_s));
    c.device_id = parse_device(&args.device_id)?;
    c.public_key = match &args.public_key {
        Some(p) => Some(parse_public_key(&read(p, "public key")?, p)?),
        None => None,
    };
    c.max_body_bytes = args.max_body_bytes;
    c.max_upload_bytes = args.max_upload_bytes;
    c.request_timeout = Duration::from_millis(args.timeout_ms.max(1));
    c.max_new_tokens = args.max_new_tokens;
    c.drift_window = args.drift_window.max(1);
    c.sample_inputs = args.sample_inputs;
    c.admin_token = std::env::var("EDGELOOP_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    c.ingest_token = std::env::var("EDGELOOP_INGEST_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    Ok(c)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `edgeloop serve` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = config(&args)?;
    if config.public_key.is_none() {
        eprintln!("warning: no --public-key: images are not signature-checked");
    }
    if config.admin_token.is_none() {
        eprintln!("note: EDGELOOP_ADMIN_TOKEN is not set: /admin routes are disabled");
    }
    if config.ingest_token.is_none() {
        eprintln!(
            "note: EDGELOOP_INGEST_TOKEN is not set: /v1/feedback and /v1/telemetry are disabled"
        );
    }
    let store = config.store_dir.clone();
    let server = serve::BackgroundServer::start(config)?;
    // The address line is what scripts wait for: on stdout even under --quiet; under --json it
    // is a one-line JSON object (and the stop summary another), so stdout is JSON Lines.
    if super::output::json() {
        println!(
            "{}",
            serde_json::json!({ "listening": format!("http://{}", server.addr()) })
        );
    } else {
        println!("listening on http://{}", server.addr());
    }
    server.block_on(shutdown_signal());
    let stats = server.stop()?;
    if super::output::json() {
        println!(
            "{}",
            serde_json::json!({
                "stopped": true,
                "records_written": stats.written,
                "store": store,
                "files": stats.files,
                "dropped": stats.dropped,
                "write_errors": stats.write_errors,
            })
        );
    } else {
        eprintln!(
            "stopped: {} records written to {} ({} files), {} dropped, {} write errors",
            stats.written,
            store.display(),
            stats.files,
            stats.dropped,
            stats.write_errors
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_raw_or_hex() {
        let p = Path::new("k");
        assert_eq!(parse_public_key(&[7u8; 32], p).unwrap(), [7u8; 32]);
        let hex = "0a".repeat(32) + "\n";
        assert_eq!(parse_public_key(hex.as_bytes(), p).unwrap(), [10u8; 32]);
        assert!(parse_public_key(b"abc", p).is_err());
        assert!(parse_public_key("zz".repeat(32).as_bytes(), p).is_err());
        let (_, pk) = edgeloop_quantize::sign::generate_keypair(Some([3; 32])).unwrap();
        assert_eq!(parse_public_key(pk.to_text().as_bytes(), p).unwrap(), pk.0);
    }

    #[test]
    fn labels_and_device_ids_parse() {
        assert_eq!(parse_labels("a, b,c").unwrap(), vec!["a", "b", "c"]);
        assert!(parse_labels("only").is_err());
        assert_eq!(parse_device("0x1F").unwrap(), 31);
        assert_eq!(parse_device("12").unwrap(), 12);
        assert!(parse_device("x").is_err());
    }
}
