//! Measurement for `gpu-optim-bench` and `benches/`: GPU timing (timestamp queries where
//! the device has them inside encoders, else wall clock around a blocking wait), the
//! device's copy roofline, and each rule's step time and bandwidth.

use std::time::Instant;

use serde::Serialize;

use crate::arena::Arena;
use crate::context::Context;
use crate::error::Result;
use crate::optimizer::Optimizer;
use crate::rules::UpdateRule;
use crate::verify::Rng;
use crate::{Dtype, StateFormat};

/// How a time was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimingMethod {
    /// GPU timestamps written before and after the work, in the same command buffer.
    Timestamps,
    /// Host clock around submit + wait: includes submission and wake-up latency.
    WallClock,
}

/// Median and spread of repeated measurements, in seconds per unit of work.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Median over repetitions.
    pub median: f64,
    /// Fastest repetition.
    pub min: f64,
    /// Slowest repetition.
    pub max: f64,
}

impl Sample {
    /// The median, min and max of `xs` (not empty).
    pub fn of(mut xs: Vec<f64>) -> Sample {
        xs.sort_by(f64::total_cmp);
        Sample {
            median: xs[xs.len() / 2],
            min: xs[0],
            max: xs[xs.len() - 1],
        }
    }
}

/// Times work recorded into command encoders.
pub struct Timer {
    ctx: Context,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
}

impl Timer {
    /// Timestamps if the device has `TIMESTAMP_QUERY_INSIDE_ENCODERS`, else wall clock.
    /// `force_wall_clock` makes the choice explicit.
    pub fn new(ctx: &Context, force_wall_clock: bool) -> Timer {
        let f = ctx.device().features();
        let ok = f.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
        );
        let queries = (ok && !force_wall_clock).then(|| {
            let d = ctx.device();
            let qs = d.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("bench timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let buf = d.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bench timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (qs, buf)
        });
        Timer {
            ctx: ctx.clone(),
            queries,
        }
    }

    /// Which method this timer uses.
    pub fn method(&self) -> TimingMethod {
        if self.queries.is_some() {
            TimingMethod::Timestamps
        } else {
            TimingMethod::WallClock
        }
    }

    /// Two recordings timed alternately, `reps` times (at least once): each repetition
    /// one [`Timer::time`] of `a` then one of `b`, `per_rep` units of work each. Returns
    /// the seconds per unit of each and the per-repetition ratios a / b.
    pub fn alternate(
        &self,
        reps: usize,
        per_rep: usize,
        mut a: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
        mut b: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(Sample, Sample, Sample)> {
        let (mut xs, mut ys, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps.max(1) {
            let x = self.time(1, per_rep, &mut a)?.median;
            let y = self.time(1, per_rep, &mut b)?.median;
            xs.push(x);
            ys.push(y);
            ratios.push(x / y);
        }
        Ok((Sample::of(xs), Sample::of(ys), Sample::of(ratios)))
    }

    /// Runs `record` (which records `per_rep` units of work) once to warm up, then `reps`
    /// times, each in its own submission; returns seconds per unit.
    pub fn time(
        &self,
        reps: usize,
        per_rep: usize,
        mut record: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Sample> {
        let mut xs = Vec::with_capacity(reps);
        for rep in 0..=reps {
            let mut enc = self
                .ctx
                .device()
                .create_command_encoder(&Default::default());
            if let Some((qs, _)) = &self.queries {
                enc.write_timestamp(qs, 0);
            }
            record(&mut enc)?;
            if let Some((qs, buf)) = &self.queries {
                enc.write_timestamp(qs, 1);
                enc.resolve_query_set(qs, 0..2, buf, 0);
            }
            let start = Instant::now();
            self.ctx.scoped("timed submission", || {
                self.ctx.queue().submit([enc.finish()])
            })?;
            self.ctx.wait()?;
            let wall = start.elapsed().as_secs_f64();
            let secs = match &self.queries {
                Some((_, buf)) => {
                    let b = self.ctx.download_bytes(buf, 0, 16)?;
                    let t: Vec<u64> = bytemuck::pod_collect_to_vec(&b);
                    let ns = t[1].saturating_sub(t[0]) as f64
                        * self.ctx.queue().get_timestamp_period() as f64;
                    ns * 1e-9
                }
                None => wall,
            };
            if rep > 0 {
                xs.push(secs / per_rep as f64);
            }
        }
        Ok(Sample::of(xs))
    }
}

/// The copy ceiling at one size.
#[derive(Clone, Debug, Serialize)]
pub struct Roofline {
    /// Elements (f32) copied.
    pub params: usize,
    /// `copy_buffer_to_buffer`, GB/s counting bytes read plus written.
    pub copy_buffer_gbps: f64,
    /// A vec4 copy kernel, same count.
    pub copy_kernel_gbps: f64,
}

impl Roofline {
    /// The higher of the two: what a memory-bound kernel can hope for.
    pub fn gbps(&self) -> f64 {
        self.copy_buffer_gbps.max(self.copy_kernel_gbps)
    }
}

/// Measures both copies of `n` f32 on this device.
pub fn roofline(ctx: &Context, timer: &Timer, n: usize, reps: usize, k: usize) -> Result<Roofline> {
    let src = ctx.create_zeroed("bench copy src", n)?;
    let dst = ctx.create_zeroed("bench copy dst", n)?;
    let bytes = (n * 4) as u64;
    let cb = timer.time(reps, k, |enc| {
        for _ in 0..k {
            enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        }
        Ok(())
    })?;
    let kernel = CopyKernel::new(ctx, &src, &dst, n)?;
    let ck = timer.time(reps, k, |enc| {
        for _ in 0..k {
            kernel.record(enc);
        }
        Ok(())
    })?;
    let gbps = |s: Sample| 2.0 * bytes as f64 / s.median / 1e9;
    Ok(Roofline {
        params: n,
        copy_buffer_gbps: gbps(cb),
        copy_kernel_gbps: gbps(ck),
    })
}

/// `dst = src` as a compute kernel shaped like the rule kernels (vec4, 256 per workgroup,
/// 2D grid), chunked at the binding limit the same way.
struct CopyKernel {
    pipeline: wgpu::ComputePipeline,
    chunks: Vec<(wgpu::BindGroup, (u32, u32))>,
}

impl CopyKernel {
    fn new(ctx: &Context, src: &wgpu::Buffer, dst: &wgpu::Buffer, n: usize) -> Result<Self> {
        let d = ctx.device();
        let limits = ctx.limits();
        let wg = 256u32.min(limits.max_compute_invocations_per_workgroup);
        let maxg = limits.max_compute_workgroups_per_dimension as u64;
        ctx.scoped("building the copy kernel", || {
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("copy"),
                source: wgpu::ShaderSource::Wgsl(include_str!("../shaders/copy.wgsl").into()),
            });
            let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("copy"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("WG", wg as f64)],
                    ..Default::default()
                },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            // Chunks of whole vec4s within the binding limit and the 2D grid.
            let vecs = (n as u64).div_ceil(4);
            let per_chunk =
                (limits.max_storage_buffer_binding_size / 16).min(maxg * maxg * wg as u64) / 64
                    * 64;
            let mut chunks = Vec::new();
            let mut v0 = 0;
            while v0 < vecs {
                let nv = per_chunk.min(vecs - v0);
                let groups = nv.div_ceil(wg as u64);
                let gx = groups.min(maxg);
                let grid = [gx as u32, nv as u32];
                let ubuf = d.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("copy grid"),
                    size: 16,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                ctx.queue()
                    .write_buffer(&ubuf, 0, bytemuck::cast_slice(&[grid[0], grid[1], 0, 0]));
                let window = |buffer| {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: v0 * 16,
                        size: wgpu::BufferSize::new(nv * 16),
                    })
                };
                let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("copy"),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: window(src),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: window(dst),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: ubuf.as_entire_binding(),
                        },
                    ],
                });
                chunks.push((bg, (gx as u32, groups.div_ceil(gx) as u32)));
                v0 += nv;
            }
            CopyKernel { pipeline, chunks }
        })
    }

    fn record(&self, enc: &mut wgpu::CommandEncoder) {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.pipeline);
        for (bg, (x, y)) in &self.chunks {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }
}

/// One rule's speed at one size.
#[derive(Clone, Debug, Serialize)]
pub struct RuleTiming {
    /// Rule name.
    pub rule: String,
    /// Parameters per step.
    pub params: usize,
    /// Bytes the rule moves per parameter per step.
    pub bytes_per_param: usize,
    /// Seconds per step.
    pub step: Sample,
    /// Effective bandwidth at the median: bytes moved / time, GB/s.
    pub gbps: f64,
}

/// Times `k` steps per submission of `rule` on one flat tensor of `n` parameters.
pub fn time_rule<R: UpdateRule>(
    ctx: &Context,
    timer: &Timer,
    rule: &R,
    n: usize,
    reps: usize,
    k: usize,
) -> Result<RuleTiming> {
    let arena = random_arena(ctx, n)?;
    time_rule_on(ctx, timer, rule, &arena, reps, k, &Setup::default())
}

/// One flat tensor of `n` parameters with random params and grads: zeros can run faster
/// than real data. Rules can share it (each run's optimizer has its own state).
pub fn random_arena(ctx: &Context, n: usize) -> Result<Arena> {
    random_arena_as(ctx, n, Dtype::F32, Dtype::F32)
}

/// [`random_arena`] with params and grads of the given element types.
pub fn random_arena_as(ctx: &Context, n: usize, param: Dtype, grad: Dtype) -> Result<Arena> {
    let arena = Arena::with_dtypes(ctx, &[n], param, grad)?;
    fill_random(ctx, &arena, n)?;
    Ok(arena)
}

/// Fills the first `n` elements of `arena`'s param and grad buffers (its tensors and
/// what lies between them) with random values: params in [-1, 1), grads in [-0.01, 0.01).
pub fn fill_random(ctx: &Context, arena: &Arena, n: usize) -> Result<()> {
    let (param, grad) = arena.dtypes();
    let mut rng = Rng(1);
    let chunk = 1 << 20;
    for start in (0..n).step_by(chunk) {
        let len = chunk.min(n - start);
        for (b, d, scale) in [(&arena.params, param, 1.0), (&arena.grads, grad, 1e-2)] {
            let r = crate::BufferRange::new(b, start as u64, len);
            ctx.upload_as(&r, d, &rng.vec(len, scale))?;
        }
    }
    Ok(())
}

/// Bytes one step of `rule` moves per parameter with state stored as `format` (for a
/// tensor that `format` quantizes): p and g, plus each slot read and written, as 4 bytes,
/// or as 1 byte plus its block's absmax (4 bytes per 256 elements) each way.
pub fn bytes_per_param<R: UpdateRule>(rule: &R, format: StateFormat) -> f64 {
    match format {
        StateFormat::F32 => rule.bytes_per_param() as f64,
        StateFormat::Blockwise8 { .. } => {
            12.0 + rule.state_slots().len() as f64 * 2.0 * (1.0 + 4.0 / crate::quant::BLOCK as f64)
        }
    }
}

/// The training-loop features a timed step runs with; `Default` is the plain step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// Gradient clipping in every step (its extra pass is not counted in the bytes, so
    /// GB/s stays comparable with the plain rule).
    pub clip: Option<crate::GradClip>,
    /// Loss scaling with the inf/NaN skip (its passes are not counted either).
    pub scaler: Option<crate::GradScaler>,
    /// How the state is stored (counted: see [`bytes_per_param`]).
    pub format: StateFormat,
}

/// An optimizer for `rule` over `arena`'s first tensor with `setup`, `k` steps per
/// submission, prepared.
pub fn optimizer_on<R: UpdateRule>(
    ctx: &Context,
    rule: &R,
    arena: &Arena,
    k: usize,
    setup: &Setup,
) -> Result<Optimizer<R>> {
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_steps_per_submission(k as u32)?;
    opt.set_state_format(setup.format)?;
    let (pd, gd) = arena.dtypes();
    opt.add_tensor_as(opt.default_group(), arena.param(0), pd, arena.grad(0), gd)?;
    if let Some(c) = setup.clip {
        opt.set_grad_clip(c)?;
    }
    if let Some(s) = setup.scaler {
        opt.set_grad_scaler(s)?;
    }
    opt.prepare()?;
    Ok(opt)
}

/// `rule` on `a`'s arena with `a`'s setup against the same rule on `b`'s with `b`'s, `k`
/// steps per submission each ([`optimizer_on`]), timed alternately `reps` times
/// ([`Timer::alternate`]): seconds per step of each and the per-repetition ratios a / b.
pub fn time_against<R: UpdateRule>(
    ctx: &Context,
    timer: &Timer,
    rule: &R,
    a: (&Arena, &Setup),
    b: (&Arena, &Setup),
    reps: usize,
    k: usize,
) -> Result<(Sample, Sample, Sample)> {
    let mut first = optimizer_on(ctx, rule, a.0, k, a.1)?;
    let mut second = optimizer_on(ctx, rule, b.0, k, b.1)?;
    timer.alternate(
        reps,
        k,
        |enc| first.record_steps(enc, k as u32),
        |enc| second.record_steps(enc, k as u32),
    )
}

/// Times `k` steps per submission of `rule` on `arena`'s first tensor with `setup`.
pub fn time_rule_on<R: UpdateRule>(
    ctx: &Context,
    timer: &Timer,
    rule: &R,
    arena: &Arena,
    reps: usize,
    k: usize,
    setup: &Setup,
) -> Result<RuleTiming> {
    let n = arena.param(0).len;
    let format = setup.format;
    let mut opt = optimizer_on(ctx, rule, arena, k, setup)?;
    let step = time_steps(timer, &mut opt, reps, k)?;
    let bpp = bytes_per_param(rule, format);
    Ok(RuleTiming {
        rule: rule.name(),
        params: n,
        bytes_per_param: bpp.round() as usize,
        step,
        gbps: bpp * n as f64 / step.median / 1e9,
    })
}

/// Times `k` recorded steps per submission of a prepared optimizer; seconds per step.
pub fn time_steps<R: UpdateRule>(
    timer: &Timer,
    opt: &mut Optimizer<R>,
    reps: usize,
    k: usize,
) -> Result<Sample> {
    opt.prepare()?;
    timer.time(reps, k, |enc| opt.record_steps(enc, k as u32))
}

/// Host time to encode and submit one step (not waiting for the GPU), median over `n`
/// submissions of `k` steps each, in seconds per step.
pub fn host_cost<R: UpdateRule>(
    ctx: &Context,
    opt: &mut Optimizer<R>,
    n: usize,
    k: u32,
) -> Result<Sample> {
    host_time(ctx, n, k, || opt.step_many(k))
}

/// Host time to encode and submit an empty compute pass (not waiting for the GPU), median
/// over `n` submissions back to back (each after a wait), in seconds: the least any
/// submission costs. A step finds the device right after a step, which on a software
/// device costs any submission more: [`host_cost_vs_empty`] compares the two there.
pub fn empty_submit_cost(ctx: &Context, n: usize) -> Result<Sample> {
    host_time(ctx, n, 1, || submit_empty(ctx))
}

/// [`host_cost`] at K=1 against [`empty_submit_cost`], timed in pairs (see
/// [`host_cost_vs_empty`]).
#[derive(Clone, Copy, Debug)]
pub struct HostVsEmpty {
    /// Seconds to encode and submit one step.
    pub step: Sample,
    /// Seconds to encode and submit an empty compute pass.
    pub empty: Sample,
    /// Per-pair step / empty: median, min, max.
    pub ratio: Sample,
}

/// Host time of `opt.step()` and of an empty compute pass (not waiting for the GPU) in
/// `pairs` pairs, each submission followed by an untimed wait: an untimed step, then the
/// timed step, then the timed empty pass. So both find the device as a training loop's
/// step does: idle right after a step. On lavapipe that state costs any submission more
/// than the step's own recording does: an empty pass right after a step took 2-20x one
/// right after an empty pass (its threads, likely, asleep; its caches cold).
pub fn host_cost_vs_empty<R: UpdateRule>(
    ctx: &Context,
    opt: &mut Optimizer<R>,
    pairs: usize,
) -> Result<HostVsEmpty> {
    let timed = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t = Instant::now();
        f()?;
        let secs = t.elapsed().as_secs_f64();
        ctx.wait()?;
        Ok(secs)
    };
    // Warm the empty pass up (the step's first one is untimed in each pair).
    timed(&mut || submit_empty(ctx))?;
    let (mut step, mut empty, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs.max(1) {
        timed(&mut || opt.step())?;
        let s = timed(&mut || opt.step())?;
        let e = timed(&mut || submit_empty(ctx))?;
        step.push(s);
        empty.push(e);
        ratio.push(s / e);
    }
    Ok(HostVsEmpty {
        step: Sample::of(step),
        empty: Sample::of(empty),
        ratio: Sample::of(ratio),
    })
}

/// Encodes and submits an empty compute pass.
fn submit_empty(ctx: &Context) -> Result<()> {
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    drop(enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("empty"),
        timestamp_writes: None,
    }));
    ctx.queue().submit([enc.finish()]);
    Ok(())
}

/// `submit` once to warm up, then `n` times, each timed on the host and followed by a wait
/// (untimed): the median in seconds per `units`.
fn host_time(
    ctx: &Context,
    n: usize,
    units: u32,
    mut submit: impl FnMut() -> Result<()>,
) -> Result<Sample> {
    submit()?;
    ctx.wait()?;
    let mut xs = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        submit()?;
        xs.push(t.elapsed().as_secs_f64() / units as f64);
        ctx.wait()?;
    }
    Ok(Sample::of(xs))
}

/// The CPU reference's time per step (single thread) on `n` parameters.
pub fn time_cpu<R: UpdateRule>(rule: &R, n: usize, reps: usize) -> Result<Sample> {
    let mut rng = Rng(2);
    let mut p = rng.vec(n, 1.0);
    let g = rng.vec(n, 1e-2);
    let mut cpu = crate::CpuOptimizer::new(rule.clone(), n)?;
    let mut xs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        cpu.step(&mut p, &g)?;
        xs.push(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&p);
    Ok(Sample::of(xs))
}

/// Makes DejaVu Sans (bundled: assets/fonts, under its own free licence) plotters'
/// "sans-serif": its pure-Rust text path needs a font to measure labels and to draw PNGs,
/// and a bundled one makes the plots the same on every machine. Idempotent.
pub fn register_plot_font() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
        // The bundled file is a valid TrueType font; if it were not, labels would fail
        // with plotters' own error at draw time rather than here.
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes);
    });
}
