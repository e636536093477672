//! The server's shared state: the models being served (swappable while requests run), the
//! request ids feedback may refer to, the record sink, the telemetry ingestor and the metrics.
//!
//! Hot swap: each task's model sits behind `RwLock<Option<Arc<..>>>`. A request clones the
//! `Arc` once, at its start, and runs to its end on that model; a swap replaces the pointer, so
//! requests already running finish on the old model and later ones use the new one. The lock is
//! held only to clone or replace the pointer, never while a model runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::bail;
use edgeloop_monitor::ingest::Ingestor;
use edgeloop_runtime::telemetry::ModelRef;
use edgeloop_trainer::tokenizer::Tokenizer;
use tokio::sync::Semaphore;

use super::config::ServeConfig;
use super::drift::ClassWindow;
use super::metrics::Metrics;
use super::model::{reference_class_histogram, ClassifierSpec, GeneratorSpec, Image, ImageMeta};
use super::records::RecordSink;

/// Which route a model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// `POST /v1/predict`.
    Classify,
    /// `POST /v1/generate`.
    Generate,
}

impl Task {
    /// Name used in routes, metrics and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Generate => "generate",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A classifier ready to serve.
#[derive(Debug)]
pub struct Classifier {
    /// The image.
    pub image: Image,
    /// How its inputs and outputs are read.
    pub spec: ClassifierSpec,
    /// Class names, in output order.
    pub labels: Vec<String>,
    /// Text to token ids.
    pub tokenizer: Option<Arc<Tokenizer>>,
    /// Predictions of the last requests, for the drift gauge.
    pub window: Mutex<ClassWindow>,
}

impl Classifier {
    /// Opens `bytes` and checks it against the labels and tokenizer.
    pub fn load(
        bytes: &[u8],
        tokenizer: Option<Arc<Tokenizer>>,
        labels: Option<&[String]>,
        public_key: Option<&[u8; 32]>,
        drift_window: usize,
    ) -> anyhow::Result<Classifier> {
        let image = Image::open(bytes, public_key)?;
        let model = image.model()?;
        let spec = ClassifierSpec::of(&model)?;
        let labels = match labels {
            Some(l) if l.len() != spec.classes => bail!(
                "the image has {} classes but {} labels are configured",
                spec.classes,
                l.len()
            ),
            Some(l) => l.to_vec(),
            None => (0..spec.classes).map(|i| format!("class_{i}")).collect(),
        };
        if let (Some(tok), Some(rows)) = (&tokenizer, spec.vocab) {
            if tok.vocab_size() > rows {
                bail!(
                    "the tokenizer has {} token ids but the image's embedding table has {rows} rows",
                    tok.vocab_size()
                );
            }
        }
        let reference = reference_class_histogram(&model, spec.classes);
        let window = Mutex::new(ClassWindow::new(spec.classes, drift_window, reference));
        Ok(Classifier {
            image,
            spec,
            labels,
            tokenizer,
            window,
        })
    }
}

/// A generator ready to serve.
#[derive(Debug)]
pub struct Generator {
    /// The image.
    pub image: Image,
    /// How it is driven.
    pub spec: GeneratorSpec,
    /// Text to token ids and back.
    pub tokenizer: Option<Arc<Tokenizer>>,
}

impl Generator {
    /// Opens `bytes` and checks it against the tokenizer.
    pub fn load(
        bytes: &[u8],
        tokenizer: Option<Arc<Tokenizer>>,
        public_key: Option<&[u8; 32]>,
    ) -> anyhow::Result<Generator> {
        let image = Image::open(bytes, public_key)?;
        let spec = GeneratorSpec::of(&image.model()?)?;
        if let Some(tok) = &tokenizer {
            if tok.vocab_size() > spec.vocab {
                bail!(
                    "the tokenizer has {} token ids but the image's vocabulary is {}",
                    tok.vocab_size(),
                    spec.vocab
                );
            }
        }
        Ok(Generator {
            image,
            spec,
            tokenizer,
        })
    }
}

/// A swap refused because the new image's model version is lower than the installed one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downgrade {
    /// The image being served.
    pub installed: ImageMeta,
    /// The image refused.
    pub offered: ImageMeta,
}

impl std::fmt::Display for Downgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "downgrade refused: the image is `{}` version {}, lower than the installed `{}` version {}; \
             add `force=true` to the query to install it anyway",
            self.offered.name, self.offered.version, self.installed.name, self.installed.version
        )
    }
}

/// Rollback protection: replaces the model in `slot` with `new` unless `new`'s model version
/// is lower than the installed one's and `force` is off. The version check and the swap
/// happen under one write lock, so two concurrent swaps cannot both pass the check against
/// the same old model. Equal versions are allowed (re-installing, or a same-version fix).
pub fn swap_checked<M>(
    slot: &RwLock<Option<Arc<M>>>,
    new: Arc<M>,
    force: bool,
    meta: impl Fn(&M) -> &ImageMeta,
) -> Result<Option<Arc<M>>, Downgrade> {
    let mut guard = slot.write().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = guard.as_ref() {
        let (installed, offered) = (meta(old), meta(&new));
        if offered.version < installed.version && !force {
            return Err(Downgrade {
                installed: installed.clone(),
                offered: offered.clone(),
            });
        }
    }
    Ok(guard.replace(new))
}

/// What feedback needs to know about an answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Task of the request.
    pub task: Task,
    /// Sequence number of its inference record.
    pub seq: u32,
    /// Model that answered.
    pub model: ModelRef,
    /// Number of classes (classification only).
    pub classes: usize,
    /// Up to 32 input token ids (empty unless input sampling is on).
    pub sample: Vec<i32>,
}

/// The most recent request ids, oldest forgotten first.
#[derive(Debug, Default)]
pub struct RequestLog {
    map: HashMap<String, Tracked>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RequestLog {
    /// A log of at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        RequestLog {
            capacity: capacity.max(1),
            ..Self::default()
        }
    }

    /// Remembers `id`.
    pub fn insert(&mut self, id: String, t: Tracked) {
        if self.map.insert(id.clone(), t).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Looks `id` up.
    pub fn get(&self, id: &str) -> Option<&Tracked> {
        self.map.get(id)
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The configuration (models' bytes are not kept here after loading).
    pub config: ServeConfig,
    classifier: RwLock<Option<Arc<Classifier>>>,
    generator: RwLock<Option<Arc<Generator>>>,
    /// The classifier's tokenizer (kept for images swapped in later).
    pub classifier_tokenizer: Option<Arc<Tokenizer>>,
    /// The generator's tokenizer (kept for images swapped in later).
    pub generator_tokenizer: Option<Arc<Tokenizer>>,
    /// Request ids for feedback.
    pub requests: Mutex<RequestLog>,
    /// Where records go.
    pub sink: Arc<RecordSink>,
    /// Decoder and deduplicator of device frames posted to `/v1/telemetry`.
    pub ingestor: Mutex<Ingestor>,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Bounds the inferences running at once.
    pub inference_slots: Semaphore,
    /// When the server started.
    pub started: Instant,
}

impl AppState {
    /// Loads the configured models and opens the store; errors name what is wrong.
    pub fn new(mut config: ServeConfig) -> anyhow::Result<AppState> {
        let key = config.public_key;
        let classifier_source = config.classifier.take();
        let classifier_tokenizer = classifier_source
            .as_ref()
            .and_then(|s| s.tokenizer.clone())
            .map(Arc::new);
        let generator_source = config.generator.take();
        let generator_tokenizer = generator_source
            .as_ref()
            .and_then(|s| s.tokenizer.clone())
            .map(Arc::new);
        let classifier = match classifier_source {
            Some(src) => Some(Arc::new(
                Classifier::load(
                    &src.image,
                    classifier_tokenizer.clone(),
                    config.labels.as_deref(),
                    key.as_ref(),
                    config.drift_window,
                )
                .map_err(|e| e.context("loading the classifier image"))?,
            )),
            None => None,
        };
        let generator = match generator_source {
            Some(src) => Some(Arc::new(
                Generator::load(&src.image, generator_tokenizer.clone(), key.as_ref())
                    .map_err(|e| e.context("loading the generator image"))?,
            )),
            None => None,
        };
        std::fs::create_dir_all(&config.store_dir).map_err(|e| {
            anyhow::anyhow!(
                "creating the telemetry store {}: {e}",
                config.store_dir.display()
            )
        })?;
        let seen = edgeloop_monitor::store::keys(&config.store_dir).map_err(|e| {
            anyhow::anyhow!(
                "reading the telemetry store {}: {e}",
                config.store_dir.display()
            )
        })?;
        let sink = Arc::new(RecordSink::new(
            config.store_dir.clone(),
            config.device_id,
            config.flush_every,
            config.max_buffered_records,
        ));
        Ok(AppState {
            requests: Mutex::new(RequestLog::new(config.max_tracked_requests)),
            inference_slots: Semaphore::new(config.max_concurrent_inferences.max(1)),
            classifier: RwLock::new(classifier),
            generator: RwLock::new(generator),
            classifier_tokenizer,
            generator_tokenizer,
            sink,
            ingestor: Mutex::new(Ingestor::with_seen(seen)),
            metrics: Metrics::default(),
            started: Instant::now(),
            config,
        })
    }

    /// The classifier now being served.
    pub fn classifier(&self) -> Option<Arc<Classifier>> {
        self.classifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The generator now being served.
    pub fn generator(&self) -> Option<Arc<Generator>> {
        self.generator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the classifier unless that would be a downgrade (see [`swap_checked`]);
    /// returns the previous one.
    pub fn upgrade_classifier(
        &self,
        new: Arc<Classifier>,
        force: bool,
    ) -> Result<Option<Arc<Classifier>>, Downgrade> {
        swap_checked(&self.classifier, new, force, |c| &c.image.meta)
    }

    /// Replaces the generator unless that would be a downgrade (see [`swap_checked`]);
    /// returns the previous one.
    pub fn upgrade_generator(
        &self,
        new: Arc<Generator>,
        force: bool,
    ) -> Result<Option<Arc<Generator>>, Downgrade> {
        swap_checked(&self.generator, new, force, |g| &g.image.meta)
    }

    /// Remembers a request for feedback.
    pub fn track(&self, id: String, t: Tracked) {
        lock(&self.requests).insert(id, t);
    }

    /// Looks a request up.
    pub fn tracked(&self, id: &str) -> Option<Tracked> {
        lock(&self.requests).get(id).cloned()
    }

    /// The request id of the inference record `seq`.
    pub fn request_id(&self, seq: u32) -> String {
        format!("{:08x}-{seq:08x}", self.sink.boot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_log_forgets_the_oldest() {
        let mut log = RequestLog::new(2);
        let t = |seq| Tracked {
            task: Task::Classify,
            seq,
            model: ModelRef::default(),
            classes: 2,
            sample: vec![],
        };
        log.insert("a".into(), t(0));
        log.insert("b".into(), t(1));
        log.insert("c".into(), t(2));
        assert!(log.get("a").is_none());
        assert_eq!(log.get("b").map(|t| t.seq), Some(1));
        assert_eq!(log.get("c").map(|t| t.seq), Some(2));
    }
}
