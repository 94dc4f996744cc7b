//! The optimizer: registered tensors and param groups, planned once into a few dispatches,
//! then stepped with nothing but a small scalar upload per step.
//!
//! Rule-agnostic: a rule contributes its kernel, state slot count and per-step scalars;
//! everything here (batching, chunking, submission) is the same for all rules.
//!
//! ## How tensors become dispatches
//! Tensors that share their param buffer and grad buffer (and the distance between their
//! param and grad offsets, as in an [`Arena`]) form one *launch group* and get one state
//! buffer per slot laid out like the param buffer. A launch group is cut into *windows*
//! that fit `max_storage_buffer_binding_size` (a tensor larger than that is split); each
//! window is one dispatch over a table of tiles, one tile per workgroup, each tile a run of
//! `workgroup × width` elements of one tensor with its param group's index. The grid is 2D
//! when the tiles exceed `max_compute_workgroups_per_dimension`. A whole model in one
//! arena is therefore one dispatch per 128 MiB of parameters, not one per tensor. A window
//! holding one piece of one tensor (every window of a flat buffer) is *dense*: its tiles
//! are computed from the dispatch's geometry (a uniform) instead of read from the table.
//!
//! Width 4 (vec4 loads) is used when every tensor of the launch group starts at a multiple
//! of 4 elements in both buffers and its last vector fits in the buffers; else width 1.
//! The lanes of a last, partial vector that lie past the tensor are written back unchanged.
//!
//! ## Per-step scalars
//! Each step's scalars (lr, bias corrections, step flags) for every group, and the
//! host-set words of clipping and loss scaling, are written into a slot of a staging ring;
//! the step's commands begin with a copy of that slot into the one uniform slot the
//! kernels read (and into `aux`). So any number of steps can sit in one command buffer,
//! each with its own scalars and settings, and no bind group is rebuilt. A slot is reused
//! once the command buffer that copies it has been submitted (`step_many`) or has finished
//! on the device (`record_step` into the caller's encoder, seen through
//! `on_submitted_work_done`); when none is free the ring doubles, so the steady state
//! allocates nothing.
//!
//! ## Passes before the update
//! Gradient clipping ([`GradClip`]) and two-phase rules (LAMB) add passes over the same
//! tiles that write per-tile partial sums, reduced per tensor (and globally for clipping)
//! in a fixed order by `shaders/reduce.wgsl` into a device buffer (`aux`) the update
//! reads. Nothing is read back to the host in a step.

use std::collections::BTreeMap;

use crate::clip::{GradClip, GradStats};
use crate::context::{BufferRange, Context};
use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::kernel::cache as kernel;
use crate::kernel::{KernelVariant, Q8Kernel, BINDINGS, MAX_LAG};
use crate::plan::layout::{self, LaunchInfo, LayoutLimits, Placement};
use crate::quant::{self, Q8State, StateFormat, BLOCK};
use crate::registry::{self, GroupSchedule};
use crate::rules::{signed_slots, Hyper, UpdateRule, MAX_SLOTS};
use crate::scaler::GradScaler;
use crate::schedule::LrSchedule;

/// Index of a param group in its optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub usize);

/// Index of a registered tensor in its optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

/// Tensors allocated together: one params buffer and one grads buffer with the same layout,
/// each tensor at a 256-byte aligned offset so the caller's kernels can bind it directly.
/// An optimizer steps all of an arena's tensors in one dispatch (per 128 MiB).
#[derive(Debug)]
pub struct Arena {
    /// All parameters.
    pub params: wgpu::Buffer,
    /// All gradients, laid out as `params`.
    pub grads: wgpu::Buffer,
    ranges: Vec<(u64, usize)>,
    dtypes: (Dtype, Dtype),
}

/// Alignment of arena tensors, in elements: 256 bytes, the largest
/// `min_storage_buffer_offset_alignment` WebGPU allows.
pub const ARENA_ALIGN: u64 = layout::ARENA_ALIGN;

impl Arena {
    /// Zero-filled f32 params and grads for tensors of the given lengths.
    pub fn new(ctx: &Context, lens: &[usize]) -> Result<Self> {
        Self::with_dtypes(ctx, lens, Dtype::F32, Dtype::F32)
    }

    /// Zero-filled params and grads of the given element types (mixed precision: e.g. bf16
    /// params and grads, updated through the optimizer's f32 master copy). Offsets and
    /// lengths of [`Arena::param`] / [`Arena::grad`] count elements of these types.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, Dtype, Optimizer, TensorId};
    /// let ctx = Context::new()?;
    /// let arena = Arena::with_dtypes(&ctx, &[1000], Dtype::Bf16, Dtype::Bf16)?;
    /// ctx.upload_as(&arena.param(0), Dtype::Bf16, &vec![1.0; 1000])?; // the model's weights
    /// ctx.upload_as(&arena.grad(0), Dtype::Bf16, &vec![1.0; 1000])?; // its gradients
    /// let mut opt = Optimizer::new(&ctx, Adam { lr: 1e-3, ..Adam::default() })?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// opt.step()?;
    /// // The f32 master moved by lr; the bf16 params hold it rounded to nearest.
    /// assert_eq!(opt.read_params(TensorId(0))?[0], 0.999);
    /// assert_eq!(ctx.download_as(&arena.param(0), Dtype::Bf16)?[0], 1.0);
    /// # Ok(()) }
    /// ```
    pub fn with_dtypes(ctx: &Context, lens: &[usize], param: Dtype, grad: Dtype) -> Result<Self> {
        // 256 bytes in the smaller element type (and a multiple of 4 elements).
        let align = 256 / param.size().min(grad.size());
        let mut ranges = Vec::with_capacity(lens.len());
        let mut end = 0u64;
        for &len in lens {
            ranges.push((end, len));
            end = (end + len as u64).div_ceil(align) * align;
        }
        // `end` is a multiple of 64: no overflow, no rounding.
        let words = |d: Dtype| (end / 4 * d.size()) as usize;
        Ok(Self {
            params: ctx.create_zeroed("gpu-optim arena params", words(param))?,
            grads: ctx.create_zeroed("gpu-optim arena grads", words(grad))?,
            ranges,
            dtypes: (param, grad),
        })
    }

    /// Element types of the params and the grads.
    pub fn dtypes(&self) -> (Dtype, Dtype) {
        self.dtypes
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the arena holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Where tensor `i`'s parameters live. Panics if `i >= len()`, as slice indexing does.
    pub fn param(&self, i: usize) -> BufferRange {
        let (o, n) = self.ranges[i];
        BufferRange::new(&self.params, o, n).of(self.dtypes.0)
    }

    /// Where tensor `i`'s gradient lives. Panics if `i >= len()`, as slice indexing does.
    pub fn grad(&self, i: usize) -> BufferRange {
        let (o, n) = self.ranges[i];
        BufferRange::new(&self.grads, o, n).of(self.dtypes.1)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Tensor {
    pub(crate) group: usize,
    pub(crate) param: BufferRange,
    pub(crate) grad: BufferRange,
    /// Element types (16-bit params get an f32 master copy).
    pub(crate) dtypes: (Dtype, Dtype),
}

/// One dispatch.
struct Launch {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    /// The clipping pre-pass's grid: a dense dispatch's workgroups cover SUMSQ_TILES tiles.
    sumsq_grid: (u32, u32),
    /// The update kernel for this dispatch's width and density, and the pre-passes'.
    main: wgpu::ComputePipeline,
    sumsq: Option<wgpu::ComputePipeline>,
    measure: Option<wgpu::ComputePipeline>,
    /// Which kernel text and constants its pipelines run.
    variant: KernelVariant,
}

/// Where each tensor's state lives: a buffer per slot, shared by a launch group (f32), or
/// one tensor's codes per slot and its absmax (8-bit, [`StateFormat`]).
struct StateSet {
    buffers: Vec<wgpu::Buffer>,
    absmax: Option<wgpu::Buffer>,
    /// The f32 master copy of 16-bit params, laid out as the state.
    master: Option<wgpu::Buffer>,
}

struct Plan {
    launches: Vec<Launch>,
    states: Vec<StateSet>,
    /// Per tensor: (state set, element offset in its buffers).
    tensor_state: Vec<(usize, u64)>,
    /// The uniform slot the kernels read: this step's scalars, copied from `staging`.
    hyper_buf: wgpu::Buffer,
    hyper_size: u64,
    staging: Staging,
    /// Device-side step scalars (`aux` in the shaders).
    aux: wgpu::Buffer,
    /// The reduction passes: gradient clipping (when set before planning) and a two-phase
    /// rule's first pass.
    reductions: Option<Reductions>,
    /// Loss scaling: candidates of per-step scalars per slot (0: none), the padded group
    /// count they are laid out by, and where the device's step counters are read back.
    lag: u32,
    groups_p2: u32,
    ack_buf: Option<wgpu::Buffer>,
}

/// The ring of per-step scalar slots (see the module docs): a slot is free when this
/// optimizer holds the only reference to its token.
struct Staging {
    buf: wgpu::Buffer,
    tokens: Vec<std::sync::Arc<()>>,
    next: usize,
}

/// Every tensor's state slots and master copy, and the scaler's words, on the host while
/// the optimizer plans again (groups or tensors added after steps).
struct Snapshot {
    tensors: Vec<(Vec<SlotSnapshot>, Option<Vec<f32>>)>,
    scaler: Option<[f32; 5]>,
}

enum SlotSnapshot {
    F32(Vec<f32>),
    Q8(Vec<u8>, Vec<f32>),
}

/// Layout of a staging slot after the scalars (bytes from `hyper_size`): clipping's words
/// (aux[0..2]) then the loss scaler's settings (aux[10..14]).
const STAGE_CONTROL: u64 = 8;
const STAGE_SCALER: u64 = 16;

struct Reductions {
    /// Clipping's pre-pass runs (the pipelines are the launches'); also for loss scaling.
    clip: bool,
    /// A two-phase rule's first pass runs.
    two_phase: bool,
    pipelines: kernel::ReducePipelines,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

/// Layout of `aux` (see shaders/reduce.wgsl): control words, then per-tensor sums.
const AUX_SUMS_AT: u64 = 16;
/// The loss scaler's words in `aux`: scale, growth tracker, found_inf, steps executed,
/// steps skipped.
const AUX_SCALE: u64 = 5;
const AUX_EXECUTED: u64 = 8;
/// Host-written scaler settings: on, growth_factor, backoff_factor, growth_interval.
const AUX_SCALER_CONFIG: u64 = 10;
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
    plan: Option<Plan>,
    /// Prepared at least once: the kernel settings are fixed.
    started: bool,
    /// State kept on the host while planning again (see `unplan`).
    snapshot: Option<Snapshot>,
    pub(crate) t: u64,
    ring: u32,
    scratch: Vec<Hyper>,
    /// One staging slot's bytes.
    stage: Vec<u8>,
    /// Step tokens held until `step_many`'s submission.
    held: Vec<std::sync::Arc<()>>,
    /// (lr, schedule epoch) per group before a `step_many` batch, to undo a failed one.
    undo: Vec<(f64, u64)>,
    per_tensor: bool,
    /// Buffers known to belong to this optimizer's device.
    on_device: std::collections::BTreeSet<wgpu::Buffer>,
    pub(crate) clip: Option<GradClip>,
    pub(crate) state_format: StateFormat,
    pub(crate) scaler: Option<GradScaler>,
    /// bf16 params without a master copy, rounded stochastically with this seed.
    pub(crate) stochastic: Option<u32>,
    /// The device's (steps executed, steps skipped) as last read back, and a read-back in
    /// flight (0 pending, 1 mapped, 2 failed).
    ack: (u64, u64),
    pending_ack: Option<std::sync::Arc<std::sync::atomic::AtomicU8>>,
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
            plan: None,
            started: false,
            snapshot: None,
            t: 0,
            ring: 16,
            scratch: Vec::new(),
            stage: Vec::new(),
            held: Vec::new(),
            undo: Vec::new(),
            per_tensor: false,
            on_device: Default::default(),
            clip: None,
            state_format: StateFormat::F32,
            scaler: None,
            stochastic: None,
            ack: (0, 0),
            pending_ack: None,
        })
    }

    /// How many steps [`Optimizer::step_many`] records into one command buffer (default
    /// 16), and the ring of per-step scalar slots' first size. [`Optimizer::record_step`]
    /// may record any number of steps into one encoder, each with its own scalars; with
    /// loss scaling, at most as many as the scaler's candidates cover (see
    /// [`crate::scaler`]). Errors ([`Error::InvalidState`]): `k` outside 1..=1024 (the ring
    /// of scalar slots is allocated up front), or with loss scaling a `k` beyond what the
    /// uniform limit allows once the optimizer is prepared.
    pub fn set_steps_per_submission(&mut self, k: u32) -> Result<()> {
        check_steps_per_submission(k)?;
        if let Some(p) = self.plan.as_ref().filter(|p| p.lag > 0 && k >= p.lag) {
            return Err(Error::InvalidState(format!(
                "loss scaling covers at most {} steps per submission here, not {k}",
                p.lag - 1
            )));
        }
        self.ring = k;
        Ok(())
    }

    /// How many steps [`Optimizer::step_many`] records into one command buffer.
    pub fn steps_per_submission(&self) -> u32 {
        self.ring
    }

    /// One dispatch per tensor instead of batching: the naive baseline the bench compares
    /// against. Never faster; there for measurement.
    pub fn set_dispatch_per_tensor(&mut self, on: bool) -> Result<()> {
        self.frozen("set_dispatch_per_tensor")?;
        self.per_tensor = on;
        Ok(())
    }

    /// Stores state slots as 8-bit block-wise codes ([`StateFormat::Blockwise8`], see
    /// [`crate::quant`]) for tensors of at least `min_len` elements; before the first step.
    /// Such tensors must start at multiples of 4 elements (an [`Arena`]'s do), and each is
    /// one dispatch. Two-phase rules (LAMB) keep f32 state.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, Optimizer, StateFormat, TensorId};
    /// let ctx = Context::new()?;
    /// let arena = Arena::new(&ctx, &[1 << 16, 100])?; // the small one keeps f32 state
    /// let mut opt = Optimizer::new(&ctx, Adam::default())?;
    /// opt.set_state_format(StateFormat::blockwise8())?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// ctx.upload(&arena.grad(0), &vec![0.5; 1 << 16])?;
    /// opt.step()?;
    /// assert!(opt.is_quantized(TensorId(0)) && !opt.is_quantized(TensorId(1)));
    /// let (codes, absmax) = opt.read_state_q8(TensorId(0), 0)?; // exp_avg: 1 byte each
    /// assert_eq!((codes.len(), absmax.len()), (1 << 16, 256));
    /// assert_eq!(absmax[0], 0.05); // (1 - beta1) * 0.5, the block's largest |m|
    /// # Ok(()) }
    /// ```
    pub fn set_state_format(&mut self, format: StateFormat) -> Result<()> {
        self.frozen("set_state_format")?;
        if format != StateFormat::F32 && self.groups[0].kernel().two_phase {
            return Err(Error::InvalidState(format!(
                "{} is a two-phase rule; 8-bit state is not supported for it",
                self.groups[0].name()
            )));
        }
        // Tensors already added must suit it (8-bit state needs vector-aligned tensors).
        for (i, t) in self.tensors.iter().enumerate() {
            let (p, g) = (span(&t.param, t.dtypes.0), span(&t.grad, t.dtypes.1));
            registry::check_vec4(i, &p, &g, format.quantizes(t.param.len))?;
        }
        self.state_format = format;
        Ok(())
    }

    /// How this optimizer stores state.
    pub fn state_format(&self) -> StateFormat {
        self.state_format
    }

    /// Whether tensor `t` has 8-bit state.
    pub fn is_quantized(&self, t: TensorId) -> bool {
        self.tensors
            .get(t.0)
            .is_some_and(|x| self.state_format.quantizes(x.param.len))
    }

    /// Clips gradients on the device in every step (see [`GradClip`]). Turning clipping on
    /// must happen before the first step (it adds a pass); its values may change later and
    /// apply from the next submission.
    pub fn set_grad_clip(&mut self, clip: GradClip) -> Result<()> {
        validate_clip(&clip)?;
        let on = clip != GradClip::default();
        // The reduction pass exists (or not) since the first step: clip or scaler were on.
        if self.started && self.clip.is_none() && self.scaler.is_none() {
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

    /// Loss scaling with the inf/NaN skip, on the device (see [`crate::scaler`]): every
    /// step unscales the gradients by the device's scale, skips itself if any gradient of
    /// any tensor is non-finite (params, state and the rule's step count untouched), and
    /// updates the scale as torch's `GradScaler.update`. Must be enabled before the first
    /// step (it adds passes); its factors may change later (the scale itself carries on;
    /// a different `init_scale` is then refused).
    /// Scale the loss by [`Optimizer::loss_scale_buffer`] in your backward pass.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, GradScaler, Optimizer};
    /// let ctx = Context::new()?;
    /// let arena = Arena::new(&ctx, &[1000])?;
    /// let mut opt = Optimizer::new(&ctx, Adam::default())?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// opt.set_grad_scaler(GradScaler::default())?;
    /// // A backward pass that overflowed: the step is skipped and the scale halves.
    /// ctx.upload(&arena.grad(0), &vec![f32::INFINITY; 1000])?;
    /// opt.step()?;
    /// assert_eq!(opt.applied_steps()?, 0);
    /// assert_eq!(opt.loss_scale()?, 32768.0);
    /// // A clean one (grads scaled by 32768, as the loss was) is applied, unscaled.
    /// ctx.upload(&arena.grad(0), &vec![32768.0; 1000])?;
    /// opt.step()?;
    /// assert_eq!(opt.applied_steps()?, 1);
    /// # Ok(()) }
    /// ```
    pub fn set_grad_scaler(&mut self, scaler: GradScaler) -> Result<()> {
        scaler.validate()?;
        if self.started {
            check_running_scaler(self.scaler.as_ref(), &scaler)?;
        }
        self.scaler = Some(scaler);
        Ok(())
    }

    /// Where the device keeps the current loss scale (one f32): bind it in the kernel that
    /// seeds your backward pass to scale the loss without a read-back. Storage bindings
    /// start at 256-byte aligned offsets, so bind the whole `buffer` read-only and read
    /// element `offset`.
    pub fn loss_scale_buffer(&mut self) -> Result<BufferRange> {
        self.scaler_plan()?;
        let plan = self.plan.as_ref().expect("prepared");
        Ok(BufferRange::new(&plan.aux, AUX_SCALE, 1))
    }

    /// The current loss scale (reads back; waits for the GPU).
    pub fn loss_scale(&mut self) -> Result<f32> {
        Ok(self.scaler_words()?[0])
    }

    /// Steps skipped for a non-finite gradient so far (reads back; waits for the GPU).
    pub fn skipped_steps(&mut self) -> Result<u64> {
        Ok(self.scaler_words()?[4] as u64)
    }

    /// Steps that updated the parameters: [`Optimizer::step_count`] less the skipped ones.
    /// This is the step number the rule's bias corrections use. Reads back only with loss
    /// scaling.
    pub fn applied_steps(&mut self) -> Result<u64> {
        if self.scaler.is_none() {
            return Ok(self.t);
        }
        let w = self.scaler_words()?;
        // Steps recorded but not yet executed (record_step without submitting) cannot
        // have been skipped yet.
        Ok(self.t - w[4] as u64)
    }

    fn scaler_plan(&mut self) -> Result<()> {
        if self.scaler.is_none() {
            return Err(Error::InvalidState(
                "no loss scaler: call set_grad_scaler before the first step".into(),
            ));
        }
        self.prepare()
    }

    /// aux[5..10): scale, growth tracker, found_inf, executed, skipped.
    pub(crate) fn scaler_words(&mut self) -> Result<[f32; 5]> {
        self.scaler_plan()?;
        let plan = self.plan.as_ref().expect("prepared");
        let b = self.ctx.download_bytes(&plan.aux, AUX_SCALE * 4, 20)?;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
        Ok([v[0], v[1], v[2], v[3], v[4]])
    }

    /// Overwrites the scaler's device words (checkpoint loading) and the host's count.
    pub(crate) fn set_scaler_words(&mut self, w: [f32; 5]) -> Result<()> {
        self.scaler_plan()?;
        self.settle_ack(true)?;
        let plan = self.plan.as_ref().expect("prepared");
        self.ctx
            .queue()
            .write_buffer(&plan.aux, AUX_SCALE * 4, bytemuck::cast_slice(&w));
        self.ack = (w[3] as u64, w[4] as u64);
        Ok(())
    }

    /// Takes in a finished read-back of the device's step counters, if any; waits for one
    /// in flight if `wait`.
    fn settle_ack(&mut self, wait: bool) -> Result<()> {
        use std::sync::atomic::Ordering;
        let Some(flag) = self.pending_ack.clone() else {
            return Ok(());
        };
        if flag.load(Ordering::Acquire) == 0 {
            let kind = if wait {
                wgpu::PollType::wait_indefinitely()
            } else {
                wgpu::PollType::Poll
            };
            self.ctx
                .device()
                .poll(kind)
                .map_err(|e| Error::DeviceLost(e.to_string()))?;
        }
        let state = flag.load(Ordering::Acquire);
        if state == 0 {
            return Ok(());
        }
        self.pending_ack = None;
        let buf = self
            .plan
            .as_ref()
            .and_then(|p| p.ack_buf.clone())
            .expect("planned");
        if state == 1 {
            let view = buf
                .get_mapped_range(..)
                .map_err(|e| Error::Readback(e.to_string()))?;
            let v: Vec<f32> = bytemuck::pod_collect_to_vec(&view);
            drop(view);
            // A newer count never goes back (a load may have set one meanwhile).
            if v[0] as u64 >= self.ack.0 {
                self.ack = (v[0] as u64, v[1] as u64);
            }
        }
        buf.unmap();
        Ok(())
    }

    /// Makes sure the host knows the device's skip count as of a step recent enough that
    /// step `s`'s slot of candidates covers every skip count possible by then.
    fn refresh_ack(&mut self, s: u64, lag: u64) -> Result<()> {
        let covered = |me: &Self| s - 1 - me.ack.0.min(s - 1) < lag;
        self.settle_ack(false)?;
        if covered(self) {
            return Ok(());
        }
        self.settle_ack(true)?;
        if covered(self) {
            return Ok(());
        }
        let w = self.scaler_words()?;
        self.ack = (w[3] as u64, w[4] as u64);
        if covered(self) {
            return Ok(());
        }
        Err(Error::InvalidState(format!(
            "loss scaling: {} steps recorded but not submitted; submit record_step's encoder \
             at least every {lag} steps",
            s - 1 - self.ack.0
        )))
    }

    /// The last step's gradient norm and non-finite count (reads back; waits for the GPU).
    /// Needs clipping enabled (a `GradClip` with neither field set still measures).
    pub fn grad_stats(&mut self) -> Result<GradStats> {
        self.prepare()?;
        let plan = self.plan.as_ref().expect("prepared");
        if plan.reductions.as_ref().is_none_or(|r| !r.clip) {
            return Err(Error::InvalidState(
                "grad_stats needs set_grad_clip before the first step".into(),
            ));
        }
        let b = self.ctx.download_bytes(&plan.aux, 0, 20)?;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&b);
        Ok(GradStats {
            norm: v[2],
            nonfinite: v[4] as u32,
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
        check_compatible(self.groups.len(), &rule, &self.groups[0])?;
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

    fn check_group(&self, g: GroupId) -> Result<()> {
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
        if group.0 >= self.groups.len() {
            return Err(Error::InvalidState(format!("no param group {}", group.0)));
        }
        let i = self.tensors.len();
        let (pd, gd) = (param_dtype, grad_dtype);
        param.check_dtype(&format!("tensor {i} params"), pd)?;
        grad.check_dtype(&format!("tensor {i} grads"), gd)?;
        let st = wgpu::BufferUsages::STORAGE;
        param.check_sized(&format!("tensor {i} params"), st, pd.size())?;
        grad.check_sized(&format!("tensor {i} grads"), st, gd.size())?;
        let (p, g) = (span(&param, pd), span(&grad, gd));
        let q8 = self.state_format.quantizes(param.len);
        registry::check_pair(i, &p, &g, q8)?;
        self.check_device(i, &param.buffer, "params")?;
        self.check_device(i, &grad.buffer, "grads")?;
        for (j, t) in self.tensors.iter().enumerate() {
            let (tp, tg) = (span(&t.param, t.dtypes.0), span(&t.grad, t.dtypes.1));
            registry::check_disjoint((i, &p, &g), (j, &tp, &tg))?;
        }
        self.unplan()?; // after steps: plan again, keeping the state
        self.tensors.push(Tensor {
            group: group.0,
            param,
            grad,
            dtypes: (pd, gd),
        });
        Ok(TensorId(i))
    }

    /// Refuses a buffer of another device (of this wgpu instance): binding it would fail at
    /// the first step. Each buffer is probed once, with a bind group on this device.
    fn check_device(&mut self, i: usize, buffer: &wgpu::Buffer, what: &str) -> Result<()> {
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
    /// start there).
    pub fn record_zero_grad(&self, encoder: &mut wgpu::CommandEncoder) {
        for t in &self.tensors {
            let e = t.dtypes.1.size();
            let start = t.grad.offset * e;
            let end = ((t.grad.offset + t.grad.len as u64) * e).div_ceil(4) * 4;
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

    /// Registers every tensor of `arena` in `group`.
    pub fn add_arena(&mut self, arena: &Arena, group: GroupId) -> Result<Vec<TensorId>> {
        let (pd, gd) = arena.dtypes;
        (0..arena.len())
            .map(|i| self.add_tensor_as(group, arena.param(i), pd, arena.grad(i), gd))
            .collect()
    }

    /// bf16 params without an f32 master copy: each step widens them, updates in f32 and
    /// rounds back stochastically (up in magnitude with probability equal to the dropped
    /// fraction: unbiased, so updates smaller than half a bf16 ulp still move the params
    /// on average, where round-to-nearest would drop them every time). Saves the master's
    /// 4 bytes per param of memory and 8 of traffic. The random bits are a hash of the
    /// element's index in its buffer, the step and `seed`
    /// ([`crate::half::stochastic_bits`]): runs are reproducible. f16 params keep their
    /// master. Before the first step.
    pub fn set_stochastic_rounding(&mut self, seed: Option<u32>) -> Result<()> {
        self.frozen("set_stochastic_rounding")?;
        self.stochastic = seed;
        Ok(())
    }

    /// Whether tensor `t`'s params have an f32 master copy.
    pub fn has_master(&self, t: TensorId) -> bool {
        self.tensors
            .get(t.0)
            .is_some_and(|x| self.needs_master(x.dtypes.0))
    }

    fn needs_master(&self, d: Dtype) -> bool {
        crate::cpu_model::needs_master(d, self.stochastic)
    }

    /// Element types of tensor `t`'s params and grads.
    pub fn dtypes(&self, t: TensorId) -> Option<(Dtype, Dtype)> {
        self.tensors.get(t.0).map(|x| x.dtypes)
    }

    /// The f32 master copy of tensor `t`'s 16-bit params.
    pub fn master(&mut self, t: TensorId) -> Result<BufferRange> {
        self.prepare()?;
        let plan = self.plan.as_ref().expect("prepared");
        let (set, offset) = *plan
            .tensor_state
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let m = plan.states[set].master.as_ref().ok_or_else(|| {
            Error::InvalidState(format!("tensor {} has f32 params: no master copy", t.0))
        })?;
        Ok(BufferRange::new(m, offset, self.tensors[t.0].param.len))
    }

    /// Tensor `t`'s params as stored (little-endian bytes) and their element type.
    pub fn param_bytes(&mut self, t: TensorId) -> Result<(Vec<u8>, Dtype)> {
        let x = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let e = x.dtypes.0.size();
        let b = self
            .ctx
            .read_bytes(&x.param.buffer, x.param.offset * e, x.param.len as u64 * e)?;
        Ok((b, x.dtypes.0))
    }

    /// Overwrites tensor `t`'s params with little-endian bytes of its element type (its
    /// neighbours' bytes in a shared word are kept).
    pub(crate) fn write_param_bytes(&mut self, t: TensorId, data: &[u8]) -> Result<()> {
        let x = &self.tensors[t.0];
        let e = x.dtypes.0.size();
        let n = x.param.len as u64 * e;
        if data.len() as u64 != n {
            return Err(Error::LengthMismatch {
                what: format!("tensor {} params (bytes)", t.0),
                got: data.len(),
                expected: n as usize,
            });
        }
        self.ctx
            .write_bytes(&x.param.buffer, x.param.offset * e, data)
    }

    /// Reads tensor `t`'s params as f32: the master copy for 16-bit params (what the rule
    /// updates), else the params themselves.
    pub fn read_params(&mut self, t: TensorId) -> Result<Vec<f32>> {
        let tensor = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?
            .clone();
        match tensor.dtypes.0 {
            Dtype::F32 => self.ctx.download(&tensor.param),
            d if !self.needs_master(d) => self.ctx.download_as(&tensor.param, d),
            _ => {
                let r = self.master(t)?;
                self.ctx.download(&r)
            }
        }
    }

    /// Steps called so far (what lr schedules follow). With loss scaling some may have been
    /// skipped: [`Optimizer::applied_steps`].
    pub fn step_count(&self) -> u64 {
        self.t
    }

    /// Bytes of device memory the state takes (0 before planning).
    pub fn state_bytes(&self) -> u64 {
        self.plan.as_ref().map_or(0, |p| {
            p.states
                .iter()
                .flat_map(|s| s.buffers.iter().chain(&s.absmax))
                .map(|b| b.size())
                .sum()
        })
    }

    /// The kernel variant of each planned dispatch, in dispatch order (empty before
    /// [`Optimizer::prepare`] or the first step): what runs, by [`KernelVariant::name`],
    /// and its WGSL ([`KernelVariant::wgsl`]).
    pub fn kernel_variants(&self) -> Vec<KernelVariant> {
        self.plan.as_ref().map_or(Vec::new(), |p| {
            p.launches.iter().map(|l| l.variant).collect()
        })
    }

    /// Number of dispatches one step records (after the first step or [`Optimizer::prepare`]).
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.launches.len())
    }

    /// The registered tensors' state slot `slot` of tensor `t`.
    /// Tensors with 8-bit state have no f32 buffer: see [`Optimizer::read_state_q8`].
    pub fn state(&mut self, t: TensorId, slot: usize) -> Result<BufferRange> {
        self.prepare()?;
        if self.is_quantized(t) {
            return Err(Error::InvalidState(format!(
                "tensor {} has 8-bit state: read_state dequantizes it, read_state_q8 reads the codes",
                t.0
            )));
        }
        let plan = self.plan.as_ref().expect("prepared");
        let &(set, offset) = plan
            .tensor_state
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let buf = plan.states[set].buffers.get(slot).ok_or_else(|| {
            Error::InvalidState(format!(
                "rule has {} state slots, asked for {slot}",
                self.groups[0].state_slots().len()
            ))
        })?;
        Ok(BufferRange::new(buf, offset, self.tensors[t.0].param.len))
    }

    /// Reads tensor `t`'s state slot back to the host (dequantized if 8-bit).
    pub fn read_state(&mut self, t: TensorId, slot: usize) -> Result<Vec<f32>> {
        if self.is_quantized(t) {
            let (codes, absmax) = self.read_state_q8(t, slot)?;
            let signed = signed_slots(&self.groups[0])[slot];
            return Ok(quant::Codebook::new(signed).dequantize(&codes, &absmax));
        }
        let r = self.state(t, slot)?;
        self.ctx.download(&r)
    }

    /// Tensor `t`'s 8-bit state slot: one code per element, one absmax per block.
    pub fn read_state_q8(&mut self, t: TensorId, slot: usize) -> Result<(Vec<u8>, Vec<f32>)> {
        let (codes, absmax) = self.q8_buffers(t, slot)?;
        let len = self.tensors[t.0].param.len;
        let blocks = len.div_ceil(BLOCK);
        let mut c = self
            .ctx
            .download_bytes(&codes, 0, len.div_ceil(4) as u64 * 4)?;
        c.truncate(len);
        let a =
            self.ctx
                .download_bytes(&absmax, (slot * blocks * 4) as u64, (blocks * 4) as u64)?;
        Ok((c, bytemuck::pod_collect_to_vec(&a)))
    }

    /// Overwrites tensor `t`'s 8-bit state slot (checkpoint loading).
    pub(crate) fn write_state_q8(
        &mut self,
        t: TensorId,
        slot: usize,
        codes: &[u8],
        absmax: &[f32],
    ) -> Result<()> {
        let (cbuf, abuf) = self.q8_buffers(t, slot)?;
        let len = self.tensors[t.0].param.len;
        let blocks = len.div_ceil(BLOCK);
        if codes.len() != len || absmax.len() != blocks {
            return Err(Error::LengthMismatch {
                what: format!("tensor {} 8-bit state", t.0),
                got: codes.len(),
                expected: len,
            });
        }
        let mut c = codes.to_vec();
        c.resize(len.div_ceil(4) * 4, 0);
        let q = self.ctx.queue();
        q.write_buffer(&cbuf, 0, &c);
        q.write_buffer(
            &abuf,
            (slot * blocks * 4) as u64,
            bytemuck::cast_slice(absmax),
        );
        Ok(())
    }

    fn q8_buffers(&mut self, t: TensorId, slot: usize) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        self.prepare()?;
        if !self.is_quantized(t) {
            return Err(Error::InvalidState(format!(
                "tensor {} does not have 8-bit state",
                t.0
            )));
        }
        let plan = self.plan.as_ref().expect("prepared");
        let set = &plan.states[plan.tensor_state[t.0].0];
        let codes = set.buffers.get(slot).ok_or_else(|| {
            Error::InvalidState(format!(
                "rule has {} state slots, asked for {slot}",
                self.groups[0].state_slots().len()
            ))
        })?;
        Ok((codes.clone(), set.absmax.clone().expect("8-bit set")))
    }

    /// One step of every registered tensor: record, submit. Returns once submitted (the
    /// GPU works on; [`Context::wait`] or a read-back waits for it).
    pub fn step(&mut self) -> Result<()> {
        self.step_many(1)
    }

    /// `k` steps on the current gradients, submitted in command buffers of up to
    /// `steps_per_submission` steps each, each step with its own scalars (`k == 0` does
    /// nothing). On an error,
    /// nothing of the batch that failed ran: the step count, the groups' lrs and their
    /// schedules are as before it.
    pub fn step_many(&mut self, k: u32) -> Result<()> {
        self.prepare()?;
        let mut left = k;
        while left > 0 {
            let n = left.min(self.ring);
            let t0 = self.t;
            self.undo.clear();
            for (g, s) in self.groups.iter().zip(&self.schedules) {
                self.undo
                    .push((g.lr(), s.running.as_ref().map_or(0, |r| r.1)));
            }
            let ctx = self.ctx.clone();
            let r = ctx.scoped("step", || -> Result<()> {
                let mut enc = ctx.device().create_command_encoder(&Default::default());
                for _ in 0..n {
                    self.record(&mut enc, false)?;
                }
                // Loss scaling: read the device's step counters back after this batch,
                // asynchronously (taken in by a later step's poll).
                let ack = match (&self.plan, &self.pending_ack) {
                    (Some(p), None) => p.ack_buf.as_ref().map(|b| {
                        enc.copy_buffer_to_buffer(&p.aux, AUX_EXECUTED * 4, b, 0, 8);
                        b.clone()
                    }),
                    _ => None,
                };
                ctx.queue().submit([enc.finish()]);
                if let Some(b) = ack {
                    let flag = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
                    let f = flag.clone();
                    b.map_async(wgpu::MapMode::Read, .., move |r| {
                        let v = if r.is_ok() { 1 } else { 2 };
                        f.store(v, std::sync::atomic::Ordering::Release);
                    });
                    self.pending_ack = Some(flag);
                }
                Ok(())
            });
            // Submitted (or dropped): the batch's scalar slots may be written again.
            self.held.clear();
            if let Err(e) = r.and_then(|r| r) {
                // Nothing of this batch ran: the step count and the lrs say so.
                self.t = t0;
                for (g, &(lr, epoch)) in self.undo.iter().enumerate() {
                    self.groups[g].set_lr(lr);
                    if let Some(run) = self.schedules[g].running.as_mut() {
                        run.1 = epoch;
                    }
                }
                return Err(e);
            }
            left -= n;
        }
        Ok(())
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

    /// A free slot of the scalar ring: one whose token only this optimizer holds. Waits
    /// for nothing: polls once for finished work, else doubles the ring.
    fn take_slot(&mut self) -> Result<usize> {
        for attempt in 0..2 {
            let st = &mut self.plan.as_mut().expect("prepared").staging;
            let n = st.tokens.len();
            for k in 0..n {
                let i = (st.next + k) % n;
                if std::sync::Arc::strong_count(&st.tokens[i]) == 1 {
                    st.next = (i + 1) % n;
                    return Ok(i);
                }
            }
            if attempt == 0 {
                self.ctx
                    .device()
                    .poll(wgpu::PollType::Poll)
                    .map_err(|e| Error::DeviceLost(e.to_string()))?;
            }
        }
        // Every slot is in a command buffer not yet submitted or not yet finished.
        let plan = self.plan.as_mut().expect("prepared");
        let n = plan.staging.tokens.len();
        let stride = plan.staging.buf.size() / n as u64;
        self.ctx.count("buffer");
        plan.staging = Staging {
            buf: self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("gpu-optim per-step scalars (staging)"),
                size: stride * 2 * n as u64,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            tokens: (0..2 * n).map(|_| std::sync::Arc::new(())).collect(),
            next: 1,
        };
        Ok(0)
    }

    fn record(&mut self, encoder: &mut wgpu::CommandEncoder, callers: bool) -> Result<()> {
        self.prepare()?;
        // A checkpoint may carry any step count: its last step is refused, not wrapped.
        let t = self.t.checked_add(1).ok_or_else(|| {
            Error::InvalidState("the step count is at its maximum (u64::MAX)".into())
        })?;
        let (lag, gp2) = {
            let p = self.plan.as_ref().expect("prepared");
            (p.lag, p.groups_p2 as usize)
        };
        // Candidate j is for j more skips than the host knows of: the rule's step number
        // t − skipped − j; the lr follows the steps called, t. Without loss scaling there
        // is one candidate, for t.
        let (skipped, reach) = match lag {
            0 => (0, 0),
            _ => {
                self.refresh_ack(t, lag as u64)?;
                let (executed, skipped) = self.ack;
                (skipped, (t - 1 - executed.min(t - 1)).min(lag as u64 - 1))
            }
        };
        let slot = self.take_slot()?;
        self.scratch.clear();
        // Candidates (GROUPS each), then the header: a.x the skips assumed for candidate
        // 0 (loss scaling), a.y stochastic rounding's step key (bits).
        let header = gp2 * lag.max(1) as usize;
        self.scratch.resize(header + 1, [0.0; 16]);
        if let Some(seed) = self.stochastic {
            self.scratch[header][1] = f32::from_bits(crate::half::step_key(t, seed));
        }
        if let Some(seed) = self.state_format.stochastic_seed() {
            self.scratch[header][2] = f32::from_bits(crate::half::step_key(t, seed));
        }
        for (g, rule) in self.groups.iter().enumerate() {
            for j in 0..=reach {
                if let Some(tr) = t.checked_sub(skipped + j).filter(|&x| x >= 1) {
                    self.scratch[j as usize * gp2 + g] = rule.hyper(tr);
                }
            }
        }
        self.scratch[header][0] = skipped as f32;
        let plan = self.plan.as_ref().expect("prepared");
        let stride = plan.staging.buf.size() / plan.staging.tokens.len() as u64;
        let at = slot as u64 * stride;
        let bytes = &mut self.stage;
        bytes.clear();
        bytes.extend_from_slice(bytemuck::cast_slice(&self.scratch));
        bytes.truncate(plan.hyper_size as usize);
        let c = self.clip.unwrap_or_default();
        let control = [c.max_norm.unwrap_or(0.0), c.value.unwrap_or(0.0)];
        bytes.extend_from_slice(bytemuck::cast_slice(&control));
        let sc = self.scaler.unwrap_or_default();
        let on = self.scaler.is_some() as u32 as f32;
        let words = [
            on,
            sc.growth_factor,
            sc.backoff_factor,
            sc.growth_interval as f32,
        ];
        bytes.extend_from_slice(bytemuck::cast_slice(&words));
        self.ctx.queue().write_buffer(&plan.staging.buf, at, bytes);
        let token = plan.staging.tokens[slot].clone();
        let staging = &plan.staging.buf;
        encoder.copy_buffer_to_buffer(staging, at, &plan.hyper_buf, 0, plan.hyper_size);
        if plan.reductions.is_some() {
            let ctl = at + plan.hyper_size;
            encoder.copy_buffer_to_buffer(staging, ctl, &plan.aux, 0, STAGE_CONTROL);
            if self.scaler.is_some() {
                let (from, to) = (ctl + STAGE_CONTROL, AUX_SCALER_CONFIG * 4);
                encoder.copy_buffer_to_buffer(staging, from, &plan.aux, to, STAGE_SCALER);
            }
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("gpu-optim step"),
            timestamp_writes: None,
        });
        if let Some(r) = &plan.reductions {
            // Each pre-pass over all tiles, then the per-tensor sums (and for clipping the
            // global norm) before the update.
            type Pick = fn(&Launch) -> (Option<&wgpu::ComputePipeline>, (u32, u32));
            let passes: [(bool, Pick, bool); 2] = [
                (r.clip, |l| (l.sumsq.as_ref(), l.sumsq_grid), true),
                (r.two_phase, |l| (l.measure.as_ref(), l.grid), false),
            ];
            for (on, pick, global) in passes {
                if !on {
                    continue;
                }
                for l in &plan.launches {
                    let (pipeline, grid) = pick(l);
                    pass.set_pipeline(pipeline.expect("planned with this pass"));
                    pass.set_bind_group(0, &l.bind_group, &[0]);
                    pass.dispatch_workgroups(grid.0, grid.1, 1);
                }
                pass.set_bind_group(0, &r.bind_group, &[]);
                pass.set_pipeline(&r.pipelines.per_tensor);
                pass.dispatch_workgroups(r.grid.0, r.grid.1, 1);
                if global {
                    pass.set_pipeline(&r.pipelines.total);
                    pass.dispatch_workgroups(1, 1, 1);
                }
            }
        }
        for l in &plan.launches {
            pass.set_pipeline(&l.main);
            pass.set_bind_group(0, &l.bind_group, &[0]);
            pass.dispatch_workgroups(l.grid.0, l.grid.1, 1);
        }
        // Loss scaling (lag > 0): the scale update after the update.
        if let Some(r) = plan.reductions.as_ref().filter(|_| plan.lag > 0) {
            pass.set_bind_group(0, &r.bind_group, &[]);
            pass.set_pipeline(&r.pipelines.scaler_update);
            pass.dispatch_workgroups(1, 1, 1);
        }
        drop(pass);
        // The slot is busy until this encoder is submitted (ours) or has run, or is
        // dropped unsubmitted (the caller's: the callback is dropped with it).
        if callers {
            encoder.on_submitted_work_done(move || drop(token));
        } else {
            self.held.push(token);
        }
        // The step is recorded: the schedules move on to the next step's lr.
        registry::advance_schedules(&mut self.groups, &mut self.schedules);
        self.t = t;
        Ok(())
    }

    /// Settings that decide the kernels and passes are fixed from the first step on.
    fn frozen(&self, what: &str) -> Result<()> {
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

    /// Before registering a group or tensor after steps (torch's `add_param_group`): takes
    /// every tensor's state, master copy and the scaler's words to the host and drops the
    /// plan; the next [`Optimizer::prepare`] plans the new set and puts them back. Refused
    /// while steps recorded into a caller's encoder have not finished on the device (they
    /// would write into the old buffers): submit it and wait ([`Context::wait`]).
    fn unplan(&mut self) -> Result<()> {
        if self.plan.is_none() {
            return Ok(());
        }
        self.settle_ack(true)?;
        self.ctx.wait()?;
        let busy = {
            let st = &self.plan.as_ref().expect("planned").staging;
            st.tokens
                .iter()
                .any(|t| std::sync::Arc::strong_count(t) > 1)
        };
        if busy {
            return Err(Error::InvalidState(
                "steps recorded into an encoder have not run: submit it (or drop it) and wait \
                 before adding groups or tensors"
                    .into(),
            ));
        }
        let slots = self.groups[0].state_slots().len();
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for i in 0..self.tensors.len() {
            let id = TensorId(i);
            let mut state = Vec::with_capacity(slots);
            for k in 0..slots {
                state.push(match self.is_quantized(id) {
                    true => {
                        let (c, a) = self.read_state_q8(id, k)?;
                        SlotSnapshot::Q8(c, a)
                    }
                    false => SlotSnapshot::F32(self.read_state(id, k)?),
                });
            }
            let master = match self.has_master(id) {
                true => Some(self.read_params(id)?),
                false => None,
            };
            tensors.push((state, master));
        }
        let scaler = match self.scaler {
            Some(_) => Some(self.scaler_words()?),
            None => None,
        };
        self.snapshot = Some(Snapshot { tensors, scaler });
        self.plan = None;
        Ok(())
    }

    fn restore_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        for (i, (state, master)) in snap.tensors.iter().enumerate() {
            let id = TensorId(i);
            for (k, s) in state.iter().enumerate() {
                match s {
                    SlotSnapshot::F32(v) => {
                        let r = self.state(id, k)?;
                        self.ctx.upload(&r, v)?;
                    }
                    SlotSnapshot::Q8(c, a) => self.write_state_q8(id, k, c, a)?,
                }
            }
            if let Some(m) = master {
                let r = self.master(id)?;
                self.ctx.upload(&r, m)?;
            }
        }
        if let Some(w) = snap.scaler {
            self.set_scaler_words(w)?;
        }
        Ok(())
    }

    /// The registered tensors as the layout sees them: buffers ranked in their order.
    #[allow(clippy::mutable_key_type)] // buffers order by identity, which never changes
    fn placements(&self) -> Vec<Placement> {
        let mut rank: BTreeMap<wgpu::Buffer, usize> = BTreeMap::new();
        for t in &self.tensors {
            rank.insert(t.param.buffer.clone(), 0);
            rank.insert(t.grad.buffer.clone(), 0);
        }
        for (k, v) in rank.values_mut().enumerate() {
            *v = k;
        }
        self.tensors
            .iter()
            .map(|t| Placement {
                param_buf: rank[&t.param.buffer],
                grad_buf: rank[&t.grad.buffer],
                param_bytes: t.param.buffer.size(),
                grad_bytes: t.grad.buffer.size(),
                param_offset: t.param.offset,
                grad_offset: t.grad.offset,
                len: t.param.len as u64,
                dtypes: t.dtypes,
                group: t.group as u32,
                q8: self.state_format.quantizes(t.param.len),
            })
            .collect()
    }

    fn build_plan(&self) -> Result<Plan> {
        let ctx = &self.ctx;
        let limits = ctx.limits();
        let rule = &self.groups[0];
        let slots = rule.state_slots().len();
        let wg = kernel::workgroup_size(ctx);
        let layout_limits = LayoutLimits {
            storage_align: limits.min_storage_buffer_offset_alignment as u64,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            max_groups: limits.max_compute_workgroups_per_dimension as u64,
            workgroup: wg,
            per_tensor: self.per_tensor,
        };
        layout::check_window(&layout_limits)?;
        if limits.max_storage_buffers_per_shader_stage < 8 {
            return Err(Error::InvalidState(format!(
                "the rule kernels bind 8 storage buffers; this device allows {} per shader \
                 stage (wgpu's downlevel limits?). Request at least Limits::default()",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        let max_groups = layout_limits.max_groups;
        let placements = self.placements();
        let n_tensors = self.tensors.len();
        let partials_at = AUX_SUMS_AT + 2 * n_tensors as u64;
        let lay = layout::layout(&placements, &layout_limits, partials_at)?;
        let any_q8 = lay.sets.iter().any(|s| s.q8);
        let mixed = lay.sets.iter().any(|s| self.needs_master(s.dtypes.0));
        if mixed && limits.max_storage_buffers_per_shader_stage < 9 {
            return Err(Error::InvalidState(format!(
                "16-bit params need 9 storage buffers per shader stage (the f32 master copy); \
                 this device allows {}: request more in its limits",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        if any_q8 && wg % 64 != 0 {
            return Err(Error::InvalidState(format!(
                "8-bit state needs a workgroup size that is a multiple of 64, not {wg}"
            )));
        }
        let signed_mask = crate::rules::signed_mask(rule);

        // Stand-ins for bindings a dispatch does not use; one per access mode, as a buffer
        // may not be bound both read-only and read-write in one dispatch.
        let dummy = ctx.create_zeroed("gpu-optim unused slot", 4)?;
        let dummy_ro = ctx.create_zeroed("gpu-optim unused tiles", 4)?;
        // Per-group scalars: a uniform array sized to a power of two (fewer pipelines).
        // With loss scaling, `lag` candidates of them per slot and a header (common.wgsl).
        let n_groups = (self.groups.len() as u32).next_power_of_two();
        let hsize = std::mem::size_of::<Hyper>() as u64;
        let room = (limits.max_uniform_buffer_binding_size / hsize).saturating_sub(1);
        let lag = match self.scaler {
            None => 0,
            Some(_) => {
                let lag = (room / n_groups as u64).min(MAX_LAG as u64) as u32;
                // A slot must cover every step of a submission not yet acknowledged.
                if lag <= self.ring {
                    return Err(Error::InvalidState(format!(
                        "loss scaling with {} param groups and {} steps per submission needs \
                         {} candidate scalars per step; the uniform limit allows {lag}: use \
                         fewer steps per submission",
                        self.groups.len(),
                        self.ring,
                        self.ring + 1
                    )));
                }
                lag
            }
        };
        let hyper_size = (n_groups as u64 * lag.max(1) as u64 + 1) * hsize;
        if hyper_size > limits.max_uniform_buffer_binding_size {
            return Err(Error::InvalidState(format!(
                "{} param groups need {hyper_size} bytes of uniforms; this device allows {}",
                self.groups.len(),
                limits.max_uniform_buffer_binding_size
            )));
        }
        let hyper_buf = self.buffer(
            "gpu-optim per-step scalars",
            hyper_size,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let stage_stride = (hyper_size + STAGE_CONTROL + STAGE_SCALER).div_ceil(16) * 16;
        let staging = Staging {
            buf: self.buffer(
                "gpu-optim per-step scalars (staging)",
                stage_stride * self.ring as u64,
                wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            ),
            tokens: (0..self.ring).map(|_| std::sync::Arc::new(())).collect(),
            next: 0,
        };

        // State: per launch group, a buffer per slot laid out like the param buffer from
        // its base (f32), or one tensor's codes and absmaxes (8-bit); 16-bit params get an
        // f32 master copy laid out as the state, initialised from the caller's params.
        let t = |i: usize| &self.tensors[i];
        let mut states = Vec::with_capacity(lay.sets.len());
        for set in &lay.sets {
            let mut state = StateSet {
                buffers: Vec::with_capacity(slots),
                absmax: None,
                master: None,
            };
            if set.q8 {
                let i = set.members[0];
                let len = t(i).param.len;
                let rule = &self.groups[t(i).group];
                let init: Vec<Vec<f32>> = (0..slots)
                    .map(|k| vec![rule.initial_state(k); len])
                    .collect();
                let q = Q8State::quantize(&init, &signed_slots(rule));
                for (k, codes) in q.codes.iter().enumerate() {
                    let b = ctx.create_zeroed(rule.state_slots()[k], len.div_ceil(BLOCK) * 64)?;
                    if codes.iter().any(|&c| c != 0) {
                        ctx.queue().write_buffer(&b, 0, codes);
                    }
                    state.buffers.push(b);
                }
                let a = ctx.create_zeroed("8-bit state absmax", slots * len.div_ceil(BLOCK))?;
                ctx.queue()
                    .write_buffer(&a, 0, bytemuck::cast_slice(&q.absmax.concat()));
                state.absmax = Some(a);
            } else {
                for k in 0..slots {
                    let b = ctx.create_zeroed(rule.state_slots()[k], set.span as usize)?;
                    for &i in &set.members {
                        let init = self.groups[t(i).group].initial_state(k);
                        if init != 0.0 {
                            let r =
                                BufferRange::new(&b, t(i).param.offset - set.base, t(i).param.len);
                            ctx.upload(&r, &vec![init; r.len])?;
                        }
                    }
                    state.buffers.push(b);
                }
            }
            if self.needs_master(set.dtypes.0) {
                let m = ctx.create_zeroed(
                    "gpu-optim f32 master params",
                    set.master_len(&placements) as usize,
                )?;
                for &i in &set.members {
                    let v = ctx.download_as(&t(i).param, set.dtypes.0)?;
                    let r = BufferRange::new(&m, set.master_at(&placements[i]), v.len());
                    ctx.upload(&r, &v)?;
                }
                state.master = Some(m);
            }
            states.push(state);
        }
        let tensor_state = lay.tensor_state.clone();
        let ranges = &lay.tile_ranges;
        let base = lay.n_tiles;
        let pending = &lay.launches;
        let two_phase = rule.kernel().two_phase;
        // Loss scaling runs clipping's reduction (with no clipping values: norm only).
        let global = self.clip.is_some() || self.scaler.is_some();
        let reduce = global || two_phase;
        let aux = if reduce {
            self.buffer(
                "gpu-optim aux",
                4 * (partials_at + 2 * base as u64),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            )
        } else {
            dummy.clone()
        };
        let ack_buf = match &self.scaler {
            Some(sc) => {
                ctx.queue().write_buffer(
                    &aux,
                    AUX_SCALE * 4,
                    bytemuck::cast_slice(&[sc.init_scale, 0.0, 0.0, 0.0, 0.0]),
                );
                Some(self.buffer(
                    "gpu-optim step counters",
                    8,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ))
            }
            None => None,
        };

        // Tile tables (dense dispatches need none) in one storage buffer, the dispatches'
        // geometry in one uniform buffer, each at an aligned offset.
        let ualign = limits.min_uniform_buffer_offset_alignment as u64;
        let info_stride = (std::mem::size_of::<LaunchInfo>() as u64).div_ceil(ualign) * ualign;
        let mut table_bytes: Vec<u8> = Vec::new();
        let mut info_bytes: Vec<u8> = Vec::new();
        let mut table_ranges = Vec::with_capacity(pending.len());
        for p in pending {
            info_bytes.extend_from_slice(bytemuck::bytes_of(&p.header));
            info_bytes.resize(
                info_bytes.len().div_ceil(info_stride as usize) * info_stride as usize,
                0,
            );
            if p.dense {
                table_ranges.push(None);
                continue;
            }
            let start = table_bytes.len() as u64;
            table_bytes.extend_from_slice(bytemuck::cast_slice(&p.tiles));
            table_ranges.push(Some((start, table_bytes.len() as u64 - start)));
            let align_b = layout_limits.storage_align;
            let aligned = (table_bytes.len() as u64).div_ceil(align_b) * align_b;
            table_bytes.resize(aligned as usize, 0);
        }
        let table_buf = self.buffer(
            "gpu-optim tile tables",
            table_bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        );
        if !table_bytes.is_empty() {
            ctx.queue().write_buffer(&table_buf, 0, &table_bytes);
        }
        let info_buf = self.buffer(
            "gpu-optim dispatch geometry",
            info_bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        ctx.queue().write_buffer(&info_buf, 0, &info_bytes);

        let qmap = match any_q8 {
            true => {
                let table = quant::qmap_table();
                let b = self.buffer(
                    "gpu-optim 8-bit map",
                    4 * table.len() as u64,
                    wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                );
                ctx.queue()
                    .write_buffer(&b, 0, bytemuck::cast_slice(&table));
                Some(b)
            }
            false => None,
        };
        let layouts = [
            Some(kernel::bind_group_layout(ctx, false)?),
            match mixed {
                true => Some(kernel::bind_group_layout(ctx, true)?),
                false => None,
            },
        ];
        let mut launches = Vec::with_capacity(pending.len());
        for (li, (p, trange)) in pending.iter().zip(&table_ranges).enumerate() {
            let key = KernelVariant {
                kernel: rule.kernel(),
                width: p.width,
                slots: slots as u32,
                workgroup: wg,
                clip: global,
                dense: p.dense,
                groups: n_groups,
                q8: p.q8.then_some(Q8Kernel {
                    signed: signed_mask,
                    stochastic: self.state_format.stochastic_seed().is_some(),
                }),
                lag,
                dtypes: p.dtypes,
                sr: self.stochastic.is_some(),
            };
            let main = kernel::pipeline(ctx, &key, "main")?;
            let sumsq = match global {
                true => Some(kernel::pipeline(ctx, &key, "grad_sumsq")?),
                false => None,
            };
            let measure = match two_phase {
                true => Some(kernel::pipeline(ctx, &key, "measure_pass")?),
                false => None,
            };
            // Which tensor buffers this launch's windows refer to: any member will do.
            let tm = &self.tensors[lay.sets[p.set].members[0]];
            fn bind(
                buffer: &wgpu::Buffer,
                (offset, size): (u64, u64),
            ) -> wgpu::BindingResource<'_> {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: wgpu::BufferSize::new(size.max(4)),
                })
            }
            let mut entries = vec![
                bind(&tm.param.buffer, p.windows[0]),
                bind(&tm.grad.buffer, p.windows[1]),
                match trange {
                    Some(r) => bind(&table_buf, *r),
                    None => dummy_ro.as_entire_binding(),
                },
                bind(&hyper_buf, (0, hyper_size)),
            ];
            for k in 0..MAX_SLOTS {
                entries.push(match states[p.set].buffers.get(k) {
                    Some(b) => bind(b, p.windows[2]),
                    None => dummy.as_entire_binding(),
                });
            }
            entries.push(aux.as_entire_binding());
            entries.push(bind(
                &info_buf,
                (
                    li as u64 * info_stride,
                    std::mem::size_of::<LaunchInfo>() as u64,
                ),
            ));
            entries.push(match (&states[p.set].absmax, &qmap) {
                (Some(a), Some(_)) if p.q8 => a.as_entire_binding(),
                _ => dummy.as_entire_binding(),
            });
            entries.push(match &qmap {
                Some(q) => q.as_entire_binding(),
                // Any uniform: the f32 kernels do not declare this binding.
                None => bind(&hyper_buf, (0, hyper_size)),
            });
            if key.mixed() {
                let m = states[p.set]
                    .master
                    .as_ref()
                    .expect("16-bit params have a master");
                entries.push(bind(m, p.windows[3]));
            }
            debug_assert_eq!(entries.len() as u32, BINDINGS + key.mixed() as u32);
            let entries: Vec<_> = entries
                .into_iter()
                .enumerate()
                .map(|(b, resource)| wgpu::BindGroupEntry {
                    binding: b as u32,
                    resource,
                })
                .collect();
            ctx.count("bind_group");
            let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("gpu-optim launch"),
                layout: layouts[key.mixed() as usize]
                    .as_ref()
                    .expect("planned layout"),
                entries: &entries,
            });
            launches.push(Launch {
                bind_group,
                grid: p.grid,
                sumsq_grid: p.sumsq_grid,
                main,
                sumsq,
                measure,
                variant: key,
            });
        }
        let reductions = match reduce {
            false => None,
            true => {
                let pipelines = kernel::reduce_pipelines(ctx)?;
                let max_groups = max_groups as u32;
                let gx = (n_tensors as u32).min(max_groups);
                let mut bytes: Vec<u32> = vec![n_tensors as u32, partials_at as u32, gx, 0];
                bytes.extend(ranges.iter().flatten());
                let rbuf = self.buffer(
                    "gpu-optim tensor tiles",
                    (bytes.len() * 4) as u64,
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                );
                ctx.queue()
                    .write_buffer(&rbuf, 0, bytemuck::cast_slice(&bytes));
                ctx.count("bind_group");
                let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("gpu-optim reduce"),
                    layout: &pipelines.per_tensor.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: rbuf.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: aux.as_entire_binding(),
                        },
                    ],
                });
                Some(Reductions {
                    clip: global,
                    two_phase,
                    pipelines,
                    bind_group,
                    grid: (gx, (n_tensors as u32).div_ceil(gx)),
                })
            }
        };
        Ok(Plan {
            launches,
            states,
            tensor_state,
            hyper_buf,
            hyper_size,
            staging,
            aux,
            reductions,
            lag,
            groups_p2: n_groups,
            ack_buf,
        })
    }

    fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.ctx.count("buffer");
        self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(16),
            usage,
            mapped_at_creation: false,
        })
    }
}

/// A caller's range as the registry's rules see it.
fn span(r: &BufferRange, dtype: Dtype) -> registry::Span<'_, wgpu::Buffer> {
    registry::Span {
        buffer: &r.buffer,
        bytes: r.buffer.size(),
        offset: r.offset,
        len: r.len,
        dtype,
    }
}

/// `steps_per_submission`: at least 1, and at most 1024 (the ring of per-step scalar
/// slots, a few hundred bytes each, is allocated up front; more steps per command buffer
/// gain nothing measurable).
pub(crate) fn check_steps_per_submission(k: u32) -> Result<()> {
    match k {
        1..=1024 => Ok(()),
        _ => Err(Error::InvalidState(format!(
            "steps_per_submission must be in 1..=1024, not {k}"
        ))),
    }
}

/// A scaler setting once the optimizer runs: loss scaling must already be on, and the
/// scale is the device's own by then, so a different `init_scale` would be dropped: refused.
pub(crate) fn check_running_scaler(now: Option<&GradScaler>, new: &GradScaler) -> Result<()> {
    match now {
        None => Err(Error::InvalidState(
            "loss scaling must be enabled before the first step".into(),
        )),
        Some(now) if now.init_scale != new.init_scale => Err(Error::InvalidState(format!(
            "init_scale cannot change once loss scaling runs (the scale is the device's: \
             {} at the start); change growth_factor, backoff_factor or growth_interval only",
            now.init_scale
        ))),
        Some(_) => Ok(()),
    }
}

/// A group's rule must run in group 0's kernel: the same kernel (rule family, e.g. Adam
/// and AdamW) and the same state slots (e.g. `amsgrad` on both or neither). A rule of
/// another family with the same slots (NAdam in an Adam optimizer) would be stepped by
/// the wrong kernel: refused.
pub(crate) fn check_compatible<R: UpdateRule>(group: usize, rule: &R, first: &R) -> Result<()> {
    if rule.kernel() != first.kernel() {
        return Err(Error::IncompatibleGroup {
            group,
            why: format!(
                "its rule {} runs another kernel than group 0's {}",
                rule.name(),
                first.name()
            ),
        });
    }
    if rule.state_slots() != first.state_slots() {
        return Err(Error::IncompatibleGroup {
            group,
            why: format!(
                "state slots {:?} differ from {:?}",
                rule.state_slots(),
                first.state_slots()
            ),
        });
    }
    Ok(())
}

/// Checks a clipping setting: each bound set must be finite and > 0.
pub(crate) fn validate_clip(clip: &GradClip) -> Result<()> {
    for (name, v) in [("max_norm", clip.max_norm), ("value", clip.value)] {
        if let Some(v) = v {
            crate::rules::check("grad_clip", name, v as f64, v > 0.0, "> 0")?;
        }
    }
    Ok(())
}
