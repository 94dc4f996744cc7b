//! How is a step recorded? The ring of per-step scalar slots and the replay of the planned
//! passes into a compute pass; it plans nothing and allocates only when the ring grows.
//!
//! ## Per-step scalars
//! Each step's scalars (lr, bias corrections, step flags) for every group, and the
//! host-set words of clipping and loss scaling, are written into a slot of a ring; the
//! kernels read the step's slot through bind group 1 at that slot's dynamic offset (the
//! host-set words are first copied into `aux`). So any number of steps can sit in one
//! command buffer, each with its own scalars and settings, no bind group is rebuilt, and
//! without clipping, loss scaling or a two-phase rule a submission's steps are one
//! compute pass. A slot is reused once the command buffer that reads it has been
//! submitted (`step_many`: a later `write_buffer` runs after it) or has finished on the
//! device (`record_step` into the caller's encoder, seen through
//! `on_submitted_work_done`); when none is free the ring doubles, so the steady state
//! allocates nothing.
//!
//! ## Writing ahead
//! A `Queue::write_buffer` per step creates and frees a staging buffer each time: on
//! lavapipe (148 tensors, 8 steps per submission) 37-39 µs of host time per step with
//! one write per step, 22-29 µs with one per 32 steps. So a slot that is written also
//! receives the predicted scalars of the next steps in the free slots after it, in one
//! write: what the step count and the lr schedules alone make of them (no loss scaling,
//! whose candidates follow the device's skips). Each step still computes its scalars and
//! writes them only where its slot does not already hold those exact bytes (a host
//! mirror of the ring), so a setter between steps, or a slot taken out of order, costs a
//! write, never a stale scalar.
//!
//! ## Passes before the update
//! Gradient clipping and two-phase rules (LAMB) add passes over the same tiles that write
//! per-tile partial sums, reduced per tensor (and globally for clipping) in a fixed order
//! by `shaders/reduce.wgsl` into a device buffer (`aux`) the update reads. Nothing is read
//! back to the host in a step.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::kernel::cache as kernel;
use crate::kernel::HYPER_GROUP;
use crate::optimizer::Optimizer;
use crate::plan::aux::{AUX_CONTROL, AUX_EXECUTED, AUX_SCALER_CONFIG};
use crate::plan::program::Pass;
use crate::plan::scalars::{STAGE_CONTROL, STAGE_SCALER};
use crate::registry;
use crate::rules::UpdateRule;

/// The ring of per-step scalar slots (see the module docs): a slot is free when this
/// optimizer holds the only reference to its token.
pub(crate) struct Staging {
    pub(crate) buf: wgpu::Buffer,
    /// Bind group [`HYPER_GROUP`](crate::kernel::HYPER_GROUP): a slot's scalars, the slot
    /// chosen by the dynamic offset.
    pub(crate) bind_group: wgpu::BindGroup,
    /// Bytes from one slot to the next (a multiple of the dynamic offset alignment).
    pub(crate) stride: u64,
    pub(crate) tokens: Vec<std::sync::Arc<()>>,
    pub(crate) next: usize,
    /// What this optimizer last wrote into the ring, and which slots that covers (see
    /// "Writing ahead").
    mirror: Vec<u8>,
    known: Vec<bool>,
    /// `write_buffer` calls into this ring (tests).
    writes: u64,
}

/// Steps whose scalars one write covers at most (the slot's and the predicted ones).
pub(crate) const WRITE_AHEAD: usize = 32;

/// The host's scratch for predicting the next steps' scalars (reused: no allocation per
/// step once warm).
#[derive(Debug)]
pub(crate) struct Ahead<R> {
    rules: Vec<R>,
    schedules: Vec<registry::GroupSchedule>,
    hyper: Vec<crate::rules::Hyper>,
    slot: Vec<u8>,
    bytes: Vec<u8>,
}

impl<R> Default for Ahead<R> {
    fn default() -> Self {
        Ahead {
            rules: Vec::new(),
            schedules: Vec::new(),
            hyper: Vec::new(),
            slot: Vec::new(),
            bytes: Vec::new(),
        }
    }
}

/// The compute pass of a step, or of a submission's steps.
const STEP_PASS: wgpu::ComputePassDescriptor<'static> = wgpu::ComputePassDescriptor {
    label: Some("gpu-optim step"),
    timestamp_writes: None,
};

impl Staging {
    /// A ring of `n` slots of `stride` bytes whose first `hyper_size` bytes are bound.
    pub(crate) fn new(ctx: &Context, stride: u64, n: usize, hyper_size: u64) -> Result<Staging> {
        let layout = kernel::hyper_layout(ctx)?;
        ctx.count("buffer");
        let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpu-optim per-step scalars"),
            size: stride * n as u64,
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.count("bind_group");
        let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gpu-optim per-step scalars"),
            layout: &layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buf,
                    offset: 0,
                    size: wgpu::BufferSize::new(hyper_size),
                }),
            }],
        });
        Ok(Staging {
            buf,
            bind_group,
            stride,
            tokens: (0..n).map(|_| std::sync::Arc::new(())).collect(),
            next: 0,
            mirror: vec![0; stride as usize * n],
            known: vec![false; n],
            writes: 0,
        })
    }

    /// Slot `i` holds `bytes` (at its start) on the device.
    fn holds(&self, i: usize, bytes: &[u8]) -> bool {
        let at = i * self.stride as usize;
        self.known[i] && self.mirror[at..at + bytes.len()] == *bytes
    }

    /// Slot `i` is in no command buffer that has not run (or been dropped).
    pub(crate) fn free(&self, i: usize) -> bool {
        std::sync::Arc::strong_count(&self.tokens[i]) == 1
    }
}

impl<R: UpdateRule> Optimizer<R> {
    /// `k` steps on the current gradients, submitted in command buffers of up to
    /// `steps_per_submission` steps each, each step with its own scalars (`k == 0` does
    /// nothing). On an error,
    /// nothing of the batch that failed ran: the step count, the groups' lrs and their
    /// schedules are as before it.
    pub fn step_many(&mut self, k: u32) -> Result<()> {
        if k == 0 {
            return Ok(());
        }
        self.prepare()?;
        let mut left = k;
        while left > 0 {
            let n = left.min(self.settings.steps_per_submission);
            let t0 = self.t;
            self.undo.clear();
            for (g, s) in self.groups.iter().zip(&self.schedules) {
                self.undo
                    .push((g.lr(), s.running.as_ref().map_or(0, |r| r.1)));
            }
            let ctx = self.ctx.clone();
            let r = ctx.scoped("step", || -> Result<()> {
                let mut enc = ctx.device().create_command_encoder(&Default::default());
                self.record_many(&mut enc, n, false)?;
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
                    self.pending_ack = Some(ctx.map_read_async(&b, 0, 8));
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

    /// A free slot of the scalar ring: one whose token only this optimizer holds. Waits
    /// for nothing: polls once for finished work, else doubles the ring.
    pub(crate) fn take_slot(&mut self) -> Result<usize> {
        for attempt in 0..2 {
            let st = &mut self.plan.as_mut().expect("prepared").staging;
            let n = st.tokens.len();
            for k in 0..n {
                let i = (st.next + k) % n;
                if st.free(i) {
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
        // Every slot is in a command buffer not yet submitted or not yet finished: a ring
        // twice the size (the old one lives on in those command buffers).
        let plan = self.plan.as_mut().expect("prepared");
        let n = plan.staging.tokens.len();
        plan.staging = Staging::new(&self.ctx, plan.staging.stride, 2 * n, plan.hyper_size)?;
        plan.staging.next = 1;
        Ok(0)
    }

    /// `n` steps into `encoder` (see [`Optimizer::record`]): without reductions (nothing
    /// to copy between steps), in one compute pass.
    pub(crate) fn record_many(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        n: u32,
        callers: bool,
    ) -> Result<()> {
        self.prepare()?;
        if self.plan.as_ref().is_some_and(|p| p.reductions.is_some()) {
            return (0..n).try_for_each(|_| self.record(encoder, callers));
        }
        let mut pass = encoder.begin_compute_pass(&STEP_PASS);
        let mut tokens = Vec::new();
        let mut r = Ok(());
        for _ in 0..n {
            match self.stage() {
                Ok((at, token)) => {
                    self.encode_passes(&mut pass, at);
                    tokens.push(token);
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        drop(pass);
        self.hold(encoder, tokens, callers);
        r
    }

    /// Keeps the slots of recorded steps busy until this encoder is submitted (ours) or
    /// has run, or is dropped unsubmitted (the caller's: the callback is dropped with it).
    fn hold(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        tokens: Vec<std::sync::Arc<()>>,
        callers: bool,
    ) {
        if tokens.is_empty() {
            return;
        }
        if callers {
            encoder.on_submitted_work_done(move || drop(tokens));
        } else {
            self.held.extend(tokens);
        }
    }

    /// One step into `encoder`: its scalars into a slot, then its commands (see
    /// [`Optimizer::stage`]). `callers`: the encoder is the caller's, so the slot stays busy
    /// until its work is done on the device, not just submitted.
    pub(crate) fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        callers: bool,
    ) -> Result<()> {
        let (at, token) = self.stage()?;
        self.encode_copies(encoder, at);
        let mut pass = encoder.begin_compute_pass(&STEP_PASS);
        self.encode_passes(&mut pass, at);
        drop(pass);
        self.hold(encoder, vec![token], callers);
        Ok(())
    }

    /// The next step's scalars, written into a free slot of the ring: returns the slot's
    /// byte offset (the dynamic offset of bind group 1) and the token that keeps it busy.
    /// Switches a dispatch's pipelines first where the words it takes as constants changed.
    /// Then the step counts as recorded: the step count and the schedules move on.
    pub(crate) fn stage(&mut self) -> Result<(u64, std::sync::Arc<()>)> {
        self.prepare()?;
        // A checkpoint may carry any step count: its last step is refused, not wrapped.
        let t = self.t.checked_add(1).ok_or_else(|| {
            Error::InvalidState("the step count is at its maximum (u64::MAX)".into())
        })?;
        let shape = self.plan.as_ref().expect("prepared").shape;
        let lag = shape.lag;
        // Candidate j is for j more skips than the host knows of. Without loss scaling
        // there is one candidate, for t.
        let (skipped, reach) = match lag {
            0 => (0, 0),
            _ => {
                self.refresh_ack(t, lag as u64)?;
                let (executed, skipped) = self.ack;
                (skipped, (t - 1 - executed.min(t - 1)).min(lag as u64 - 1))
            }
        };
        let slot = self.take_slot()?;
        let scalars = self.settings.scalars(&self.groups, t, skipped, reach);
        scalars.write(&shape, &mut self.scratch, &mut self.stage);
        // A group's flags changed, or its weight decay or momentum went to or from 0
        // (set_group), or value clipping went on or off (set_grad_clip): the dispatches
        // that took them as constants switch pipelines first.
        let clip_value = self.settings.clip_value();
        let plan = self.plan.as_mut().expect("prepared");
        for l in &mut plan.launches {
            let fixed = l.agreed(&self.scratch, shape.groups_p2 as usize, reach as usize);
            if fixed != l.variant.fixed || (l.variant.clip && clip_value != l.variant.clip_value) {
                let ctx = self.ctx.clone();
                ctx.scoped("compiling a kernel for new hyperparameters", || {
                    l.refix(&ctx, fixed, clip_value)
                })??;
            }
        }
        if !plan.staging.holds(slot, &self.stage) {
            self.write_ahead(slot, t, lag == 0);
        }
        let staging = &self.plan.as_ref().expect("prepared").staging;
        let at = slot as u64 * staging.stride;
        let token = staging.tokens[slot].clone();
        // The step is recorded: the schedules move on to the next step's lr.
        registry::advance_schedules(&mut self.groups, &mut self.schedules);
        self.t = t;
        Ok((at, token))
    }

    /// Writes step `t`'s scalars (`self.stage`) into `slot` and, where `predict`, the
    /// predicted scalars of steps t+1, t+2, ... into the free slots that follow it (up to
    /// [`WRITE_AHEAD`] in all, not past the ring's end), in one `write_buffer`.
    fn write_ahead(&mut self, slot: usize, t: u64, predict: bool) {
        let plan = self.plan.as_mut().expect("prepared");
        let st = &mut plan.staging;
        let stride = st.stride as usize;
        let a = &mut self.ahead;
        a.bytes.clear();
        a.bytes.extend_from_slice(&self.stage);
        let n = st.tokens.len();
        let mut slots = 1;
        if predict {
            a.rules.clone_from(&self.groups);
            a.schedules.clone_from(&self.schedules);
            while slots < WRITE_AHEAD && slot + slots < n && st.free(slot + slots) {
                // A checkpoint may carry any step count: none is predicted past u64::MAX.
                let Some(t_ahead) = t.checked_add(slots as u64) else {
                    break;
                };
                // The rules as step t_ahead will find them: one schedule step later.
                registry::advance_schedules(&mut a.rules, &mut a.schedules);
                let scalars = self.settings.scalars(&a.rules, t_ahead, 0, 0);
                scalars.write(&plan.shape, &mut a.hyper, &mut a.slot);
                a.bytes.resize(slots * stride, 0);
                a.bytes.extend_from_slice(&a.slot);
                slots += 1;
            }
        }
        let at = slot * stride;
        self.ctx.queue().write_buffer(&st.buf, at as u64, &a.bytes);
        st.mirror[at..at + a.bytes.len()].copy_from_slice(&a.bytes);
        st.known[slot..slot + slots].fill(true);
        st.writes += 1;
    }

    /// The copies before a step's passes: the host-set words of clipping and loss scaling
    /// from the slot at `at` into `aux` (nothing without reductions).
    fn encode_copies(&self, encoder: &mut wgpu::CommandEncoder, at: u64) {
        let plan = self.plan.as_ref().expect("prepared");
        if plan.reductions.is_some() {
            let staging = &plan.staging.buf;
            let ctl = at + plan.hyper_size;
            encoder.copy_buffer_to_buffer(staging, ctl, &plan.aux, AUX_CONTROL * 4, STAGE_CONTROL);
            if self.settings.scaler.is_some() {
                let (from, to) = (ctl + STAGE_CONTROL, AUX_SCALER_CONFIG * 4);
                encoder.copy_buffer_to_buffer(staging, from, &plan.aux, to, STAGE_SCALER);
            }
        }
    }

    /// A step's dispatches, reading the scalars of the slot at `at`: the program's passes
    /// in its order (plan/program.rs): the per-tile pre-passes over every dispatch, each
    /// followed by its reductions, then the update, then the scale.
    fn encode_passes(&self, pass: &mut wgpu::ComputePass<'_>, at: u64) {
        let plan = self.plan.as_ref().expect("prepared");
        let at = u32::try_from(at).expect("a ring slot's offset fits a dynamic offset");
        pass.set_bind_group(HYPER_GROUP, &plan.staging.bind_group, &[at]);
        let reduce = || {
            plan.reductions
                .as_ref()
                .expect("planned with the reductions")
        };
        for step in &plan.program.0 {
            match step {
                Pass::GradNorm | Pass::Measure => {
                    let norm = *step == Pass::GradNorm;
                    for l in &plan.launches {
                        let (pipeline, grid) = match norm {
                            true => (l.sumsq.as_ref(), l.sumsq_grid),
                            false => (l.measure.as_ref(), l.grid),
                        };
                        // A dispatch whose kernel has no first pass takes no part in it.
                        let Some(pipeline) = pipeline else { continue };
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, &l.bind_group, &[]);
                        pass.dispatch_workgroups(grid.0, grid.1, 1);
                    }
                    let r = reduce();
                    pass.set_bind_group(0, &r.bind_group, &[]);
                    pass.set_pipeline(&r.pipelines.per_tensor);
                    pass.dispatch_workgroups(r.grid.0, r.grid.1, 1);
                    if norm {
                        pass.set_pipeline(&r.pipelines.total);
                        pass.dispatch_workgroups(1, 1, 1);
                    }
                }
                Pass::Update => {
                    for l in &plan.launches {
                        pass.set_pipeline(&l.main);
                        pass.set_bind_group(0, &l.bind_group, &[]);
                        pass.dispatch_workgroups(l.grid.0, l.grid.1, 1);
                    }
                }
                Pass::ScalerUpdate => {
                    let r = reduce();
                    pass.set_bind_group(0, &r.bind_group, &[]);
                    pass.set_pipeline(&r.pipelines.scaler_update);
                    pass.dispatch_workgroups(1, 1, 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Adam, Arena, Context, LrSchedule, Optimizer};

    /// Writing ahead: under an lr schedule, one step per submission, a write covers the
    /// ring's next slots, so 64 steps take a handful of writes, not 64; a setter between
    /// steps costs one more (its effect on the steps is the contract tests').
    #[test]
    fn steps_under_a_schedule_write_their_scalars_ahead() {
        let ctx = Context::new().expect("a wgpu adapter (lavapipe under CI)");
        let arena = Arena::new(&ctx, &[100, 7]).unwrap();
        let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        let sched = LrSchedule::WarmupCosine {
            warmup: 5,
            t_max: 50,
            eta_min: 1e-5,
        };
        opt.set_schedule(opt.default_group(), sched).unwrap();
        opt.set_steps_per_submission(1).unwrap();
        let writes = |o: &Optimizer<Adam>| o.plan.as_ref().unwrap().staging.writes;
        for _ in 0..64 {
            opt.step().unwrap();
            ctx.wait().unwrap();
        }
        let ring = opt.plan.as_ref().unwrap().staging.tokens.len() as u64;
        assert!(
            writes(&opt) <= 64 / ring + 2,
            "{} writes, ring {ring}",
            writes(&opt)
        );
        let before = writes(&opt);
        let g = opt.default_group();
        opt.set_group(
            g,
            Adam {
                lr: 0.5,
                ..Adam::adamw()
            },
        )
        .unwrap();
        opt.step().unwrap();
        assert_eq!(writes(&opt), before + 1);
    }
}
