//! What does the caller do with an optimizer? The public API (register, set, step, read)
//! as a thin facade: each method checks its input through the registry and the settings
//! and delegates; it lays out nothing (`plan/`), allocates and binds nothing, and records
//! no pass (`device/`).
//!
//! Rule-agnostic: a rule contributes its kernel, state slot count and per-step scalars;
//! everything here (batching, chunking, submission) is the same for all rules. How
//! tensors become dispatches: `plan/layout.rs`; how a step is recorded and its per-step
//! scalars reach the kernels: `device/record.rs`.

use crate::arena::Arena;
use crate::context::{BufferRange, Context};
use crate::device::bind::Plan;
use crate::device::state::Snapshot;
use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::kernel::KernelVariant;
use crate::plan::layout;
use crate::plan::settings::StepSettings;
use crate::registry::{self, GroupId, GroupSchedule, TensorId};
use crate::rules::{Hyper, UpdateRule};
use crate::schedule::LrSchedule;

#[derive(Clone, Debug)]
pub(crate) struct Tensor {
    pub(crate) group: usize,
    pub(crate) param: BufferRange,
    pub(crate) grad: BufferRange,
    /// Element types (16-bit params get an f32 master copy).
    pub(crate) dtypes: (Dtype, Dtype),
    /// Registered from an [`Arena`]: the padding after it is the arena's, registered with
    /// it (no other tensor may overlap it), and steps may update it (plan/layout.rs: runs).
    pub(crate) pad_free: bool,
}

/// A GPU optimizer over registered tensors, one update rule, any number of param groups.
///
/// ```
/// # fn main() -> gpu_optim::Result<()> {
/// use gpu_optim::{Adam, Context, Optimizer, Arena};
/// let ctx = Context::new()?;
/// let arena = Arena::new(&ctx, &[768 * 768, 768])?;
/// let mut opt = Optimizer::new(&ctx, Adam::default())?;
/// opt.add_arena(&arena, opt.default_group())?;
/// // ... your backward pass writes arena.grads ...
/// opt.step()?;
/// # Ok(()) }
/// ```
#[allow(clippy::mutable_key_type)] // buffers order by identity, which never changes
pub struct Optimizer<R: UpdateRule> {
    pub(crate) ctx: Context,
    /// Each group's hyperparameters; its `lr()` is the lr its next step uses.
    pub(crate) groups: Vec<R>,
    pub(crate) schedules: Vec<GroupSchedule>,
    pub(crate) tensors: Vec<Tensor>,
    /// The tensors' byte ranges, for the overlap check of the next one.
    pub(crate) ranges: registry::RangeIndex<wgpu::Buffer>,
    pub(crate) plan: Option<Plan>,
    /// Prepared at least once: the kernel settings are fixed.
    pub(crate) started: bool,
    /// State kept on the host while planning again (see `unplan`).
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) t: u64,
    pub(crate) scratch: Vec<Hyper>,
    /// One staging slot's bytes.
    pub(crate) stage: Vec<u8>,
    /// Step tokens held until `step_many`'s submission.
    pub(crate) held: Vec<std::sync::Arc<()>>,
    /// (lr, schedule epoch) per group before a `step_many` batch, to undo a failed one.
    pub(crate) undo: Vec<(f64, u64)>,
    /// Scratch for the next steps' predicted scalars (device/record.rs: writing ahead).
    pub(crate) ahead: crate::device::record::Ahead<R>,
    /// Buffers known to belong to this optimizer's device.
    pub(crate) on_device: std::collections::BTreeSet<wgpu::Buffer>,
    /// Which features the steps run (plan/settings.rs).
    pub(crate) settings: StepSettings,
    /// The device's (steps executed, steps skipped) as last read back, and the read-back
    /// in flight (`device/scaler.rs`).
    pub(crate) ack: (u64, u64),
    pub(crate) pending_ack: Option<crate::context::ReadBack>,
}

impl<R: UpdateRule> std::fmt::Debug for Optimizer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("groups", &self.groups)
            .field("tensors", &self.tensors.len())
            .field("t", &self.t)
            .finish()
    }
}

impl<R: UpdateRule> Optimizer<R> {
    /// An optimizer whose group 0 has `rule`'s hyperparameters.
    pub fn new(ctx: &Context, rule: R) -> Result<Self> {
        rule.validate()?;
        Ok(Self {
            ctx: ctx.clone(),
            groups: vec![rule],
            schedules: vec![GroupSchedule::default()],
            tensors: Vec::new(),
            ranges: Default::default(),
            plan: None,
            started: false,
            snapshot: None,
            t: 0,
            scratch: Vec::new(),
            stage: Vec::new(),
            held: Vec::new(),
            ahead: Default::default(),
            undo: Vec::new(),
            on_device: Default::default(),
            settings: StepSettings::default(),
            ack: (0, 0),
            pending_ack: None,
        })
    }

    /// Group 0, created with the optimizer.
    pub fn default_group(&self) -> GroupId {
        GroupId(0)
    }

    /// Adds a param group with its own hyperparameters (torch's `add_param_group`, also
    /// after steps: the next step plans again, keeping every tensor's state). Its rule must
    /// run group 0's kernel: the same family (Adam and AdamW, not NAdam) and state slots
    /// (e.g. `amsgrad` on both or neither), else [`Error::IncompatibleGroup`].
    pub fn add_group(&mut self, rule: R) -> Result<GroupId> {
        rule.validate()?;
        registry::check_compatible(self.groups.len(), &rule, &self.groups[0])?;
        self.unplan()?; // after steps: plan again, keeping the state
        self.groups.push(rule);
        self.schedules.push(GroupSchedule::default());
        Ok(GroupId(self.groups.len() - 1))
    }

    /// Number of param groups.
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// Number of registered tensors.
    pub fn num_tensors(&self) -> usize {
        self.tensors.len()
    }

    pub(crate) fn check_group(&self, g: GroupId) -> Result<()> {
        registry::check_group(self.groups.len(), g)
    }

    /// A group's hyperparameters; its `lr()` is the lr the group's next step uses (as
    /// torch's `param_groups[g]['lr']`, which schedulers move). Error: no such group.
    pub fn group(&self, g: GroupId) -> Result<&R> {
        self.check_group(g)?;
        Ok(&self.groups[g.0])
    }

    /// The lr group `g`'s next step uses. Error: no such group.
    pub fn lr(&self, g: GroupId) -> Result<f64> {
        Ok(self.group(g)?.lr())
    }

    /// Changes a group's hyperparameters; validated, and used from the next step on. Its
    /// lr is the next step's lr even while a schedule runs: the schedule continues from it,
    /// as torch's chainable schedulers do from a changed `group['lr']`. Errors: invalid
    /// hyperparameters, no such group, or different state slots (e.g. switching
    /// `amsgrad`: [`Error::IncompatibleGroup`]).
    pub fn set_group(&mut self, g: GroupId, rule: R) -> Result<()> {
        registry::check_set_group(&self.groups, g, &rule)?;
        self.groups[g.0] = rule;
        Ok(())
    }

    /// Drives group `g`'s lr from `schedule` from its next step on, starting from the
    /// group's current lr, as a torch scheduler created now would (its first step uses
    /// [`LrSchedule::initial`] of it; each later step's lr follows from the previous one by
    /// [`LrSchedule::next`]). Replaces any schedule the group had. The group's `initial_lr`
    /// (torch's, kept in checkpoints) is its lr when its first schedule was set. Errors:
    /// invalid schedule, no such group.
    pub fn set_schedule(&mut self, g: GroupId, schedule: LrSchedule) -> Result<()> {
        registry::set_schedule(&mut self.groups, &mut self.schedules, g, schedule)
    }

    /// Group `g`'s schedule and the number of steps it has taken. Error: no such group.
    pub fn schedule(&self, g: GroupId) -> Result<Option<(&LrSchedule, u64)>> {
        registry::schedule(&self.schedules, g)
    }

    /// Stops group `g`'s schedule; the group keeps its current lr. Returns the schedule it
    /// had. Error: no such group.
    pub fn clear_schedule(&mut self, g: GroupId) -> Result<Option<LrSchedule>> {
        registry::clear_schedule(&mut self.schedules, g)
    }

    /// Registers a tensor: its parameters and its gradient (same length), in any buffers
    /// with `STORAGE` usage. The optimizer allocates its state. May be called after steps
    /// (torch's `add_param_group`): the next step plans again, keeping every tensor's state.
    ///
    /// Errors: no such group, ranges past their buffers or overlapping another tensor's
    /// ([`Error::BadRange`]), lengths that differ, a buffer without `STORAGE`, a buffer of
    /// another device of this wgpu instance ([`Error::WrongDevice`]). A buffer of another
    /// `wgpu::Instance` cannot be detected (wgpu gives no way to tell): create the
    /// optimizer's [`Context`] with [`Context::from_device`] on your own device.
    pub fn add_tensor(
        &mut self,
        group: GroupId,
        param: BufferRange,
        grad: BufferRange,
    ) -> Result<TensorId> {
        self.add_tensor_as(group, param, Dtype::F32, grad, Dtype::F32)
    }

    /// Registers a tensor whose params and grads are of the given element types (the
    /// ranges' offsets and lengths count elements of those types). 16-bit params (the
    /// caller's model in f16/bf16) are updated through an f32 master copy the optimizer
    /// keeps, initialised from them at the first step; after each step they hold the
    /// master rounded to nearest even (see [`crate::half`]). 16-bit buffers need their
    /// tensors at offsets that are multiples of 4 elements (as in an [`Arena`]), and a
    /// device with 9 storage buffers per shader stage (every native backend).
    pub fn add_tensor_as(
        &mut self,
        group: GroupId,
        param: BufferRange,
        param_dtype: Dtype,
        grad: BufferRange,
        grad_dtype: Dtype,
    ) -> Result<TensorId> {
        let i = self.tensors.len();
        let (pd, gd) = (param_dtype, grad_dtype);
        self.check_tensor(i, group, (&param, pd), (&grad, gd), false)?;
        self.unplan()?; // after steps: plan again, keeping the state
        self.insert_tensor(group, (param, pd), (grad, gd), false);
        Ok(TensorId(i))
    }

    /// Every check of registering a tensor as tensor `i` (see
    /// [`Optimizer::add_tensor_as`]; `pad_free`: the ranges are an [`Arena`]'s, whose
    /// padding to the next [`ARENA_ALIGN`](crate::ARENA_ALIGN) elements in both buffers is
    /// registered with the tensor); registers nothing (it may remember that a buffer is
    /// this device's).
    fn check_tensor(
        &mut self,
        i: usize,
        group: GroupId,
        (param, pd): (&BufferRange, Dtype),
        (grad, gd): (&BufferRange, Dtype),
        pad_free: bool,
    ) -> Result<()> {
        registry::check_group(self.groups.len(), group)?;
        param.check_dtype(&format_args!("tensor {i} params"), pd)?;
        grad.check_dtype(&format_args!("tensor {i} grads"), gd)?;
        let st = wgpu::BufferUsages::STORAGE;
        param.check_sized(&format_args!("tensor {i} params"), st, pd.size())?;
        grad.check_sized(&format_args!("tensor {i} grads"), st, gd.size())?;
        let (p, g) = (span(param, pd), span(grad, gd));
        let q8 = self.settings.state_format.quantizes(param.len);
        registry::check_pair(i, &p, &g, q8)?;
        self.check_device(i, &param.buffer, "params")?;
        self.check_device(i, &grad.buffer, "grads")?;
        self.ranges
            .check(i, &padded(p, pad_free), &padded(g, pad_free))
    }

    /// Registers a tensor [`Optimizer::check_tensor`] accepted: cannot fail.
    fn insert_tensor(
        &mut self,
        group: GroupId,
        (param, pd): (BufferRange, Dtype),
        (grad, gd): (BufferRange, Dtype),
        pad_free: bool,
    ) {
        let i = self.tensors.len();
        let p = padded(span(&param, pd), pad_free);
        let g = padded(span(&grad, gd), pad_free);
        self.ranges.insert(i, &p, &g);
        self.tensors.push(Tensor {
            group: group.0,
            param,
            grad,
            dtypes: (pd, gd),
            pad_free,
        });
    }

    /// Refuses a buffer of another device (of this wgpu instance): binding it would fail at
    /// the first step. Each buffer is probed once, with a bind group on this device.
    pub(crate) fn check_device(
        &mut self,
        i: usize,
        buffer: &wgpu::Buffer,
        what: &str,
    ) -> Result<()> {
        if self.on_device.contains(buffer) {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        let device = ctx.device();
        let r = ctx.scoped("add_tensor", || {
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("gpu-optim device probe"),
                entries: &[wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }],
            });
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("gpu-optim device probe"),
                layout: &layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(4),
                    }),
                }],
            })
        });
        match r {
            Ok(_) => {
                self.on_device.insert(buffer.clone());
                Ok(())
            }
            Err(Error::Wgpu { message, .. }) => Err(Error::WrongDevice {
                what: format!("tensor {i} {what}"),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    /// Records the zeroing of every registered gradient into `encoder` (torch's
    /// `zero_grad(set_to_none=False)`): each tensor's range only, its neighbours in a
    /// shared buffer untouched; one `clear_buffer` per tensor, no allocation. A 16-bit
    /// gradient of odd length also zeroes the half-word after its last element, which
    /// lies in the vector of 4 the step kernels treat as the tensor's (no other tensor can
    /// start there). A tensor registered by [`Optimizer::add_arena`] also zeroes the
    /// arena's padding after it (registered with it).
    pub fn record_zero_grad(&self, encoder: &mut wgpu::CommandEncoder) {
        for t in &self.tensors {
            let e = t.dtypes.1.size();
            let start = t.grad.offset * e;
            let mut n = t.grad.offset + t.grad.len as u64;
            if t.pad_free {
                // An arena's padding: its zero grads keep a run's padding at zero.
                n = layout::pad_end(n);
            }
            let end = ((n * e).div_ceil(4) * 4).min(t.grad.buffer.size());
            if end > start {
                encoder.clear_buffer(&t.grad.buffer, start, Some(end - start));
            }
        }
    }

    /// [`Optimizer::record_zero_grad`] in its own submission.
    pub fn zero_grad(&self) -> Result<()> {
        let ctx = &self.ctx;
        ctx.scoped("zero_grad", || {
            let mut enc = ctx.device().create_command_encoder(&Default::default());
            self.record_zero_grad(&mut enc);
            ctx.queue().submit([enc.finish()]);
        })
    }

    /// Registers every tensor of `arena` in `group`, each with the arena's padding after
    /// it (to the next [`ARENA_ALIGN`](crate::ARENA_ALIGN) elements): a range in that
    /// padding is refused by later `add_tensor` calls, and a step may update the padding
    /// with the tensors, running one tile on across neighbouring tensors of the group (one
    /// dense dispatch for the whole arena where nothing sums per tensor: no clipping, loss
    /// scaling or two-phase rule; f32 params, grads and state). Padding whose grads are
    /// zero (as [`Arena::new`] leaves them and [`Optimizer::zero_grad`] sets them) keeps
    /// its zero params and state; each tensor's result is the same either way.
    ///
    /// All or nothing: on an error (no such group, a tensor overlapping a registered one,
    /// as [`Optimizer::add_tensor_as`] refuses) no tensor of the arena is registered; a
    /// [`Error::BadRange`] names the arena's tensor index.
    pub fn add_arena(&mut self, arena: &Arena, group: GroupId) -> Result<Vec<TensorId>> {
        let (pd, gd) = arena.dtypes();
        registry::check_group(self.groups.len(), group)?;
        // All or nothing: every tensor is checked before any is registered (an arena's
        // tensors and paddings never overlap each other).
        let n0 = self.tensors.len();
        for k in 0..arena.len() {
            let (param, grad) = (arena.param(k), arena.grad(k));
            let checked = self.check_tensor(n0 + k, group, (&param, pd), (&grad, gd), true);
            checked.map_err(|e| match e {
                Error::BadRange { what, why } => Error::BadRange {
                    what: format!("arena tensor {k} (as {what})"),
                    why,
                },
                other => other,
            })?;
        }
        if !arena.is_empty() {
            self.unplan()?;
        }
        for k in 0..arena.len() {
            let (param, grad) = (arena.param(k), arena.grad(k));
            self.insert_tensor(group, (param, pd), (grad, gd), true);
        }
        Ok((n0..self.tensors.len()).map(TensorId).collect())
    }

    /// Element types of tensor `t`'s params and grads.
    pub fn dtypes(&self, t: TensorId) -> Option<(Dtype, Dtype)> {
        self.tensors.get(t.0).map(|x| x.dtypes)
    }

    /// Steps called so far (what lr schedules follow). With loss scaling some may have been
    /// skipped: [`Optimizer::applied_steps`].
    pub fn step_count(&self) -> u64 {
        self.t
    }

    /// The kernel variant of each planned dispatch, in dispatch order (empty before
    /// [`Optimizer::prepare`] or the first step): what runs, by [`KernelVariant::name`],
    /// and its WGSL ([`KernelVariant::wgsl`]). Clipping's pre-pass and a two-phase rule's
    /// first pass run the same variants through other entry points (`grad_sumsq`,
    /// `measure_pass`), followed by the reduction kernels (`shaders/reduce.wgsl`).
    pub fn kernel_variants(&self) -> Vec<KernelVariant> {
        self.plan.as_ref().map_or(Vec::new(), |p| {
            p.launches.iter().map(|l| l.variant).collect()
        })
    }

    /// Number of update dispatches one step records (after the first step or
    /// [`Optimizer::prepare`]). Clipping or loss scaling add a pre-pass over the same
    /// dispatches and 2 reduction dispatches, a two-phase rule (LAMB) its first pass and 1,
    /// loss scaling 1 more for the scale update; they are not counted here.
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.launches.len())
    }

    /// One step of every registered tensor: record, submit. Returns once submitted (the
    /// GPU works on; [`Context::wait`] or a read-back waits for it).
    pub fn step(&mut self) -> Result<()> {
        self.step_many(1)
    }

    /// Records one step into the caller's encoder (e.g. right after its backward pass) and
    /// advances the step count and the lr schedules. Any number of steps may be recorded
    /// into one encoder before it is submitted, each with the scalars and the clipping and
    /// scaler settings in force when it was recorded (with loss scaling, up to the
    /// scaler's candidates: an error says when to submit).
    ///
    /// An encoder dropped without being submitted leaves the step count and the schedules
    /// advanced for steps that never ran, and the params and state as they were: read
    /// [`Optimizer::step_count`] before recording to know where to come back to, and
    /// [`Optimizer::load_bytes`] a snapshot taken then to undo it.
    pub fn record_step(&mut self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.record(encoder, true)
    }

    /// Records `k` steps into the caller's encoder, as `k` calls of
    /// [`Optimizer::record_step`] would, but without clipping, loss scaling or a two-phase
    /// rule in one compute pass. `k == 0` records nothing. Each step holds a slot of the
    /// step-scalar ring (256 bytes on most devices) until the encoder's work is done. On an
    /// error at step j, steps before j stay recorded.
    pub fn record_steps(&mut self, encoder: &mut wgpu::CommandEncoder, k: u32) -> Result<()> {
        if k == 0 {
            return Ok(());
        }
        self.record_many(encoder, k, true)
    }

    /// Settings that decide the kernels and passes are fixed from the first step on.
    pub(crate) fn frozen(&self, what: &str) -> Result<()> {
        if self.started {
            Err(Error::InvalidState(format!(
                "{what} after the optimizer was prepared (first step); set it before"
            )))
        } else {
            Ok(())
        }
    }

    /// Whether the optimizer has been prepared (by [`Optimizer::prepare`] or a first step):
    /// its kernel settings are fixed from then on.
    pub fn is_prepared(&self) -> bool {
        self.started
    }

    /// Plans dispatches and allocates state now instead of on the first step. Settings that
    /// choose kernels (state format, stochastic rounding, clipping or loss scaling on) are
    /// fixed from then on; groups and tensors may still be added (the next step plans
    /// again, keeping every tensor's state).
    pub fn prepare(&mut self) -> Result<()> {
        if self.plan.is_none() {
            if self.tensors.is_empty() {
                return Err(Error::InvalidState("no tensors registered".into()));
            }
            let ctx = self.ctx.clone();
            let plan = ctx.scoped("planning", || self.build_plan())??;
            self.plan = Some(plan);
            self.started = true;
            if let Some(snap) = self.snapshot.take() {
                if let Err(e) = self.restore_snapshot(&snap) {
                    // The state is still on the host: plan and restore again next time.
                    self.plan = None;
                    self.snapshot = Some(snap);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// `s`, with the arena's padding after it where `pad_free` (see [`layout::pad_end`]),
/// within its buffer.
fn padded(s: registry::Span<'_, wgpu::Buffer>, pad_free: bool) -> registry::Span<'_, wgpu::Buffer> {
    if !pad_free {
        return s;
    }
    let end = layout::pad_end(s.offset + s.len as u64).min(s.bytes / s.dtype.size());
    registry::Span {
        len: (end - s.offset) as usize,
        ..s
    }
}

/// A caller's range as the registry's rules see it.
pub(crate) fn span(r: &BufferRange, dtype: Dtype) -> registry::Span<'_, wgpu::Buffer> {
    registry::Span {
        buffer: &r.buffer,
        bytes: r.buffer.size(),
        offset: r.offset,
        len: r.len,
        dtype,
    }
}
