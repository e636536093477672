//! Opens the HTML report in headless Chromium: the page must load every PNG plot (checked in
//! the DOM after load) and the screenshot, saved under the test's output folder, must show a
//! rendered page. Fails (does not skip) when Chromium is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgeloop_eval::report::sample_report;

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGELOOP_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!(
        "Chromium not found (tried $EDGELOOP_CHROMIUM, chromium, chromium-browser, google-chrome): \
         install the Debian package `chromium` (listed in scripts/apt-packages.txt)"
    );
}

/// Runs Chromium headless with a fresh profile; kills it after two minutes.
fn run_chromium(profile: &Path, extra: &[String], url: &str) -> Output {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start chromium");
    let id = child.id();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        if let Ok(out) = rx.try_recv() {
            return out.expect("chromium output");
        }
        if start.elapsed() > Duration::from_secs(120) {
            // Only the process we started.
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-html-report");
    let _ = std::fs::remove_dir_all(&out_dir);
    let written = sample_report()
        .expect("sample report")
        .write_all(&out_dir)
        .expect("report written");
    let html = std::fs::canonicalize(&written.html).expect("absolute path");
    let url = format!("file://{}", html.display());
    let n_plots = written.plots.len();
    assert!(
        n_plots >= 5,
        "sample report should have every plot, has {n_plots}"
    );

    // 1. Every <img> decoded: the page's load handler writes the count into the DOM.
    let profile = out_dir.join("chromium-profile-dom");
    let out = run_chromium(&profile, &["--dump-dom".to_string()], &url);
    let dom = String::from_utf8_lossy(&out.stdout);
    let want = format!("data-images-loaded=\"{n_plots}/{n_plots}\"");
    assert!(
        dom.contains(&want),
        "images did not all load (want {want}); status {}; stderr:\n{}\nDOM head: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        dom.chars().take(400).collect::<String>()
    );

    // 2. A screenshot of the page under the test's output folder.
    let shot = out_dir.join("screenshot.png");
    let profile = out_dir.join("chromium-profile-shot");
    let out = run_chromium(
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,6000".to_string(),
        ],
        &url,
    );
    assert!(
        shot.is_file(),
        "no screenshot at {}; status {}; stderr:\n{}",
        shot.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&shot).expect("screenshot decodes").to_rgb8();
    let total = (img.width() * img.height()) as f64;
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64;
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        non_white / total > 0.05 && colours.len() > 100,
        "screenshot {} looks blank: {:.1}% non-white pixels, {} colours",
        shot.display(),
        100.0 * non_white / total,
        colours.len()
    );
    println!("screenshot: {}", shot.display());
}
