//! The scheduler: batching, many steps per submission, schedules, no per-step allocation.

mod common;

use gpu_optim::verify::Rng;
use gpu_optim::workloads::gpt2_small_lens;
use gpu_optim::*;

fn setup<R: UpdateRule>(
    ctx: &Context,
    rule: R,
    lens: &[usize],
    seed: u64,
) -> (Arena, Optimizer<R>) {
    let arena = Arena::new(ctx, lens).unwrap();
    let mut rng = Rng(seed);
    for (i, &n) in lens.iter().enumerate() {
        ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
        ctx.upload(&arena.grad(i), &rng.vec(n, 1.0)).unwrap();
    }
    let mut opt = Optimizer::new(ctx, rule).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    (arena, opt)
}

fn params(ctx: &Context, arena: &Arena) -> Vec<f32> {
    (0..arena.len())
        .flat_map(|i| ctx.download(&arena.param(i)).unwrap())
        .collect()
}

#[test]
fn k_steps_per_submission_equal_k_separate_steps() {
    let ctx = common::ctx();
    let lens = [1000, 33, 4096];
    let (a1, mut o1) = setup(&ctx, Adam::default(), &lens, 1);
    let (a2, mut o2) = setup(&ctx, Adam::default(), &lens, 1);
    o2.set_steps_per_submission(4).unwrap();
    for _ in 0..10 {
        o1.step().unwrap();
    }
    o2.step_many(10).unwrap(); // three submissions: 4 + 4 + 2
    assert_eq!(o1.step_count(), 10);
    assert_eq!(o2.step_count(), 10);
    assert_eq!(params(&ctx, &a1), params(&ctx, &a2));
}

#[test]
fn record_into_callers_encoder_equals_step() {
    let ctx = common::ctx();
    let lens = [5000];
    let (a1, mut o1) = setup(
        &ctx,
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
        &lens,
        2,
    );
    let (a2, mut o2) = setup(
        &ctx,
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
        &lens,
        2,
    );
    o1.step_many(3).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    for _ in 0..3 {
        o2.record_step(&mut enc).unwrap();
    }
    ctx.queue().submit([enc.finish()]);
    assert_eq!(params(&ctx, &a1), params(&ctx, &a2));
}

#[test]
fn schedule_sets_lr_per_step_as_the_host_says() {
    let ctx = common::ctx();
    let n = 2048;
    let sched = LrSchedule::WarmupCosine {
        warmup: 3,
        t_max: 10,
        eta_min: 1e-4,
    };
    let base = Sgd {
        lr: 0.1,
        ..Sgd::default()
    };
    let (arena, mut opt) = setup(&ctx, base.clone(), &[n], 3);
    opt.set_schedule(opt.default_group(), sched.clone())
        .unwrap();
    let mut p = ctx.download(&arena.param(0)).unwrap();
    let g = ctx.download(&arena.grad(0)).unwrap();
    let mut cpu = CpuOptimizer::new(base, n).unwrap();
    for t in 1..=12u64 {
        cpu.rule.lr = sched.lr(0.1, t);
        cpu.step(&mut p, &g).unwrap();
    }
    opt.step_many(12).unwrap();
    assert_eq!(ctx.download(&arena.param(0)).unwrap(), p);
    // The host schedule itself: warm-up ramps, then cosine down to eta_min.
    assert!((sched.lr(0.1, 1) - 0.1 / 3.0).abs() < 1e-15);
    assert!((sched.lr(0.1, 3) - 0.1).abs() < 1e-15);
    assert!((sched.lr(0.1, 4) - 0.1).abs() < 1e-15);
    assert!(
        (sched.lr(0.1, 10)
            - (1e-4 + (0.1 - 1e-4) * (1.0 + (std::f64::consts::PI * 6.0 / 7.0).cos()) / 2.0))
            .abs()
            < 1e-15
    );
    assert_eq!(sched.lr(0.1, 11), 1e-4);
}

#[test]
fn no_allocation_after_warm_up() {
    let ctx = common::ctx();
    let (_arena, mut opt) = setup(&ctx, Adam::default(), &[100, 5000, 7], 4);
    opt.step().unwrap();
    let before = ctx.creation_counts();
    assert!(before.get("bind_group").copied().unwrap_or(0) > 0);
    opt.step_many(20).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    opt.record_step(&mut enc).unwrap();
    ctx.queue().submit([enc.finish()]);
    assert_eq!(ctx.creation_counts(), before);
}

#[test]
fn a_whole_model_is_one_dispatch() {
    let ctx = common::ctx();
    // GPT-2 small's 148 tensors scaled down 64x (shapes' element counts / 64, at least 1),
    // so the test stays small but keeps the many-small-few-large mix.
    let lens: Vec<usize> = gpt2_small_lens().iter().map(|n| (n / 64).max(1)).collect();
    assert_eq!(lens.len(), 148);
    let arena = Arena::new(&ctx, &lens).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
    let no_decay = opt
        .add_group(Adam {
            weight_decay: 0.0,
            ..Adam::adamw()
        })
        .unwrap();
    for i in 0..arena.len() {
        let g = if gpu_optim::workloads::GPT2_SMALL[i].1.len() == 2 {
            opt.default_group()
        } else {
            no_decay
        };
        opt.add_tensor(g, arena.param(i), arena.grad(i)).unwrap();
    }
    opt.prepare().unwrap();
    assert_eq!(opt.dispatches_per_step(), 1);
}

/// The scheduler redesign changed no plan: for GPT-2 small's 148 tensors (AdamW, two
/// groups), the dispatches per step and the buffers, bind groups and pipelines created by
/// planning and four steps are those of 4951a76, the main before it (measured there with
/// this same program): one dispatch per 128 MiB window, or one per tensor piece.
#[test]
fn gpt2_set_plans_as_before_the_redesign() {
    let ctx = common::ctx();
    let lens = gpu_optim::workloads::gpt2_small_lens();
    let cases = [
        ("batched", false, false, Dtype::F32, 4, [4, 10, 2]),
        ("per tensor", true, false, Dtype::F32, 149, [149, 10, 0]),
        ("clip + scaler", false, true, Dtype::F32, 4, [5, 13, 5]),
        ("bf16", false, false, Dtype::Bf16, 4, [4, 11, 2]),
    ];
    for (name, per_tensor, features, dt, dispatches, [bind_groups, buffers, pipelines]) in cases {
        let before = ctx.creation_counts();
        let arena = Arena::with_dtypes(&ctx, &lens, dt, dt).unwrap();
        let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
        let g1 = opt
            .add_group(Adam {
                lr: 5e-4,
                ..Adam::adamw()
            })
            .unwrap();
        for i in 0..arena.len() {
            let g = if i % 2 == 0 { opt.default_group() } else { g1 };
            opt.add_tensor_as(g, arena.param(i), dt, arena.grad(i), dt)
                .unwrap();
        }
        opt.set_dispatch_per_tensor(per_tensor).unwrap();
        if features {
            let clip = GradClip {
                max_norm: Some(1.0),
                value: None,
            };
            opt.set_grad_clip(clip).unwrap();
            opt.set_grad_scaler(GradScaler::default()).unwrap();
            opt.set_steps_per_submission(8).unwrap();
        }
        opt.step().unwrap();
        opt.step_many(3).unwrap();
        ctx.wait().unwrap();
        let after = ctx.creation_counts();
        let made =
            |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        assert_eq!(opt.dispatches_per_step(), dispatches, "{name}");
        assert_eq!(made("bind_group"), bind_groups, "{name}: bind groups");
        assert_eq!(made("buffer"), buffers, "{name}: buffers");
        // Pipelines are cached per context: the counts are of the ones new to this case.
        assert_eq!(made("pipeline"), pipelines, "{name}: pipelines");
    }
}
