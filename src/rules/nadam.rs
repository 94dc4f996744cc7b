//! NAdam — torch.optim.NAdam (`torch/optim/nadam.py`, `_single_tensor_nadam`); Dozat 2016,
//! "Incorporating Nesterov Momentum into Adam", with torch's momentum-decay schedule.
//!
//! With `g` the gradient (negated if `maximize`):
//! ```text
//! decoupled:  θ ← θ·(1 − lr·wd)      else  g ← g + wd·θ
//! μ_t = β1·(1 − ½·0.96^(t·ψ)),  Π_t = Π_{t−1}·μ_t          (ψ = momentum_decay; host)
//! m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²
//! d = √(v / (1 − β2^t)) + eps
//! θ ← θ − lr·(1 − μ_t)/(1 − Π_t) · g/d − lr·μ_{t+1}/(1 − Π_t·μ_{t+1}) · m/d
//! ```
//! torch keeps the running product Π (`mu_product`) as an f32 tensor; so does the host
//! here (recomputed from step 1, O(t) multiplications per step and group), so the scalars
//! match torch's bit for bit. Kernel: `shaders/nadam.wgsl`.

use super::{check, check_adam_like, decay, flag, lerp_flag, moments, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.NAdam hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NAdam {
    /// Learning rate (torch default 2e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the moment averages.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: L2 into the gradient, or decoupled (NAdamW) if `decoupled_weight_decay`.
    pub weight_decay: f64,
    /// ψ in the momentum schedule μ_t = β1·(1 − ½·0.96^(t·ψ)).
    pub momentum_decay: f64,
    /// Decay the weights directly instead of adding wd·θ to the gradient.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for NAdam {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl NAdam {
    fn mu(&self, t: u64) -> f64 {
        self.betas.0 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * self.momentum_decay))
    }
}

impl UpdateRule for NAdam {
    fn name(&self) -> String {
        if self.decoupled_weight_decay {
            "nadamw".into()
        } else {
            "nadam".into()
        }
    }

    fn validate(&self) -> Result<()> {
        check_adam_like("nadam", self.lr, self.eps, self.betas, self.weight_decay)?;
        check(
            "nadam",
            "momentum_decay",
            self.momentum_decay,
            self.momentum_decay >= 0.0,
            "momentum_decay >= 0",
        )
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot == 1
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "nadam",
            source: include_str!("../../shaders/nadam.wgsl"),
            two_phase: false,
            // Flags: maximize, decoupled, lerp's formula.
            branch_words: &[9, 10, 11],
            // Tested against 0 before use: weight_decay.
            zero_words: &[7],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let mut mu_product = 1.0f32;
        for k in 1..=t {
            mu_product *= self.mu(k) as f32;
        }
        let (mu, mu_next) = (self.mu(t), self.mu(t + 1));
        let mu_product_next = mu_product as f64 * mu_next;
        let mut h = [0f32; 16];
        h[0] = (-self.lr * (1.0 - mu) / (1.0 - mu_product as f64)) as f32;
        h[1] = ((-self.lr * mu_next) / (1.0 - mu_product_next)) as f32;
        h[2] = (1.0 - b2.powf(t as f64)) as f32;
        h[3] = self.eps as f32;
        h[4] = (1.0 - b1) as f32;
        h[5] = b2 as f32;
        h[6] = (1.0 - b2) as f32;
        h[7] = self.weight_decay as f32;
        h[8] = (1.0 - self.lr * self.weight_decay) as f32;
        h[9] = flag(self.maximize);
        h[10] = flag(self.decoupled_weight_decay);
        h[11] = lerp_flag(h[4]);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (p, g) = decay(p, g, h[7], h[8], h[10], h[9]);
        moments(s, g, h[4], h[5], h[6]);
        let denom = (s[1] / h[2]).sqrt() + h[3];
        let p = p + h[0] * g / denom;
        p + h[1] * s[0] / denom
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, lerp 3, v 4, div 3, sqrt 3, eps 1, two addcdiv 2 x (1 + 3 + 1).
        26
    }
}
