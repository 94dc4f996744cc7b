//! The simulation behind `cargo run --example trajectories`, shared with its test
//! (tests/examples.rs): many 2-D points stepped on the device by every classic rule, with
//! the surface's gradient computed by a WGSL kernel in the same command encoder.
#![allow(dead_code)]

use gpu_optim::{AnyRule, Arena, Context, Optimizer, UpdateRule};

/// The two surfaces of the optimizer story.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surface {
    /// f = x² − y²: plain gradient descent stalls near the saddle point.
    Saddle,
    /// f = (1 − x)² + 100 (y − x²)²: a long, narrow, curved valley.
    Rosenbrock,
}

impl Surface {
    pub fn f(self, x: f64, y: f64) -> f64 {
        match self {
            Surface::Saddle => x * x - y * y,
            Surface::Rosenbrock => (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2),
        }
    }
}

/// The rules drawn, each with the lr that shows its character on `surface`.
pub fn rules(surface: Surface) -> Vec<(&'static str, AnyRule)> {
    use gpu_optim::{Adadelta, Adagrad, Adam, RmsProp, Sgd};
    let lr = match surface {
        Surface::Saddle => 0.01,
        Surface::Rosenbrock => 2e-4,
    };
    // Adaptive rules' lr per surface: large enough to show their character, small enough
    // that the valley's paths stay readable.
    let (adagrad, adadelta, rmsprop, adam) = match surface {
        Surface::Saddle => (0.1, 10.0, 0.01, 0.02),
        Surface::Rosenbrock => (0.2, 2.0, 0.005, 0.04),
    };
    vec![
        (
            "SGD",
            AnyRule::Sgd(Sgd {
                lr,
                ..Sgd::default()
            }),
        ),
        (
            "Momentum",
            AnyRule::Sgd(Sgd {
                lr,
                momentum: 0.9,
                ..Sgd::default()
            }),
        ),
        (
            "Nesterov",
            AnyRule::Sgd(Sgd {
                lr,
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            }),
        ),
        (
            "Adagrad",
            AnyRule::Adagrad(Adagrad {
                lr: adagrad,
                ..Adagrad::default()
            }),
        ),
        (
            "Adadelta",
            AnyRule::Adadelta(Adadelta {
                lr: adadelta,
                ..Adadelta::default()
            }),
        ),
        (
            "RMSprop",
            AnyRule::RmsProp(RmsProp {
                lr: rmsprop,
                ..RmsProp::default()
            }),
        ),
        (
            "Adam",
            AnyRule::Adam(Adam {
                lr: adam,
                ..Adam::default()
            }),
        ),
    ]
}

/// Points stepped by one rule: positions after every step of the first `tracked` points,
/// and all final positions.
pub struct Run {
    pub paths: Vec<Vec<(f32, f32)>>,
    pub last: Vec<(f32, f32)>,
}

/// Steps `starts` with `rule` on `surface` for `steps` steps, on the device.
pub fn run(
    ctx: &Context,
    surface: Surface,
    rule: &AnyRule,
    starts: &[(f32, f32)],
    steps: usize,
    tracked: usize,
) -> gpu_optim::Result<Run> {
    let d = ctx.device();
    let n = starts.len();
    let arena = Arena::new(ctx, &[2 * n])?;
    let flat: Vec<f32> = starts.iter().flat_map(|&(x, y)| [x, y]).collect();
    ctx.upload(&arena.param(0), &flat)?;
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.add_arena(&arena, opt.default_group())?;

    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("surface gradient"),
        source: wgpu::ShaderSource::Wgsl(include_str!("grad.wgsl").into()),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("surface gradient"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let setup = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("setup"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let surface_id = (surface == Surface::Rosenbrock) as u32;
    ctx.queue().write_buffer(
        &setup,
        0,
        bytemuck::cast_slice(&[surface_id, n as u32, 0, 0]),
    );
    let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: arena.params.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: arena.grads.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: setup.as_entire_binding(),
            },
        ],
    });

    let mut paths = vec![Vec::with_capacity(steps + 1); tracked];
    for (k, path) in paths.iter_mut().enumerate() {
        path.push(starts[k]);
    }
    let head = gpu_optim::BufferRange::new(&arena.params, 0, 2 * tracked);
    for _ in 0..steps {
        // Backward (the gradient kernel) and the optimizer step in one submission.
        let mut enc = d.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups((n as u32).div_ceil(64), 1, 1);
        }
        opt.record_step(&mut enc)?;
        ctx.queue().submit([enc.finish()]);
        if tracked > 0 {
            let h = ctx.download(&head)?;
            for (k, path) in paths.iter_mut().enumerate() {
                path.push((h[2 * k], h[2 * k + 1]));
            }
        }
    }
    let all = ctx.download(&arena.param(0))?;
    let last = all.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    let _ = rule.name();
    Ok(Run { paths, last })
}
