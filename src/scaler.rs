//! Loss scaling and skipping non-finite steps on the device: torch's `GradScaler` with a
//! fused optimizer (`grad_scale` / `found_inf`), with no host read-back inside a step.
//!
//! Each step of an optimizer with a [`GradScaler`] ([`crate::Optimizer::set_grad_scaler`]):
//! 1. the reduction pass (the one clipping uses) reads every gradient, finds NaN/inf from
//!    their bits (WGSL may assume `x == x`), and sums the squares of the unscaled ones;
//! 2. a one-workgroup pass sets `found_inf` and counts the step as executed, and skipped
//!    if found;
//! 3. the update kernels return at once if `found_inf`: params and state untouched, and
//!    the optimizer's own step count (bias corrections) not advanced; else they multiply
//!    each gradient by 1/scale before clipping and the rule;
//! 4. a one-invocation pass updates the scale as `GradScaler.update` does: × backoff on
//!    a skipped step; × growth after `growth_interval` clean steps in a row.
//!
//! The step number a rule's scalars depend on is the device's (steps executed − skipped),
//! which the host does not know without reading back. So each step's slot of scalars
//! holds candidates for the last few possible step numbers and the kernel picks its own;
//! the host learns the device's counters asynchronously (a mapped copy per submission)
//! and only waits when it would run out of candidates. The lr schedule follows the steps
//! called, as torch's schedulers do when GradScaler skips.

use crate::error::Result;
use crate::rules::check;

/// torch.cuda.amp.GradScaler's settings; `Default` equals torch's.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradScaler {
    /// The first scale (torch: 2^16).
    pub init_scale: f32,
    /// Scale × this after `growth_interval` clean steps in a row (torch: 2.0).
    pub growth_factor: f32,
    /// Scale × this after a step with a non-finite gradient (torch: 0.5).
    pub backoff_factor: f32,
    /// Clean steps in a row before the scale grows (torch: 2000).
    pub growth_interval: u32,
}

impl Default for GradScaler {
    fn default() -> Self {
        Self {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl GradScaler {
    /// No loss scaling, only the skip: a step whose gradients hold an inf or NaN changes
    /// nothing. (torch's GradScaler requires growth > 1 and backoff < 1; a static scale of 1
    /// is this crate's addition.)
    pub fn skip_only() -> Self {
        Self {
            init_scale: 1.0,
            growth_factor: 1.0,
            backoff_factor: 1.0,
            growth_interval: 1,
        }
    }

    /// Checks the settings (1 is allowed for both factors: a static scale).
    pub fn validate(&self) -> Result<()> {
        let s = "grad_scaler";
        check(
            s,
            "init_scale",
            self.init_scale as f64,
            self.init_scale > 0.0,
            "> 0",
        )?;
        check(
            s,
            "growth_factor",
            self.growth_factor as f64,
            self.growth_factor >= 1.0,
            ">= 1",
        )?;
        check(
            s,
            "backoff_factor",
            self.backoff_factor as f64,
            self.backoff_factor > 0.0 && self.backoff_factor <= 1.0,
            "in (0, 1]",
        )?;
        check(
            s,
            "growth_interval",
            self.growth_interval as f64,
            self.growth_interval >= 1 && self.growth_interval < (1 << 24),
            "in [1, 2^24)",
        )
    }
}

/// The CPU twin of the device's scaler: the same unscale, check and scale update in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuGradScaler {
    /// Settings.
    pub config: GradScaler,
    /// The current scale.
    pub scale: f32,
    /// Clean steps in a row since the scale last changed.
    pub growth_tracker: u32,
}

impl CpuGradScaler {
    /// At `config.init_scale`.
    pub fn new(config: GradScaler) -> Self {
        Self {
            config,
            scale: config.init_scale,
            growth_tracker: 0,
        }
    }

    /// Multiplies every gradient by 1/scale (as the device: the f32 reciprocal, exact for
    /// power-of-two scales such as the defaults'); returns whether any was NaN or infinite
    /// before unscaling (torch's `found_inf`). The caller skips the step if so.
    pub fn unscale(&self, grads: &mut [Vec<f32>]) -> bool {
        let inv = 1.0 / self.scale;
        let mut found = false;
        for g in grads.iter_mut().flat_map(|v| v.iter_mut()) {
            found |= !g.is_finite();
            *g *= inv;
        }
        found
    }

    /// `GradScaler.update` (torch's `_amp_update_scale_`).
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= self.config.backoff_factor;
            self.growth_tracker = 0;
        } else {
            let n = self.growth_tracker + 1;
            if n >= self.config.growth_interval {
                let s = self.scale * self.config.growth_factor;
                if s.is_finite() {
                    self.scale = s;
                }
                self.growth_tracker = 0;
            } else {
                self.growth_tracker = n;
            }
        }
    }
}
