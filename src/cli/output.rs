//! How a command talks: status lines and progress bars for people, `--quiet` for none,
//! `--json` for scripts (one JSON summary on stdout; status lines move to stderr so stdout parses).
//!
//! With both, stdout carries the JSON and nothing else is printed. `--quiet` and `--json` are
//! global flags: every subcommand takes them. Errors always go to
//! stderr and set a non-zero exit code, whatever the mode.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets the mode from the flags.
pub fn set(quiet: bool, json: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// Whether to draw progress bars (neither `--quiet` nor `--json`).
pub fn progress() -> bool {
    !QUIET.load(Ordering::Relaxed) && !json()
}

/// Whether `--json` is on.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Writes one status line: stdout normally, stderr under `--json`, nowhere under `--quiet`.
pub fn line(text: std::fmt::Arguments<'_>) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    if json() {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// Prints `value` as the command's JSON summary on stdout when `--json` is on.
pub fn summary<T: Serialize>(value: &T) -> anyhow::Result<()> {
    if json() {
        println!("{}", serde_json::to_string_pretty(value)?);
    }
    Ok(())
}

/// A progress bar of `len` units named `what`, with elapsed time, rate and ETA; hidden when
/// `show` is false (`--quiet`, `--json`, or a stage run without bars).
pub fn bar(show: bool, len: u64, what: &str, unit: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    let template = format!(
        "{what} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}"
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        b.set_style(style);
    }
    b
}

/// A status line (see [`line`]); takes `format!` arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bars_only_without_quiet_or_json() {
        for (quiet, json_on, bars) in [
            (false, false, true),
            (true, false, false),
            (false, true, false),
            (true, true, false),
        ] {
            set(quiet, json_on);
            assert_eq!((progress(), json()), (bars, json_on));
        }
        set(false, false);
    }
}
