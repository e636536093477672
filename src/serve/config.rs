//! What a server is started with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgeloop_trainer::tokenizer::Tokenizer;

/// One model to serve: its image bytes and how to read its inputs and outputs.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The model image (as written by the compiler or the runtime's image writer).
    pub image: Vec<u8>,
    /// Turns request text into token ids and generated ids back into text. Without one,
    /// requests must give token ids (`tokens`) instead of text.
    pub tokenizer: Option<Tokenizer>,
}

/// Everything `edgeloop serve` needs; [`ServeConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The classifier behind `POST /v1/predict` (`None`: the route answers 503).
    pub classifier: Option<ModelSource>,
    /// Class names, in the order of the classifier's outputs (`None`: `class_0`, `class_1`, …).
    pub labels: Option<Vec<String>>,
    /// The KV-cache decoder behind `POST /v1/generate` (`None`: the route answers 503).
    pub generator: Option<ModelSource>,
    /// Directory of the monitor's Parquet store (inference and feedback records go there).
    pub store_dir: PathBuf,
    /// Write the buffered records to the store once this many are waiting.
    pub flush_every: usize,
    /// Also write whatever is buffered at this interval (`None`: only by count and at shutdown).
    pub flush_interval: Option<Duration>,
    /// Most records kept in memory while the store cannot be written; beyond it the oldest are
    /// dropped and counted (`edgeloop_telemetry_dropped_total`).
    pub max_buffered_records: usize,
    /// Device id written in the records' headers (give each replica its own).
    pub device_id: u64,
    /// Bearer token for `POST /admin/*` (`None`: the admin routes answer 403).
    pub admin_token: Option<String>,
    /// Bearer token for `POST /v1/feedback` and `POST /v1/telemetry` (`None`: they answer 403).
    pub ingest_token: Option<String>,
    /// Ed25519 public key: when set, only images signed with it are loaded or swapped in.
    pub public_key: Option<[u8; 32]>,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest body of `POST /admin/model` (an image) and `POST /v1/telemetry`, in bytes.
    pub max_upload_bytes: usize,
    /// Time limit of one request, from its headers to its response.
    pub request_timeout: Duration,
    /// Inferences run at once (others wait, within their time limit).
    pub max_concurrent_inferences: usize,
    /// Most tokens one `POST /v1/generate` may ask for.
    pub max_new_tokens: usize,
    /// Predictions in the live window that the drift gauge compares with the image's reference.
    pub drift_window: usize,
    /// Request ids remembered for feedback (the oldest are forgotten first).
    pub max_tracked_requests: usize,
    /// Copy up to 32 input token ids into feedback records (off: records carry no user input).
    pub sample_inputs: bool,
}

impl ServeConfig {
    /// Defaults: listen on `127.0.0.1:8080`, no models, store in `store_dir`, 64 KiB JSON bodies,
    /// 64 MiB uploads, 10 s per request, flush every 1000 records or 30 s.
    pub fn new(store_dir: PathBuf) -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            classifier: None,
            labels: None,
            generator: None,
            store_dir,
            flush_every: 1000,
            flush_interval: Some(Duration::from_secs(30)),
            max_buffered_records: 100_000,
            device_id: 1,
            admin_token: None,
            ingest_token: None,
            public_key: None,
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            max_concurrent_inferences: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4),
            max_new_tokens: 256,
            drift_window: 1000,
            max_tracked_requests: 100_000,
            sample_inputs: false,
        }
    }
}
