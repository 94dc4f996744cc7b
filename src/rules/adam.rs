//! Adam and AdamW — torch.optim.Adam / torch.optim.AdamW (`torch/optim/adam.py`,
//! `_single_tensor_adam`); Kingma & Ba 2015, AMSGrad from Reddi et al. 2018, decoupled
//! weight decay from Loshchilov & Hutter 2019.
//!
//! With `g` the gradient (negated if `maximize`):
//! ```text
//! decoupled (AdamW):  θ ← θ·(1 − lr·wd)      else  g ← g + wd·θ
//! m ← lerp(m, g, 1 − β1)
//! v ← β2·v + (1 − β2)·g²
//! amsgrad:  v̂ ← max(v̂, v), used for v below     (on the uncorrected v; NaN if either is)
//! θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
//! ```
//! Bias corrections and step sizes are computed on the host in f64 per step.
//! Kernel: `shaders/adam.wgsl`.
//!
//! Deviation (rounding only): the last line is evaluated in Kingma & Ba's "more efficient
//! order" (section 2 of the paper), `θ ← θ + α_t · m / (√v + ε̂)` with
//! `α_t = −lr·√(1 − β2^t)/(1 − β1^t)` and `ε̂ = eps·√(1 − β2^t)`, both from the host in f64:
//! the same value in exact arithmetic as torch's `_single_tensor_adam` (multiply its
//! numerator and denominator by `√(1 − β2^t)`), with one division per element instead of
//! two, as bitsandbytes' and Burn's Adam compute it. Results may differ from torch's in
//! the last bits; `tests/torch_reference.rs` checks them against torch 2.15 within the
//! verifier's bound (over its 8 steps the params come out bit for bit equal).

use super::{check_adam_like, decay, flag, lerp_flag, max_nan, moments, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.Adam hyperparameters; `Default` equals torch's Adam defaults and
/// [`Adam::adamw`] torch's AdamW defaults (the same algorithm with
/// `decoupled_weight_decay`, as torch ≥ 2.6 defines AdamW).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adam {
    /// Learning rate (torch default 1e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the first and second moment averages.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Weight decay: L2 into the gradient, or decoupled if `decoupled_weight_decay`.
    pub weight_decay: f64,
    /// Keep the running maximum of v (AMSGrad).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
    /// Decay the weights directly (AdamW) instead of adding wd·θ to the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    }
}

impl Adam {
    /// torch.optim.AdamW's defaults: weight_decay 1e-2, decoupled.
    pub fn adamw() -> Self {
        Self {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Self::default()
        }
    }
}

impl UpdateRule for Adam {
    fn name(&self) -> String {
        let base = if self.decoupled_weight_decay {
            "adamw"
        } else {
            "adam"
        };
        if self.amsgrad {
            format!("{base}-amsgrad")
        } else {
            base.into()
        }
    }

    fn validate(&self) -> Result<()> {
        check_adam_like("adam", self.lr, self.eps, self.betas, self.weight_decay)
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot >= 1
    }

    fn state_slots(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "adam",
            source: include_str!("../../shaders/adam.wgsl"),
            two_phase: false,
            // Flags: maximize, decoupled, amsgrad, lerp's formula.
            branch_words: &[8, 9, 10, 11],
            // Tested against 0 before use: weight_decay.
            zero_words: &[3],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powf(t as f64);
        let bc2 = 1.0 - b2.powf(t as f64);
        let mut h = [0f32; 16];
        h[0] = -(self.lr * bc2.sqrt() / bc1) as f32;
        h[1] = (self.eps * bc2.sqrt()) as f32;
        h[3] = self.weight_decay as f32;
        h[4] = (1.0 - b1) as f32;
        h[5] = b2 as f32;
        h[6] = (1.0 - b2) as f32;
        h[7] = (1.0 - self.lr * self.weight_decay) as f32;
        h[8] = flag(self.maximize);
        h[9] = flag(self.decoupled_weight_decay);
        h[10] = flag(self.amsgrad);
        h[11] = lerp_flag(h[4]);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (neg_step, eps_hat, wd) = (h[0], h[1], h[3]);
        let (one_minus_b1, b2, one_minus_b2, decay_factor) = (h[4], h[5], h[6], h[7]);
        let (maximize, decoupled, amsgrad) = (h[8], h[9], h[10]);
        let (p, g) = decay(p, g, wd, decay_factor, decoupled, maximize);
        moments(s, g, one_minus_b1, b2, one_minus_b2);
        let v = if amsgrad != 0.0 {
            s[2] = max_nan(s[2], s[1]);
            s[2]
        } else {
            s[1]
        };
        let denom = v.sqrt() + eps_hat;
        p + neg_step * s[0] / denom
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // decay/wd 2, lerp 3, v 4, sqrt 3, eps 1, mul 1, div 3, add 1.
        18
    }
}
