//! Checkpoint and resume: an optimizer's state in a safetensors file (or bytes in memory).
//!
//! Tensors are named `state.<tensor index>.<slot>` (torch.optim's slot names, e.g.
//! `state.3.exp_avg`), `master.<i>` for 16-bit params' f32 master copy and, when asked,
//! `param.<i>`; F32 (params in their own type), shape `[len]`. A tensor with 8-bit state
//! ([`crate::StateFormat`]) has `state.<i>.<slot>.codes` (U8, `[len]`) and
//! `state.<i>.<slot>.absmax` (F32, one per block) instead: saved as they are, so a resumed
//! run requantizes from the same bytes. With loss scaling, `scaler` (F32, `[5]`) holds the
//! device's scale, growth tracker, found_inf, and executed and skipped step counts.
//!
//! The header's metadata (format version 2) holds
//! - the structure: the rule family and its state slots, the tensor layout (group, length
//!   and element types of each), the state format and stochastic rounding. Loading refuses
//!   any difference, naming it.
//! - the settings: every group's hyperparameters (JSON, the lr its next step uses), its lr
//!   schedule with the steps taken and its `initial_lr`, the gradient clipping and the loss
//!   scaler. Loading restores them, as torch's `load_state_dict` restores `param_groups`
//!   ([`LoadMode::Restore`]); [`LoadMode::Strict`] refuses any difference instead.
//! - the step count, and a CRC-32 of every tensor's bytes: a flipped bit is refused.
//!
//! Version-1 files (written before settings were restored) still load, strictly: their
//! settings must equal the optimizer's, and a scheduled group's next lr is the one version
//! 1 would have used (tests/checkpoint_formats.rs loads files that version wrote). They have no
//! checksums.
//!
//! Writes are atomic: a temporary file in the same directory, flushed to disk, renamed
//! over the target. A crash mid-save leaves the previous checkpoint intact.

mod load;
mod v1;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::clip::GradClip;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use crate::registry::GroupSchedule;
use crate::rules::UpdateRule;
use crate::scaler::GradScaler;
use crate::schedule::LrSchedule;

const FORMAT: &str = "gpu-optim-checkpoint";
const VERSION: &str = "2";
/// safetensors' own header limit; a file larger than its tensors plus this is refused
/// before it is read.
const MAX_HEADER: u64 = 100 << 20;

/// How [`Optimizer::load_with`] and [`Optimizer::load_bytes`] treat settings (hyperparameters, schedules, clipping, loss
/// scaler) that differ between the checkpoint and the optimizer. The structure (rule
/// family, state slots, tensors, element types, state format) must match either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadMode {
    /// Take the checkpoint's settings, as torch's `load_state_dict` does (the default,
    /// and what [`Optimizer::load`] does).
    #[default]
    Restore,
    /// Refuse any difference in the settings. Where a schedule runs, the lr compared is
    /// the group's initial one (the running lr is state, not a setting): the file's
    /// running lr is taken, even one set by hand.
    Strict,
}

/// The safetensors dtype of an element type.
fn st_dtype(d: crate::Dtype) -> Dtype {
    match d {
        crate::Dtype::F32 => Dtype::F32,
        crate::Dtype::F16 => Dtype::F16,
        crate::Dtype::Bf16 => Dtype::BF16,
    }
}

fn err(path: &str, why: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        why: why.into(),
    }
}

/// Refuses a checkpoint whose metadata `key` differs from what this optimizer wants.
fn require_equal(
    meta: &HashMap<String, String>,
    want: &HashMap<String, String>,
    key: &str,
    path: &str,
) -> Result<()> {
    let (got, exp) = (meta.get(key), &want[key]);
    if got == Some(exp) {
        return Ok(());
    }
    Err(err(
        path,
        format!(
            "{key} is {} in the file, {exp} in this optimizer",
            got.map_or("missing", String::as_str)
        ),
    ))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("settings serialize")
}

/// A group's schedule as saved.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSchedule {
    schedule: Option<LrSchedule>,
    steps: u64,
    initial_lr: Option<f64>,
}

impl<R: UpdateRule> Optimizer<R> {
    /// The structure a checkpoint must match, key by key.
    fn structure_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("version".into(), VERSION.into());
        m.insert("rule".into(), self.groups[0].kernel().name.into());
        m.insert("slots".into(), self.groups[0].state_slots().join(","));
        m.insert("groups".into(), self.groups.len().to_string());
        let layout: Vec<String> = self
            .tensors
            .iter()
            .map(|t| {
                format!(
                    "{}:{}:{:?}:{:?}",
                    t.group, t.param.len, t.dtypes.0, t.dtypes.1
                )
            })
            .collect();
        m.insert("tensors".into(), layout.join(","));
        m.insert("state_format".into(), json(&self.settings.state_format));
        m.insert(
            "stochastic_rounding".into(),
            json(&self.settings.stochastic),
        );
        m
    }

    /// The settings a checkpoint restores.
    fn settings_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for (i, g) in self.groups.iter().enumerate() {
            m.insert(format!("group.{i}"), json(g));
            let s = &self.schedules[i];
            let saved = SavedSchedule {
                schedule: s.running.as_ref().map(|r| r.0.clone()),
                steps: s.running.as_ref().map_or(0, |r| r.1),
                initial_lr: s.initial_lr,
            };
            m.insert(format!("schedule.{i}"), json(&saved));
        }
        m.insert("grad_clip".into(), json(&self.settings.clip));
        m.insert("grad_scaler".into(), json(&self.settings.scaler));
        m
    }

    /// Group `i`'s hyperparameters as [`LoadMode::Strict`] compares them: with its initial
    /// lr where a schedule runs (the running lr is state, not a setting).
    fn strict_group(rule: &R, sched: &GroupSchedule) -> String {
        let mut g = rule.clone();
        if let (Some(_), Some(lr)) = (&sched.running, sched.initial_lr) {
            g.set_lr(lr);
        }
        json(&g)
    }

    /// Saves the state (every slot of every tensor), the step count, the settings and the
    /// layout to `path`, atomically. With `with_params`, the parameters too (torch keeps
    /// those in the model's state_dict; here they may live anywhere). Waits for the GPU.
    pub fn save(&mut self, path: impl AsRef<Path>, with_params: bool) -> Result<()> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let bytes = self.checkpoint_bytes(with_params, &shown)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let name = path
            .file_name()
            .ok_or_else(|| err(&shown, "not a file path"))?;
        let tmp = dir.unwrap_or(Path::new(".")).join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(d) = dir {
                // Make the rename itself durable; not every platform can open a directory.
                let _ = std::fs::File::open(d).and_then(|d| d.sync_all());
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(&shown, e.to_string())
        })
    }

    /// What [`Optimizer::save`] writes, as bytes in memory (a safetensors file).
    pub fn save_bytes(&mut self, with_params: bool) -> Result<Vec<u8>> {
        self.checkpoint_bytes(with_params, "<bytes>")
    }

    fn checkpoint_bytes(&mut self, with_params: bool, path: &str) -> Result<Vec<u8>> {
        self.prepare()?;
        let slots = self.groups[0].state_slots();
        let mut blobs: Vec<(String, Vec<u8>, Dtype)> = Vec::new();
        if self.settings.scaler.is_some() {
            let w = self.scaler_words()?;
            blobs.push((
                "scaler".into(),
                bytemuck::cast_slice(&w).to_vec(),
                Dtype::F32,
            ));
        }
        for i in 0..self.tensors.len() {
            let id = crate::TensorId(i);
            for (k, slot) in slots.iter().enumerate() {
                if self.is_quantized(id) {
                    let (codes, absmax) = self.read_state_q8(id, k)?;
                    blobs.push((format!("state.{i}.{slot}.codes"), codes, Dtype::U8));
                    let a = bytemuck::cast_slice(&absmax).to_vec();
                    blobs.push((format!("state.{i}.{slot}.absmax"), a, Dtype::F32));
                    continue;
                }
                let v = self.read_state(id, k)?;
                let b = bytemuck::cast_slice(&v).to_vec();
                blobs.push((format!("state.{i}.{slot}"), b, Dtype::F32));
            }
            if self.has_master(id) {
                let v = self.read_params(id)?;
                let b = bytemuck::cast_slice(&v).to_vec();
                blobs.push((format!("master.{i}"), b, Dtype::F32));
            }
            if with_params {
                let (b, dt) = self.param_bytes(id)?;
                blobs.push((format!("param.{i}"), b, st_dtype(dt)));
            }
        }
        let checksums: HashMap<&str, u32> = blobs
            .iter()
            .map(|(n, b, _)| (n.as_str(), crc32fast::hash(b)))
            .collect();
        let views = blobs
            .iter()
            .map(|(name, b, dt)| {
                let n = b.len() * 8 / dt.bitsize();
                TensorView::new(*dt, vec![n], b).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| err(path, e.to_string()))?;
        let mut meta = self.structure_metadata();
        meta.extend(self.settings_metadata());
        meta.insert("step".into(), self.t.to_string());
        meta.insert("checksums".into(), json(&checksums));
        safetensors::serialize(views, Some(meta)).map_err(|e| err(path, e.to_string()))
    }

    /// Restores what [`Optimizer::save`] wrote into this optimizer, which must have the
    /// same structure (rule family, state slots, tensors in the same order with the same
    /// lengths and element types, state format); the checkpoint's settings replace the
    /// optimizer's ([`LoadMode::Restore`]). Refuses a structural difference, a checksum
    /// that does not match, a truncated or corrupt file, or a version it does not know,
    /// before changing anything (an unprepared optimizer is prepared first). Parameters
    /// are restored too if the file has them. Clipping and loss scaling add passes: an
    /// optimizer already prepared must have them on or off as the checkpoint has.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load_with(path, LoadMode::Restore)
    }

    /// [`Optimizer::load`] with the given treatment of settings.
    pub fn load_with(&mut self, path: impl AsRef<Path>, mode: LoadMode) -> Result<()> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let most = self.most_checkpoint_bytes();
        let size = std::fs::metadata(path)
            .map_err(|e| err(&shown, e.to_string()))?
            .len();
        if size > most {
            return Err(err(
                &shown,
                format!("{size} bytes, more than this optimizer's state can take ({most})"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| err(&shown, e.to_string()))?;
        self.restore(&bytes, mode, &shown)
    }

    /// [`Optimizer::load_with`] from bytes in memory ([`Optimizer::save_bytes`]).
    pub fn load_bytes(&mut self, bytes: &[u8], mode: LoadMode) -> Result<()> {
        let most = self.most_checkpoint_bytes();
        if bytes.len() as u64 > most {
            return Err(err(
                "<bytes>",
                format!(
                    "{} bytes, more than this optimizer's state can take ({most})",
                    bytes.len()
                ),
            ));
        }
        self.restore(bytes, mode, "<bytes>")
    }

    fn most_checkpoint_bytes(&self) -> u64 {
        let slots = self.groups[0].state_slots().len() as u64;
        let elems: u64 = self.tensors.iter().map(|t| t.param.len as u64).sum();
        elems * 4 * (slots + 2) + MAX_HEADER
    }
}

/// A checkpoint's settings, parsed and checked.
struct Settings<R> {
    groups: Vec<R>,
    schedules: Vec<GroupSchedule>,
    clip: Option<GradClip>,
    scaler: Option<GradScaler>,
}
