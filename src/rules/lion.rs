//! Lion — "Symbolic Discovery of Optimization Algorithms" (Chen et al. 2023, Algorithm 2);
//! the same update as optax's `lion` and bitsandbytes' Lion. Not in torch.optim: defaults
//! follow the paper's reference implementation (lr 1e-4, betas (0.9, 0.99), wd 0).
//!
//! With `g` the gradient (negated if `maximize`):
//! ```text
//! θ ← θ·(1 − lr·wd)                      (decoupled weight decay)
//! c = β1·m + (1 − β1)·g
//! θ ← θ − lr·sign(c)                     (torch.sign: 0 for ±0 and for NaN)
//! m ← β2·m + (1 − β2)·g                  (in lion-pytorch's order of operations)
//! ```
//! A NaN gradient makes c and m NaN: sign(c) = 0 does not move θ (then or later, but for
//! the decay), as in the paper's torch code and bitsandbytes, whose sign of NaN is 0;
//! optax's `jnp.sign` would make θ NaN.
//! One state slot, so 20 bytes per parameter per step. Kernel: `shaders/lion.wgsl`.

use super::{check, flag, grad_in, sign, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// Lion hyperparameters (paper / optax names: lr, betas, weight_decay).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lion {
    /// Learning rate; typically 3-10x smaller than AdamW's.
    pub lr: f64,
    /// (β1, β2): interpolation for the update's sign, decay of the momentum.
    pub betas: (f64, f64),
    /// Decoupled weight decay (typically 3-10x larger than AdamW's).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Lion {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl UpdateRule for Lion {
    fn name(&self) -> String {
        "lion".into()
    }

    fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        check("lion", "lr", self.lr, self.lr >= 0.0, "lr >= 0")?;
        check(
            "lion",
            "betas.0",
            b1,
            (0.0..=1.0).contains(&b1),
            "0 <= beta1 <= 1",
        )?;
        check(
            "lion",
            "betas.1",
            b2,
            (0.0..=1.0).contains(&b2),
            "0 <= beta2 <= 1",
        )?;
        check(
            "lion",
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "weight_decay >= 0",
        )
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["exp_avg"]
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "lion",
            source: include_str!("../../shaders/lion.wgsl"),
            two_phase: false,
            // Flags: decay on, maximize.
            branch_words: &[4, 5],
            zero_words: &[],
            one_words: &[],
        }
    }

    fn hyper(&self, _t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let mut h = [0f32; 16];
        h[0] = -self.lr as f32;
        h[1] = (1.0 - self.lr * self.weight_decay) as f32;
        h[2] = b1 as f32;
        h[3] = (1.0 - b1) as f32;
        h[4] = flag(self.weight_decay != 0.0);
        h[5] = flag(self.maximize);
        h[6] = b2 as f32;
        h[7] = (1.0 - b2) as f32;
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let g = grad_in(g, p, 0.0, h[5]);
        let p = if h[4] != 0.0 { p * h[1] } else { p };
        let c = s[0] * h[2] + h[3] * g;
        s[0] = s[0] * h[6] + h[7] * g;
        p + h[0] * sign(c)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // decay 1, c 3 (only its sign matters), step 2, momentum 3.
        9
    }
}
