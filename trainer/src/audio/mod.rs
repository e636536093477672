//! Keyword spotting from raw audio, the second modality: a deterministic synthetic keyword
//! corpus ([`synth`]), a loader for the Speech Commands layout ([`speech_commands`], with its
//! [`wav`] reader), features from the runtime's integer front end
//! ([`edgeloop_runtime::audio`], the same code the firmware runs), and training of the DS-CNN
//! ([`crate::models::ds_cnn`]) in [`train`].
//!
//! The model sees the int8 log-mel features dequantized with the front end's scale and zero
//! point (`log2` of the band energy, 0 to 51), so the int8 image's input tensor takes the
//! front end's bytes as they are.

pub mod error;
pub mod speech_commands;
pub mod synth;
pub mod train;
pub mod wav;

pub use error::{AudioError, Result};

use edgeloop_runtime::audio::{self as fe, CLIP_FEATURES, FEATURE_SCALE, FEATURE_ZERO_POINT};
use serde::{Deserialize, Serialize};

/// Label of clips with no word.
pub const SILENCE: &str = "_silence_";
/// Label of clips with a word that is not a keyword.
pub const UNKNOWN: &str = "_unknown_";

/// Which split a clip belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Model selection / early stopping.
    Validation,
    /// Held out until the end.
    Test,
}

/// One labelled one-second clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// 16 kHz mono samples ([`fe::CLIP_SAMPLES`] of them).
    pub samples: Vec<i16>,
    /// Class index into [`KwsDataset::labels`].
    pub label: usize,
    /// Split.
    pub split: Split,
    /// Where it came from (a relative file path, or the generator's description).
    pub source: String,
}

/// A keyword-spotting data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KwsDataset {
    /// Class names (keywords, then `_silence_`, then `_unknown_` when present).
    pub labels: Vec<String>,
    /// The clips.
    pub clips: Vec<Clip>,
}

impl KwsDataset {
    /// Clips of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Clip> {
        self.clips.iter().filter(move |c| c.split == split)
    }
}

/// The int8 log-mel features of a one-second clip (time-major, [`fe::FRAMES`] ×
/// [`fe::MEL_BANDS`]), computed by the runtime's integer front end.
pub fn features(samples: &[i16]) -> Result<Vec<i8>> {
    let mut out = vec![0i8; CLIP_FEATURES];
    let n = samples.len().min(fe::CLIP_SAMPLES);
    let mut clip = vec![0i16; fe::CLIP_SAMPLES];
    clip[..n].copy_from_slice(&samples[..n]);
    fe::log_mel(&clip, &mut fe::Scratch::new(), &mut out).map_err(AudioError::FrontEnd)?;
    Ok(out)
}

/// An int8 feature as the model sees it: `(q − zero point) · scale`.
pub fn dequantize(q: i8) -> f32 {
    (q as i32 - FEATURE_ZERO_POINT) as f32 * FEATURE_SCALE
}
