//! Loading a checkpoint: the structure and checksums checked, the settings parsed (format
//! 2; format 1 through `v1.rs`), and everything restored or nothing.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors};

use super::{
    err, json, require_equal, st_dtype, LoadMode, SavedSchedule, Settings, FORMAT, VERSION,
};
use crate::clip::GradClip;
use crate::context::BufferRange;
use crate::error::Result;
use crate::optimizer::Optimizer;
use crate::registry::GroupSchedule;
use crate::rules::UpdateRule;
use crate::scaler::GradScaler;

impl<R: UpdateRule> Optimizer<R> {
    pub(super) fn restore(&mut self, bytes: &[u8], mode: LoadMode, path: &str) -> Result<()> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| err(path, e.to_string()))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| err(path, e.to_string()))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| err(path, "no metadata: not a gpu-optim checkpoint"))?;
        let got = |key: &str| meta.get(key).map(String::as_str);
        if got("format") != Some(FORMAT) {
            return Err(err(
                path,
                format!("format is {:?}, not {FORMAT:?}", got("format")),
            ));
        }
        let settings = match got("version") {
            Some(VERSION) => self.check_v2(meta, mode, path)?,
            Some("1") => self.check_v1(meta, path)?,
            v => {
                return Err(err(
                    path,
                    format!("version is {v:?}; this build reads 1 and 2"),
                ))
            }
        };
        let step: u64 = got("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(path, "missing or malformed step"))?;
        let checksums: Option<HashMap<String, u32>> = match got("checksums") {
            Some(c) => {
                Some(serde_json::from_str(c).map_err(|e| err(path, format!("checksums: {e}")))?)
            }
            None if got("version") == Some("1") => None,
            None => return Err(err(path, "checksums missing")),
        };
        // Clipping and loss scaling decide which passes a prepared optimizer runs.
        if self.is_prepared() {
            if settings.clip.is_some() != self.settings.clip.is_some() {
                return Err(err(
                    path,
                    format!(
                        "grad_clip is {:?} in the file, {:?} in this prepared optimizer \
                         (clipping on or off is fixed at the first step)",
                        settings.clip, self.settings.clip
                    ),
                ));
            }
            if settings.scaler.is_some() != self.settings.scaler.is_some() {
                return Err(err(
                    path,
                    format!(
                        "grad_scaler is {:?} in the file, {:?} in this prepared optimizer \
                         (loss scaling on or off is fixed at the first step)",
                        settings.scaler, self.settings.scaler
                    ),
                ));
            }
        }

        // Every tensor checked before anything is written to the device.
        let get_as = |name: &str, dt: Dtype, len: usize, required: bool| -> Result<Option<&[u8]>> {
            match st.tensor(name) {
                Ok(v) if v.dtype() == dt && v.shape() == [len] => {
                    if let Some(sums) = &checksums {
                        let crc = crc32fast::hash(v.data());
                        if sums.get(name) != Some(&crc) {
                            return Err(err(
                                path,
                                format!(
                                    "{name}: its bytes have checksum {crc:08x}, the file \
                                     says {} (corrupted)",
                                    sums.get(name).map_or("none".into(), |c| format!("{c:08x}"))
                                ),
                            ));
                        }
                    }
                    Ok(Some(v.data()))
                }
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
        let slots = self.groups[0].state_slots();
        let mut writes: Vec<(usize, Option<usize>, &[u8])> = Vec::new();
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
                writes.push((i, Some(k), data));
            }
            let pd = self.tensors[i].dtypes.0;
            if let Some(data) = get_as(&format!("param.{i}"), st_dtype(pd), len, false)? {
                param_writes.push((i, data));
            }
            if self.has_master(crate::TensorId(i)) {
                let data = get(&format!("master.{i}"), len, true)?.expect("required");
                writes.push((i, None, data));
            } else if st.tensor(&format!("master.{i}")).is_ok() {
                // A master copy for params that have none here: the file's params were 16-bit
                // (a version-1 layout does not say; saved without params, only this does).
                return Err(err(
                    path,
                    format!(
                        "master.{i} in the file: its params had an f32 master copy, \
                         this optimizer's ({pd:?}) have none"
                    ),
                ));
            }
        }
        let scaler = match settings.scaler {
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

        // Settings first (they decide the plan of an unprepared optimizer), then the state.
        let before = (
            self.groups.clone(),
            self.schedules.clone(),
            self.settings.clip,
            self.settings.scaler,
        );
        self.groups = settings.groups;
        self.schedules = settings.schedules;
        self.settings.clip = settings.clip;
        self.settings.scaler = settings.scaler;
        if let Err(e) = self.prepare() {
            (
                self.groups,
                self.schedules,
                self.settings.clip,
                self.settings.scaler,
            ) = before;
            return Err(e);
        }
        for (i, slot, data) in writes {
            let id = crate::TensorId(i);
            let range: BufferRange = match slot {
                Some(k) => self.state(id, k)?,
                None => self.master(id)?,
            };
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

    /// Version 2: the structure must match; the settings are parsed (and in strict mode
    /// compared).
    fn check_v2(
        &self,
        meta: &HashMap<String, String>,
        mode: LoadMode,
        path: &str,
    ) -> Result<Settings<R>> {
        let want = self.structure_metadata();
        for key in [
            "rule",
            "slots",
            "groups",
            "tensors",
            "state_format",
            "stochastic_rounding",
        ] {
            require_equal(meta, &want, key, path)?;
        }
        let field = |key: &str| {
            meta.get(key)
                .ok_or_else(|| err(path, format!("{key} missing")))
        };
        let parse_err = |key: &str, e: serde_json::Error| err(path, format!("{key}: {e}"));
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut schedules = Vec::with_capacity(self.groups.len());
        for i in 0..self.groups.len() {
            let key = format!("group.{i}");
            let g: R = serde_json::from_str(field(&key)?).map_err(|e| parse_err(&key, e))?;
            g.validate().map_err(|e| err(path, format!("{key}: {e}")))?;
            crate::registry::check_compatible(i, &g, &self.groups[0])
                .map_err(|e| err(path, format!("{key}: {e}")))?;
            let key = format!("schedule.{i}");
            let s: SavedSchedule =
                serde_json::from_str(field(&key)?).map_err(|e| parse_err(&key, e))?;
            if let Some(sched) = &s.schedule {
                sched
                    .validate()
                    .map_err(|e| err(path, format!("{key}: {e}")))?;
            }
            let s = GroupSchedule {
                running: s.schedule.map(|x| (x, s.steps)),
                initial_lr: s.initial_lr,
            };
            if mode == LoadMode::Strict {
                let (mine, theirs) = (
                    Self::strict_group(&self.groups[i], &self.schedules[i]),
                    Self::strict_group(&g, &s),
                );
                let kind = |x: &GroupSchedule| x.running.as_ref().map(|r| r.0.clone());
                if mine != theirs {
                    return Err(err(
                        path,
                        format!("group.{i} differs: file {theirs}, optimizer {mine}"),
                    ));
                }
                if kind(&s) != kind(&self.schedules[i]) {
                    return Err(err(
                        path,
                        format!(
                            "schedule.{i} differs: file {:?}, optimizer {:?}",
                            kind(&s),
                            kind(&self.schedules[i])
                        ),
                    ));
                }
            }
            groups.push(g);
            schedules.push(s);
        }
        let clip: Option<GradClip> =
            serde_json::from_str(field("grad_clip")?).map_err(|e| parse_err("grad_clip", e))?;
        let scaler: Option<GradScaler> =
            serde_json::from_str(field("grad_scaler")?).map_err(|e| parse_err("grad_scaler", e))?;
        if let Some(c) = &clip {
            crate::plan::settings::validate_clip(c)
                .map_err(|e| err(path, format!("grad_clip: {e}")))?;
        }
        if let Some(sc) = &scaler {
            sc.validate()
                .map_err(|e| err(path, format!("grad_scaler: {e}")))?;
        }
        if mode == LoadMode::Strict {
            for (key, theirs, mine) in [
                ("grad_clip", json(&clip), json(&self.settings.clip)),
                ("grad_scaler", json(&scaler), json(&self.settings.scaler)),
            ] {
                if theirs != mine {
                    return Err(err(
                        path,
                        format!("{key} is {theirs} in the file, {mine} in this optimizer"),
                    ));
                }
            }
        }
        Ok(Settings {
            groups,
            schedules,
            clip,
            scaler,
        })
    }
}
