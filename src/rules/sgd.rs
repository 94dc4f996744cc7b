//! SGD (mini-batch gradient descent) with optional momentum and Nesterov momentum —
//! torch.optim.SGD (`torch/optim/sgd.py`, `_single_tensor_sgd`).
//!
//! With `g` the gradient (negated if `maximize`, plus `weight_decay·θ`):
//! ```text
//! if momentum μ ≠ 0:
//!     b ← g                      on the first step (no dampening, as torch)
//!     b ← μ·b + (1 − dampening)·g  afterwards
//!     g ← g + μ·b  if nesterov, else  g ← b
//! θ ← θ − lr·g
//! ```
//! Nesterov momentum in torch's form (Sutskever et al. 2013). Kernel: `shaders/sgd.wgsl`.

use super::{check, flag, grad_in, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.SGD hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sgd {
    /// Learning rate (torch default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (0 = plain SGD, no state).
    pub momentum: f64,
    /// Dampening τ applied to the gradient in the momentum update (not on step 1).
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum; needs momentum > 0 and dampening = 0.
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

impl UpdateRule for Sgd {
    fn name(&self) -> String {
        match (self.momentum != 0.0, self.nesterov) {
            (_, true) => "sgd-nesterov".into(),
            (true, false) => "sgd-momentum".into(),
            (false, false) => "sgd".into(),
        }
    }

    fn validate(&self) -> Result<()> {
        check("sgd", "lr", self.lr, self.lr >= 0.0, "lr >= 0")?;
        check(
            "sgd",
            "momentum",
            self.momentum,
            self.momentum >= 0.0,
            "momentum >= 0",
        )?;
        check("sgd", "dampening", self.dampening, true, "finite")?;
        check(
            "sgd",
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "weight_decay >= 0",
        )?;
        if self.nesterov {
            check(
                "sgd",
                "momentum",
                self.momentum,
                self.momentum > 0.0,
                "nesterov requires momentum > 0",
            )?;
            check(
                "sgd",
                "dampening",
                self.dampening,
                self.dampening == 0.0,
                "nesterov requires dampening = 0",
            )?;
        }
        Ok(())
    }

    fn state_slots(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "sgd",
            source: include_str!("../../shaders/sgd.wgsl"),
            two_phase: false,
            // Flags: nesterov, maximize, momentum on.
            branch_words: &[4, 5, 7],
            // Tested against 0 before use: momentum, weight_decay.
            zero_words: &[1, 3],
            // Multiplied by, 1.0 at torch's default dampening 0: 1 - dampening.
            one_words: &[2],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let mut h = [0f32; 16];
        h[0] = self.lr as f32;
        h[1] = self.momentum as f32;
        h[2] = (1.0 - self.dampening) as f32;
        h[3] = self.weight_decay as f32;
        h[4] = flag(self.nesterov);
        h[5] = flag(self.maximize);
        h[6] = flag(t == 1);
        h[7] = flag(self.momentum != 0.0);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (lr, momentum, one_minus_damp, wd) = (h[0], h[1], h[2], h[3]);
        let (nesterov, maximize, first) = (h[4], h[5], h[6]);
        let mut d = grad_in(g, p, wd, maximize);
        if momentum != 0.0 {
            let b = if first != 0.0 {
                d
            } else {
                s[0] * momentum + one_minus_damp * d
            };
            s[0] = b;
            d = if nesterov != 0.0 { d + momentum * b } else { b };
        }
        p + (-lr) * d
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd: 2, momentum: 2, nesterov: 2, step: 2.
        8
    }
}
