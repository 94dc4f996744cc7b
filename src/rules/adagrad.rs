//! Adagrad — torch.optim.Adagrad (`torch/optim/adagrad.py`, `_single_tensor_adagrad`);
//! Duchi, Hazan & Singer 2011.
//!
//! With `g` the gradient (negated if `maximize`, plus `weight_decay·θ`):
//! ```text
//! clr = lr / (1 + (t − 1)·lr_decay)     (host, f64)
//! S ← S + g·g                          (S starts at initial_accumulator_value)
//! θ ← θ − clr·g / (√S + eps)
//! ```
//! Kernel: `shaders/adagrad.wgsl`.

use super::{check, flag, grad_in, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// torch.optim.Adagrad hyperparameters; `Default` equals torch's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adagrad {
    /// Learning rate (torch default 1e-2).
    pub lr: f64,
    /// Learning-rate decay per step.
    pub lr_decay: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Starting value of the sum of squares.
    pub initial_accumulator_value: f64,
    /// Added to √S for numerical stability.
    pub eps: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Adagrad {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl UpdateRule for Adagrad {
    fn name(&self) -> String {
        "adagrad".into()
    }

    fn validate(&self) -> Result<()> {
        check("adagrad", "lr", self.lr, self.lr >= 0.0, "lr >= 0")?;
        check(
            "adagrad",
            "lr_decay",
            self.lr_decay,
            self.lr_decay >= 0.0,
            "lr_decay >= 0",
        )?;
        check(
            "adagrad",
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "weight_decay >= 0",
        )?;
        check(
            "adagrad",
            "initial_accumulator_value",
            self.initial_accumulator_value,
            self.initial_accumulator_value >= 0.0,
            "initial_accumulator_value >= 0",
        )?;
        check("adagrad", "eps", self.eps, self.eps >= 0.0, "eps >= 0")
    }

    fn slot_nonnegative(&self, slot: usize) -> bool {
        slot == 0
    }

    fn state_slots(&self) -> &'static [&'static str] {
        &["sum"]
    }

    fn initial_state(&self, _slot: usize) -> f32 {
        self.initial_accumulator_value as f32
    }

    fn kernel(&self) -> Kernel {
        Kernel {
            name: "adagrad",
            source: include_str!("../../shaders/adagrad.wgsl"),
            two_phase: false,
            // Flags: maximize.
            branch_words: &[3],
            // Tested against 0 before use: weight_decay.
            zero_words: &[1],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let clr = self.lr / (1.0 + (t as f64 - 1.0) * self.lr_decay);
        let mut h = [0f32; 16];
        h[0] = -clr as f32;
        h[1] = self.weight_decay as f32;
        h[2] = self.eps as f32;
        h[3] = flag(self.maximize);
        h
    }

    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        let (neg_clr, wd, eps, maximize) = (h[0], h[1], h[2], h[3]);
        let g = grad_in(g, p, wd, maximize);
        s[0] += g * g;
        let root = s[0].sqrt() + eps;
        p + neg_clr * g / root
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // wd 2, sum 2, sqrt 3, +eps 1, mul 1, div 3, add 1.
        13
    }
}
