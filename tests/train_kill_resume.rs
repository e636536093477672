//! Fault injection on training (issue 12): the real `edgeloop train pretrain` binary is
//! SIGKILLed, resumed with `--resume`, and its final weights, optimizer moments and training
//! state must be bitwise equal to an uninterrupted run's.
//!
//! The kills are tied to what the child has written, not to a timer: the test polls the
//! checkpoint folder and kills the child (SIGKILL, `Child::kill`) the moment a new checkpoint
//! appears (or, in the second invocation, the moment a checkpoint is caught half-written, if
//! the poll sees one). Which step the child is at when the signal lands varies with the
//! scheduler; every assertion holds for any such step.
//!
//! A torn checkpoint write (a disk that lost the tail of a file, or a non-atomic writer killed
//! mid-write) is simulated deterministically: after the second kill the newest checkpoint's
//! weights are truncated and a half-written temporary checkpoint folder is left behind;
//! `checkpoint::latest` must refuse the torn one and fall back to the previous valid one, and
//! the resumed run must still end bitwise equal.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgeloop_trainer::candle_core::Device;
use edgeloop_trainer::checkpoint;
use edgeloop_trainer::tokenizer::{CharConfig, Tokenizer};

const STEPS: usize = 60;
const CHECKPOINT_EVERY: usize = 4;

/// SplitMix64: seeded training texts.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn workdir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("train_kill_resume");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test folder");
    d
}

/// Training data, tokenizer and a tiny GPT config in `dir`.
fn inputs(dir: &Path) {
    let words = [
        "turn", "on", "the", "light", "play", "some", "music", "what", "is", "weather", "off",
        "lamp", "next", "song", "rain", "today",
    ];
    let mut rng = SplitMix(42);
    let texts: Vec<String> = (0..200)
        .map(|_| {
            let n = 3 + rng.below(5) as usize;
            (0..n)
                .map(|_| words[rng.below(words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let jsonl = |ts: &[String]| -> String {
        ts.iter()
            .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
            .collect()
    };
    std::fs::write(dir.join("train.jsonl"), jsonl(&texts[..160])).unwrap();
    std::fs::write(dir.join("val.jsonl"), jsonl(&texts[160..])).unwrap();
    let tok = Tokenizer::train_char(
        texts.iter(),
        &CharConfig {
            max_vocab: 48,
            min_frequency: 1,
        },
    )
    .unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    let cfg = serde_json::json!({
        "arch": "gpt", "vocab_size": tok.vocab_size(), "n_layer": 2, "n_head": 2,
        "n_embd": 32, "block_size": 32
    });
    std::fs::write(dir.join("gpt.json"), cfg.to_string()).unwrap();
}

fn train(dir: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgeloop"));
    c.arg("--json")
        .args(["train", "pretrain", "--config"])
        .arg(dir.join("gpt.json"))
        .arg("--tokenizer")
        .arg(dir.join("tokenizer.json"))
        .arg("--train")
        .arg(dir.join("train.jsonl"))
        .arg("--val")
        .arg(dir.join("val.jsonl"))
        .arg("--out")
        .arg(out)
        .args(["--steps", &STEPS.to_string()])
        .args(["--batch-size", "4", "--seq-len", "24", "--eval-every", "20"])
        .args(["--checkpoint-every", &CHECKPOINT_EVERY.to_string()])
        .args(["--seed", "7", "--resume"])
        .env("RAYON_NUM_THREADS", "2")
        .env("CANDLE_NUM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Step numbers of the finished checkpoint folders (`step-NNNNNN`) under `root`, ascending.
fn steps(root: &Path) -> Vec<usize> {
    let mut v: Vec<usize> = std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_prefix("step-")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Inode of each finished checkpoint folder under `root`, by step. The writer replaces a
/// folder by rename, so a checkpoint written again gets a new inode: a run that really resumed
/// from step `s` leaves every folder up to `s` as it was (one that silently restarted from
/// scratch would end bitwise equal too, but rewrite them).
fn inodes(root: &Path) -> BTreeMap<usize, u64> {
    steps(root)
        .into_iter()
        .map(|s| {
            let p = root.join(format!("step-{s:06}"));
            let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (s, m.ino())
        })
        .collect()
}

/// Asserts that the checkpoints up to step `upto` in `before` are untouched in `root`.
fn kept(root: &Path, before: &BTreeMap<usize, u64>, upto: usize) {
    let now = inodes(root);
    for (s, ino) in before.range(..=upto) {
        assert_eq!(
            now.get(s),
            Some(ino),
            "checkpoint step {s} was rewritten: the run did not resume from step {upto}"
        );
    }
}

/// Whether a checkpoint is being written under `root` right now (the writer's temporary folder).
fn writing(root: &Path) -> bool {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with(".step-") && n.contains(".tmp-")
            })
        })
        .unwrap_or(false)
}

fn step_of(dir: &Path) -> usize {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    name.strip_prefix("step-")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{} is no step-N checkpoint", dir.display()))
}

fn finish(child: Child) -> (std::process::ExitStatus, String) {
    let out = child.wait_with_output().expect("waiting for edgeloop");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one invocation and SIGKILLs it as soon as `kill_now(root)` says so. Returns the
/// child's stderr and whether the kill was triggered by a half-written checkpoint. Panics if
/// the child exits on its own first (the test gives it tens of steps of slack).
fn run_and_kill(cmd: &mut Command, root: &Path, kill_now: impl Fn(&Path) -> bool) -> String {
    let mut child = cmd.spawn().expect("starting edgeloop");
    let start = Instant::now();
    loop {
        if kill_now(root) {
            // `Child::kill` sends SIGKILL on Unix: no handler, no cleanup.
            child.kill().expect("SIGKILL");
            let (status, stderr) = finish(child);
            assert_eq!(status.code(), None, "killed by a signal: {stderr}");
            return stderr;
        }
        if let Some(status) = child.try_wait().expect("polling edgeloop") {
            let (_, err) = finish(child);
            panic!("edgeloop exited ({status}) before the kill point: {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "an invocation ran for 2 minutes"
        );
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every tensor of a safetensors file as raw f32 bits, by name.
fn bits(p: &Path) -> HashMap<String, Vec<u32>> {
    checkpoint::load_tensors(p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .into_iter()
        .map(|(n, t)| {
            let v = t
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .unwrap_or_else(|e| panic!("{n} in {}: {e}", p.display()));
            (n, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (a_bits, b_bits) = (bits(a), bits(b));
    assert!(!a_bits.is_empty(), "{} holds no tensors", a.display());
    let mut names: Vec<&String> = a_bits.keys().collect();
    names.sort();
    assert_eq!(
        names,
        {
            let mut n: Vec<&String> = b_bits.keys().collect();
            n.sort();
            n
        },
        "tensor names of {} and {}",
        a.display(),
        b.display()
    );
    for n in names {
        assert!(
            a_bits[n] == b_bits[n],
            "tensor {n} of {} differs bitwise from the uninterrupted run's",
            a.display()
        );
    }
}

#[test]
fn sigkill_then_resume_is_bitwise_equal_and_a_torn_checkpoint_falls_back() {
    let dir = workdir();
    inputs(&dir);

    // The uninterrupted run.
    let reference = dir.join("uninterrupted");
    let r = train(&dir, &reference).output().expect("running edgeloop");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).expect("--json report");
    assert_eq!(report["steps"], STEPS);

    let out = dir.join("interrupted");
    let root = out.join("checkpoints");

    // 1. SIGKILL the moment the first checkpoint folder appears.
    run_and_kill(&mut train(&dir, &out), &root, |r| !steps(r).is_empty());
    let first = checkpoint::latest(&root)
        .expect("latest after the first kill")
        .expect("a checkpoint to resume from");
    assert!(step_of(&first) < STEPS);

    // 2. Resume; SIGKILL when a checkpoint is caught half-written (once two finished ones
    // exist, for the fallback below), or at the latest when two new checkpoints have appeared.
    let before = steps(&root).len();
    let round1 = inodes(&root);
    let stderr = run_and_kill(&mut train(&dir, &out), &root, |r| {
        let n = steps(r).len();
        (writing(r) && n >= 2) || n >= before + 2
    });
    assert!(
        !stderr.contains("refused checkpoint"),
        "nothing was damaged yet: {stderr}"
    );
    let caught_mid_write = writing(&root);
    kept(&root, &round1, step_of(&first));
    let done = steps(&root);
    assert!(done.len() >= 2, "checkpoints after two kills: {done:?}");
    assert!(*done.last().unwrap() < STEPS);

    // 3. A torn write of the newest checkpoint: its weights lose their second half (what a
    // disk that lost unflushed data, or a writer without the rename protocol, leaves), and a
    // writer killed half-way left its temporary folder behind.
    let newest = root.join(format!("step-{:06}", done.last().unwrap()));
    let weights = newest.join(checkpoint::MODEL_FILE);
    let b = read(&weights);
    std::fs::write(&weights, &b[..b.len() / 2]).unwrap();
    let stale = root.join(format!(".step-{:06}.tmp-999999", STEPS));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(checkpoint::MODEL_FILE), &b[..b.len() / 3]).unwrap();

    let err = checkpoint::verify(&newest).expect_err("a torn checkpoint verifies");
    assert!(
        err.to_string().contains(checkpoint::MODEL_FILE),
        "the refusal names the torn file: {err}"
    );
    let fallback = checkpoint::latest(&root)
        .expect("latest with a torn newest checkpoint")
        .expect("a previous valid checkpoint");
    assert_ne!(fallback, newest);
    assert!(step_of(&fallback) < step_of(&newest));
    checkpoint::verify(&fallback).expect("the fallback verifies");

    // 4. Resume to the end: the torn checkpoint is refused on stderr and training goes on from
    // the previous one (which stays as it was; the torn one is written again).
    let round2 = inodes(&root);
    let r = train(&dir, &out).output().expect("running edgeloop");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(
        stderr.contains("refused checkpoint") && stderr.contains(&newest.display().to_string()),
        "the torn checkpoint was not reported as refused: {stderr}"
    );
    assert!(
        !stale.exists(),
        "the stale temporary folder was left behind"
    );
    kept(&root, &round2, step_of(&fallback));
    assert_ne!(
        inodes(&root).get(&step_of(&newest)),
        round2.get(&step_of(&newest)),
        "the torn checkpoint was not written again"
    );
    checkpoint::verify(&newest).expect("the rewritten checkpoint verifies");

    // Bitwise equal to the uninterrupted run.
    let last = |o: &Path| o.join("checkpoints").join(format!("step-{STEPS:06}"));
    for f in [checkpoint::MODEL_FILE, checkpoint::OPTIMIZER_FILE] {
        assert_same_tensors(&last(&out).join(f), &last(&reference).join(f));
    }
    let state = |o: &Path| -> serde_json::Value {
        serde_json::from_slice(&read(&last(o).join(checkpoint::STATE_FILE))).unwrap()
    };
    assert_eq!(state(&out), state(&reference), "final training state");
    assert_same_tensors(
        &out.join("model").join(checkpoint::MODEL_FILE),
        &reference.join("model").join(checkpoint::MODEL_FILE),
    );
    assert!(
        read(&out.join("model").join(checkpoint::MODEL_FILE))
            == read(&reference.join("model").join(checkpoint::MODEL_FILE)),
        "final model file differs byte-wise"
    );
    let a: serde_json::Value = serde_json::from_slice(&read(&out.join("report.json"))).unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&read(&reference.join("report.json"))).unwrap();
    for k in ["steps", "final_train_loss", "eval_losses", "best_eval_loss"] {
        assert_eq!(a[k], b[k], "report field {k}");
    }
    println!(
        "killed at first checkpoint (resumable from step {}), then at {} (newest step {}); \
         torn step {} refused, resumed from step {}",
        step_of(&first),
        if caught_mid_write {
            "a half-written checkpoint"
        } else {
            "the second new checkpoint"
        },
        done.last().unwrap(),
        step_of(&newest),
        step_of(&fallback)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
