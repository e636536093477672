//! Checkpoints: a folder holding `model.safetensors`, `config.json` (model config, JSON),
//! `optimizer.safetensors` (AdamW moments) and `state.json` (step, RNG position, early-stopping
//! and loss history, training config).
//!
//! Writing is atomic: the folder is written under a temporary name, then renamed into place;
//! an existing checkpoint of the same name is moved aside first and removed only after the
//! rename, and the `latest` pointer file is itself replaced by rename.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{de::DeserializeOwned, Serialize};

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
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let weights: HashMap<String, Tensor> = params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    save_tensors(&tmp.join(MODEL_FILE), &weights)?;
    write_json(&tmp.join(CONFIG_FILE), config)?;
    if let Some(opt) = optimizer {
        save_tensors(&tmp.join(OPTIMIZER_FILE), &opt.state_tensors())?;
    }
    if let Some(s) = state {
        write_json(&tmp.join(STATE_FILE), s)?;
    }
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if dir.exists() {
        fs::rename(dir, &old).map_err(io(dir))?;
    }
    fs::rename(&tmp, dir).map_err(io(dir))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Records `dir` as the latest checkpoint of `root` (atomic pointer file).
pub fn mark_latest(root: &Path, dir: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = root.join(format!(".{LATEST_FILE}.tmp-{}", std::process::id()));
    fs::write(&tmp, name).map_err(io(&tmp))?;
    let dst = root.join(LATEST_FILE);
    fs::rename(&tmp, &dst).map_err(io(&dst))
}

/// The latest checkpoint folder under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let p = root.join(LATEST_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let name = fs::read_to_string(&p).map_err(io(&p))?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err(TrainerError::config(
            "latest",
            format!("{} names no checkpoint folder", p.display()),
        ));
    }
    Ok(Some(root.join(name)))
}

/// Loads a checkpoint folder.
pub fn load<C: DeserializeOwned, S: DeserializeOwned>(
    dir: &Path,
    device: &Device,
) -> Result<Loaded<C, S>> {
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
        fs::remove_dir_all(&root).unwrap();
    }
}
