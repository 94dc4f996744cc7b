//! RMSprop — torch.optim.RMSprop (`torch/optim/rmsprop.py`, `_single_tensor_rmsprop`);
//! Hinton's lecture 6e, centered form from Graves 2013.
//!
//! With `g` the gradient (negated if `maximize`, plus `weight_decay·θ`):
//! ```text
//! v ← α·v + (1 − α)·g²
//! centered:  ḡ ← lerp(ḡ, g, 1 − α);  avg = √(v − ḡ²)     else  avg = √v
//! avg ← avg + eps                                        (eps outside the root)
//! momentum μ > 0:  b ← μ·b + g/avg;  θ ← θ − lr·b        else  θ ← θ − lr·g/avg
//! ```
//! Kernel: `shaders/rmsprop.wgsl`.

use super::{check, flag, grad_in, lerp, lerp_flag, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.RMSprop hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RmsProp {
    /// Learning rate (torch default 1e-2).
    pub lr: f64,
    /// Smoothing constant α of the squared-gradient average.
    pub alpha: f64,
    /// Added to the root for numerical stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (0 = none, no buffer).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the second moment.
    pub centered: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl UpdateRule for RmsProp {
    fn name(&self) -> String {
        let mut n = String::from("rmsprop");
        if self.centered {
            n.push_str("-centered");
        }
        if self.momentum != 0.0 {
            n.push_str("-momentum");
        }
        n
    }

    fn validate(&self) -> Result<()> {
        check("rmsprop", "lr", self.lr, self.lr >= 0.0, "lr >= 0")?;
        check(
            "rmsprop",
            "alpha",
            self.alpha,
            self.alpha >= 0.0,
            "alpha >= 0",
        )?;
        check("rmsprop", "eps", self.eps, self.eps >= 0.0, "eps >= 0")?;
        check(
            "rmsprop",
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "weight_decay >= 0",
        )?;
        check(
            "rmsprop",
            "momentum",
            self.momentum,
            self.momentum >= 0.0,
            "momentum >= 0",
        )
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot == 0
    }

    fn state_slots(&self) -> &'static [&'static str] {
        match (self.centered, self.momentum != 0.0) {
            (false, false) => &["square_avg"],
            (false, true) => &["square_avg", "momentum_buffer"],
            (true, false) => &["square_avg", "grad_avg"],
            (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
        }
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "rmsprop",
            source: include_str!("../../shaders/rmsprop.wgsl"),
            two_phase: false,
            // Flags: maximize, centered, lerp's formula.
            branch_words: &[5, 7, 8],
            // Tested against 0 before use: weight_decay, momentum.
            zero_words: &[4, 6],
            one_words: &[],
        }
    }

    fn hyper(&self, _t: u64) -> Hyper {
        let mut h = [0f32; 16];
        h[0] = -self.lr as f32;
        h[1] = self.alpha as f32;
        h[2] = (1.0 - self.alpha) as f32;
        h[3] = self.eps as f32;
        h[4] = self.weight_decay as f32;
        h[5] = flag(self.maximize);
        h[6] = self.momentum as f32;
        h[7] = flag(self.centered);
        h[8] = lerp_flag(h[2]);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (neg_lr, alpha, one_minus_alpha, eps) = (h[0], h[1], h[2], h[3]);
        let (momentum, centered) = (h[6], h[7]);
        let g = grad_in(g, p, h[4], h[5]);
        s[0] = s[0] * alpha + one_minus_alpha * g * g;
        // Slot after square_avg: grad_avg when centered, then momentum_buffer.
        let buf = if centered != 0.0 { 2 } else { 1 };
        let mut avg = if centered != 0.0 {
            s[1] = lerp(s[1], g, one_minus_alpha);
            (s[0] + -s[1] * s[1]).sqrt()
        } else {
            s[0].sqrt()
        };
        avg += eps;
        if momentum > 0.0 {
            s[buf] = s[buf] * momentum + g / avg;
            p + neg_lr * s[buf]
        } else {
            p + neg_lr * g / avg
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, v 4, centered lerp 3 + 2, sqrt 3, eps 1, momentum 1 + div 3 + 1, step 2.
        22
    }
}
