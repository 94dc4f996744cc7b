//! What goes in this step's uniform slot? The per-step scalars of every group (one
//! candidate per possible skip count with loss scaling), the header, and the control words
//! of clipping and the loss scaler, as bytes. Pure: the device writes the bytes
//! (`device/record.rs`); nothing here names a buffer.

use crate::clip::GradClip;
use crate::error::{Error, Result};
use crate::kernel::MAX_LAG;
use crate::rules::{Hyper, UpdateRule};
use crate::scaler::GradScaler;

/// Bytes of a staging slot after the scalars: clipping's words (aux[0..2]) then the loss
/// scaler's settings (aux[10..14]).
pub(crate) const STAGE_CONTROL: u64 = 8;
pub(crate) const STAGE_SCALER: u64 = 16;

/// The shape of the uniform slot: `groups_p2` scalars per candidate, `lag` candidates
/// (0: no loss scaling, one candidate), a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotShape {
    pub groups_p2: u32,
    pub lag: u32,
    /// Bytes of the uniform binding.
    pub hyper_size: u64,
}

impl SlotShape {
    /// The slot for `groups` param groups under a uniform binding limit of `max_uniform`
    /// bytes. Per-group scalars are a uniform array sized to a power of two (fewer
    /// pipelines). With loss scaling, `lag` candidates per slot, which must cover every
    /// step of a submission not yet acknowledged (`ring` steps). Errors: too many groups
    /// or steps per submission for the limit.
    pub fn new(groups: usize, scaler: bool, ring: u32, max_uniform: u64) -> Result<Self> {
        let groups_p2 = (groups as u32).next_power_of_two();
        let hsize = std::mem::size_of::<Hyper>() as u64;
        let room = (max_uniform / hsize).saturating_sub(1);
        let lag = match scaler {
            false => 0,
            true => {
                let lag = (room / groups_p2 as u64).min(MAX_LAG as u64) as u32;
                if lag <= ring {
                    return Err(Error::InvalidState(format!(
                        "loss scaling with {groups} param groups and {ring} steps per \
                         submission needs {} candidate scalars per step; the uniform limit \
                         allows {lag}: use fewer steps per submission",
                        ring + 1
                    )));
                }
                lag
            }
        };
        let hyper_size = (groups_p2 as u64 * lag.max(1) as u64 + 1) * hsize;
        if hyper_size > max_uniform {
            return Err(Error::InvalidState(format!(
                "{groups} param groups need {hyper_size} bytes of uniforms; this device \
                 allows {max_uniform}"
            )));
        }
        Ok(SlotShape {
            groups_p2,
            lag,
            hyper_size,
        })
    }

    /// Bytes of one staging slot: the scalars and the control words, 16-aligned.
    pub fn stage_stride(&self) -> u64 {
        (self.hyper_size + STAGE_CONTROL + STAGE_SCALER).div_ceil(16) * 16
    }
}

/// What one step's slot says.
pub(crate) struct StepScalars<'a, R> {
    pub rules: &'a [R],
    /// The step being recorded (1-based).
    pub t: u64,
    /// Skips the host knows of, and how many more candidates may be needed (loss scaling).
    pub skipped: u64,
    pub reach: u64,
    /// Stochastic rounding's seed (bf16 params) and 8-bit state's stochastic seed.
    pub sr_seed: Option<u32>,
    pub q8_seed: Option<u32>,
    pub clip: Option<GradClip>,
    pub scaler: Option<GradScaler>,
}

impl<R: UpdateRule> StepScalars<'_, R> {
    /// Writes the slot's bytes into `bytes` (cleared first): candidate j of group g at
    /// `j * groups_p2 + g` holds the rule's scalars for step t − skipped − j (the lr
    /// follows the steps called, t); then the header (a.x the skips assumed for candidate
    /// 0, a.y stochastic rounding's step key, a.z 8-bit state's); then clipping's words
    /// (max_norm, value; 0 when off) and the scaler's (on, growth_factor, backoff_factor,
    /// growth_interval). `scratch` is reused storage.
    pub fn write(&self, shape: &SlotShape, scratch: &mut Vec<Hyper>, bytes: &mut Vec<u8>) {
        let t = self.t;
        let gp2 = shape.groups_p2 as usize;
        scratch.clear();
        let header = gp2 * shape.lag.max(1) as usize;
        scratch.resize(header + 1, [0.0; 16]);
        if let Some(seed) = self.sr_seed {
            scratch[header][1] = f32::from_bits(crate::half::step_key(t, seed));
        }
        if let Some(seed) = self.q8_seed {
            scratch[header][2] = f32::from_bits(crate::half::step_key(t, seed));
        }
        for (g, rule) in self.rules.iter().enumerate() {
            for j in 0..=self.reach {
                if let Some(tr) = t.checked_sub(self.skipped + j).filter(|&x| x >= 1) {
                    scratch[j as usize * gp2 + g] = rule.hyper(tr);
                }
            }
        }
        scratch[header][0] = self.skipped as f32;
        bytes.clear();
        bytes.extend_from_slice(bytemuck::cast_slice(scratch));
        bytes.truncate(shape.hyper_size as usize);
        let c = self.clip.unwrap_or_default();
        let control = [c.max_norm.unwrap_or(0.0), c.value.unwrap_or(0.0)];
        bytes.extend_from_slice(bytemuck::cast_slice(&control));
        let sc = self.scaler.unwrap_or_default();
        let on = self.scaler.is_some() as u32 as f32;
        let words = [
            on,
            sc.growth_factor,
            sc.backoff_factor,
            sc.growth_interval as f32,
        ];
        bytes.extend_from_slice(bytemuck::cast_slice(&words));
    }
}
