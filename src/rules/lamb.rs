//! LAMB — You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in
//! 76 minutes"; optax's `lamb` (scale_by_adam → add_decayed_weights →
//! scale_by_trust_ratio → scale_by_learning_rate) is the reference for the order of
//! operations and the defaults (optax requires an lr; 1e-3 here). Not in torch.optim.
//!
//! With `g` the gradient (negated if `maximize`), per tensor:
//! ```text
//! m ← (1 − β1)·g + β1·m;   v ← (1 − β2)·g² + β2·v
//! u = (m / (1 − β1^t)) / (√(v / (1 − β2^t) + eps_root) + eps) + wd·θ
//! r = ‖θ‖ / ‖u‖   over the whole tensor (1 if either norm is exactly 0; NaN if either
//!                  is NaN, so a NaN gradient makes the whole tensor NaN, as optax)
//! θ ← θ − lr·r·u
//! ```
//! Two phases on the device (see [`super::Kernel::two_phase`]): `measure` updates m and v
//! and contributes θ² and u² to the tensor's sums (a fixed-order reduction, no host
//! read-back); `update` recomputes u from the stored m, v and applies the trust ratio.
//! 40 bytes per parameter per step (24 + 16). The CPU twin sums in f64, the device in f32,
//! so r may differ in its last bits. Kernel: `shaders/lamb.wgsl`.

use super::{check, check_adam_like, flag, grad_in, Hyper, Kernel, UpdateRule};
use crate::error::Result;

/// LAMB hyperparameters (optax names and defaults; lr 1e-3).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lamb {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates (β1, β2) of the moment averages.
    pub betas: (f64, f64),
    /// Added to the root (optax `eps`, default 1e-6).
    pub eps: f64,
    /// Added inside the root (optax `eps_root`, default 0).
    pub eps_root: f64,
    /// Decoupled weight decay added to the update before the trust ratio.
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing.
    pub maximize: bool,
}

impl Default for Lamb {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-6,
            eps_root: 0.0,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl Lamb {
    /// u for one element from the updated moments (same f32 operations as the kernel).
    fn direction(h: &Hyper, p: f32, m: f32, v: f32) -> f32 {
        let mh = m / h[0];
        let vh = v / h[1];
        mh / ((vh + h[2]).sqrt() + h[3]) + h[4] * p
    }
}

impl UpdateRule for Lamb {
    fn name(&self) -> String {
        "lamb".into()
    }

    fn validate(&self) -> Result<()> {
        check_adam_like("lamb", self.lr, self.eps, self.betas, self.weight_decay)?;
        check(
            "lamb",
            "eps_root",
            self.eps_root,
            self.eps_root >= 0.0,
            "eps_root >= 0",
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
            name: "lamb",
            source: include_str!("../../shaders/lamb.wgsl"),
            two_phase: true,
            // Flags: maximize.
            branch_words: &[6],
            zero_words: &[],
            one_words: &[],
        }
    }

    fn hyper(&self, t: u64) -> Hyper {
        let (b1, b2) = self.betas;
        let mut h = [0f32; 16];
        h[0] = (1.0 - b1.powf(t as f64)) as f32;
        h[1] = (1.0 - b2.powf(t as f64)) as f32;
        h[2] = self.eps_root as f32;
        h[3] = self.eps as f32;
        h[4] = self.weight_decay as f32;
        h[5] = -self.lr as f32;
        h[6] = flag(self.maximize);
        h[8] = (1.0 - b1) as f32;
        h[9] = b1 as f32;
        h[10] = (1.0 - b2) as f32;
        h[11] = b2 as f32;
        h
    }

    fn measure(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> [f32; 2] {
        let g = grad_in(g, p, 0.0, h[6]);
        s[0] = h[8] * g + h[9] * s[0];
        s[1] = h[10] * (g * g) + h[11] * s[1];
        let u = Self::direction(h, p, s[0], s[1]);
        [p * p, u * u]
    }

    fn apply(&self, h: &Hyper, p: f32, _g: f32, s: &mut [f32], sums: [f32; 2]) -> f32 {
        let u = Self::direction(h, p, s[0], s[1]);
        // optax's scale_by_trust_ratio: 1 only where a norm is exactly zero.
        let ratio = if sums[0] == 0.0 || sums[1] == 0.0 {
            1.0
        } else {
            sums[0].sqrt() / sums[1].sqrt()
        };
        p + u * ratio * h[5]
    }

    /// Without its tensor's sums: the trust ratio is taken as 1 (LAMB reduces to Adam with
    /// decoupled decay). The optimizer and [`super::cpu_step`] always run both phases.
    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        self.measure(h, p, g, s);
        self.apply(h, p, g, s, [0.0; 2])
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn rounding_ops(&self) -> u32 {
        // moments 3, bias corrections 6, root 4, div 3, decay 2, ratio ~8, step 3.
        29
    }

    fn bytes_per_param(&self) -> usize {
        // measure: read p, g, m, v; write m, v. update: read p, m, v; write p.
        40
    }
}
