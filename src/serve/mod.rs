//! `edgeloop serve`: self-hosted HTTP deployment of model images (axum on tokio).
//!
//! Routes (the OpenAPI document at `/openapi.json` describes each):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/predict` | text (or token ids) → label, per-class scores, latency, request id |
//! | `POST /v1/generate` | prompt → greedy tokens through the image's KV cache |
//! | `POST /v1/feedback` | correction (a label; for a generation, the right response) or preference (up/down) for a request id; bearer |
//! | `POST /v1/telemetry` | COBS-framed device telemetry into the store; bearer |
//! | `GET /healthz` | liveness and the models served |
//! | `GET /metrics` | Prometheus text: requests, latency histograms, drift gauge, store counters |
//! | `POST /admin/model?task=…` | hot-swap an image (signed, when a key is configured); bearer |
//! | `POST /admin/flush` | write buffered records to the store now; bearer |
//! | `GET /openapi.json` | the OpenAPI 3.1 document |
//!
//! Inferences and feedback become the runtime's telemetry records and go to the monitor's
//! Parquet store ([`records`]). Errors are always JSON `{"error": …}` with a 4xx status for
//! anything the client sent ([`error`]).
//!
//! In-process use (tests, the demo):
//!
//! ```ignore
//! let server = serve::spawn(config).await?;      // binds config.listen; server.addr is the real address
//! /* … HTTP requests to server.addr … */
//! let stats = server.shutdown().await?;          // drains requests, flushes the store
//! ```
//! or from synchronous code:
//!
//! ```ignore
//! let server = serve::BackgroundServer::start(config)?;   // own tokio runtime
//! let url = format!("http://{}", server.addr());
//! /* … */
//! let stats = server.stop()?;
//! ```

pub mod auth;
pub mod body;
pub mod config;
pub mod drift;
pub mod error;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod records;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{ModelSource, ServeConfig};
pub use records::SinkStats;
pub use routes::router;
pub use state::AppState;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    state: Arc<AppState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    flusher: Option<JoinHandle<()>>,
}

/// Builds the state from `config` (loads and checks the models, opens the store).
pub fn build_state(config: ServeConfig) -> anyhow::Result<Arc<AppState>> {
    Ok(Arc::new(AppState::new(config)?))
}

/// Starts a server on `config.listen` (port 0 picks a free one) in the current tokio runtime.
pub async fn spawn(config: ServeConfig) -> anyhow::Result<Server> {
    let listen = config.listen;
    let state = tokio::task::spawn_blocking(move || build_state(config))
        .await
        .context("loading the server state")??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let task = tokio::spawn(accept_loop(
        listener,
        app,
        state.config.request_timeout,
        stopped,
    ));
    let flusher = state.config.flush_interval.map(|every| {
        let sink = state.sink.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = sink.clone();
                match tokio::task::spawn_blocking(move || s.flush_blocking()).await {
                    Ok(Err(e)) => eprintln!("edgeloop serve: {e}"),
                    Err(e) => eprintln!("edgeloop serve: store writer failed: {e}"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    });
    Ok(Server {
        addr,
        state,
        stop,
        task,
        flusher,
    })
}

/// Serves HTTP/1.1 connections from `listener` until `stopped` fires, then waits for the
/// requests in flight. Unlike `axum::serve`, each connection gets a header read timeout
/// (`header_timeout`): a client that sends its request head slowly (slowloris) is
/// disconnected, instead of holding a connection forever. Slow bodies are answered 408 by the
/// request time limit of [`routes::router`].
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: std::time::Duration,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // A request head larger than 64 KiB is refused (431) rather than buffered: hyper's default
    // buffer (~400 KB) let a 500 KB header through on some reads.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    eprintln!("edgeloop serve: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed-out head, malformed request).
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

impl Server {
    /// Stops accepting connections, lets requests in flight finish, then writes every buffered
    /// record to the store. Returns the sink's final counters.
    pub async fn shutdown(self) -> anyhow::Result<SinkStats> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("the server task failed")?
            .context("serving")?;
        if let Some(f) = self.flusher {
            f.abort();
        }
        let sink = self.state.sink.clone();
        tokio::task::spawn_blocking(move || sink.flush_blocking())
            .await
            .context("the store writer failed")?
            .map_err(anyhow::Error::msg)?;
        Ok(self.state.sink.stats())
    }
}

/// A server with its own tokio runtime, for callers that are not async (the CLI, the demo).
#[derive(Debug)]
pub struct BackgroundServer {
    runtime: tokio::runtime::Runtime,
    server: Server,
}

impl BackgroundServer {
    /// Starts a server on a new multi-threaded runtime (one worker per core).
    pub fn start(config: ServeConfig) -> anyhow::Result<BackgroundServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        let server = runtime.block_on(spawn(config))?;
        Ok(BackgroundServer { runtime, server })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Runs `f` to completion on the server's runtime (for example, waiting for a signal).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Shuts down (see [`Server::shutdown`]).
    pub fn stop(self) -> anyhow::Result<SinkStats> {
        let BackgroundServer { runtime, server } = self;
        runtime.block_on(server.shutdown())
    }
}
