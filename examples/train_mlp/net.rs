//! The network behind `cargo run --example train_mlp`, shared with its test
//! (tests/examples.rs): data, kernels, and one training run with any rule.
#![allow(dead_code)]

use gpu_optim::verify::Rng;
use gpu_optim::{AnyRule, Arena, BufferRange, Context, Optimizer, StateFormat, UpdateRule};

/// Samples (half per class) and hidden width.
pub const N: usize = 512;
pub const H: usize = 32;
/// Layer shapes (inputs, outputs).
const LAYERS: [(usize, usize); 3] = [(2, H), (H, H), (H, 2)];

/// Two interleaved spirals, deterministic: (points `[N][2]`, labels).
pub fn spirals() -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng(7);
    let (mut x, mut y) = (Vec::with_capacity(2 * N), Vec::with_capacity(N));
    for k in 0..N {
        let class = (k % 2) as u32;
        let t = (k / 2) as f32 / (N / 2) as f32;
        let angle = t * 2.0 * std::f32::consts::PI + class as f32 * std::f32::consts::PI;
        let r = 0.1 + 0.9 * t;
        x.push(r * angle.cos() + 0.02 * rng.uniform());
        x.push(r * angle.sin() + 0.02 * rng.uniform());
        y.push(class);
    }
    (x, y)
}

/// The learning rate each rule gets on this problem (torch defaults are tuned for other
/// models; these were chosen by a coarse sweep on this data).
pub fn lr_for(mut rule: AnyRule) -> AnyRule {
    let lr = match rule.name().as_str() {
        "sgd" => 0.5,
        "sgd-momentum" | "sgd-nesterov" => 0.1,
        "adagrad" => 0.1,
        "adadelta" => 1.0,
        "rmsprop" | "rmsprop-centered-momentum" => 0.003,
        "lion" => 0.002,
        "lamb" => 0.01,
        _ => 0.01,
    };
    rule.set_lr(lr);
    rule
}

struct Kernels {
    forward: wgpu::ComputePipeline,
    grad_weights: wgpu::ComputePipeline,
    grad_input: wgpu::ComputePipeline,
    loss: wgpu::ComputePipeline,
}

fn pipeline(d: &wgpu::Device, module: &wgpu::ShaderModule, entry: &str) -> wgpu::ComputePipeline {
    d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn storage(ctx: &Context, label: &str, n: usize) -> wgpu::Buffer {
    ctx.create_zeroed(label, n).expect("buffer")
}

fn uniform(d: &wgpu::Device, q: &wgpu::Queue, words: [u32; 4]) -> wgpu::Buffer {
    let b = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("dims"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    q.write_buffer(&b, 0, bytemuck::cast_slice(&words));
    b
}

fn range(r: &BufferRange) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: &r.buffer,
        offset: r.offset * 4,
        size: wgpu::BufferSize::new((r.len * 4) as u64),
    })
}

/// One recorded dispatch: pipeline, bind group, workgroups.
struct Dispatch(wgpu::ComputePipeline, wgpu::BindGroup, u32);

fn dispatch(
    d: &wgpu::Device,
    p: &wgpu::ComputePipeline,
    entries: &[(u32, wgpu::BindingResource<'_>)],
    invocations: usize,
) -> Dispatch {
    let entries: Vec<_> = entries
        .iter()
        .map(|(b, r)| wgpu::BindGroupEntry {
            binding: *b,
            resource: r.clone(),
        })
        .collect();
    let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &p.get_bind_group_layout(0),
        entries: &entries,
    });
    Dispatch(p.clone(), bg, (invocations as u32).div_ceil(64))
}

/// Trains from the same initialization with `rule` for `steps` full-batch steps; returns
/// (step, mean loss, accuracy) every `every` steps (and at step 0).
pub fn train(
    ctx: &Context,
    rule: &AnyRule,
    steps: usize,
    every: usize,
    progress: impl FnMut(usize, f32, f32),
) -> gpu_optim::Result<Vec<(usize, f32, f32)>> {
    train_with(ctx, rule, StateFormat::F32, steps, every, progress)
}

/// [`train`] with the optimizer's state stored as `format` says.
pub fn train_with(
    ctx: &Context,
    rule: &AnyRule,
    format: StateFormat,
    steps: usize,
    every: usize,
    mut progress: impl FnMut(usize, f32, f32),
) -> gpu_optim::Result<Vec<(usize, f32, f32)>> {
    let (d, q) = (ctx.device(), ctx.queue());
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("mlp"),
        source: wgpu::ShaderSource::Wgsl(include_str!("mlp.wgsl").into()),
    });
    let loss_module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("loss"),
        source: wgpu::ShaderSource::Wgsl(include_str!("loss.wgsl").into()),
    });
    let k = Kernels {
        forward: pipeline(d, &module, "forward"),
        grad_weights: pipeline(d, &module, "grad_weights"),
        grad_input: pipeline(d, &module, "grad_input"),
        loss: pipeline(&d.clone(), &loss_module, "main"),
    };

    // Parameters: one arena tensor per layer ([in + 1][out], bias last), Xavier init.
    let lens: Vec<usize> = LAYERS.iter().map(|&(i, o)| (i + 1) * o).collect();
    let arena = Arena::new(ctx, &lens)?;
    let mut rng = Rng(11);
    for (l, &(i, o)) in LAYERS.iter().enumerate() {
        let scale = (6.0 / (i + o) as f32).sqrt();
        let mut w = rng.vec(i * o, scale);
        w.extend(std::iter::repeat_n(0.0, o));
        ctx.upload(&arena.param(l), &w)?;
    }
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_state_format(format)?;
    opt.add_arena(&arena, opt.default_group())?;

    let (x, labels) = spirals();
    let xb = ctx.create_buffer("x", &x)?;
    let lb = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("labels"),
        size: (N * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    q.write_buffer(&lb, 0, bytemuck::cast_slice(&labels));
    // Activations (a[0] = x), their gradients, stats.
    let acts: Vec<wgpu::Buffer> = LAYERS
        .iter()
        .map(|&(_, o)| storage(ctx, "act", N * o))
        .collect();
    let dacts: Vec<wgpu::Buffer> = LAYERS
        .iter()
        .map(|&(_, o)| storage(ctx, "dact", N * o))
        .collect();
    let stats = storage(ctx, "stats", 2 * N);

    let mut work: Vec<Dispatch> = Vec::new();
    let input = |l: usize| if l == 0 { &xb } else { &acts[l - 1] };
    let dims: Vec<wgpu::Buffer> = LAYERS
        .iter()
        .enumerate()
        .map(|(l, &(i, o))| uniform(d, q, [N as u32, i as u32, o as u32, (l < 2) as u32]))
        .collect();
    for (l, &(_, o)) in LAYERS.iter().enumerate() {
        let p = arena.param(l);
        work.push(dispatch(
            d,
            &k.forward,
            &[
                (0, dims[l].as_entire_binding()),
                (1, input(l).as_entire_binding()),
                (2, range(&p)),
                (4, acts[l].as_entire_binding()),
            ],
            N * o,
        ));
    }
    let ldims = uniform(d, q, [N as u32, 0, 0, 0]);
    work.push(dispatch(
        d,
        &k.loss,
        &[
            (0, ldims.as_entire_binding()),
            (1, acts[2].as_entire_binding()),
            (2, lb.as_entire_binding()),
            (3, dacts[2].as_entire_binding()),
            (4, stats.as_entire_binding()),
        ],
        N,
    ));
    for l in (0..LAYERS.len()).rev() {
        let (i, o) = LAYERS[l];
        let g = arena.grad(l);
        work.push(dispatch(
            d,
            &k.grad_weights,
            &[
                (0, dims[l].as_entire_binding()),
                (1, input(l).as_entire_binding()),
                (2, dacts[l].as_entire_binding()),
                (4, range(&g)),
            ],
            (i + 1) * o,
        ));
        if l > 0 {
            work.push(dispatch(
                d,
                &k.grad_input,
                &[
                    (0, dims[l].as_entire_binding()),
                    (1, dacts[l].as_entire_binding()),
                    (2, range(&arena.param(l))),
                    (3, acts[l - 1].as_entire_binding()),
                    (4, dacts[l - 1].as_entire_binding()),
                ],
                N * i,
            ));
        }
    }

    let mut log = Vec::new();
    for s in 0..=steps {
        // Forward, loss, backward and the optimizer step: one submission, nothing read.
        let mut enc = d.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for Dispatch(p, bg, groups) in &work {
                pass.set_pipeline(p);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(*groups, 1, 1);
            }
        }
        if s < steps {
            opt.record_step(&mut enc)?;
        }
        q.submit([enc.finish()]);
        if s % every == 0 || s == steps {
            // The stats are of this step's forward pass (before its update).
            let st = ctx.download(&BufferRange::whole(&stats, 2 * N))?;
            let loss = st.iter().step_by(2).sum::<f32>() / N as f32;
            let acc = st.iter().skip(1).step_by(2).sum::<f32>() / N as f32;
            log.push((s, loss, acc));
            progress(s, loss, acc);
        }
    }
    Ok(log)
}
