//! RAdam — torch.optim.RAdam (`torch/optim/radam.py`, `_single_tensor_radam`); Liu et al.
//! 2020, "On the Variance of the Adaptive Learning Rate and Beyond".
//!
//! With `g` the gradient (negated if `maximize`):
//! ```text
//! decoupled:  θ ← θ·(1 − lr·wd)      else  g ← g + wd·θ
//! m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²
//! ρ∞ = 2/(1 − β2) − 1;  ρ_t = ρ∞ − 2t·β2^t/(1 − β2^t)                      (host)
//! ρ_t > 5:  r = √((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t))
//!           θ ← θ − m/(1 − β1^t) · lr · (1/(√v + eps)) · √(1 − β2^t) · r
//! else:     θ ← θ − m/(1 − β1^t) · lr                          (SGD with momentum)
//! ```
//! The switch on ρ_t is made on the host per step. Kernel: `shaders/radam.wgsl`.

use super::{check_adam_like, decay, flag, lerp_flag, moments, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.RAdam hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RAdam {
    /// Learning rate (torch default 1e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the moment averages.
    pub betas: (f64, f64),
    /// Added to √v.
    pub eps: f64,
    /// Weight decay: L2 into the gradient, or decoupled if `decoupled_weight_decay`.
    pub weight_decay: f64,
    /// Decay the weights directly (RAdamW) instead of adding wd·θ to the gradient.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for RAdam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl UpdateRule for RAdam {
    fn name(&self) -> String {
        if self.decoupled_weight_decay {
            "radamw".into()
        } else {
            "radam".into()
        }
    }

    fn validate(&self) -> Result<()> {
        check_adam_like("radam", self.lr, self.eps, self.betas, self.weight_decay)
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot == 1
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "radam",
            source: include_str!("../../shaders/radam.wgsl"),
            two_phase: false,
            // Flags: maximize, decoupled, lerp's formula.
            branch_words: &[9, 10, 13],
            // Tested against 0 before use: weight_decay.
            zero_words: &[7],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let tf = t as f64;
        let bc1 = 1.0 - b1.powf(tf);
        let bc2 = 1.0 - b2.powf(tf);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * tf * b2.powf(tf) / bc2;
        let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt();
        let mut h = [0f32; 16];
        h[0] = bc1 as f32;
        h[1] = self.lr as f32;
        h[2] = bc2.sqrt() as f32;
        h[3] = self.eps as f32;
        h[4] = (1.0 - b1) as f32;
        h[5] = b2 as f32;
        h[6] = (1.0 - b2) as f32;
        h[7] = self.weight_decay as f32;
        h[8] = (1.0 - self.lr * self.weight_decay) as f32;
        h[9] = flag(self.maximize);
        h[10] = flag(self.decoupled_weight_decay);
        h[11] = flag(rho_t > 5.0);
        h[12] = if rho_t > 5.0 { rect as f32 } else { 0.0 };
        h[13] = lerp_flag(h[4]);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (p, g) = decay(p, g, h[7], h[8], h[10], h[9]);
        moments(s, g, h[4], h[5], h[6]);
        let mut a = s[0] / h[0] * h[1];
        if h[11] != 0.0 {
            // torch computes `bc2_sqrt / x` as `x.reciprocal() * bc2_sqrt`.
            a = a * (1.0 / (s[1].sqrt() + h[3]) * h[2]) * h[12];
        }
        p - a
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, lerp 3, v 4, div 3, lr 1, sqrt 3, eps 1, recip 3, 3 mul, sub 1.
        24
    }
}
