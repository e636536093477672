//! Live drift of the predicted-class distribution: a sliding window of the last predictions,
//! compared with the image's reference class histogram by the population stability index.
//!
//! The PSI is the runtime's integer computation ([`psi_q16`], the one devices run), so the
//! server's gauge and a device's drift alarms agree on the same counts.

use std::collections::VecDeque;

use edgeloop_runtime::telemetry::psi_q16;

/// The predictions of the last `capacity` requests, per class.
#[derive(Debug, Clone)]
pub struct ClassWindow {
    reference: Option<Vec<u32>>,
    reference_problem: Option<String>,
    recent: VecDeque<u16>,
    counts: Vec<u32>,
    capacity: usize,
}

/// What the drift gauge shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReading {
    /// PSI of the window against the reference (0 when there is no reference or no prediction).
    pub psi: f64,
    /// Predictions in the window.
    pub window: usize,
    /// The image carries a usable reference histogram.
    pub has_reference: bool,
    /// Why the PSI is 0 without meaning it (no reference, an unusable one, an empty window).
    pub note: Option<String>,
}

impl ClassWindow {
    /// A window of `capacity` predictions over `classes` classes; `reference` is the image's
    /// histogram (`Err` says why the image's entry cannot be used).
    pub fn new(
        classes: usize,
        capacity: usize,
        reference: Result<Option<Vec<u32>>, String>,
    ) -> Self {
        let (reference, reference_problem) = match reference {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e)),
        };
        ClassWindow {
            reference,
            reference_problem,
            recent: VecDeque::with_capacity(capacity.min(1 << 16)),
            counts: vec![0; classes],
            capacity: capacity.max(1),
        }
    }

    /// Adds one prediction (classes outside the range are ignored).
    pub fn observe(&mut self, class: usize) {
        let Some(slot) = self.counts.get_mut(class) else {
            return;
        };
        *slot += 1;
        self.recent.push_back(class as u16);
        if self.recent.len() > self.capacity {
            if let Some(old) = self.recent.pop_front() {
                self.counts[old as usize] -= 1;
            }
        }
    }

    /// The live class counts.
    #[cfg(test)]
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The current PSI reading.
    pub fn reading(&self) -> DriftReading {
        let window = self.recent.len();
        let zero = |note: String| DriftReading {
            psi: 0.0,
            window,
            has_reference: self.reference.is_some(),
            note: Some(note),
        };
        let Some(reference) = &self.reference else {
            return zero(match &self.reference_problem {
                Some(p) => format!("the image's reference class histogram is unusable: {p}"),
                None => "the image has no reference class histogram (statistics tag 2); PSI not computed".to_string(),
            });
        };
        if window == 0 {
            return zero("no prediction in the window yet".to_string());
        }
        match psi_q16(reference, &self.counts) {
            Ok(q) => DriftReading {
                psi: f64::from(q) / 65536.0,
                window,
                has_reference: true,
                note: None,
            },
            Err(e) => zero(format!("PSI not computed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psi_f64(e: &[u32], a: &[u32]) -> f64 {
        let (te, ta) = (e.iter().sum::<u32>() as f64, a.iter().sum::<u32>() as f64);
        e.iter()
            .zip(a)
            .map(|(&e, &a)| {
                let pe = if e == 0 { 1e-4 } else { e as f64 / te };
                let pa = if a == 0 { 1e-4 } else { a as f64 / ta };
                (pa - pe) * (pa / pe).ln()
            })
            .sum()
    }

    #[test]
    fn window_slides_and_psi_matches_the_formula() {
        let mut w = ClassWindow::new(3, 4, Ok(Some(vec![10, 10, 20])));
        for c in [0, 0, 1, 2, 2, 2] {
            w.observe(c);
        }
        // The last four: 1, 2, 2, 2.
        assert_eq!(w.counts(), &[0, 1, 3]);
        let r = w.reading();
        assert_eq!(r.window, 4);
        assert!(r.has_reference && r.note.is_none());
        let want = psi_f64(&[10, 10, 20], &[0, 1, 3]);
        assert!((r.psi - want).abs() < 2e-4, "{} vs {want}", r.psi);
        assert!(r.psi > 0.1);
        w.observe(7); // out of range: ignored
        assert_eq!(w.counts(), &[0, 1, 3]);
    }

    #[test]
    fn no_reference_reads_zero_with_a_reason() {
        let mut w = ClassWindow::new(2, 10, Ok(None));
        w.observe(1);
        let r = w.reading();
        assert_eq!(r.psi, 0.0);
        assert!(!r.has_reference);
        assert!(r.note.unwrap().contains("no reference"));
        let w = ClassWindow::new(2, 10, Err("bad length".into()));
        assert!(w.reading().note.unwrap().contains("bad length"));
    }
}
