//! Device limits and awkward layouts: bindings smaller than a tensor, more workgroups than
//! one grid dimension allows, caller buffers at offsets that rule out vec4 access.
//! Small limits are requested on purpose so that small data exercises the chunking.

mod common;

use gpu_optim::verify::Rng;
use gpu_optim::*;

fn small_ctx() -> Context {
    common::ctx_with(&ContextOptions {
        max_storage_buffer_binding_size: Some(1 << 20),
        max_compute_workgroups_per_dimension: Some(16),
        ..Default::default()
    })
}

#[test]
fn tensor_larger_than_a_binding_and_a_grid_dimension() {
    let ctx = small_ctx();
    assert_eq!(ctx.limits().max_storage_buffer_binding_size, 1 << 20);
    // 1 MiB bindings hold 262_144 f32: 600_003 elements need three windows, and each
    // window's 256 tiles exceed 16 workgroups per dimension, so the grid is 2D.
    for rule in [
        AnyRule::Adam(Adam::default()),
        AnyRule::Sgd(Sgd {
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        }),
    ] {
        let r = verify(&ctx, &VerifyPlan::flat(rule, 600_003, 5)).unwrap();
        assert!(r.passed(), "{r}");
    }
}

#[test]
fn many_tensors_and_groups_across_windows() {
    let ctx = small_ctx();
    let lens = [3usize, 200_000, 77, 150_001, 1, 64, 65, 300_000];
    // Also with clipping: the norm's reduction spans every tile of every window.
    for clip in [
        None,
        Some(GradClip {
            max_norm: Some(5.0),
            value: Some(0.9),
        }),
    ] {
        let plan = VerifyPlan {
            groups: vec![
                Adam::default(),
                Adam {
                    lr: 3e-3,
                    weight_decay: 0.1,
                    ..Adam::default()
                },
            ],
            tensors: lens.iter().enumerate().map(|(i, &n)| (i % 2, n)).collect(),
            steps: 4,
            seed: 7,
            state_format: gpu_optim::StateFormat::F32,
            dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
            clip,
        };
        let r = verify(&ctx, &plan).unwrap();
        assert!(r.passed(), "{clip:?}: {r}");
    }
}

#[test]
fn dispatch_count_follows_the_binding_limit() {
    let ctx = small_ctx();
    let arena = Arena::new(&ctx, &[600_003]).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.prepare().unwrap();
    // 262_144 - 64 (alignment room) = 262_080 elements per window.
    assert_eq!(opt.dispatches_per_step(), 3);
}

/// The caller's own buffers, at offsets that are not multiples of 4 elements and with no
/// room past the tensor: the optimizer falls back to scalar access, updates exactly the
/// tensor's elements and leaves its neighbours in the buffer alone.
#[test]
fn caller_buffers_at_unaligned_offsets() {
    let ctx = common::ctx();
    let mut rng = Rng(11);
    for (p_off, g_off, len) in [
        (3u64, 7u64, 1025usize),
        (4, 9, 1000),
        (1, 1, 5),
        (0, 2, 4099),
    ] {
        // Buffers exactly as long as needed (sizes multiple of 4 bytes, not of 16).
        let total_p = p_off as usize + len + 1;
        let total_g = g_off as usize + len;
        let p_host: Vec<f32> = rng.vec(total_p, 1.0);
        let g_host: Vec<f32> = rng.vec(total_g, 1.0);
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let mk = |n: usize| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (n * 4) as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let (pb, gb) = (mk(total_p), mk(total_g));
        ctx.upload(&BufferRange::whole(&pb, total_p), &p_host)
            .unwrap();
        ctx.upload(&BufferRange::whole(&gb, total_g), &g_host)
            .unwrap();

        let rule = Adam::adamw();
        let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
        let id = opt
            .add_tensor(
                opt.default_group(),
                BufferRange::new(&pb, p_off, len),
                BufferRange::new(&gb, g_off, len),
            )
            .unwrap();
        let mut cpu = CpuOptimizer::new(rule, len).unwrap();
        let mut p_ref = p_host.clone();
        let g = g_host[g_off as usize..].to_vec();
        for _ in 0..3 {
            opt.step().unwrap();
            cpu.step(&mut p_ref[p_off as usize..p_off as usize + len], &g)
                .unwrap();
        }
        let got = ctx.download(&BufferRange::whole(&pb, total_p)).unwrap();
        let e = verify::compare("params", &got, &p_ref).unwrap();
        assert!(
            e.max_scaled <= 21.0 * 3.0,
            "offset {p_off}/{g_off} len {len}: {e:?}"
        );
        // Neighbours untouched, bit for bit.
        assert_eq!(&got[..p_off as usize], &p_host[..p_off as usize]);
        assert_eq!(got[total_p - 1].to_bits(), p_host[total_p - 1].to_bits());
        let m = opt.read_state(id, 0).unwrap();
        let me = verify::compare("exp_avg", &m, &cpu.state[0]).unwrap();
        assert!(me.max_scaled <= 21.0 * 3.0, "{me:?}");
    }
}

/// Params and grads in one buffer (one allocation for both, as some frameworks do).
#[test]
fn params_and_grads_in_one_buffer() {
    let ctx = common::ctx();
    let n = 10_000usize;
    let mut rng = Rng(3);
    let host: Vec<f32> = rng.vec(2 * n, 1.0);
    let buf = ctx.create_buffer("both", &host).unwrap();
    let mut opt = Optimizer::new(
        &ctx,
        Sgd {
            lr: 0.1,
            ..Sgd::default()
        },
    )
    .unwrap();
    opt.add_tensor(
        opt.default_group(),
        BufferRange::new(&buf, 0, n),
        BufferRange::new(&buf, n as u64, n),
    )
    .unwrap();
    opt.step().unwrap();
    let got = ctx.download(&BufferRange::whole(&buf, 2 * n)).unwrap();
    let mut want = host.clone();
    let (p, g) = want.split_at_mut(n);
    for (p, g) in p.iter_mut().zip(g.iter()) {
        *p += -0.1f32 * *g;
    }
    assert_eq!(got, want);
}

/// Another workgroup size changes every tile's length; results must not change.
#[test]
fn other_workgroup_sizes() {
    for wg in [32u32, 64, 512] {
        let ctx = common::ctx_with(&ContextOptions {
            workgroup_size: Some(wg),
            ..Default::default()
        });
        let plan = VerifyPlan {
            groups: vec![Adam::adamw()],
            tensors: vec![(0, 3), (0, 70_001), (0, 4096)],
            steps: 5,
            seed: 4,
            state_format: gpu_optim::StateFormat::F32,
            dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
            clip: Some(GradClip {
                max_norm: Some(1.0),
                value: None,
            }),
        };
        let r = verify(&ctx, &plan).unwrap();
        assert!(r.passed(), "workgroup {wg}: {r}");
    }
    let r = Context::with_options(&ContextOptions {
        workgroup_size: Some(100),
        ..Default::default()
    });
    assert!(matches!(r, Err(Error::InvalidHyperparameter { .. })));
}

/// A workgroup size past the device's limits is refused, naming them, not silently
/// clamped (the bench's `--workgroup 4096` ran at 1024 and said nothing).
#[test]
fn workgroup_size_past_the_device_limit_is_refused_not_clamped() {
    let most = common::ctx().limits().max_compute_invocations_per_workgroup;
    let r = Context::with_options(&ContextOptions {
        workgroup_size: Some((most + 1).next_power_of_two()),
        ..Default::default()
    });
    match r {
        Err(Error::InvalidState(m)) => {
            assert!(m.contains("max_compute_invocations_per_workgroup"), "{m}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a workgroup past the limit was accepted"),
    }
}

fn caller_device(limits: wgpu::Limits) -> (wgpu::Device, wgpu::Queue) {
    let inst = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(inst.request_adapter(&Default::default()))
        .expect("GPU tests need an adapter");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap()
}

/// A training loop's own device and buffers: wrapped, stepped, and checked against the
/// CPU twin; a device with too few storage bindings is refused with a clear error.
#[test]
fn callers_own_device_and_buffers() {
    let (device, queue) = caller_device(wgpu::Limits::default());
    let ctx = Context::from_device(device.clone(), queue, None);
    let n = 10_000;
    let mut rng = Rng(21);
    let (p0, g) = (rng.vec(n, 1.0), rng.vec(n, 1.0));
    let make = |data: &[f32]| {
        let b = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("caller's"),
            size: (data.len() * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        ctx.upload(&BufferRange::whole(&b, data.len()), data)
            .unwrap();
        b
    };
    let (pb, gb) = (make(&p0), make(&g));
    let rule = Adam::default();
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.add_tensor(
        opt.default_group(),
        BufferRange::whole(&pb, n),
        BufferRange::whole(&gb, n),
    )
    .unwrap();
    let mut cpu = CpuOptimizer::new(rule, n).unwrap();
    let mut p = p0.clone();
    for _ in 0..3 {
        opt.step().unwrap();
        cpu.step(&mut p, &g).unwrap();
    }
    let got = ctx.download(&BufferRange::whole(&pb, n)).unwrap();
    let e = verify::compare("params", &got, &p).unwrap();
    assert!(e.max_scaled <= 21.0 * 3.0, "{e:?}");

    let (device, queue) = caller_device(wgpu::Limits::downlevel_defaults());
    let ctx = Context::from_device(device, queue, None);
    let arena = Arena::new(&ctx, &[100]).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    match opt.step() {
        Err(Error::InvalidState(why)) => assert!(why.contains("8 storage buffers"), "{why}"),
        other => panic!("{other:?}"),
    }
}
