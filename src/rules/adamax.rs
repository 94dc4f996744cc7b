//! Adamax — torch.optim.Adamax (`torch/optim/adamax.py`, `_single_tensor_adamax`); the
//! infinity-norm variant of Adam from Kingma & Ba 2015, section 7.
//!
//! With `g` the gradient (negated if `maximize`, plus `weight_decay·θ`):
//! ```text
//! m ← lerp(m, g, 1 − β1)
//! u ← max(β2·u, |g| + eps)            (torch.maximum: NaN if either is)
//! θ ← θ − (lr / (1 − β1^t)) · m / u
//! ```
//! Kernel: `shaders/adamax.wgsl`.

use super::{check_adam_like, flag, grad_in, lerp, lerp_flag, max_nan, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.Adamax hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adamax {
    /// Learning rate (torch default 2e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the first moment and the infinity norm.
    pub betas: (f64, f64),
    /// Added to |g| before the max.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Adamax {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl UpdateRule for Adamax {
    fn name(&self) -> String {
        "adamax".into()
    }

    fn validate(&self) -> Result<()> {
        check_adam_like("adamax", self.lr, self.eps, self.betas, self.weight_decay)
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot == 1
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_inf"]
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "adamax",
            source: include_str!("../../shaders/adamax.wgsl"),
            two_phase: false,
            // Flags: maximize, lerp's formula.
            branch_words: &[5, 6],
            // Tested against 0 before use: weight_decay.
            zero_words: &[4],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let clr = self.lr / (1.0 - b1.powf(t as f64));
        let mut h = [0f32; 16];
        h[0] = -clr as f32;
        h[1] = (1.0 - b1) as f32;
        h[2] = b2 as f32;
        h[3] = self.eps as f32;
        h[4] = self.weight_decay as f32;
        h[5] = flag(self.maximize);
        h[6] = lerp_flag(h[1]);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let g = grad_in(g, p, h[4], h[5]);
        s[0] = lerp(s[0], g, h[1]);
        s[1] = max_nan(s[1] * h[2], g.abs() + h[3]);
        p + h[0] * s[0] / s[1]
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, lerp 3, u 2, mul 1, div 3, add 1.
        12
    }
}
