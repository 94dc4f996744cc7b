//! The whole-step CPU model: what an [`Optimizer`](crate::Optimizer) computes, on host slices, for a whole
//! training run — param groups with their own hyperparameters and lr schedules, setters at
//! any point, clipping, the loss scaler with skipped steps, 16-bit params with the f32
//! master or stochastic rounding, 8-bit state — with the same f32 operations in the same
//! order as the device's passes, and the same refusals.
//!
//! It may not touch a device: the device's limits that decide refusals come in as a
//! [`wgpu::Limits`] value. Each rule's element math is its CPU twin ([`UpdateRule::update`]).
//!
//! Bit-exactness: the device equals the model bit for bit where the operations are the
//! same (one-phase rules, conversions, 8-bit codes, value clipping, loss scaling by powers
//! of two) on a device that rounds WGSL's f32 operations correctly, as lavapipe does. Two
//! sums are not: the clip norm (f32 in a fixed tree order on the device, f64 here) and a
//! two-phase rule's per-tensor norms (LAMB); there the device differs by the verifier's
//! op-count tolerance (see [`mod@crate::verify`]).
//!
//! The model runs the same step program as the device (`plan/program.rs`), pass by
//! pass (`step.rs`); this file holds what it registers and its setters.
//!
//! ```
//! # fn main() -> gpu_optim::Result<()> {
//! use gpu_optim::{CpuModel, Dtype, GradClip, LrSchedule, Sgd};
//! let mut model = CpuModel::new(Sgd { lr: 0.1, ..Sgd::default() })?;
//! let t = model.add_tensor(model.default_group(), 0, &[1.0, 2.0], (Dtype::F32, Dtype::F32))?;
//! model.set_schedule(model.default_group(), LrSchedule::Step { step_size: 1, gamma: 0.5 })?;
//! model.set_grad_clip(GradClip { value: Some(1.0), max_norm: None })?;
//! model.step(&[vec![4.0, -0.5]])?;
//! assert_eq!(model.params(t)?, &[0.9, 2.05]);
//! model.step(&[vec![4.0, -0.5]])?;
//! assert_eq!(model.params(t)?, &[0.9 - 0.05, 2.075]); // lr halved: 0.05
//! # Ok(()) }
//! ```

mod step;

use crate::clip::{GradClip, GradStats};
use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::plan::scalars::SlotShape;
use crate::quant::{Q8State, StateFormat};
use crate::registry::{self, GroupSchedule, Span};
use crate::registry::{GroupId, TensorId};
use crate::rules::{signed_slots, UpdateRule};
use crate::scaler::{CpuGradScaler, GradScaler};
use crate::schedule::LrSchedule;

/// Where a tensor lives, for the model: which param and grad buffer (any ids the caller
/// keeps apart), their sizes in bytes, and the element offsets. The model refuses what the
/// device refuses (ranges past a buffer, overlaps, alignment); stochastic rounding's bits
/// depend on the param offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLayout {
    /// Param buffer id.
    pub param_buffer: usize,
    /// Param buffer size in bytes.
    pub param_bytes: u64,
    /// First param element in its buffer (elements of the param type).
    pub param_offset: u64,
    /// Grad buffer id (may equal the param buffer's).
    pub grad_buffer: usize,
    /// Grad buffer size in bytes.
    pub grad_bytes: u64,
    /// First grad element in its buffer (elements of the grad type).
    pub grad_offset: u64,
}

#[derive(Clone, Debug)]
struct HostTensor {
    group: usize,
    layout: HostLayout,
    len: usize,
    dtypes: (Dtype, Dtype),
    /// The params as their buffer holds them (16-bit values widened exactly).
    values: Vec<f32>,
    /// The f32 master copy of 16-bit params (from the first step on).
    master: Option<Vec<f32>>,
    /// State slots (8-bit: the values the codes stand for).
    state: Vec<Vec<f32>>,
    q8: Option<Q8State>,
    /// Planned: its master copy and 8-bit state exist.
    ready: bool,
}

impl HostTensor {
    /// Its initial state as `format` stores it: `rule`'s initial values, as 8-bit codes or
    /// f32. Before its first step only.
    fn init_state<R: UpdateRule>(&mut self, rule: &R, format: StateFormat) {
        self.state = (0..rule.state_slots().len())
            .map(|k| vec![rule.initial_state(k); self.len])
            .collect();
        self.q8 = None;
        if format.quantizes(self.len) {
            let signed = signed_slots(rule);
            let q = Q8State::quantize(&self.state, &signed);
            self.state = q.dequantize(&signed);
            self.q8 = Some(q);
        }
    }
}

/// The CPU model of an [`Optimizer`]: the same public calls, the same results, on host
/// vectors. See the module docs.
///
/// [`Optimizer`]: crate::Optimizer
#[derive(Clone, Debug)]
pub struct CpuModel<R: UpdateRule> {
    limits: wgpu::Limits,
    groups: Vec<R>,
    schedules: Vec<GroupSchedule>,
    tensors: Vec<HostTensor>,
    /// The tensors' byte ranges, for the overlap check of the next one.
    ranges: registry::RangeIndex<usize>,
    /// Planned for the current set of tensors and groups (the device's plan exists).
    planned: bool,
    /// Prepared at least once: kernel settings are fixed.
    started: bool,
    lag: u32,
    t: u64,
    ring: u32,
    clip: Option<GradClip>,
    /// Clipping's reduction runs (set when prepared: clip or scaler on).
    reduction: bool,
    scaler: Option<CpuGradScaler>,
    executed: u64,
    skipped: u64,
    state_format: StateFormat,
    stochastic: Option<u32>,
    stats: Option<GradStats>,
}

impl<R: UpdateRule> CpuModel<R> {
    /// A model of an optimizer on a device with wgpu's default limits.
    pub fn new(rule: R) -> Result<Self> {
        Self::with_limits(rule, wgpu::Limits::default())
    }

    /// A model of an optimizer on a device with `limits` (`Context::limits`): the limits
    /// decide some refusals (loss scaling's candidates per step, uniform sizes).
    pub fn with_limits(rule: R, limits: wgpu::Limits) -> Result<Self> {
        rule.validate()?;
        Ok(Self {
            limits,
            groups: vec![rule],
            schedules: vec![GroupSchedule::default()],
            tensors: Vec::new(),
            ranges: Default::default(),
            planned: false,
            started: false,
            lag: 0,
            t: 0,
            ring: 16,
            clip: None,
            reduction: false,
            scaler: None,
            executed: 0,
            skipped: 0,
            state_format: StateFormat::F32,
            stochastic: None,
            stats: None,
        })
    }

    fn frozen(&self, what: &str) -> Result<()> {
        match self.started {
            true => Err(Error::InvalidState(format!(
                "{what} after the optimizer was prepared (first step); set it before"
            ))),
            false => Ok(()),
        }
    }

    fn check_group(&self, g: GroupId) -> Result<()> {
        registry::check_group(self.groups.len(), g)
    }

    fn tensor(&self, t: TensorId) -> Result<&HostTensor> {
        self.tensors
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))
    }

    /// Group 0.
    pub fn default_group(&self) -> GroupId {
        GroupId(0)
    }

    /// [`crate::Optimizer::add_group`].
    pub fn add_group(&mut self, rule: R) -> Result<GroupId> {
        rule.validate()?;
        crate::registry::check_compatible(self.groups.len(), &rule, &self.groups[0])?;
        self.planned = false;
        self.groups.push(rule);
        self.schedules.push(GroupSchedule::default());
        Ok(GroupId(self.groups.len() - 1))
    }

    /// [`crate::Optimizer::group`].
    pub fn group(&self, g: GroupId) -> Result<&R> {
        self.check_group(g)?;
        Ok(&self.groups[g.0])
    }

    /// [`crate::Optimizer::lr`].
    pub fn lr(&self, g: GroupId) -> Result<f64> {
        Ok(self.group(g)?.lr())
    }

    /// Number of param groups.
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// Number of tensors.
    pub fn num_tensors(&self) -> usize {
        self.tensors.len()
    }

    /// [`crate::Optimizer::set_group`].
    pub fn set_group(&mut self, g: GroupId, rule: R) -> Result<()> {
        registry::check_set_group(&self.groups, g, &rule)?;
        // A tensor's initial state is its group's rule's when it is planned (Adagrad's
        // initial_accumulator_value): until then, follow the group.
        for t in self
            .tensors
            .iter_mut()
            .filter(|t| t.group == g.0 && !t.ready)
        {
            t.init_state(&rule, self.state_format);
        }
        self.groups[g.0] = rule;
        Ok(())
    }

    /// [`crate::Optimizer::set_schedule`].
    pub fn set_schedule(&mut self, g: GroupId, schedule: LrSchedule) -> Result<()> {
        registry::set_schedule(&mut self.groups, &mut self.schedules, g, schedule)
    }

    /// [`crate::Optimizer::schedule`].
    pub fn schedule(&self, g: GroupId) -> Result<Option<(&LrSchedule, u64)>> {
        registry::schedule(&self.schedules, g)
    }

    /// [`crate::Optimizer::clear_schedule`].
    pub fn clear_schedule(&mut self, g: GroupId) -> Result<Option<LrSchedule>> {
        registry::clear_schedule(&mut self.schedules, g)
    }

    /// [`crate::Optimizer::add_tensor_as`] for a tensor at `layout` (see [`HostLayout`];
    /// [`CpuModel::add_tensor`] for one alone in its buffers) whose params are `params`
    /// (rounded to the param type, as its buffer would hold them).
    pub fn add_tensor_at(
        &mut self,
        group: GroupId,
        layout: HostLayout,
        params: &[f32],
        (pd, gd): (Dtype, Dtype),
    ) -> Result<TensorId> {
        self.check_group(group)?;
        let i = self.tensors.len();
        let len = params.len();
        let (p, g) = spans(&layout, len, (pd, gd));
        p.check_inside(&format_args!("tensor {i} params"))?;
        g.check_inside(&format_args!("tensor {i} grads"))?;
        registry::check_pair(i, &p, &g, self.state_format.quantizes(len))?;
        self.ranges.check(i, &p, &g)?;
        self.ranges.insert(i, &p, &g);
        let rule = &self.groups[group.0];
        self.planned = false;
        let mut tensor = HostTensor {
            group: group.0,
            layout,
            len,
            dtypes: (pd, gd),
            values: pd.round(params),
            master: None,
            state: Vec::new(),
            q8: None,
            ready: false,
        };
        tensor.init_state(rule, self.state_format);
        self.tensors.push(tensor);
        Ok(TensorId(i))
    }

    /// A tensor alone in its own param and grad buffers (ids `2·i` and `2·i + 1`), at
    /// element `offset` of its param buffer (stochastic rounding's bits depend on it).
    pub fn add_tensor(
        &mut self,
        group: GroupId,
        offset: u64,
        params: &[f32],
        dtypes: (Dtype, Dtype),
    ) -> Result<TensorId> {
        let i = self.tensors.len();
        let end = |d: Dtype, o: u64| (o + params.len() as u64).div_ceil(4) * 4 * d.size();
        let layout = HostLayout {
            param_buffer: 2 * i,
            param_bytes: end(dtypes.0, offset),
            param_offset: offset,
            grad_buffer: 2 * i + 1,
            grad_bytes: end(dtypes.1, 0),
            grad_offset: 0,
        };
        self.add_tensor_at(group, layout, params, dtypes)
    }

    /// [`crate::Optimizer::set_state_format`].
    pub fn set_state_format(&mut self, format: StateFormat) -> Result<()> {
        self.frozen("set_state_format")?;
        if format != StateFormat::F32 && self.groups[0].kernel().two_phase {
            return Err(Error::InvalidState(format!(
                "{} is a two-phase rule; 8-bit state is not supported for it",
                self.groups[0].name()
            )));
        }
        for (i, t) in self.tensors.iter().enumerate() {
            let (p, g) = spans(&t.layout, t.len, t.dtypes);
            registry::check_vec4(i, &p, &g, format.quantizes(t.len))?;
        }
        self.state_format = format;
        for t in &mut self.tensors {
            t.init_state(&self.groups[t.group], format);
        }
        Ok(())
    }

    /// [`crate::Optimizer::set_stochastic_rounding`].
    pub fn set_stochastic_rounding(&mut self, seed: Option<u32>) -> Result<()> {
        self.frozen("set_stochastic_rounding")?;
        self.stochastic = seed;
        Ok(())
    }

    /// [`crate::Optimizer::set_steps_per_submission`]: no effect on the numbers, only on
    /// what is refused.
    pub fn set_steps_per_submission(&mut self, k: u32) -> Result<()> {
        crate::plan::settings::check_steps_per_submission(k)?;
        if self.planned && self.lag > 0 && k >= self.lag {
            return Err(Error::InvalidState(format!(
                "loss scaling covers at most {} steps per submission here, not {k}",
                self.lag - 1
            )));
        }
        self.ring = k;
        Ok(())
    }

    /// [`crate::Optimizer::set_grad_clip`].
    pub fn set_grad_clip(&mut self, clip: GradClip) -> Result<()> {
        crate::plan::settings::validate_clip(&clip)?;
        let on = clip != GradClip::default();
        if self.started && !self.reduction {
            if on {
                return Err(Error::InvalidState(
                    "gradient clipping must be enabled before the first step".into(),
                ));
            }
        } else {
            self.clip = Some(clip);
        }
        Ok(())
    }

    /// [`crate::Optimizer::set_grad_scaler`]: before preparing it replaces the scaler, then
    /// only its factors may change (the scale carries on).
    pub fn set_grad_scaler(&mut self, scaler: GradScaler) -> Result<()> {
        scaler.validate()?;
        match &mut self.scaler {
            Some(s) if self.started => {
                crate::plan::settings::check_running_scaler(Some(&s.config), &scaler)?;
                s.config = scaler;
            }
            None if self.started => {
                crate::plan::settings::check_running_scaler(None, &scaler)?;
            }
            _ => self.scaler = Some(CpuGradScaler::new(scaler)),
        }
        Ok(())
    }

    /// [`crate::Optimizer::prepare`]: kernel settings are fixed from then on; tensors not
    /// planned before (all of them the first time, those added after steps later) get
    /// their f32 master copy from their current values and their 8-bit state.
    pub fn prepare(&mut self) -> Result<()> {
        if self.planned {
            return Ok(());
        }
        if self.tensors.is_empty() {
            return Err(Error::InvalidState("no tensors registered".into()));
        }
        let shape = SlotShape::new(
            self.groups.len(),
            self.scaler.is_some(),
            self.ring,
            self.limits.max_uniform_buffer_binding_size,
        )?;
        let lag = shape.lag;
        self.lag = lag;
        let stochastic = self.stochastic;
        for t in self.tensors.iter_mut().filter(|t| !t.ready) {
            t.ready = true;
            if needs_master(t.dtypes.0, stochastic) {
                t.master = Some(t.values.clone());
            }
        }
        if !self.started {
            self.reduction = self.clip.is_some() || self.scaler.is_some();
        }
        self.planned = true;
        self.started = true;
        Ok(())
    }

    /// Steps called so far.
    pub fn step_count(&self) -> u64 {
        self.t
    }

    /// Steps that updated the params (the rule's step count).
    pub fn applied_steps(&self) -> u64 {
        self.t - self.skipped
    }

    /// Steps skipped for a non-finite gradient (loss scaling).
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    /// The loss scale, with a scaler.
    pub fn loss_scale(&self) -> Option<f32> {
        self.scaler.as_ref().map(|s| s.scale)
    }

    /// The loss scaler's growth tracker, with a scaler.
    pub fn growth_tracker(&self) -> Option<u32> {
        self.scaler.as_ref().map(|s| s.growth_tracker)
    }

    /// The last step's gradient norm (summed in f64: see the module docs) and non-finite
    /// count, when the reduction runs.
    pub fn grad_stats(&self) -> Option<GradStats> {
        self.stats
    }

    /// Tensor `t`'s params as the rule updates them: the master copy of 16-bit params,
    /// else the params (what [`crate::Optimizer::read_params`] returns).
    pub fn params(&self, t: TensorId) -> Result<&[f32]> {
        let x = self.tensor(t)?;
        Ok(x.master.as_deref().unwrap_or(&x.values))
    }

    /// Tensor `t`'s params as their buffer holds them (16-bit values widened).
    pub fn stored_params(&self, t: TensorId) -> Result<&[f32]> {
        Ok(&self.tensor(t)?.values)
    }

    /// Tensor `t`'s state slot `slot` (8-bit: the values its codes stand for), as
    /// [`crate::Optimizer::read_state`].
    pub fn state(&self, t: TensorId, slot: usize) -> Result<&[f32]> {
        let x = self.tensor(t)?;
        x.state
            .get(slot)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::InvalidState(format!("no state slot {slot}")))
    }

    /// Tensor `t`'s 8-bit codes and absmax of slot `slot`, if it has 8-bit state.
    pub fn state_q8(&self, t: TensorId, slot: usize) -> Result<Option<(&[u8], &[f32])>> {
        let x = self.tensor(t)?;
        Ok(x.q8.as_ref().and_then(|q| {
            Some((
                q.codes.get(slot)?.as_slice(),
                q.absmax.get(slot)?.as_slice(),
            ))
        }))
    }

    /// Whether tensor `t`'s params have an f32 master copy (taken at its first step).
    pub fn has_master(&self, t: TensorId) -> bool {
        self.tensors
            .get(t.0)
            .is_some_and(|x| needs_master(x.dtypes.0, self.stochastic))
    }

    /// Overwrites tensor `t`'s params as their buffer would hold them (e.g. the caller
    /// uploads new weights). Before the tensor's first step only, as its master is taken
    /// then.
    pub fn set_params(&mut self, t: TensorId, params: &[f32]) -> Result<()> {
        let x = self
            .tensors
            .get_mut(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        if x.ready {
            return Err(Error::InvalidState(format!(
                "tensor {} has stepped: its params are the model's now",
                t.0
            )));
        }
        if params.len() != x.len {
            return Err(Error::LengthMismatch {
                what: format!("tensor {} params", t.0),
                got: params.len(),
                expected: x.len,
            });
        }
        x.values = x.dtypes.0.round(params);
        Ok(())
    }
}

/// A tensor's param and grad ranges as the registry's rules see them.
fn spans(
    l: &HostLayout,
    len: usize,
    (pd, gd): (Dtype, Dtype),
) -> (Span<'_, usize>, Span<'_, usize>) {
    let span = |buffer, bytes, offset, dtype| Span {
        buffer,
        bytes,
        offset,
        len,
        dtype,
    };
    (
        span(&l.param_buffer, l.param_bytes, l.param_offset, pd),
        span(&l.grad_buffer, l.grad_bytes, l.grad_offset, gd),
    )
}

/// Whether params of type `d` get an f32 master copy (bf16 with stochastic rounding has
/// none).
pub(crate) fn needs_master(d: Dtype, stochastic: Option<u32>) -> bool {
    match d {
        Dtype::F32 => false,
        Dtype::F16 => true,
        Dtype::Bf16 => stochastic.is_none(),
    }
}
