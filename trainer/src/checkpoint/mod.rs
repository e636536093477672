//! Checkpoints: a folder holding `model.safetensors`, `config.json` (model config, JSON),
//! `optimizer.safetensors` (AdamW moments) and `state.json` (step, RNG position, early-stopping
//! and loss history, training config).
//!
//! Writing is atomic and durable: the folder is written under a temporary name, every file
//! and then a `manifest.json` (length and XXH3 digest of each file, [`manifest`]) are flushed
//! to disk, and the folder is renamed into place (the parent folder flushed after); an existing
//! checkpoint of the same name is moved aside first and removed only after the rename, and the
//! `latest` pointer file is itself replaced by rename. Earlier checkpoints are kept.
//!
//! Loading verifies the manifest first: a truncated or corrupted checkpoint is refused with an
//! error ([`TrainerError::Checkpoint`]). [`latest`] falls back to the newest earlier checkpoint
//! that verifies when the one `latest` names is refused (a process killed at any point, or a
//! disk that lost the last writes, leaves a resumable run).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{de::DeserializeOwned, Serialize};

pub mod manifest;

pub use manifest::{verify, MANIFEST_FILE};

use crate::models::Params;
use crate::optim::AdamW;
use crate::{Result, TrainerError};

/// File names inside a checkpoint folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// Model config file.
pub const CONFIG_FILE: &str = "config.json";
/// Optimizer moments file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Training state file.
pub const STATE_FILE: &str = "state.json";
/// Pointer file (in the checkpoints folder) naming the most recent checkpoint.
pub const LATEST_FILE: &str = "latest";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainerError + '_ {
    move |e| TrainerError::io(path, e)
}

/// Writes `value` as pretty JSON to `path` (not atomic by itself; used inside temp folders).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(value).map_err(|e| TrainerError::Json {
        path: path.into(),
        source: e,
    })?;
    fs::write(path, s).map_err(io(path))
}

/// Reads JSON from `path`, naming the file in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let s = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&s).map_err(|e| TrainerError::Json {
        path: path.into(),
        source: e,
    })
}

/// Saves `tensors` as safetensors at `path`.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    candle_core::safetensors::save(tensors, path).map_err(|e| match e {
        candle_core::Error::Io(io) => TrainerError::io(path, io),
        other => TrainerError::Candle(other),
    })
}

/// Loads a safetensors file onto `device`, naming the file in errors.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(TrainerError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    candle_core::safetensors::load(path, device).map_err(|e| TrainerError::Weights {
        name: path.display().to_string(),
        reason: format!("not a readable safetensors file: {e}"),
    })
}

/// Everything a checkpoint holds besides the weights.
#[derive(Debug)]
pub struct Loaded<C, S> {
    /// Parameters.
    pub params: Params,
    /// Model config.
    pub config: C,
    /// Optimizer moments (absent in weights-only checkpoints).
    pub optimizer: Option<HashMap<String, Tensor>>,
    /// Training state (absent in weights-only checkpoints).
    pub state: Option<S>,
}

/// Writes a checkpoint folder `dir` atomically.
pub fn save<C: Serialize, S: Serialize>(
    dir: &Path,
    params: &Params,
    config: &C,
    optimizer: Option<&AdamW>,
    state: Option<&S>,
) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .ok_or_else(|| {
            TrainerError::config(
                "checkpoint",
                format!("{} has no folder name", dir.display()),
            )
        })?
        .to_string_lossy()
        .to_string();
    // Temporary folders of writers killed earlier (any process id) are garbage.
    remove_stale(parent, &format!(".{name}.tmp-"))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let weights: HashMap<String, Tensor> = params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    save_tensors(&tmp.join(MODEL_FILE), &weights)?;
    write_json(&tmp.join(CONFIG_FILE), config)?;
    let mut files = vec![MODEL_FILE, CONFIG_FILE];
    if let Some(opt) = optimizer {
        save_tensors(&tmp.join(OPTIMIZER_FILE), &opt.state_tensors())?;
        files.push(OPTIMIZER_FILE);
    }
    if let Some(s) = state {
        write_json(&tmp.join(STATE_FILE), s)?;
        files.push(STATE_FILE);
    }
    manifest::seal(&tmp, &files)?;
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if dir.exists() {
        fs::rename(dir, &old).map_err(io(dir))?;
    }
    fs::rename(&tmp, dir).map_err(io(dir))?;
    manifest::sync_path(parent)?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Removes the entries of `parent` whose names start with `prefix` (leftovers of killed writers).
fn remove_stale(parent: &Path, prefix: &str) -> Result<()> {
    let entries = match fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) => return Err(TrainerError::io(parent, e)),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let p = entry.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Records `dir` as the latest checkpoint of `root` (atomic pointer file).
pub fn mark_latest(root: &Path, dir: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale(root, &format!(".{LATEST_FILE}.tmp-"))?;
    let tmp = root.join(format!(".{LATEST_FILE}.tmp-{}", std::process::id()));
    manifest::write_synced(&tmp, name.as_bytes())?;
    let dst = root.join(LATEST_FILE);
    fs::rename(&tmp, &dst).map_err(io(&dst))?;
    manifest::sync_path(root)
}

/// The folder the `latest` pointer of `root` names (not checked), if there is a pointer.
pub fn latest_pointer(root: &Path) -> Result<Option<PathBuf>> {
    let p = root.join(LATEST_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let name = fs::read_to_string(&p).map_err(io(&p))?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(TrainerError::config(
            "latest",
            format!("{} names no checkpoint folder", p.display()),
        ));
    }
    Ok(Some(root.join(name)))
}

/// Checkpoint folders refused while looking for one to resume from, each with the reason.
pub type Refusals = Vec<(PathBuf, TrainerError)>;

/// The checkpoint folders under `root` to resume from, best first: the one the `latest`
/// pointer names, then every `step-N` folder, highest step first.
fn candidates(root: &Path) -> Result<(Vec<PathBuf>, Refusals)> {
    let mut refused = Vec::new();
    let mut out = Vec::new();
    match latest_pointer(root) {
        Ok(Some(p)) => out.push(p),
        Ok(None) => {}
        Err(e) => refused.push((root.join(LATEST_FILE), e)),
    }
    let mut steps: Vec<(u64, PathBuf)> = match fs::read_dir(root) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n = name.strip_prefix("step-")?.parse::<u64>().ok()?;
                e.path().is_dir().then(|| (n, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(TrainerError::io(root, e)),
    };
    steps.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, p) in steps {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok((out, refused))
}

/// The newest checkpoint under `root` that verifies (see [`verify`]), and the ones refused
/// on the way with the reason. `None` when `root` holds no checkpoint at all.
pub fn latest_valid(root: &Path) -> Result<(Option<PathBuf>, Refusals)> {
    let (cands, mut refused) = candidates(root)?;
    for dir in cands {
        match verify(&dir) {
            Ok(()) => return Ok((Some(dir), refused)),
            Err(e) => refused.push((dir, e)),
        }
    }
    Ok((None, refused))
}

/// The checkpoint folder to resume from under `root`, if any: the one the `latest` pointer
/// names, or, when that one is refused (truncated, corrupted, missing), the newest earlier
/// `step-N` checkpoint that verifies. Each refusal is reported on stderr. Errors when
/// checkpoints exist but none verifies (never silently restarts from scratch).
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let (found, refused) = latest_valid(root)?;
    for (dir, e) in &refused {
        eprintln!(
            "edgeloop: refused checkpoint {}: {e}{}",
            dir.display(),
            match &found {
                Some(f) => format!("; using {}", f.display()),
                None => String::new(),
            }
        );
    }
    match found {
        Some(dir) => Ok(Some(dir)),
        None if refused.is_empty() => Ok(None),
        None => Err(TrainerError::Checkpoint {
            dir: root.into(),
            reason: format!(
                "no checkpoint here verifies ({} refused: {})",
                refused.len(),
                refused
                    .iter()
                    .map(|(d, e)| format!("{}: {e}", d.display()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }),
    }
}

/// Loads a checkpoint folder after verifying its manifest (a truncated or corrupted
/// checkpoint is refused with [`TrainerError::Checkpoint`]).
pub fn load<C: DeserializeOwned, S: DeserializeOwned>(
    dir: &Path,
    device: &Device,
) -> Result<Loaded<C, S>> {
    verify(dir)?;
    let tensors = load_tensors(&dir.join(MODEL_FILE), device)?;
    let config = read_json(&dir.join(CONFIG_FILE))?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let optimizer = if opt_path.exists() {
        Some(load_tensors(&opt_path, device)?)
    } else {
        None
    };
    let state_path = dir.join(STATE_FILE);
    let state = if state_path.exists() {
        Some(read_json(&state_path)?)
    } else {
        None
    };
    Ok(Loaded {
        params: Params::from_tensors(tensors, device)?,
        config,
        optimizer,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Init;

    #[test]
    fn save_load_round_trip_and_overwrite() {
        let root = std::env::temp_dir().join(format!("edgeloop-ckpt-{}", std::process::id()));
        let mut p = Params::new(1, &Device::Cpu);
        p.get("a.weight", &[2, 3], Init::Normal(1.0)).unwrap();
        let dir = root.join("step-1");
        save::<_, serde_json::Value>(&dir, &p, &serde_json::json!({"x": 1}), None, None).unwrap();
        save::<_, serde_json::Value>(&dir, &p, &serde_json::json!({"x": 2}), None, None).unwrap();
        mark_latest(&root, &dir).unwrap();
        assert_eq!(latest(&root).unwrap().unwrap(), dir);
        let l: Loaded<serde_json::Value, serde_json::Value> = load(&dir, &Device::Cpu).unwrap();
        assert_eq!(l.config["x"], 2);
        let a: Vec<Vec<f32>> = l
            .params
            .var("a.weight")
            .unwrap()
            .as_tensor()
            .to_vec2()
            .unwrap();
        assert_eq!(
            a,
            p.var("a.weight")
                .unwrap()
                .as_tensor()
                .to_vec2::<f32>()
                .unwrap()
        );
        assert!(l.optimizer.is_none() && l.state.is_none());
        // no temp folders left behind
        let names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.contains(".tmp-") && !n.contains(".old-")),
            "{names:?}"
        );
        // a corrupt weights file is an error naming it, not a panic
        fs::write(dir.join(MODEL_FILE), b"garbage").unwrap();
        let err = load::<serde_json::Value, serde_json::Value>(&dir, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains(MODEL_FILE), "{err}");
        // ... also without a manifest (older folders): the safetensors parser refuses it
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let err = load::<serde_json::Value, serde_json::Value>(&dir, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains(MODEL_FILE), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn latest_falls_back_to_the_newest_checkpoint_that_verifies() {
        let root = std::env::temp_dir().join(format!("edgeloop-ckpt-fb-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        assert_eq!(latest(&root).unwrap(), None);
        let mut p = Params::new(1, &Device::Cpu);
        p.get("a.weight", &[4, 4], Init::Normal(1.0)).unwrap();
        let cfg = serde_json::json!({"x": 1});
        for step in [5, 10, 15] {
            let dir = root.join(format!("step-{step:06}"));
            save::<_, serde_json::Value>(&dir, &p, &cfg, None, None).unwrap();
            mark_latest(&root, &dir).unwrap();
        }
        let s15 = root.join("step-000015");
        let s10 = root.join("step-000010");
        let s5 = root.join("step-000005");
        assert_eq!(latest(&root).unwrap().as_ref(), Some(&s15));
        // A killed writer's temporary folder is ignored and cleaned by the next save.
        fs::create_dir_all(root.join(".step-000020.tmp-999999")).unwrap();
        assert_eq!(latest(&root).unwrap().as_ref(), Some(&s15));
        // Truncated newest: refused (direct load errors), the previous one is used.
        let m = fs::read(s15.join(MODEL_FILE)).unwrap();
        fs::write(s15.join(MODEL_FILE), &m[..m.len() / 2]).unwrap();
        let err = load::<serde_json::Value, serde_json::Value>(&s15, &Device::Cpu).unwrap_err();
        assert!(matches!(err, TrainerError::Checkpoint { .. }), "{err}");
        let (found, refused) = latest_valid(&root).unwrap();
        assert_eq!(found.as_ref(), Some(&s10));
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, s15);
        // Corrupted one as well: back to step 5.
        let c = s10.join(CONFIG_FILE);
        let mut b = fs::read(&c).unwrap();
        b[2] ^= 0x01;
        fs::write(&c, b).unwrap();
        assert_eq!(latest(&root).unwrap().as_ref(), Some(&s5));
        // A pointer naming a missing folder, or garbage: the step folders still count.
        fs::write(root.join(LATEST_FILE), "step-000099").unwrap();
        assert_eq!(latest(&root).unwrap().as_ref(), Some(&s5));
        fs::write(root.join(LATEST_FILE), "../../etc").unwrap();
        assert_eq!(latest(&root).unwrap().as_ref(), Some(&s5));
        // Nothing verifies: an error, never a silent fresh start.
        fs::write(s5.join(MANIFEST_FILE), b"").unwrap();
        let err = latest(&root).unwrap_err().to_string();
        assert!(err.contains("no checkpoint here verifies"), "{err}");
        save::<_, serde_json::Value>(&root.join("step-000020"), &p, &cfg, None, None).unwrap();
        assert!(!root.join(".step-000020.tmp-999999").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
