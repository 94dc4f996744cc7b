//! The generality tax: how much slower is the crate's step (tiles, param groups, runtime
//! flags, features) than the fastest plain kernel for one configuration? For SGD, SGD with
//! momentum and Adam at torch's defaults, a hand-written WGSL kernel (anchors/*.wgsl: one
//! vec4 per invocation, workgroup 256, 2D grid past the per-dimension limit, no range test
//! where the grid is whole workgroups in 1D, the per-step scalars in a small uniform
//! written per step) runs on the same buffers as the crate's
//! optimizer (the arena's params and grads, the optimizer's own state), timed alternately
//! with it by the same timer. Prints no table, writes no file.
//!
//! The anchors compute the same f32 operations in the same order as the crate's kernels in
//! those configurations, from the same per-step scalars (the rule's own `hyper(t)`), so
//! the ratio compares like with like; [`verify_anchor`] checks it bit for bit.

use gpu_optim::bench::{self, Sample};
use gpu_optim::{AnyRule, BufferRange, Context, Dtype, Optimizer, TensorId, UpdateRule};
use serde::Serialize;

use crate::{fmt_size, Shared};

/// Params of the bit-for-bit check (one per rule; a multiple of 4).
pub const ANCHOR_VERIFY_LEN: usize = 1 << 16;
/// Steps of the bit-for-bit check.
pub const ANCHOR_VERIFY_STEPS: u32 = 5;

/// Alternating repetitions of an anchor row at the least, whatever `--reps` or a slow
/// device's time budget says: the tax's target is judged by the median of 7, and on a
/// noisy software device a median of 3 swings by ±20%. (A row costs 2 x 2 x reps
/// submissions of K steps: under a second at 2^22 on lavapipe.)
pub const ANCHOR_MIN_REPS: usize = 7;
/// Invocations per workgroup of every anchor (fixed: one plain configuration).
const WG: u64 = 256;
/// Bytes of the anchor's per-step scalars: the first 8 words of the rule's `Hyper`.
const STEP_BYTES: u64 = 32;

/// The configurations that have an anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorKind {
    /// SGD, lr only.
    Sgd,
    /// SGD with momentum, dampening 0, no Nesterov, no weight decay.
    Momentum,
    /// Adam without AMSGrad or weight decay.
    Adam,
}

impl AnchorKind {
    /// The anchor for `rule`'s configuration, if it has one. lr, momentum, betas and eps
    /// are free (they arrive as per-step scalars); the flags must be the plain ones.
    pub fn of(rule: &AnyRule) -> Option<AnchorKind> {
        match rule {
            AnyRule::Sgd(s) if s.weight_decay == 0.0 && !s.maximize && !s.nesterov => {
                if s.momentum == 0.0 {
                    Some(AnchorKind::Sgd)
                } else if s.dampening == 0.0 {
                    Some(AnchorKind::Momentum)
                } else {
                    None
                }
            }
            // The anchor's lerp is torch's formula for weights below 0.5.
            AnyRule::Adam(a)
                if a.weight_decay == 0.0
                    && !a.amsgrad
                    && !a.maximize
                    && (1.0 - a.betas.0).abs() < 0.5 =>
            {
                Some(AnchorKind::Adam)
            }
            _ => None,
        }
    }

    fn wgsl(self) -> &'static str {
        match self {
            AnchorKind::Sgd => include_str!("anchors/sgd.wgsl"),
            AnchorKind::Momentum => include_str!("anchors/momentum.wgsl"),
            AnchorKind::Adam => include_str!("anchors/adam.wgsl"),
        }
    }

    /// State slots the anchor reads and writes (the rule's, in its order).
    fn slots(self) -> usize {
        match self {
            AnchorKind::Sgd => 0,
            AnchorKind::Momentum => 1,
            AnchorKind::Adam => 2,
        }
    }
}

/// One rule at one size: the crate's step and the anchor's, timed alternately.
#[derive(Serialize)]
pub struct AnchorRow {
    pub rule: String,
    pub params: usize,
    pub steps_per_submission: usize,
    /// Alternating repetitions (at least [`ANCHOR_MIN_REPS`]).
    pub reps: usize,
    /// The crate's time per step (seconds), over the interleaved repetitions.
    pub ours: Sample,
    /// The anchor's time per step (seconds), over the same repetitions.
    pub anchor: Sample,
    /// ours / anchor per repetition (each pair timed back to back): median, min, max.
    pub ratio: Sample,
    /// The anchor's params and state equal the crate's bit for bit after
    /// [`ANCHOR_VERIFY_STEPS`] steps on [`ANCHOR_VERIFY_LEN`] random params.
    pub bit_exact: bool,
    /// The largest difference in that check, in ulps (0 when bit-exact).
    pub max_ulps: u64,
}

/// The statistic's own noise at one size: the minimal kernel timed alternately against
/// itself (two instances on the same buffers), exactly as an [`AnchorRow`]. Were timing
/// exact the ratio would be 1; how far its median strays says how far an ours/minimal
/// ratio in the same run can stray by chance (on lavapipe, 2 cores: medians of 7 at 2^20
/// spanned 0.88-1.20x over 12 runs, medians of 21 0.95-1.02x).
#[derive(Serialize)]
pub struct NoiseRow {
    /// The rule whose anchor ran against itself.
    pub rule: String,
    pub params: usize,
    pub steps_per_submission: usize,
    pub reps: usize,
    /// One instance / the other per repetition: median, min, max.
    pub ratio: Sample,
}

/// A compiled anchor bound to one tensor's params, grads and state.
pub struct Anchor {
    rule: AnyRule,
    /// The kernel that tests each invocation's range, and the one that does not (for a
    /// window of whole workgroups in a 1D grid, as the crate's `exact` dispatches).
    pipelines: [wgpu::ComputePipeline; 2],
    /// One bind group and grid per window within the binding limit (one below it).
    chunks: Vec<(wgpu::BindGroup, (u32, u32), bool)>,
    /// One slot of per-step scalars per step of a submission (a dynamic offset each).
    ring: wgpu::Buffer,
    stride: u64,
    slots: u64,
    /// Steps recorded so far (the next one is t + 1, as the crate counts).
    t: u64,
}

impl Anchor {
    /// The anchor for `rule` over `param`, `grad` and the state slots `state` (f32 ranges
    /// of the same length, a multiple of 4, at offsets the device can bind), recording up
    /// to `k` steps per submission.
    pub fn new(
        ctx: &Context,
        rule: &AnyRule,
        param: &BufferRange,
        grad: &BufferRange,
        state: &[BufferRange],
        k: usize,
    ) -> Result<Anchor, Box<dyn std::error::Error>> {
        let kind = AnchorKind::of(rule).ok_or(format!("no anchor for {}", rule.name()))?;
        let n = param.len;
        if n % 4 != 0 {
            return Err(format!("anchor needs a multiple of 4 params, got {n}").into());
        }
        if state.len() != kind.slots() {
            return Err(format!("anchor {kind:?} needs {} state slots", kind.slots()).into());
        }
        let d = ctx.device();
        let limits = ctx.limits();
        let maxg = limits.max_compute_workgroups_per_dimension as u64;
        let align = limits.min_storage_buffer_offset_alignment as u64;
        let vecs = n as u64 / 4;
        let buffers: Vec<&BufferRange> = [param, grad].into_iter().chain(state).collect();
        for r in &buffers {
            let at = r.offset * 4;
            if r.len != n || at % align != 0 || at + vecs * 16 > r.buffer.size() {
                return Err(format!(
                    "anchor cannot bind {} f32 at element {} of a {}-byte buffer",
                    r.len,
                    r.offset,
                    r.buffer.size()
                )
                .into());
            }
        }
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(STEP_BYTES),
            },
            count: None,
        }];
        entries.push(storage(1, false));
        entries.push(storage(2, true));
        for s in 0..kind.slots() as u32 {
            entries.push(storage(3 + s, false));
        }
        let stride = STEP_BYTES.next_multiple_of(limits.min_uniform_buffer_offset_alignment as u64);
        let slots = k.max(1) as u64;
        let built = scoped(ctx, "building an anchor kernel", || {
            let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("anchor"),
                entries: &entries,
            });
            let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("anchor"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("anchor"),
                source: wgpu::ShaderSource::Wgsl(kind.wgsl().into()),
            });
            let pipelines = [0.0, 1.0].map(|exact| {
                d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("anchor"),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &[("GX", maxg as f64), ("EXACT", exact)],
                        ..Default::default()
                    },
                    cache: None,
                })
            });
            let ring = d.create_buffer(&wgpu::BufferDescriptor {
                label: Some("anchor per-step scalars"),
                size: stride * slots,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            // Windows of whole vec4s within the binding limit and the 2D grid.
            let per_chunk =
                (limits.max_storage_buffer_binding_size / 16).min(maxg * maxg * WG) / 64 * 64;
            let mut chunks = Vec::new();
            let mut v0 = 0;
            while v0 < vecs {
                let nv = per_chunk.min(vecs - v0);
                let groups = nv.div_ceil(WG);
                let gx = groups.min(maxg);
                let mut bind = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &ring,
                        offset: 0,
                        size: wgpu::BufferSize::new(STEP_BYTES),
                    }),
                }];
                for (b, r) in buffers.iter().enumerate() {
                    bind.push(wgpu::BindGroupEntry {
                        binding: 1 + b as u32,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &r.buffer,
                            offset: r.offset * 4 + v0 * 16,
                            size: wgpu::BufferSize::new(nv * 16),
                        }),
                    });
                }
                let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("anchor"),
                    layout: &layout,
                    entries: &bind,
                });
                let exact = nv % WG == 0 && groups <= maxg;
                chunks.push((bg, (gx as u32, groups.div_ceil(gx) as u32), exact));
                v0 += nv;
            }
            (pipelines, ring, chunks)
        })?;
        let (pipelines, ring, chunks) = built;
        Ok(Anchor {
            rule: rule.clone(),
            pipelines,
            chunks,
            ring,
            stride,
            slots,
            t: 0,
        })
    }

    /// Records `k` steps (at most the `k` it was made for) into `enc`: each step's scalars
    /// (the rule's `hyper(t)`, words 0-7) written to its ring slot, one dispatch per
    /// window, all in one compute pass.
    pub fn record(
        &mut self,
        ctx: &Context,
        enc: &mut wgpu::CommandEncoder,
        k: usize,
    ) -> gpu_optim::Result<()> {
        assert!(k as u64 <= self.slots, "more steps than ring slots");
        for j in 0..k as u64 {
            self.t += 1;
            let h = self.rule.hyper(self.t);
            ctx.queue()
                .write_buffer(&self.ring, j * self.stride, bytemuck::cast_slice(&h[..8]));
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("anchor steps"),
            timestamp_writes: None,
        });
        for j in 0..k as u64 {
            for (bg, (x, y), exact) in &self.chunks {
                pass.set_pipeline(&self.pipelines[*exact as usize]);
                pass.set_bind_group(0, bg, &[(j * self.stride) as u32]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
        Ok(())
    }
}

/// The crate's optimizer for `rule` on `arena`'s first tensor, prepared (state allocated),
/// `k` steps per submission, and that tensor's id.
fn crate_optimizer(
    ctx: &Context,
    rule: &AnyRule,
    arena: &gpu_optim::Arena,
    k: usize,
) -> gpu_optim::Result<(Optimizer<AnyRule>, TensorId)> {
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_steps_per_submission(k as u32)?;
    let t = opt.add_tensor_as(
        opt.default_group(),
        arena.param(0),
        Dtype::F32,
        arena.grad(0),
        Dtype::F32,
    )?;
    opt.prepare()?;
    Ok((opt, t))
}

/// The anchor over `arena`'s first tensor and `opt`'s state for it.
fn anchor_on(
    ctx: &Context,
    rule: &AnyRule,
    arena: &gpu_optim::Arena,
    opt: &mut Optimizer<AnyRule>,
    t: TensorId,
    k: usize,
) -> Result<Anchor, Box<dyn std::error::Error>> {
    let state = (0..rule.state_slots().len())
        .map(|s| opt.state(t, s))
        .collect::<gpu_optim::Result<Vec<_>>>()?;
    Anchor::new(ctx, rule, &arena.param(0), &arena.grad(0), &state, k)
}

/// The anchor against the crate from the same start: two copies of the same random
/// params and grads, one stepped by the crate's optimizer, the other by the anchor on a
/// second optimizer's (zeroed, never stepped) state; then params and every state slot
/// compared. Returns (bit-exact, max ulps).
pub fn verify_anchor(
    ctx: &Context,
    rule: &AnyRule,
) -> Result<(bool, u64), Box<dyn std::error::Error>> {
    let (n, steps) = (ANCHOR_VERIFY_LEN, ANCHOR_VERIFY_STEPS as usize);
    let ours_arena = bench::random_arena(ctx, n)?;
    let anchor_arena = bench::random_arena(ctx, n)?;
    let (mut ours, t1) = crate_optimizer(ctx, rule, &ours_arena, 1)?;
    for _ in 0..steps {
        ours.step()?;
    }
    let (mut other, t2) = crate_optimizer(ctx, rule, &anchor_arena, 1)?;
    let mut anchor = anchor_on(ctx, rule, &anchor_arena, &mut other, t2, steps)?;
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    anchor.record(ctx, &mut enc, steps)?;
    scoped(ctx, "running an anchor", || {
        ctx.queue().submit([enc.finish()])
    })?;
    ctx.wait()?;
    let mut pairs = vec![(
        ctx.download(&ours_arena.param(0))?,
        ctx.download(&anchor_arena.param(0))?,
    )];
    for s in 0..rule.state_slots().len() {
        pairs.push((ours.read_state(t1, s)?, other.read_state(t2, s)?));
    }
    let mut exact = true;
    let mut ulps = 0;
    for (a, b) in &pairs {
        for (x, y) in a.iter().zip(b) {
            exact &= x.to_bits() == y.to_bits();
            ulps = ulps.max(gpu_optim::verify::ulp_distance(*x, *y));
        }
    }
    Ok((exact, ulps))
}

/// Runs `f` inside a validation error scope: what it catches becomes the error.
fn scoped<T>(ctx: &Context, during: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    match pollster::block_on(scope.pop()) {
        Some(e) => Err(format!("{during}: {e}")),
        None => Ok(out),
    }
}

/// The rules `rules` holds that have an anchor.
pub fn anchored(rules: &[AnyRule]) -> Vec<&AnyRule> {
    rules
        .iter()
        .filter(|r| AnchorKind::of(r).is_some())
        .collect()
}

/// Every anchored rule at every size (a multiple of 4): the crate's step and the anchor's
/// on the same buffers, `--reps` times each (at least [`ANCHOR_MIN_REPS`]), alternately
/// (ours, then the anchor), each
/// timing one `Timer::time` of one repetition (a warm-up submission, then the timed one,
/// K steps each). Per size, also the first anchored rule's anchor against itself, the
/// same way: the statistic's noise floor.
pub fn anchor_rows(
    s: &Shared,
    sizes: &[usize],
    rules: &[AnyRule],
) -> Result<(Vec<AnchorRow>, Vec<NoiseRow>), Box<dyn std::error::Error>> {
    let Shared {
        ctx,
        timer,
        bar,
        reps,
        ..
    } = *s;
    let rules = anchored(rules);
    let reps = reps.max(ANCHOR_MIN_REPS);
    let mut checks = Vec::new();
    for rule in &rules {
        bar.set_message(format!("anchor verify {}", rule.name()));
        checks.push(verify_anchor(ctx, rule)?);
        bar.inc(1);
    }
    let (mut rows, mut noise) = (Vec::new(), Vec::new());
    for &n in sizes {
        if n % 4 != 0 {
            bar.inc(rules.len() as u64 + !rules.is_empty() as u64);
            continue;
        }
        let arena = bench::random_arena(ctx, n)?;
        let k = s.k_for(n);
        for (rule, &(bit_exact, max_ulps)) in rules.iter().zip(&checks) {
            bar.set_message(format!("anchor {} {}", rule.name(), fmt_size(n)));
            let (mut opt, t) = crate_optimizer(ctx, rule, &arena, k)?;
            let mut anchor = anchor_on(ctx, rule, &arena, &mut opt, t, k)?;
            let (ours, theirs, ratio) = timer.alternate(
                reps,
                k,
                |enc| opt.record_steps(enc, k as u32),
                |enc| anchor.record(ctx, enc, k),
            )?;
            rows.push(AnchorRow {
                rule: rule.name(),
                params: n,
                steps_per_submission: k,
                reps,
                ours,
                anchor: theirs,
                ratio,
                bit_exact,
                max_ulps,
            });
            bar.inc(1);
        }
        if let Some(rule) = rules.first() {
            bar.set_message(format!("anchor {} vs itself {}", rule.name(), fmt_size(n)));
            let (mut opt, t) = crate_optimizer(ctx, rule, &arena, k)?;
            let mut one = anchor_on(ctx, rule, &arena, &mut opt, t, k)?;
            let mut other = anchor_on(ctx, rule, &arena, &mut opt, t, k)?;
            let (_, _, ratio) = timer.alternate(
                reps,
                k,
                |enc| one.record(ctx, enc, k),
                |enc| other.record(ctx, enc, k),
            )?;
            noise.push(NoiseRow {
                rule: rule.name(),
                params: n,
                steps_per_submission: k,
                reps,
                ratio,
            });
            bar.inc(1);
        }
    }
    Ok((rows, noise))
}
