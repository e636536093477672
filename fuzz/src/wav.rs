//! WAV files (the speech data set): any bytes give a decoded clip or an error naming the
//! problem; a decoded clip's samples fit in the input, and re-encoding it with the project's
//! writer and parsing that again gives the same clip (and the same bytes once more).

use edgeloop_trainer::audio::wav;

/// RIFF header (12) + `fmt ` chunk header and its 16-byte minimum body (24) + `data` header (8).
const MIN_OVERHEAD: usize = 12 + 24 + 8;

/// The input is the file's content.
pub fn fuzz_wav(data: &[u8]) {
    let w = match wav::parse(data) {
        Ok(w) => w,
        Err(e) => {
            assert!(!e.is_empty(), "an empty error message");
            return;
        }
    };
    assert!(
        MIN_OVERHEAD + 2 * w.samples.len() <= data.len(),
        "{} samples decoded from {} bytes",
        w.samples.len(),
        data.len()
    );
    let bytes = wav::encode(w.sample_rate, &w.samples).expect("a parsed clip re-encodes");
    assert_eq!(bytes.len(), MIN_OVERHEAD + 2 * w.samples.len());
    let back = wav::parse(&bytes).expect("a re-encoded clip parses");
    assert_eq!(back, w, "re-encoding changed the clip");
    assert_eq!(
        wav::encode(back.sample_rate, &back.samples).ok(),
        Some(bytes),
        "encoding is not canonical"
    );
}
