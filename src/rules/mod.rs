//! Update rules: one file per rule, its WGSL kernel beside it in `shaders/`.
//!
//! A rule is a hyperparameter struct (torch.optim names and defaults) that says
//! - which state slots it keeps per parameter ([`UpdateRule::state_slots`]),
//! - the per-step scalars its kernel reads ([`UpdateRule::hyper`], computed on the host
//!   in f64 and rounded to f32 once, as torch does with Python floats),
//! - the element update itself, twice: in WGSL (`shaders/<rule>.wgsl`, function `update`)
//!   and in Rust ([`UpdateRule::update`]), with the same f32 operations in the same order.
//!
//! The scheduler knows nothing else about a rule, so a new rule is one Rust file and one
//! WGSL file.

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod lamb;
mod lion;
mod nadam;
mod radam;
mod rmsprop;
mod sgd;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub use adamax::Adamax;
pub use lamb::Lamb;
pub use lion::Lion;
pub use nadam::NAdam;
pub use radam::RAdam;
pub use rmsprop::RmsProp;
pub use sgd::Sgd;

use crate::error::{Error, Result};

/// Per-step scalars of one param group, as the kernel reads them (`struct Hyper` in
/// `shaders/common.wgsl`: four `vec4<f32>`, named `a`, `b`, `c`, `d`). Flags are 0.0 / 1.0.
pub type Hyper = [f32; 16];

/// Most state slots any rule keeps per parameter (`s0..s2` in `shaders/common.wgsl`).
pub const MAX_SLOTS: usize = 3;

/// A rule's WGSL kernel: the source of its `update` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Identifies the pipeline in caches, e.g. `"adam"`.
    pub name: &'static str,
    /// WGSL defining `fn update(h: Hyper, p: V, g: V, s: ptr<function, State>) -> V`.
    pub source: &'static str,
    /// Two-phase rules (LAMB) also define `fn measure(h, p, g, s) -> Pair`: a first pass
    /// updates the state and sums two per-element quantities per tensor (on the device,
    /// in a fixed order); `update` then reads the tensor's sums from `tensor_sums`.
    pub two_phase: bool,
    /// Words of [`UpdateRule::hyper`] (0..16) that the kernel only tests (flags such as
    /// `maximize`, used in no arithmetic) and that stay the same from step to step while
    /// the hyperparameters do: a pipeline takes their values as constants where every
    /// group of a dispatch agrees on them, so the driver drops the branches not taken
    /// ([`crate::kernel::FixedWords`]). A word in arithmetic must not be listed: a constant
    /// operand lets a driver fold differently (lavapipe did: 1 ulp off the CPU twin).
    pub branch_words: &'static [usize],
    /// Words the kernel tests against 0 and uses in arithmetic only where they are not
    /// (weight decay, momentum): fixed like [`Kernel::branch_words`], but only while +0.0.
    pub zero_words: &'static [usize],
    /// Words the kernel only multiplies by and that are usually exactly 1.0 (SGD's
    /// `1 - dampening`): fixed like [`Kernel::branch_words`], but only while 1.0, where
    /// the driver drops an exact product (`1.0 * x` is `x` bit for bit, NaN and -0 too).
    pub one_words: &'static [usize],
}

/// An optimizer update rule. See the module docs.
/// Rules are `serde` values: checkpoints store each group's hyperparameters and restore them.
pub trait UpdateRule:
    Clone + std::fmt::Debug + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    /// Display name of this configuration, e.g. `"sgd+nesterov"`.
    fn name(&self) -> String;
    /// Checks the hyperparameters as torch.optim's constructor does.
    fn validate(&self) -> Result<()>;
    /// Names of the per-parameter state slots, as torch.optim's `state` dict names them.
    fn state_slots(&self) -> &'static [&'static str];
    /// Value a state slot starts with (Adagrad's `initial_accumulator_value`; else 0).
    fn initial_state(&self, _slot: usize) -> f32 {
        0.0
    }
    /// Whether state slot `slot` never goes negative (Adam's `exp_avg_sq`): 8-bit state
    /// ([`crate::StateFormat`]) then spends the sign bit on resolution.
    fn slot_nonnegative(&self, _slot: usize) -> bool {
        false
    }
    /// The kernel implementing this rule.
    fn kernel(&self) -> Kernel;
    /// Scalars for step `t` (the first step is 1).
    fn hyper(&self, t: u64) -> Hyper;
    /// The CPU twin of the kernel's `update`: one element, same f32 operations, same order.
    /// Returns the new parameter and updates `s` (length `state_slots().len()`) in place.
    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32;
    /// Two-phase rules only (see [`Kernel::two_phase`]): the CPU twin of the kernel's
    /// `measure`, which updates the state and returns this element's two contributions to
    /// its tensor's sums.
    fn measure(&self, _h: &Hyper, _p: f32, _g: f32, _s: &mut [f32]) -> [f32; 2] {
        [0.0; 2]
    }
    /// Two-phase rules only: the CPU twin of `update` given the tensor's sums (one-phase
    /// rules ignore them).
    fn apply(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32], _sums: [f32; 2]) -> f32 {
        self.update(h, p, g, s)
    }
    /// Learning rate (what lr schedules scale).
    fn lr(&self) -> f64;
    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f64);
    /// Rounded f32 operations on the longest dependency chain of one element update, with
    /// division and sqrt counted as 3 (WGSL allows 2.5 ulp for them). The verifier's default
    /// tolerance is this many ulps per step; see [`mod@crate::verify`].
    fn rounding_ops(&self) -> u32;
    /// Bytes one step moves per parameter: read p, g and each slot; write p and each slot.
    fn bytes_per_param(&self) -> usize {
        4 * (3 + 2 * self.state_slots().len())
    }
}

/// Runs one step of `rule` on host slices: the CPU reference, usable on its own.
///
/// `state` holds one slice per state slot, each as long as `params` (start them with
/// [`UpdateRule::initial_state`]); `t` is the step number, 1 on the first step.
/// Errors: invalid hyperparameters (as torch's constructors refuse them), lengths that
/// differ; nothing is changed then.
pub fn cpu_step<R: UpdateRule>(
    rule: &R,
    t: u64,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [Vec<f32>],
) -> Result<()> {
    rule.validate()?;
    let n = params.len();
    if grads.len() != n {
        return Err(Error::LengthMismatch {
            what: "grads".into(),
            got: grads.len(),
            expected: n,
        });
    }
    let slots = rule.state_slots().len();
    if state.len() != slots {
        return Err(Error::LengthMismatch {
            what: "state slots".into(),
            got: state.len(),
            expected: slots,
        });
    }
    for (k, s) in state.iter().enumerate() {
        if s.len() != n {
            return Err(Error::LengthMismatch {
                what: format!("state slot {}", rule.state_slots()[k]),
                got: s.len(),
                expected: n,
            });
        }
    }
    let h = rule.hyper(t);
    let mut s = [0f32; MAX_SLOTS];
    let load = |s: &mut [f32; MAX_SLOTS], state: &[Vec<f32>], i: usize| {
        for k in 0..slots {
            s[k] = state[k][i];
        }
    };
    let store = |s: &[f32; MAX_SLOTS], state: &mut [Vec<f32>], i: usize| {
        for k in 0..slots {
            state[k][i] = s[k];
        }
    };
    let mut sums = [0f32; 2];
    if rule.kernel().two_phase {
        // The device sums in f32 in a fixed tree order; f64 here, rounded once.
        let mut acc = [0f64; 2];
        for i in 0..n {
            load(&mut s, state, i);
            let c = rule.measure(&h, params[i], grads[i], &mut s[..slots]);
            store(&s, state, i);
            acc[0] += c[0] as f64;
            acc[1] += c[1] as f64;
        }
        sums = [acc[0] as f32, acc[1] as f32];
    }
    for i in 0..n {
        load(&mut s, state, i);
        params[i] = rule.apply(&h, params[i], grads[i], &mut s[..slots], sums);
        store(&s, state, i);
    }
    Ok(())
}

/// A CPU optimizer over one host tensor: the reference, with its own state and step count.
#[derive(Clone, Debug)]
pub struct CpuOptimizer<R: UpdateRule> {
    /// The rule and its hyperparameters.
    pub rule: R,
    /// Steps taken so far.
    pub t: u64,
    /// One vector per state slot (with 8-bit state: what the codes stand for).
    pub state: Vec<Vec<f32>>,
    /// 8-bit state ([`crate::StateFormat`]), requantized after every step as the device does.
    pub q8: Option<crate::quant::Q8State>,
    /// Stochastic requantization's seed (8-bit state only).
    pub q8_seed: Option<u32>,
}

impl<R: UpdateRule> CpuOptimizer<R> {
    /// State for `len` parameters, initialised as the rule says.
    pub fn new(rule: R, len: usize) -> Result<Self> {
        Self::with_format(rule, len, crate::StateFormat::F32)
    }

    /// State for `len` parameters stored as `format` says (8-bit if `len` qualifies).
    pub fn with_format(rule: R, len: usize, format: crate::StateFormat) -> Result<Self> {
        rule.validate()?;
        let state: Vec<Vec<f32>> = (0..rule.state_slots().len())
            .map(|k| vec![rule.initial_state(k); len])
            .collect();
        let mut me = Self {
            rule,
            t: 0,
            state,
            q8: None,
            q8_seed: format.stochastic_seed(),
        };
        if format.quantizes(len) {
            let signed = signed_slots(&me.rule);
            let q = crate::quant::Q8State::quantize(&me.state, &signed);
            me.state = q.dequantize(&signed);
            me.q8 = Some(q);
        }
        Ok(me)
    }

    /// One step on `params` in place.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<()> {
        cpu_step(&self.rule, self.t + 1, params, grads, &mut self.state)?;
        if self.q8.is_some() {
            let signed = signed_slots(&self.rule);
            let sr = self.q8_seed.map(|seed| (self.t + 1, seed));
            let q = crate::quant::Q8State::quantize_at(&self.state, &signed, sr);
            self.state = q.dequantize(&signed);
            self.q8 = Some(q);
        }
        self.t += 1;
        Ok(())
    }
}

/// Every rule of the crate behind one type: for tables of rules (tests, the bench, the
/// command line). Each variant's semantics are its own type's.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
#[derive(serde::Serialize, serde::Deserialize)]
pub enum AnyRule {
    Sgd(Sgd),
    Adagrad(Adagrad),
    Adadelta(Adadelta),
    RmsProp(RmsProp),
    Adam(Adam),
    Adamax(Adamax),
    NAdam(NAdam),
    RAdam(RAdam),
    Lion(Lion),
    Lamb(Lamb),
}

macro_rules! delegate {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyRule::Sgd($r) => $e,
            AnyRule::Adagrad($r) => $e,
            AnyRule::Adadelta($r) => $e,
            AnyRule::RmsProp($r) => $e,
            AnyRule::Adam($r) => $e,
            AnyRule::Adamax($r) => $e,
            AnyRule::NAdam($r) => $e,
            AnyRule::RAdam($r) => $e,
            AnyRule::Lion($r) => $e,
            AnyRule::Lamb($r) => $e,
        }
    };
}

impl UpdateRule for AnyRule {
    fn name(&self) -> String {
        delegate!(self, r => r.name())
    }
    fn validate(&self) -> Result<()> {
        delegate!(self, r => r.validate())
    }
    fn state_slots(&self) -> &'static [&'static str] {
        delegate!(self, r => r.state_slots())
    }
    fn initial_state(&self, slot: usize) -> f32 {
        delegate!(self, r => r.initial_state(slot))
    }
    fn slot_nonnegative(&self, slot: usize) -> bool {
        delegate!(self, r => r.slot_nonnegative(slot))
    }
    fn kernel(&self) -> Kernel {
        delegate!(self, r => r.kernel())
    }
    fn hyper(&self, t: u64) -> Hyper {
        delegate!(self, r => r.hyper(t))
    }
    fn update(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> f32 {
        delegate!(self, r => r.update(h, p, g, s))
    }
    fn measure(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32]) -> [f32; 2] {
        delegate!(self, r => r.measure(h, p, g, s))
    }
    fn apply(&self, h: &Hyper, p: f32, g: f32, s: &mut [f32], sums: [f32; 2]) -> f32 {
        delegate!(self, r => r.apply(h, p, g, s, sums))
    }
    fn lr(&self) -> f64 {
        delegate!(self, r => r.lr())
    }
    fn set_lr(&mut self, lr: f64) {
        delegate!(self, r => r.set_lr(lr))
    }
    fn rounding_ops(&self) -> u32 {
        delegate!(self, r => r.rounding_ops())
    }
    fn bytes_per_param(&self) -> usize {
        delegate!(self, r => r.bytes_per_param())
    }
}

impl AnyRule {
    /// The rule table: every rule and every option that changes the kernel's path, at
    /// torch.optim defaults otherwise. Names are what `gpu-optim-bench --rules` takes.
    pub fn catalog() -> Vec<AnyRule> {
        vec![
            AnyRule::Sgd(Sgd::default()),
            AnyRule::Sgd(Sgd {
                momentum: 0.9,
                ..Sgd::default()
            }),
            AnyRule::Sgd(Sgd {
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            }),
            AnyRule::Adagrad(Adagrad::default()),
            AnyRule::Adadelta(Adadelta::default()),
            AnyRule::RmsProp(RmsProp::default()),
            AnyRule::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                ..RmsProp::default()
            }),
            AnyRule::Adam(Adam::default()),
            AnyRule::Adam(Adam::adamw()),
            AnyRule::Adam(Adam {
                amsgrad: true,
                ..Adam::default()
            }),
            AnyRule::Adamax(Adamax::default()),
            AnyRule::NAdam(NAdam::default()),
            AnyRule::RAdam(RAdam::default()),
            AnyRule::Lion(Lion::default()),
            AnyRule::Lamb(Lamb::default()),
        ]
    }

    /// Looks a rule up in [`AnyRule::catalog`] by its name.
    pub fn by_name(name: &str) -> Option<AnyRule> {
        Self::catalog().into_iter().find(|r| r.name() == name)
    }
}

/// Per state slot of `rule`: whether it may be negative (8-bit state's signed map).
pub(crate) fn signed_slots<R: UpdateRule>(rule: &R) -> Vec<bool> {
    (0..rule.state_slots().len())
        .map(|k| !rule.slot_nonnegative(k))
        .collect()
}

/// [`signed_slots`] as a bit mask: bit k set where slot k can be negative.
pub(crate) fn signed_mask<R: UpdateRule>(rule: &R) -> u32 {
    signed_slots(rule)
        .iter()
        .enumerate()
        .fold(0u32, |m, (k, &s)| m | ((s as u32) << k))
}

/// 1.0 for true, 0.0 for false: how flags travel in [`Hyper`].
/// The kernels' flag for [`lerp`]'s formula at weight `w` (a hyper word): whether
/// `|w| < 0.5` for the f32 weight the kernel reads. A branch word, so a pipeline takes it
/// as a constant and runs one formula without a branch.
pub(crate) fn lerp_flag(w: f32) -> f32 {
    flag(w.abs() < 0.5)
}

pub(crate) fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// `torch.maximum`: NaN if either is NaN (`f32::max` would return the other). Mirrored by
/// `max_nan` in `shaders/common.wgsl`.
pub(crate) fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else {
        a.max(b)
    }
}

/// `torch.sign`: 1, −1, or 0 for ±0 and for NaN (ATen's `(0 < x) - (x < 0)`;
/// `f32::signum` gives ±1 for ±0 and NaN for NaN). Mirrored by `sign_torch` in
/// `shaders/common.wgsl`.
pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// torch's CPU `lerp` (ATen `lerp`): two formulas split at weight 0.5 for accuracy.
/// Mirrored by `lerp` in `shaders/common.wgsl`.
pub(crate) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// The gradient as torch's single-tensor loops see it after `maximize` and coupled
/// (L2) weight decay. Mirrored by `grad_in` in `shaders/common.wgsl`.
pub(crate) fn grad_in(g: f32, p: f32, weight_decay: f32, maximize: f32) -> f32 {
    let g = if maximize != 0.0 { -g } else { g };
    if weight_decay != 0.0 {
        g + weight_decay * p
    } else {
        g
    }
}

/// Parameter and gradient after `maximize` and weight decay, either coupled (L2: wd·θ into
/// the gradient) or decoupled (AdamW: θ·(1 − lr·wd) before the moments, `factor`), as
/// torch's Adam, NAdam and RAdam share it. Mirrored by `decay` in `shaders/common.wgsl`.
pub(crate) fn decay(
    p: f32,
    g: f32,
    wd: f32,
    factor: f32,
    decoupled: f32,
    maximize: f32,
) -> (f32, f32) {
    if decoupled != 0.0 {
        let p = if wd != 0.0 { p * factor } else { p };
        (p, grad_in(g, p, 0.0, maximize))
    } else {
        (p, grad_in(g, p, wd, maximize))
    }
}

/// Adam's moments as torch updates them: m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g·g.
/// Mirrored by `moments` in `shaders/common.wgsl`.
pub(crate) fn moments(s: &mut [f32], g: f32, one_minus_b1: f32, b2: f32, one_minus_b2: f32) {
    s[0] = lerp(s[0], g, one_minus_b1);
    s[1] = s[1] * b2 + one_minus_b2 * g * g;
}

/// The checks torch's Adam-family constructors make: lr, eps, weight_decay >= 0 and
/// 0 <= beta < 1.
pub(crate) fn check_adam_like(
    rule: &'static str,
    lr: f64,
    eps: f64,
    (b1, b2): (f64, f64),
    weight_decay: f64,
) -> Result<()> {
    check(rule, "lr", lr, lr >= 0.0, "lr >= 0")?;
    check(rule, "eps", eps, eps >= 0.0, "eps >= 0")?;
    check(
        rule,
        "betas.0",
        b1,
        (0.0..1.0).contains(&b1),
        "0 <= beta1 < 1",
    )?;
    check(
        rule,
        "betas.1",
        b2,
        (0.0..1.0).contains(&b2),
        "0 <= beta2 < 1",
    )?;
    check(
        rule,
        "weight_decay",
        weight_decay,
        weight_decay >= 0.0,
        "weight_decay >= 0",
    )
}

/// Validation helper: `ok` must hold and `value` be finite, else a typed error.
pub(crate) fn check(
    rule: &'static str,
    name: &'static str,
    value: f64,
    ok: bool,
    why: &'static str,
) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            rule,
            name,
            value,
            // Not "lr >= 0" for lr = inf: say what is wrong with this value.
            why: if value.is_finite() {
                why
            } else {
                "must be a finite number"
            },
        })
    }
}
