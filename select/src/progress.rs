//! Progress of a selection step (an indicatif bar, or nothing when progress is off).

/// A bar over the items of one step; every method does nothing when progress is off.
pub(crate) struct Steps(Option<indicatif::ProgressBar>);

impl Steps {
    /// A bar of `len` items labelled `what`, shown only when `show`.
    pub(crate) fn new(show: bool, len: usize, what: &str) -> Self {
        Steps(show.then(|| {
            let b = indicatif::ProgressBar::new(len as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{what} {{bar:30}} {{pos}}/{{len}} {{msg}}"
                ))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        }))
    }

    /// Names the item now being worked on.
    pub(crate) fn start(&self, item: &str) {
        if let Some(b) = &self.0 {
            b.set_message(item.to_string());
        }
    }

    /// Counts one item done.
    pub(crate) fn done(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(self) {
        if let Some(b) = self.0 {
            b.finish_and_clear();
        }
    }
}
