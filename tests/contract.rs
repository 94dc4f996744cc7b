//! The API contract under sequences of calls: each fault found by trying the crate as a
//! user (issue "The API contract holds under any sequence of calls") has a test named after
//! it here, which failed before its fix.

mod common;

use gpu_optim::*;

/// The lr the optimizer applies at its next step, measured from the outside: SGD without
/// momentum or decay on p = 0, g = 1 gives p = −lr (the f32 the kernel used), exactly.
fn applied_lr(ctx: &Context, arena: &Arena, opt: &mut Optimizer<Sgd>) -> f32 {
    ctx.upload(&arena.param(0), &[0.0; 4]).unwrap();
    ctx.upload(&arena.grad(0), &[1.0; 4]).unwrap();
    opt.step().unwrap();
    -ctx.download(&arena.param(0)).unwrap()[0]
}

fn sgd(ctx: &Context, lr: f64) -> (Arena, Optimizer<Sgd>) {
    let arena = Arena::new(ctx, &[4]).unwrap();
    let mut opt = Optimizer::new(
        ctx,
        Sgd {
            lr,
            ..Sgd::default()
        },
    )
    .unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    (arena, opt)
}

fn lr_sgd(lr: f64) -> Sgd {
    Sgd {
        lr,
        ..Sgd::default()
    }
}

/// torch 2.x, SGD(lr=0.1) with CosineAnnealingLR(T_max=10), `group['lr'] = 0.05` set by hand
/// after 3 optimizer + scheduler steps: the lr of steps 1-10 (torch's chainable get_lr;
/// tests/torch_options.py prints the same sequence from torch itself).
const COSINE_HAND_SET: [f64; 10] = [
    0.1,
    0.09755282581475769,
    0.09045084971874738,
    0.05,
    0.04122147477075269,
    0.031490404592062496,
    0.021759334413372303,
    0.01298080918412499,
    0.006014132117341056,
    0.0015412501040106333,
];

/// Fault 1: `set_group`'s lr was ignored while a schedule ran (steps 4-6 applied 0.0794 /
/// 0.0655 / 0.0500, the cosine of the old lr) and `group().lr()` reported the old value.
#[test]
fn set_group_lr_takes_effect_under_a_schedule() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.1);
    let g = opt.default_group();
    opt.set_schedule(
        g,
        LrSchedule::Cosine {
            t_max: 10,
            eta_min: 0.0,
        },
    )
    .unwrap();
    for (t, &want) in COSINE_HAND_SET.iter().enumerate() {
        if t == 3 {
            opt.set_group(g, lr_sgd(0.05)).unwrap();
            assert_eq!(opt.group(g).unwrap().lr(), 0.05);
        }
        assert_eq!(opt.lr(g).unwrap(), opt.group(g).unwrap().lr());
        let before = opt.lr(g).unwrap();
        assert_eq!(
            applied_lr(&ctx, &arena, &mut opt),
            want as f32,
            "step {}",
            t + 1
        );
        assert_eq!(before as f32, want as f32, "lr() before step {}", t + 1);
    }
}

/// Fault 1, the same with a `Constant` schedule, before the first step: the new lr applies.
#[test]
fn set_group_lr_takes_effect_under_a_constant_schedule_before_the_first_step() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.1);
    let g = opt.default_group();
    opt.set_schedule(g, LrSchedule::Constant).unwrap();
    opt.set_group(g, lr_sgd(0.05)).unwrap();
    assert_eq!(applied_lr(&ctx, &arena, &mut opt), 0.05);
    assert_eq!(applied_lr(&ctx, &arena, &mut opt), 0.05);
    assert_eq!(opt.lr(g).unwrap(), 0.05);
}

/// Fault 1 after `load`: the restored group takes a new lr as any other.
#[test]
fn set_group_lr_takes_effect_after_load() {
    let ctx = common::ctx();
    let sched = LrSchedule::Step {
        step_size: 2,
        gamma: 0.5,
    };
    let (a1, mut first) = sgd(&ctx, 0.1);
    first
        .set_schedule(first.default_group(), sched.clone())
        .unwrap();
    for _ in 0..3 {
        applied_lr(&ctx, &a1, &mut first);
    }
    let bytes = first.save_bytes(false).unwrap();
    let (a2, mut resumed) = sgd(&ctx, 0.1);
    resumed
        .set_schedule(resumed.default_group(), sched)
        .unwrap();
    resumed.load_bytes(&bytes, LoadMode::Restore).unwrap();
    let g = resumed.default_group();
    assert_eq!(resumed.lr(g).unwrap(), first.lr(g).unwrap());
    resumed.set_group(g, lr_sgd(0.02)).unwrap();
    assert_eq!(applied_lr(&ctx, &a2, &mut resumed), 0.02);
    // Step 5 of StepLR(2, 0.5) halves the lr again: from the hand-set one.
    assert_eq!(applied_lr(&ctx, &a2, &mut resumed), 0.01);
}

/// Fault 1, StepLR: torch's StepLR(step_size=3, gamma=0.5) with lr 0.2 set by hand before
/// step 5 applies 0.1, 0.1, 0.1, 0.05, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05.
#[test]
fn step_schedule_continues_from_a_hand_set_lr() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.1);
    let g = opt.default_group();
    opt.set_schedule(
        g,
        LrSchedule::Step {
            step_size: 3,
            gamma: 0.5,
        },
    )
    .unwrap();
    let want = [0.1, 0.1, 0.1, 0.05, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05];
    for (t, &w) in want.iter().enumerate() {
        if t == 4 {
            opt.set_group(g, lr_sgd(0.2)).unwrap();
        }
        assert_eq!(
            applied_lr(&ctx, &arena, &mut opt),
            w as f32,
            "step {}",
            t + 1
        );
    }
}

/// Fault 1, a second schedule: it starts from the group's current lr, as a torch scheduler
/// created on the same optimizer does (its epoch-0 lr is `group['lr']`); the group's
/// `initial_lr` stays the first one. Cosine(T=10) for 5 steps leaves lr 0.05 for step 6.
#[test]
fn a_second_schedule_starts_from_the_current_lr() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.1);
    let g = opt.default_group();
    let cosine = LrSchedule::Cosine {
        t_max: 10,
        eta_min: 0.0,
    };
    opt.set_schedule(g, cosine.clone()).unwrap();
    for _ in 0..5 {
        applied_lr(&ctx, &arena, &mut opt);
    }
    assert_eq!(opt.schedule(g).unwrap(), Some((&cosine, 5)));
    opt.set_schedule(g, LrSchedule::Constant).unwrap();
    assert_eq!(opt.schedule(g).unwrap(), Some((&LrSchedule::Constant, 0)));
    let lr = (0.1 * (1.0 + (std::f64::consts::PI * 5.0 / 10.0).cos()) / 2.0) as f32;
    assert_eq!(applied_lr(&ctx, &arena, &mut opt), lr);
    assert_eq!(applied_lr(&ctx, &arena, &mut opt), lr);
    // Clearing keeps the lr; a cleared group's lr is then its own.
    assert_eq!(opt.clear_schedule(g).unwrap(), Some(LrSchedule::Constant));
    assert_eq!(opt.schedule(g).unwrap(), None);
    assert_eq!(applied_lr(&ctx, &arena, &mut opt), lr);
}

/// AdamW with a warm-up/cosine schedule, params and every state slot.
fn adamw_run(ctx: &Context) -> (Arena, Optimizer<Adam>) {
    let lens = [300, 5, 1024];
    let arena = Arena::new(ctx, &lens).unwrap();
    let mut rng = gpu_optim::verify::Rng(7);
    for (i, &n) in lens.iter().enumerate() {
        ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
        ctx.upload(&arena.grad(i), &rng.vec(n, 1.0)).unwrap();
    }
    let mut opt = Optimizer::new(ctx, Adam::adamw()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.set_schedule(
        opt.default_group(),
        LrSchedule::WarmupCosine {
            warmup: 3,
            t_max: 15,
            eta_min: 1e-5,
        },
    )
    .unwrap();
    (arena, opt)
}

/// Fault 2: more `record_step`s into one encoder than `steps_per_submission` reused the
/// scalar slots of steps not yet run (AdamW + warm-up/cosine, 17 steps per encoder: every
/// param differed). Now each step carries its own scalars: 20 steps in one encoder with a
/// ring of 4 equal 20 separate steps, bit for bit.
#[test]
fn more_record_steps_than_steps_per_submission_in_one_encoder() {
    let ctx = common::ctx();
    let (a1, mut separate) = adamw_run(&ctx);
    let (a2, mut recorded) = adamw_run(&ctx);
    recorded.set_steps_per_submission(4).unwrap();
    for _ in 0..20 {
        separate.step().unwrap();
    }
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    for _ in 0..20 {
        recorded.record_step(&mut enc).unwrap();
    }
    ctx.queue().submit([enc.finish()]);
    assert_eq!(recorded.step_count(), 20);
    assert_eq!(
        common::snapshot(&ctx, &a1, &mut separate),
        common::snapshot(&ctx, &a2, &mut recorded)
    );
    // The ring grows to what 20 steps in flight need; then the steady state allocates
    // nothing more.
    let mut buffers = 0;
    for k in 0..4 {
        if k == 1 {
            buffers = ctx.creation_counts()["buffer"];
        }
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        for _ in 0..20 {
            recorded.record_step(&mut enc).unwrap();
        }
        ctx.queue().submit([enc.finish()]);
        ctx.wait().unwrap();
    }
    assert_eq!(ctx.creation_counts()["buffer"], buffers);
}

/// Fault 2, settings: clipping and scaler settings changed between two `record_step`s into
/// one encoder reached the steps already recorded. Each step now has its own.
#[test]
fn clip_and_scaler_settings_changed_between_record_steps_apply_per_step() {
    let ctx = common::ctx();
    let build = || {
        let arena = Arena::new(&ctx, &[64]).unwrap();
        let g: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 0.25).collect();
        ctx.upload(&arena.param(0), &[1.0; 64]).unwrap();
        ctx.upload(&arena.grad(0), &g).unwrap();
        let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        opt.set_grad_clip(GradClip {
            max_norm: Some(1.0),
            value: Some(0.5),
        })
        .unwrap();
        opt.set_grad_scaler(GradScaler {
            init_scale: 1.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 1,
        })
        .unwrap();
        (arena, opt)
    };
    let second_clip = GradClip {
        max_norm: Some(3.0),
        value: Some(2.0),
    };
    let second_scaler = GradScaler {
        init_scale: 1.0,
        growth_factor: 4.0,
        backoff_factor: 0.5,
        growth_interval: 1,
    };
    let (a1, mut separate) = build();
    separate.step().unwrap();
    separate.set_grad_clip(second_clip).unwrap();
    separate.set_grad_scaler(second_scaler).unwrap();
    separate.step().unwrap();
    let (a2, mut recorded) = build();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    recorded.record_step(&mut enc).unwrap();
    recorded.set_grad_clip(second_clip).unwrap();
    recorded.set_grad_scaler(second_scaler).unwrap();
    recorded.record_step(&mut enc).unwrap();
    ctx.queue().submit([enc.finish()]);
    assert_eq!(
        common::snapshot(&ctx, &a1, &mut separate),
        common::snapshot(&ctx, &a2, &mut recorded)
    );
    // ×2 after the first step, ×4 after the second.
    assert_eq!(recorded.loss_scale().unwrap(), 8.0);
    assert_eq!(separate.loss_scale().unwrap(), 8.0);
}

/// A dropped, never-submitted encoder: the step count says the step was recorded, nothing
/// ran, and the optimizer steps on (its scalar slot is free again).
#[test]
fn a_dropped_encoder_leaves_the_count_advanced_and_nothing_run() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.1);
    ctx.upload(&arena.param(0), &[1.0; 4]).unwrap();
    ctx.upload(&arena.grad(0), &[1.0; 4]).unwrap();
    opt.prepare().unwrap();
    let snapshot = opt.save_bytes(true).unwrap();
    for _ in 0..40 {
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        opt.record_step(&mut enc).unwrap();
        drop(enc);
    }
    assert_eq!(opt.step_count(), 40);
    assert_eq!(ctx.download(&arena.param(0)).unwrap(), vec![1.0; 4]);
    // The documented recovery: load what was saved before recording.
    opt.load_bytes(&snapshot, LoadMode::Restore).unwrap();
    assert_eq!(opt.step_count(), 0);
    opt.step().unwrap();
    assert_eq!(ctx.download(&arena.param(0)).unwrap(), vec![0.9; 4]);
}

/// Fault 3: a buffer of another device (same wgpu instance) is refused at `add_tensor`
/// with a typed error, instead of being bound at the first step.
#[test]
fn buffer_of_another_device_refused_at_add_tensor() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let device = || {
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .unwrap()
    };
    let (d1, q1) = device();
    let (d2, _q2) = device();
    let ctx = Context::from_device(d1, q1, None);
    let ours = ctx.create_zeroed("ours", 8).unwrap();
    let theirs = d2.create_buffer(&wgpu::BufferDescriptor {
        label: Some("another device's"),
        size: 32,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let g = opt.default_group();
    let r = opt.add_tensor(
        g,
        BufferRange::new(&theirs, 0, 4),
        BufferRange::new(&ours, 0, 4),
    );
    assert!(matches!(r, Err(Error::WrongDevice { .. })), "{r:?}");
    let r = opt.add_tensor(
        g,
        BufferRange::new(&ours, 0, 4),
        BufferRange::new(&theirs, 0, 4),
    );
    assert!(matches!(r, Err(Error::WrongDevice { .. })), "{r:?}");
    assert_eq!(opt.num_tensors(), 0);
    opt.add_tensor(
        g,
        BufferRange::new(&ours, 0, 4),
        BufferRange::new(&ours, 4, 4),
    )
    .unwrap();
    opt.step().unwrap();
}

/// Fault 7: a 16-bit tensor off the vector alignment was accepted, and every step failed
/// from the first on, with no way to repair the optimizer. Now `add_tensor_as` refuses it.
#[test]
fn unaligned_16bit_tensor_refused_at_add_tensor_as() {
    let ctx = common::ctx();
    let p = ctx.create_zeroed("p", 32).unwrap();
    let g = ctx.create_zeroed("g", 32).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let grp = opt.default_group();
    let r = opt.add_tensor_as(
        grp,
        BufferRange::new(&p, 2, 8),
        Dtype::Bf16,
        BufferRange::new(&g, 0, 8),
        Dtype::F32,
    );
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    assert_eq!(opt.num_tensors(), 0);
    opt.add_tensor_as(
        grp,
        BufferRange::new(&p, 4, 8),
        Dtype::Bf16,
        BufferRange::new(&g, 0, 8),
        Dtype::F32,
    )
    .unwrap();
    opt.step().unwrap();
    opt.step().unwrap();
    assert_eq!(opt.step_count(), 2);
}

/// Fault 7, 8-bit state: `set_state_format` is refused while a tensor it would quantize
/// is off the alignment (and a later such tensor is refused at `add_tensor`).
#[test]
fn set_state_format_refused_for_an_unaligned_tensor() {
    let ctx = common::ctx();
    let p = ctx.create_zeroed("p", 300).unwrap();
    let g = ctx.create_zeroed("g", 300).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let grp = opt.default_group();
    opt.add_tensor(
        grp,
        BufferRange::new(&p, 1, 256),
        BufferRange::new(&g, 1, 256),
    )
    .unwrap();
    let q8 = StateFormat::Blockwise8 {
        min_len: 0,
        stochastic: None,
    };
    let r = opt.set_state_format(q8);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    assert_eq!(opt.state_format(), StateFormat::F32);
    opt.step().unwrap();

    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.set_state_format(q8).unwrap();
    let r = opt.add_tensor(
        grp,
        BufferRange::new(&p, 1, 256),
        BufferRange::new(&g, 1, 256),
    );
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    opt.add_tensor(
        grp,
        BufferRange::new(&p, 0, 256),
        BufferRange::new(&g, 0, 256),
    )
    .unwrap();
    opt.step().unwrap();
}

/// Fault 9: `set_steps_per_submission(0)` was accepted.
#[test]
fn steps_per_submission_zero_refused() {
    let ctx = common::ctx();
    let (_a, mut opt) = sgd(&ctx, 0.1);
    assert!(matches!(
        opt.set_steps_per_submission(0),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(opt.steps_per_submission(), 16);
    opt.step_many(3).unwrap();
    assert_eq!(opt.step_count(), 3);
}

/// Fault 9: `cpu_step` did not validate hyperparameters.
#[test]
fn cpu_step_validates_hyperparameters() {
    let mut p = vec![1.0f32; 4];
    let r = cpu_step(&lr_sgd(-1.0), 1, &mut p, &[1.0; 4], &mut []);
    assert!(
        matches!(r, Err(Error::InvalidHyperparameter { .. })),
        "{r:?}"
    );
    assert_eq!(p, vec![1.0; 4]);
}

/// Fault 9: `group(GroupId(9))` panicked.
#[test]
fn unknown_group_is_an_error() {
    let ctx = common::ctx();
    let (_a, opt) = sgd(&ctx, 0.1);
    assert!(matches!(opt.group(GroupId(9)), Err(Error::InvalidState(_))));
    assert!(matches!(opt.lr(GroupId(9)), Err(Error::InvalidState(_))));
    assert!(matches!(
        opt.schedule(GroupId(9)),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(opt.num_groups(), 1);
}

/// Fault 9: lr = inf was refused with the message "(lr >= 0)".
#[test]
fn infinite_lr_is_refused_as_not_finite() {
    let e = lr_sgd(f64::INFINITY).validate().unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
    let e = lr_sgd(-1.0).validate().unwrap_err();
    assert!(e.to_string().contains("lr >= 0"), "{e}");
}

/// `zero_grad` clears every registered gradient and nothing beside them.
#[test]
fn zero_grad_clears_registered_ranges_only() {
    let ctx = common::ctx();
    let g = ctx.create_buffer("g", &[7.0; 24]).unwrap();
    let p = ctx.create_zeroed("p", 24).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let grp = opt.default_group();
    opt.add_tensor(grp, BufferRange::new(&p, 0, 5), BufferRange::new(&g, 1, 5))
        .unwrap();
    opt.add_tensor(grp, BufferRange::new(&p, 8, 3), BufferRange::new(&g, 10, 3))
        .unwrap();
    opt.zero_grad().unwrap();
    let got = ctx.download(&BufferRange::whole(&g, 24)).unwrap();
    let mut want = vec![7.0; 24];
    for i in (1..6).chain(10..13) {
        want[i] = 0.0;
    }
    assert_eq!(got, want);
}

/// Found by the state-machine test: a group of another rule family with the same state
/// slots (NAdam into an Adam optimizer) was accepted, and stepped with Adam's kernel on
/// NAdam's scalars. Refused now, in `add_group`, `set_group` and a checkpoint's groups.
#[test]
fn a_group_of_another_rule_family_is_refused() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[8]).unwrap();
    let mut opt = Optimizer::new(&ctx, AnyRule::Adam(Adam::default())).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    let nadam = AnyRule::NAdam(NAdam::default());
    assert_eq!(
        nadam.state_slots(),
        AnyRule::Adam(Adam::default()).state_slots()
    );
    let r = opt.add_group(nadam.clone());
    assert!(matches!(r, Err(Error::IncompatibleGroup { .. })), "{r:?}");
    let r = opt.set_group(opt.default_group(), nadam);
    assert!(matches!(r, Err(Error::IncompatibleGroup { .. })), "{r:?}");
    // AdamW is Adam's kernel: accepted.
    opt.add_group(AnyRule::Adam(Adam::adamw())).unwrap();
    opt.step().unwrap();
}

/// Found by the state-machine test: a second `set_grad_scaler` once loss scaling ran took
/// the new factors but silently dropped a new `init_scale`. Refused now; before the first
/// step the whole setting is replaced.
#[test]
fn a_new_init_scale_once_loss_scaling_runs_is_refused() {
    let ctx = common::ctx();
    let (_arena, mut opt) = sgd(&ctx, 0.1);
    let s = |init_scale| GradScaler {
        init_scale,
        ..GradScaler::default()
    };
    opt.set_grad_scaler(s(8.0)).unwrap();
    opt.set_grad_scaler(s(4.0)).unwrap();
    opt.step().unwrap();
    assert_eq!(opt.loss_scale().unwrap(), 4.0);
    let r = opt.set_grad_scaler(s(2.0));
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    opt.set_grad_scaler(GradScaler {
        growth_interval: 7,
        ..s(4.0)
    })
    .unwrap();
    assert_eq!(opt.loss_scale().unwrap(), 4.0);
}

/// torch's `add_param_group`: groups and tensors added after steps join the next step,
/// every earlier tensor keeps its state (f32, 8-bit codes, the f32 master of bf16
/// params) and the loss scaler its scale and counts; the CPU model agrees bit for bit.
#[test]
fn groups_and_tensors_added_after_steps_keep_all_state() {
    let ctx = common::ctx();
    let lens = [300usize, 5000];
    let arena = Arena::with_dtypes(&ctx, &lens, Dtype::Bf16, Dtype::Bf16).unwrap();
    let late = Arena::new(&ctx, &[77]).unwrap();
    let mut rng = gpu_optim::verify::Rng(3);
    let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
    let mut model = CpuModel::with_limits(Adam::adamw(), ctx.limits()).unwrap();
    let q8 = StateFormat::Blockwise8 {
        min_len: 4096,
        stochastic: None,
    };
    opt.set_state_format(q8).unwrap();
    model.set_state_format(q8).unwrap();
    let scaler = GradScaler {
        init_scale: 4.0,
        growth_interval: 2,
        ..GradScaler::default()
    };
    opt.set_grad_scaler(scaler).unwrap();
    model.set_grad_scaler(scaler).unwrap();
    let d = (Dtype::Bf16, Dtype::Bf16);
    for (i, &n) in lens.iter().enumerate() {
        let p = rng.vec(n, 1.0);
        ctx.upload_as(&arena.param(i), Dtype::Bf16, &p).unwrap();
        opt.add_tensor_as(opt.default_group(), arena.param(i), d.0, arena.grad(i), d.1)
            .unwrap();
        model
            .add_tensor(model.default_group(), arena.param(i).offset, &p, d)
            .unwrap();
    }
    let mut step = |opt: &mut Optimizer<Adam>, model: &mut CpuModel<Adam>, n: usize| {
        let g: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let len = if i < 2 { lens[i] } else { 77 };
                Dtype::Bf16.round(&rng.vec(len, 1.0))
            })
            .collect();
        for (i, g) in g.iter().enumerate() {
            match i {
                0 | 1 => ctx.upload_as(&arena.grad(i), Dtype::Bf16, g).unwrap(),
                _ => ctx.upload(&late.grad(0), g).unwrap(),
            }
        }
        opt.step().unwrap();
        model.step(&g).unwrap();
    };
    for _ in 0..3 {
        step(&mut opt, &mut model, 2);
    }
    let g2 = Adam {
        lr: 3e-3,
        ..Adam::adamw()
    };
    let og = opt.add_group(g2.clone()).unwrap();
    let mg = model.add_group(g2).unwrap();
    let p = gpu_optim::verify::Rng(4).vec(77, 1.0);
    ctx.upload(&late.param(0), &p).unwrap();
    opt.add_tensor(og, late.param(0), late.grad(0)).unwrap();
    model
        .add_tensor(mg, 0, &p, (Dtype::F32, Dtype::F32))
        .unwrap();
    for _ in 0..3 {
        step(&mut opt, &mut model, 3);
    }
    assert_eq!(opt.step_count(), 6);
    assert_eq!(opt.loss_scale().unwrap(), model.loss_scale().unwrap());
    assert_eq!(opt.applied_steps().unwrap(), model.applied_steps());
    for i in 0..3 {
        let id = TensorId(i);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&opt.read_params(id).unwrap()),
            bits(model.params(id).unwrap())
        );
        for k in 0..2 {
            assert_eq!(
                bits(&opt.read_state(id, k).unwrap()),
                bits(model.state(id, k).unwrap()),
                "tensor {i} slot {k}"
            );
        }
    }
    assert!(opt.is_quantized(TensorId(1)) && !opt.is_quantized(TensorId(2)));
}

/// An SGD optimizer restored from a checkpoint of `sgd(.., 0.1)` whose step count is
/// rewritten to `step` (checksums cover tensors, not metadata).
fn resumed_at(ctx: &Context, step: u64) -> (Arena, Optimizer<Sgd>) {
    use safetensors::tensor::SafeTensors;
    let (_arena, mut opt) = sgd(ctx, 0.1);
    opt.step().unwrap();
    let bytes = opt.save_bytes(false).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    meta.insert("step".into(), step.to_string());
    let views: Vec<_> = st.tensors();
    let edited = safetensors::serialize(views, Some(meta)).unwrap();
    let (a2, mut resumed) = sgd(ctx, 0.1);
    resumed.load_bytes(&edited, LoadMode::Restore).unwrap();
    assert_eq!(resumed.step_count(), step);
    (a2, resumed)
}

/// Found by the checkpoint fixture work: a checkpoint whose step count is u64::MAX loaded,
/// and the next step overflowed the count (a panic in debug builds). Refused now.
#[test]
fn a_step_past_the_largest_count_is_refused() {
    let ctx = common::ctx();
    let (_arena, mut resumed) = resumed_at(&ctx, u64::MAX);
    let r = resumed.step();
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    assert_eq!(resumed.step_count(), u64::MAX);
}

/// Found in review of writing ahead: the step to u64::MAX predicted the scalars of the
/// steps after it, past u64::MAX (a panic in debug builds). The last step runs; the one
/// after is refused.
#[test]
fn the_last_step_count_writes_nothing_ahead_past_it() {
    let ctx = common::ctx();
    let (_arena, mut resumed) = resumed_at(&ctx, u64::MAX - 1);
    resumed.step().unwrap();
    assert_eq!(resumed.step_count(), u64::MAX);
    assert!(matches!(resumed.step(), Err(Error::InvalidState(_))));
}

/// `set_dispatch_per_tensor` changes what runs (one dispatch per tensor) but not the
/// numbers: bit for bit the batched result.
#[test]
fn dispatch_per_tensor_equals_batched() {
    let ctx = common::ctx();
    let lens = [100, 7, 64];
    let run = |per_tensor: bool| {
        let arena = Arena::new(&ctx, &lens).unwrap();
        let mut rng = gpu_optim::verify::Rng(5);
        for (i, &n) in lens.iter().enumerate() {
            ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
            ctx.upload(&arena.grad(i), &rng.vec(n, 1.0)).unwrap();
        }
        let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
        opt.set_dispatch_per_tensor(per_tensor).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        opt.step_many(3).unwrap();
        let d = opt.dispatches_per_step();
        (d, common::snapshot(&ctx, &arena, &mut opt))
    };
    let (d1, batched) = run(false);
    let (d3, separate) = run(true);
    assert_eq!((d1, d3), (1, 3));
    assert_eq!(batched, separate);
}

/// `GradScaler::skip_only()`: a step with a non-finite gradient changes nothing and the
/// scale stays 1; a clean step is applied with the gradients as they are (not unscaled).
#[test]
fn skip_only_skips_without_scaling() {
    let ctx = common::ctx();
    let (arena, mut opt) = sgd(&ctx, 0.5);
    opt.set_grad_scaler(GradScaler::skip_only()).unwrap();
    ctx.upload(&arena.param(0), &[1.0; 4]).unwrap();
    ctx.upload(&arena.grad(0), &[1.0, f32::NAN, 1.0, 1.0])
        .unwrap();
    opt.step().unwrap();
    assert_eq!(ctx.download(&arena.param(0)).unwrap(), vec![1.0; 4]);
    assert_eq!(
        (opt.skipped_steps().unwrap(), opt.loss_scale().unwrap()),
        (1, 1.0)
    );
    ctx.upload(&arena.grad(0), &[1.0, 2.0, -2.0, 0.0]).unwrap();
    opt.step().unwrap();
    assert_eq!(
        ctx.download(&arena.param(0)).unwrap(),
        vec![0.5, 0.0, 2.0, 1.0]
    );
    assert_eq!(
        (opt.applied_steps().unwrap(), opt.loss_scale().unwrap()),
        (1, 1.0)
    );
}

/// Zero-length tensors register, step (nothing to do), checkpoint and read back empty,
/// beside a real one that steps as usual.
#[test]
fn zero_length_tensors_are_fine() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[0, 5, 0]).unwrap();
    ctx.upload(&arena.param(1), &[1.0; 5]).unwrap();
    ctx.upload(&arena.grad(1), &[1.0; 5]).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.set_grad_clip(GradClip {
        max_norm: Some(10.0),
        value: None,
    })
    .unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    assert_eq!(opt.read_params(TensorId(0)).unwrap(), Vec::<f32>::new());
    assert_eq!(opt.read_state(TensorId(2), 1).unwrap(), Vec::<f32>::new());
    let p = opt.read_params(TensorId(1)).unwrap();
    assert!(p.iter().all(|&x| x < 1.0), "{p:?}");
    let bytes = opt.save_bytes(true).unwrap();
    opt.load_bytes(&bytes, LoadMode::Strict).unwrap();
    opt.zero_grad().unwrap();
    assert_eq!(ctx.download(&arena.grad(1)).unwrap(), vec![0.0; 5]);
}

/// `list_adapters` names the adapter a context got; the getters say what was registered.
#[test]
fn list_adapters_and_getters() {
    let ctx = common::ctx();
    let names: Vec<String> = list_adapters(None).into_iter().map(|a| a.name).collect();
    assert!(
        names.contains(&ctx.adapter_info().name),
        "{names:?} lacks {}",
        ctx.adapter_info().name
    );
    let arena = Arena::with_dtypes(&ctx, &[8, 4096], Dtype::Bf16, Dtype::F32).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let q8 = StateFormat::blockwise8();
    opt.set_state_format(q8).unwrap();
    opt.set_steps_per_submission(3).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    assert_eq!(opt.state_format(), q8);
    assert_eq!(opt.steps_per_submission(), 3);
    assert_eq!(opt.dtypes(TensorId(0)), Some((Dtype::Bf16, Dtype::F32)));
    assert_eq!(opt.dtypes(TensorId(9)), None);
    assert!(opt.has_master(TensorId(0)) && !opt.has_master(TensorId(9)));
    assert!(!opt.is_quantized(TensorId(0)) && opt.is_quantized(TensorId(1)));
    assert_eq!((opt.state_bytes(), opt.dispatches_per_step()), (0, 0));
    assert!(!opt.is_prepared());
    opt.prepare().unwrap();
    assert!(opt.is_prepared());
    // f32 state for the small tensor (2 slots of 8), one code byte per element per slot
    // and one f32 absmax per block of 256 per slot for the large one.
    assert_eq!(opt.state_bytes(), 2 * 8 * 4 + 2 * 4096 + 2 * 16 * 4);
    assert_eq!(opt.dispatches_per_step(), 2);
}

/// Found by a newcomer's trial: an Arena of bf16 ranges used with the f32 calls wrote twice
/// the bytes (into the neighbouring tensor) and registered an f32 tensor over them. Ranges
/// from an Arena know their element type; using one as another type is refused.
#[test]
fn an_arena_range_used_as_another_type_is_refused() {
    let ctx = common::ctx();
    let a = Arena::with_dtypes(&ctx, &[256, 256], Dtype::Bf16, Dtype::Bf16).unwrap();
    assert_eq!(a.param(0).dtype(), Some(Dtype::Bf16));
    let r = ctx.upload(&a.param(0), &[1.0; 256]);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let r = ctx.download(&a.param(1));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    assert_eq!(
        ctx.download_as(&a.param(1), Dtype::Bf16).unwrap(),
        vec![0.0; 256]
    );
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let r = opt.add_tensor(opt.default_group(), a.param(0), a.grad(0));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    assert_eq!(opt.num_tensors(), 0);
    opt.add_arena(&a, opt.default_group()).unwrap();
    opt.step().unwrap();
}

/// Found by a newcomer's trial: `set_steps_per_submission(u32::MAX)` was accepted and the
/// first step aborted the process allocating the ring. Bounded now (1..=1024).
#[test]
fn steps_per_submission_is_bounded() {
    let ctx = common::ctx();
    let (_a, mut opt) = sgd(&ctx, 0.1);
    for k in [0, 1025, u32::MAX] {
        let r = opt.set_steps_per_submission(k);
        assert!(matches!(r, Err(Error::InvalidState(_))), "{k}: {r:?}");
    }
    opt.set_steps_per_submission(1024).unwrap();
    opt.step_many(3).unwrap();
    assert_eq!(opt.step_count(), 3);
}

/// A resumed run keeps the loss scaler's growth tracker: saved after 2 clean steps of a
/// growth interval of 3, the next clean step after loading grows the scale (a loader that
/// dropped the tracker would wait 3 more steps).
#[test]
fn resume_keeps_the_scalers_growth_tracker() {
    let ctx = common::ctx();
    let scaler = GradScaler {
        init_scale: 8.0,
        growth_factor: 2.0,
        backoff_factor: 0.5,
        growth_interval: 3,
    };
    let build = || {
        let (arena, mut opt) = sgd(&ctx, 0.1);
        opt.set_grad_scaler(scaler).unwrap();
        ctx.upload(&arena.grad(0), &[8.0; 4]).unwrap();
        (arena, opt)
    };
    let (_a1, mut first) = build();
    first.step_many(2).unwrap();
    assert_eq!(first.loss_scale().unwrap(), 8.0);
    let bytes = first.save_bytes(false).unwrap();
    let (_a2, mut resumed) = build();
    resumed.load_bytes(&bytes, LoadMode::Restore).unwrap();
    resumed.step().unwrap();
    assert_eq!(resumed.loss_scale().unwrap(), 16.0);
}

/// Runs (plan/layout.rs): an arena's tensors of one group are stepped as one dense piece,
/// their padding with them. Each tensor still equals the CPU twin bit for bit, tensors
/// ending inside a vec4 (300, 5, 1023, 7) included, and zero padding stays zero.
#[test]
fn arena_tensors_run_as_one_piece_and_equal_the_twin() {
    let ctx = common::ctx();
    let lens = [300, 5, 1023, 64, 7];
    let arena = Arena::new(&ctx, &lens).unwrap();
    let (params, grads) = common::upload_random(&ctx, &arena, &mut gpu_optim::verify::Rng(11));
    let rule = Adam::adamw();
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step_many(5).unwrap();
    let variants = opt.kernel_variants();
    assert_eq!(variants.len(), 1);
    assert!(variants[0].dense, "{}", variants[0].name());
    common::assert_twin(&ctx, &arena, &rule, 5, params, &grads);
    let all = ctx.download(&BufferRange::new(
        &arena.params,
        0,
        arena.params.size() as usize / 4,
    ));
    let all = all.unwrap();
    for (i, x) in all.iter().enumerate() {
        let owned = (0..lens.len()).any(|t| {
            let r = arena.param(t);
            (r.offset as usize..r.offset as usize + r.len).contains(&i)
        });
        assert!(owned || *x == 0.0, "padding element {i}: {x}");
    }
}

/// An arena's padding is registered with its tensors: a tensor placed in it is refused
/// (a run would update it twice).
#[test]
fn a_tensor_in_an_arenas_padding_is_refused() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[5, 10]).unwrap();
    let other = Arena::new(&ctx, &[4]).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    let in_padding = BufferRange::new(&arena.params, 8, 4);
    let e = opt.add_tensor(opt.default_group(), in_padding, other.grad(0));
    assert!(matches!(e, Err(Error::BadRange { .. })), "{e:?}");
    assert_eq!(opt.num_tensors(), 2);
}

/// Fault (found by a newcomer's try of the arena runs): `add_arena` registered the arena's
/// first tensors, then refused one that overlapped a registered range, leaving them
/// registered under ids it never returned. Now every tensor is checked first: nothing is
/// registered, and the error names the arena's tensor.
#[test]
fn add_arena_is_all_or_nothing() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[10, 20, 30]).unwrap(); // tensor 2 at 128, padding to 192
    let own = Arena::new(&ctx, &[2]).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let g = opt.default_group();
    let in_padding = BufferRange::new(&arena.params, 159, 2);
    opt.add_tensor(g, in_padding, own.grad(0)).unwrap();
    let e = opt.add_arena(&arena, g).unwrap_err();
    assert!(
        matches!(&e, Error::BadRange { what, .. } if what.starts_with("arena tensor 2")),
        "{e}"
    );
    assert_eq!(opt.num_tensors(), 1);
    // A missing group is refused for an empty arena too.
    let empty = Arena::new(&ctx, &[]).unwrap();
    let e = opt.add_arena(&empty, GroupId(5));
    assert!(matches!(e, Err(Error::InvalidState(_))), "{e:?}");
    // The arena registers whole once the range in its padding is elsewhere.
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let ids = opt.add_arena(&arena, opt.default_group()).unwrap();
    assert_eq!(ids, [TensorId(0), TensorId(1), TensorId(2)]);
}

/// Fault (same try): `step_many(0)` prepared the optimizer, so settings fixed at the first
/// step (clipping, the state format) were refused afterwards; its doc says k = 0 does
/// nothing, as `record_steps(enc, 0)` does.
#[test]
fn step_many_zero_does_not_prepare() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[10]).unwrap();
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step_many(0).unwrap();
    assert!(!opt.is_prepared());
    let clip = GradClip {
        max_norm: Some(1.0),
        value: None,
    };
    opt.set_grad_clip(clip).unwrap();
    assert_eq!(opt.step_count(), 0);
}
