//! Adadelta — torch.optim.Adadelta (`torch/optim/adadelta.py`, `_single_tensor_adadelta`);
//! Zeiler 2012.
//!
//! With `g` the gradient (negated if `maximize`, plus `weight_decay·θ`):
//! ```text
//! v ← ρ·v + (1 − ρ)·g²
//! Δ = √(u + eps) / √(v + eps) · g        (eps inside both roots)
//! u ← ρ·u + (1 − ρ)·Δ²                   (with the new Δ)
//! θ ← θ − lr·Δ
//! ```
//! Kernel: `shaders/adadelta.wgsl`.

use super::{check, flag, grad_in, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.Adadelta hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adadelta {
    /// Coefficient scaling Δ before it is applied (torch default 1.0).
    pub lr: f64,
    /// Decay ρ of the running averages.
    pub rho: f64,
    /// Added inside both square roots.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Adadelta {
    fn default() -> Self {
        Self {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl UpdateRule for Adadelta {
    fn name(&self) -> String {
        "adadelta".into()
    }

    fn validate(&self) -> Result<()> {
        check("adadelta", "lr", self.lr, self.lr >= 0.0, "lr >= 0")?;
        check(
            "adadelta",
            "rho",
            self.rho,
            (0.0..=1.0).contains(&self.rho),
            "0 <= rho <= 1",
        )?;
        check("adadelta", "eps", self.eps, self.eps >= 0.0, "eps >= 0")?;
        check(
            "adadelta",
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "weight_decay >= 0",
        )
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot <= 1
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["square_avg", "acc_delta"]
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "adadelta",
            source: include_str!("../../shaders/adadelta.wgsl"),
            two_phase: false,
            // Flags: maximize.
            branch_words: &[5],
            // Tested against 0 before use: weight_decay.
            zero_words: &[4],
            one_words: &[],
        }
    }

    fn hyper(&self, _t: u64) -> Hyper {
        let mut h = [0f32; 16];
        h[0] = -self.lr as f32;
        h[1] = self.rho as f32;
        h[2] = (1.0 - self.rho) as f32;
        h[3] = self.eps as f32;
        h[4] = self.weight_decay as f32;
        h[5] = flag(self.maximize);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (neg_lr, rho, one_minus_rho, eps) = (h[0], h[1], h[2], h[3]);
        let g = grad_in(g, p, h[4], h[5]);
        s[0] = s[0] * rho + one_minus_rho * g * g;
        let root = (s[0] + eps).sqrt();
        let delta = (s[1] + eps).sqrt() / root * g;
        s[1] = s[1] * rho + one_minus_rho * delta * delta;
        p + neg_lr * delta
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, v 4, sqrt(v+eps) 4, sqrt(u+eps) 4, div 3, mul 1, step 2.
        20
    }
}
