//! The monitor's stream ingest: any byte stream, cut into chunks anywhere, gives the same frames
//! and the same counters as the whole stream fed at once, and never panics.

use edgeloop_monitor::ingest::{Ingestor, Received};

/// The first byte picks where the rest is cut into two chunks; the rest is the stream.
pub fn fuzz_ingest(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = ingest(&[stream]);
    let at = stream.len() * usize::from(cut) / 255;
    let (a, b) = stream.split_at(at);
    let chunked = ingest(&[a, b]);
    assert_eq!(
        whole.0, chunked.0,
        "frames depend on where the stream was cut"
    );
    assert_eq!(
        whole.1, chunked.1,
        "counters depend on where the stream was cut"
    );
}

fn ingest(chunks: &[&[u8]]) -> (Vec<Received>, edgeloop_monitor::ingest::IngestStats) {
    let mut ing = Ingestor::new();
    let mut out = Vec::new();
    for c in chunks {
        ing.feed(c, 0, &mut out);
    }
    ing.finish();
    let stats = ing.stats();
    assert_eq!(
        stats.frames,
        out.len() as u64,
        "frame count differs from frames returned"
    );
    assert_eq!(
        stats.bytes,
        chunks.iter().map(|c| c.len() as u64).sum::<u64>()
    );
    (out, stats)
}
