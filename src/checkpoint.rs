//! Checkpoint and resume: an optimizer's state in a safetensors file.
//!
//! Tensors are named `state.<tensor index>.<slot>` (torch.optim's slot names, e.g.
//! `state.3.exp_avg`) and, when asked, `param.<tensor index>`; all F32, shape `[len]`.
//! A tensor with 8-bit state ([`crate::StateFormat`]) has `state.<i>.<slot>.codes` (U8,
//! `[len]`) and `state.<i>.<slot>.absmax` (F32, one per block) instead: saved as they are,
//! so a resumed run requantizes from the same bytes. With loss scaling, `scaler` (F32,
//! `[5]`) holds the device's scale, growth tracker, found_inf, and executed and skipped
//! step counts.
//! The header's metadata holds the format version, the rule, the step count, every param
//! group's hyperparameters and lr schedule, the gradient clipping, and the tensor layout. Loading checks all of
//! it against the optimizer it loads into (built the same way as the one saved) and
//! refuses any difference with an error that names it, so a resumed run continues
//! bit-identically or not at all.
//!
//! Writes are atomic: a temporary file in the same directory, flushed to disk, renamed
//! over the target. A crash mid-save leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::context::BufferRange;
use crate::error::{Error, Result};
use crate::rules::UpdateRule;
use crate::scheduler::Optimizer;

const FORMAT: &str = "gpu-optim-checkpoint";
const VERSION: &str = "1";
/// safetensors' own header limit; a file larger than its tensors plus this is refused
/// before it is read.
const MAX_HEADER: u64 = 100 << 20;

/// The safetensors dtype of an element type.
fn st_dtype(d: crate::Dtype) -> Dtype {
    match d {
        crate::Dtype::F32 => Dtype::F32,
        crate::Dtype::F16 => Dtype::F16,
        crate::Dtype::Bf16 => Dtype::BF16,
    }
}

fn err(path: &Path, why: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        why: why.into(),
    }
}

impl<R: UpdateRule> Optimizer<R> {
    /// What a checkpoint of this optimizer must say, key by key.
    fn checkpoint_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("version".into(), VERSION.into());
        m.insert("rule".into(), self.groups[0].kernel().name.into());
        m.insert("slots".into(), self.groups[0].state_slots().join(","));
        m.insert("groups".into(), self.groups.len().to_string());
        for (i, g) in self.groups.iter().enumerate() {
            // A schedule moves the group's lr every step; the base lr is what identifies it.
            let mut g = g.clone();
            if let Some((base, _)) = &self.schedules[i] {
                g.set_lr(*base);
            }
            // Debug prints f64 in shortest round-trip form: equal strings, equal values.
            m.insert(format!("group.{i}"), format!("{g:?}"));
            m.insert(format!("schedule.{i}"), format!("{:?}", self.schedules[i]));
        }
        let layout: Vec<String> = self
            .tensors
            .iter()
            .map(|t| format!("{}:{}", t.group, t.param.len))
            .collect();
        m.insert("tensors".into(), layout.join(","));
        m.insert("grad_clip".into(), format!("{:?}", self.clip));
        m.insert("state_format".into(), format!("{:?}", self.state_format));
        m.insert("grad_scaler".into(), format!("{:?}", self.scaler));
        m.insert(
            "stochastic_rounding".into(),
            format!("{:?}", self.stochastic),
        );
        m
    }

    /// Saves the state (every slot of every tensor), the step count, hyperparameters, lr
    /// schedules and layout to `path`, atomically. With `with_params`, the parameters too
    /// (torch keeps those in the model's state_dict; here they may live anywhere).
    pub fn save(&mut self, path: impl AsRef<Path>, with_params: bool) -> Result<()> {
        let path = path.as_ref();
        self.prepare()?;
        let slots = self.groups[0].state_slots();
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut dtypes = Vec::new();
        if self.scaler.is_some() {
            let w = self.scaler_words()?;
            blobs.push(("scaler".into(), bytemuck::cast_slice(&w).to_vec()));
            dtypes.push(Dtype::F32);
        }
        for i in 0..self.tensors.len() {
            let id = crate::TensorId(i);
            for (k, slot) in slots.iter().enumerate() {
                if self.is_quantized(id) {
                    let (codes, absmax) = self.read_state_q8(id, k)?;
                    blobs.push((format!("state.{i}.{slot}.codes"), codes));
                    dtypes.push(Dtype::U8);
                    blobs.push((
                        format!("state.{i}.{slot}.absmax"),
                        bytemuck::cast_slice(&absmax).to_vec(),
                    ));
                    dtypes.push(Dtype::F32);
                    continue;
                }
                let v = self.read_state(id, k)?;
                blobs.push((
                    format!("state.{i}.{slot}"),
                    bytemuck::cast_slice(&v).to_vec(),
                ));
                dtypes.push(Dtype::F32);
            }
            if self.has_master(id) {
                let v = self.read_params(id)?;
                blobs.push((format!("master.{i}"), bytemuck::cast_slice(&v).to_vec()));
                dtypes.push(Dtype::F32);
            }
            if with_params {
                let (b, dt) = self.param_bytes(id)?;
                blobs.push((format!("param.{i}"), b));
                dtypes.push(st_dtype(dt));
            }
        }
        let views = blobs
            .iter()
            .zip(&dtypes)
            .map(|((name, b), &dt)| {
                let n = b.len() * 8 / dt.bitsize();
                TensorView::new(dt, vec![n], b).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| err(path, e.to_string()))?;
        let mut meta = self.checkpoint_metadata();
        meta.insert("step".into(), self.t.to_string());
        let bytes =
            safetensors::serialize(views, Some(meta)).map_err(|e| err(path, e.to_string()))?;

        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let name = path
            .file_name()
            .ok_or_else(|| err(path, "not a file path"))?;
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
            err(path, e.to_string())
        })
    }

    /// Restores what [`Optimizer::save`] wrote into this optimizer, which must have been
    /// built the same way (rule, groups, schedules, tensors in the same order). Refuses
    /// any difference, a truncated or corrupt file, or a version it does not know, before
    /// changing anything. Parameters are restored too if the file has them.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.prepare()?;
        let slots = self.groups[0].state_slots();
        let elems: u64 = self.tensors.iter().map(|t| t.param.len as u64).sum();
        let most = elems * 4 * (slots.len() as u64 + 2) + MAX_HEADER;
        let size = std::fs::metadata(path)
            .map_err(|e| err(path, e.to_string()))?
            .len();
        if size > most {
            return Err(err(
                path,
                format!("{size} bytes, more than this optimizer's state can take ({most})"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| err(path, e.to_string()))?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| err(path, e.to_string()))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| err(path, "no metadata: not a gpu-optim checkpoint"))?;

        let want = self.checkpoint_metadata();
        for key in [
            "format",
            "version",
            "rule",
            "slots",
            "groups",
            "tensors",
            "grad_clip",
            "state_format",
            "grad_scaler",
            "stochastic_rounding",
        ] {
            let (got, exp) = (meta.get(key), &want[key]);
            if got != Some(exp) {
                return Err(err(
                    path,
                    format!("{key} is {got:?} in the file, {exp:?} in this optimizer"),
                ));
            }
        }
        for i in 0..self.groups.len() {
            for key in [format!("group.{i}"), format!("schedule.{i}")] {
                let (got, exp) = (meta.get(&key), &want[&key]);
                if got != Some(exp) {
                    return Err(err(
                        path,
                        format!("{key} differs: file {got:?}, optimizer {exp:?}"),
                    ));
                }
            }
        }
        let step: u64 = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(path, "missing or malformed step"))?;

        // Every tensor checked before anything is written to the device.
        let get_as = |name: &str, dt: Dtype, len: usize, required: bool| -> Result<Option<&[u8]>> {
            match st.tensor(name) {
                Ok(v) if v.dtype() == dt && v.shape() == [len] => Ok(Some(v.data())),
                Ok(v) => Err(err(
                    path,
                    format!(
                        "{name} is {:?} {:?}, expected {dt:?} [{len}]",
                        v.dtype(),
                        v.shape()
                    ),
                )),
                Err(_) if !required => Ok(None),
                Err(_) => Err(err(path, format!("{name} missing"))),
            }
        };
        let get = |name: &str, len: usize, required: bool| get_as(name, Dtype::F32, len, required);
        let mut writes: Vec<(BufferRange, &[u8])> = Vec::new();
        let mut q8_writes: Vec<(usize, usize, &[u8], &[u8])> = Vec::new();
        let mut param_writes: Vec<(usize, &[u8])> = Vec::new();
        for i in 0..self.tensors.len() {
            let len = self.tensors[i].param.len;
            for (k, slot) in slots.iter().enumerate() {
                if self.is_quantized(crate::TensorId(i)) {
                    let blocks = len.div_ceil(crate::quant::BLOCK);
                    let codes = get_as(&format!("state.{i}.{slot}.codes"), Dtype::U8, len, true)?;
                    let absmax = get(&format!("state.{i}.{slot}.absmax"), blocks, true)?;
                    q8_writes.push((i, k, codes.expect("required"), absmax.expect("required")));
                    continue;
                }
                let data = get(&format!("state.{i}.{slot}"), len, true)?.expect("required");
                writes.push((self.state(crate::TensorId(i), k)?, data));
            }
            let pd = self.tensors[i].dtypes.0;
            if self.has_master(crate::TensorId(i)) {
                let data = get(&format!("master.{i}"), len, true)?.expect("required");
                writes.push((self.master(crate::TensorId(i))?, data));
            }
            if let Some(data) = get_as(&format!("param.{i}"), st_dtype(pd), len, false)? {
                param_writes.push((i, data));
            }
        }
        let scaler = match self.scaler {
            Some(_) => {
                let w = get("scaler", 5, true)?.expect("required");
                let w: Vec<f32> = bytemuck::pod_collect_to_vec(w);
                // Counts and a scale the device could have produced, nothing else.
                let count = |x: f32| x >= 0.0 && x <= (1u32 << 24) as f32 && x.fract() == 0.0;
                let valid = w[0].is_finite() && w[0] > 0.0 && w[1..].iter().all(|&x| count(x));
                if !valid || w[4] > w[3] || w[3] as u64 > step {
                    return Err(err(
                        path,
                        format!("scaler words {w:?} are not a valid state"),
                    ));
                }
                Some([w[0], w[1], w[2], w[3], w[4]])
            }
            None => None,
        };
        let known = self.tensors.len() * (2 * slots.len() + 2) + 1;
        if st.len() > known {
            return Err(err(
                path,
                format!("{} tensors, at most {known} expected", st.len()),
            ));
        }
        for (range, data) in writes {
            let v: Vec<f32> = bytemuck::pod_collect_to_vec(data);
            self.ctx.upload(&range, &v)?;
        }
        for (i, data) in param_writes {
            self.write_param_bytes(crate::TensorId(i), data)?;
        }
        if let Some(w) = scaler {
            self.set_scaler_words(w)?;
        }
        for (i, k, codes, absmax) in q8_writes {
            let a: Vec<f32> = bytemuck::pod_collect_to_vec(absmax);
            self.write_state_q8(crate::TensorId(i), k, codes, &a)?;
        }
        self.t = step;
        Ok(())
    }
}
