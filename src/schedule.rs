//! Learning-rate schedules, evaluated on the host once per step as torch.optim.lr_scheduler's
//! chainable `get_lr` does: each step's lr follows from the previous step's lr, so an lr
//! set by hand while a schedule runs is where the schedule continues from. The optimizer
//! writes the resulting lr into that step's scalars: nothing is rebuilt when it changes.
//!
//! Untouched, the chain equals the closed forms of [`LrSchedule::lr`] up to f64 rounding.

use crate::error::{Error, Result};

/// An lr schedule: lr at step `t` (1 on the first step) from the base lr.
///
/// Deviations from torch: `Cosine` holds `eta_min` after `t_max` (torch's chainable
/// `CosineAnnealingLR` rises again, periodically); `WarmupCosine` continues the chain from
/// the lr at the end of the warm-up (torch's `SequentialLR` restarts the cosine from the
/// initial lr, which differs only when the lr was set by hand during the warm-up).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// `ConstantLR` with factor 1: the base lr throughout.
    Constant,
    /// `StepLR`: lr · gamma^⌊(t−1) / step_size⌋.
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Decay factor.
        gamma: f64,
    },
    /// `CosineAnnealingLR` (closed form): η_min + (lr − η_min)(1 + cos(π·(t−1)/t_max))/2,
    /// held at η_min after t_max.
    Cosine {
        /// Steps of the half period.
        t_max: u64,
        /// Final lr.
        eta_min: f64,
    },
    /// `LinearLR` warm-up from 0 over `warmup` steps (lr·t/warmup), then cosine annealing
    /// to `eta_min` over the remaining `t_max − warmup` steps (the GPT-2/LLM recipe that
    /// torch builds with `SequentialLR(LinearLR, CosineAnnealingLR)`).
    WarmupCosine {
        /// Warm-up steps.
        warmup: u64,
        /// Total steps.
        t_max: u64,
        /// Final lr.
        eta_min: f64,
    },
}

impl LrSchedule {
    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: f64, why| Error::InvalidHyperparameter {
            rule: "lr_schedule",
            name,
            value,
            why,
        };
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    Err(bad("step_size", 0.0, "step_size >= 1"))
                } else if !(gamma.is_finite() && gamma >= 0.0) {
                    Err(bad("gamma", gamma, "gamma >= 0"))
                } else {
                    Ok(())
                }
            }
            LrSchedule::Cosine { t_max, eta_min }
            | LrSchedule::WarmupCosine { t_max, eta_min, .. } => {
                if t_max == 0 {
                    Err(bad("t_max", 0.0, "t_max >= 1"))
                } else if !(eta_min.is_finite() && eta_min >= 0.0) {
                    Err(bad("eta_min", eta_min, "eta_min >= 0"))
                } else if let LrSchedule::WarmupCosine { warmup, .. } = *self {
                    if warmup > t_max {
                        Err(bad("warmup", warmup as f64, "warmup <= t_max"))
                    } else {
                        Ok(())
                    }
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The lr of a schedule's first step when it starts on a group whose lr is `lr`
    /// (torch's scheduler constructor: `LinearLR` multiplies by its start factor, the
    /// others keep the lr).
    pub fn initial(&self, lr: f64) -> f64 {
        match *self {
            LrSchedule::WarmupCosine { warmup, .. } if warmup > 0 => lr / warmup as f64,
            LrSchedule::WarmupCosine {
                t_max: 0, eta_min, ..
            } => eta_min,
            _ => lr,
        }
    }

    /// The lr of the schedule's step `epoch` (0 is its first step; `epoch >= 1` here)
    /// from `lr`, the lr its step `epoch - 1` used: torch's chainable `get_lr`
    /// (`StepLR`: × gamma every `step_size` steps; `CosineAnnealingLR`: η_min + (lr −
    /// η_min)·(1 + cos(π·k/T)) / (1 + cos(π·(k−1)/T)); `LinearLR`: × (k+1)/k).
    pub fn next(&self, lr: f64, epoch: u64) -> f64 {
        use std::f64::consts::PI;
        // The cosine's step k (>= 1) of `n` from the lr of its step k - 1.
        let cosine = |lr: f64, k: u64, n: u64, eta_min: f64| {
            if k > n {
                lr // held after the end (its lr is η_min unless set by hand since)
            } else if k == n {
                eta_min
            } else {
                let (a, b) = (PI * k as f64 / n as f64, PI * (k - 1) as f64 / n as f64);
                eta_min + (lr - eta_min) * (1.0 + a.cos()) / (1.0 + b.cos())
            }
        };
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Step { step_size, gamma } => {
                if epoch % step_size.max(1) == 0 {
                    lr * gamma
                } else {
                    lr
                }
            }
            LrSchedule::Cosine { t_max, eta_min } => cosine(lr, epoch, t_max, eta_min),
            LrSchedule::WarmupCosine {
                warmup,
                t_max,
                eta_min,
            } => {
                if epoch < warmup {
                    lr * (epoch + 1) as f64 / epoch as f64
                } else if epoch == warmup {
                    // The cosine's first step: the warm-up's last lr, unless it has none.
                    if t_max == warmup {
                        eta_min
                    } else {
                        lr
                    }
                } else {
                    cosine(lr, epoch - warmup, t_max - warmup, eta_min)
                }
            }
        }
    }

    /// The lr for step `t` (1-based) given the base lr, in closed form. Total for any input; parameters
    /// [`LrSchedule::validate`] refuses give a meaningless but finite or NaN result.
    pub fn lr(&self, base: f64, t: u64) -> f64 {
        let cosine = |k: u64, n: u64, eta_min: f64| {
            if k >= n {
                eta_min
            } else {
                let c = (std::f64::consts::PI * k as f64 / n as f64).cos();
                eta_min + (base - eta_min) * (1.0 + c) / 2.0
            }
        };
        let k = t.saturating_sub(1);
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((k / step_size.max(1)).min(i32::MAX as u64) as i32)
            }
            LrSchedule::Cosine { t_max, eta_min } => cosine(k, t_max, eta_min),
            LrSchedule::WarmupCosine {
                warmup,
                t_max,
                eta_min,
            } => {
                if t <= warmup {
                    base * t as f64 / warmup as f64
                } else {
                    cosine(t - 1 - warmup, t_max.saturating_sub(warmup), eta_min)
                }
            }
        }
    }
}
