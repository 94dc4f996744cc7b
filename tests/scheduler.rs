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

/// `record_steps` (k steps in one compute pass) is k `record_step`s, bit for bit, under a
/// schedule (each step its own lr), and more steps than the ring has slots grow it.
#[test]
fn record_steps_in_one_pass_equals_record_step() {
    let ctx = common::ctx();
    let lens = [5000, 333];
    let sched = LrSchedule::WarmupCosine {
        warmup: 3,
        t_max: 10,
        eta_min: 1e-4,
    };
    let mut runs = Vec::new();
    for one_pass in [false, true] {
        let (a, mut o) = setup(&ctx, Adam::adamw(), &lens, 2);
        o.set_schedule(o.default_group(), sched.clone()).unwrap();
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        match one_pass {
            true => o.record_steps(&mut enc, 7).unwrap(),
            false => (0..7).for_each(|_| o.record_step(&mut enc).unwrap()),
        }
        ctx.queue().submit([enc.finish()]);
        assert_eq!(o.step_count(), 7);
        // Zero steps record nothing and count nothing.
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        o.record_steps(&mut enc, 0).unwrap();
        assert_eq!(o.step_count(), 7);
        ctx.queue().submit([enc.finish()]);
        runs.push(params(&ctx, &a));
    }
    assert_eq!(runs[0], runs[1]);
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
/// this same program): one dispatch per 128 MiB window, or one per tensor piece. One
/// bind group more than then: the ring of step scalars has its own (bind group 1, read at
/// a dynamic offset, where the scalars used to be copied into one uniform). One pipeline
/// more per tensor than then: its tensors of whole 1024-element tiles (768 x 768, ...)
/// run the update without a range test (`KernelVariant::exact`).
#[test]
fn gpt2_set_plans_as_before_the_redesign() {
    let ctx = common::ctx();
    let lens = gpu_optim::workloads::gpt2_small_lens();
    let cases = [
        ("batched", false, false, Dtype::F32, 4, [5, 10, 2]),
        ("per tensor", true, false, Dtype::F32, 149, [150, 10, 1]),
        ("clip + scaler", false, true, Dtype::F32, 4, [6, 13, 5]),
        ("bf16", false, false, Dtype::Bf16, 4, [5, 11, 2]),
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

/// Fixed words (kernel/variant.rs: FixedWords): a dispatch's pipeline takes the branch
/// words its groups agree on as constants. Switching a flag with `set_group` (Adam to
/// AdamW to maximize + AMSGrad's sibling without it, weight decay on and off) switches the
/// pipeline before the next step, and every step stays bit for bit the CPU model's; two
/// groups that disagree on `maximize` in one dispatch leave that word to run time.
#[test]
fn fixed_words_follow_set_group_bit_exactly() {
    let ctx = common::ctx();
    // Tensor 1 starts 4 elements into the arena's second range, off the binding
    // alignment: its own dispatch reads shifts.
    let arena = Arena::new(&ctx, &[1000, 4099]).unwrap();
    let lens = [1000usize, 4095];
    let shifted = |r: BufferRange, i: usize| match i {
        0 => r,
        _ => BufferRange::new(&r.buffer, r.offset + 4, 4095),
    };
    let params: Vec<BufferRange> = (0..2).map(|i| shifted(arena.param(i), i)).collect();
    let grads: Vec<BufferRange> = (0..2).map(|i| shifted(arena.grad(i), i)).collect();
    let mut rng = Rng(9);
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let mut model = CpuModel::with_limits(Adam::default(), ctx.limits()).unwrap();
    opt.set_dispatch_per_tensor(true).unwrap();
    let other = Adam {
        maximize: true,
        ..Adam::default()
    };
    let og = opt.add_group(other.clone()).unwrap();
    let mg = model.add_group(other).unwrap();
    for (i, &n) in lens.iter().enumerate() {
        let p = rng.vec(n, 1.0);
        ctx.upload(&params[i], &p).unwrap();
        let (g, h) = match i {
            0 => (opt.default_group(), model.default_group()),
            _ => (og, mg),
        };
        opt.add_tensor(g, params[i].clone(), grads[i].clone())
            .unwrap();
        model
            .add_tensor_at(
                h,
                HostLayout {
                    param_buffer: 0,
                    param_bytes: params[i].buffer.size(),
                    param_offset: params[i].offset,
                    grad_buffer: 1,
                    grad_bytes: grads[i].buffer.size(),
                    grad_offset: grads[i].offset,
                },
                &p,
                (Dtype::F32, Dtype::F32),
            )
            .unwrap();
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut step = |opt: &mut Optimizer<Adam>, model: &mut CpuModel<Adam>| {
        let g: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec(n, 1.0)).collect();
        for (i, g) in g.iter().enumerate() {
            ctx.upload(&grads[i], g).unwrap();
        }
        opt.step().unwrap();
        model.step(&g).unwrap();
        for i in 0..lens.len() {
            assert_eq!(
                bits(&opt.read_params(TensorId(i)).unwrap()),
                bits(model.params(TensorId(i)).unwrap()),
                "tensor {i} after step {}",
                opt.step_count()
            );
        }
    };
    // The maximize word of each dispatch's pipeline (Adam's h.c.x, word 8).
    let maximize = |opt: &Optimizer<Adam>| -> Vec<Option<u32>> {
        opt.kernel_variants().iter().map(|v| v.fixed.0[8]).collect()
    };
    step(&mut opt, &mut model);
    let variants = opt.kernel_variants();
    assert_eq!(variants.len(), 2);
    assert!(!variants[0].shifted, "tensor 0 starts its buffers");
    assert!(variants[1].shifted, "tensor 1 starts off the alignment");
    assert_eq!(maximize(&opt), [Some(0), Some(1f32.to_bits())]);
    let changes = [
        Adam::adamw(),
        Adam {
            maximize: true,
            ..Adam::adamw()
        },
        Adam {
            weight_decay: 0.0,
            ..Adam::adamw()
        },
        Adam::default(),
    ];
    for rule in changes {
        opt.set_group(opt.default_group(), rule.clone()).unwrap();
        model
            .set_group(model.default_group(), rule.clone())
            .unwrap();
        step(&mut opt, &mut model);
        step(&mut opt, &mut model);
        let want = rule.hyper(opt.step_count());
        let fixed = opt.kernel_variants()[0].fixed;
        for k in rule.kernel().branch_words {
            assert_eq!(fixed.0[*k], Some(want[*k].to_bits()), "{rule:?} word {k}");
        }
        // Weight decay (word 3) is fixed only while 0: it is also arithmetic.
        let wd = (rule.weight_decay == 0.0).then_some(0);
        assert_eq!(fixed.0[3], wd, "{rule:?}");
    }
    // One dispatch for both tensors (batched): the groups disagree on maximize only.
    let mut batched = Optimizer::new(&ctx, Adam::default()).unwrap();
    let g1 = batched
        .add_group(Adam {
            maximize: true,
            ..Adam::default()
        })
        .unwrap();
    batched
        .add_tensor(batched.default_group(), params[0].clone(), grads[0].clone())
        .unwrap();
    batched
        .add_tensor(g1, params[1].clone(), grads[1].clone())
        .unwrap();
    batched.step().unwrap();
    let v = batched.kernel_variants();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].fixed.0[8], None, "groups disagree on maximize");
    assert_eq!(v[0].fixed.0[9], Some(0), "neither decouples weight decay");
    assert_eq!(v[0].fixed.0[4], None, "1 - beta1 is arithmetic");
}

/// Packed tiles (plan/layout.rs): many small tensors of one group in an arena's buffers,
/// registered one by one (so not a run: `add_arena` lets a step update its padding),
/// batched, so most tiles also carry the next tensor's head. Every tensor stays bit for
/// bit the CPU twin's after steps, and no element between them (here a sentinel) is
/// written.
#[test]
fn packed_tiles_match_the_twin_and_leave_the_gaps() {
    let ctx = common::ctx();
    let mut rng = Rng(21);
    let lens: Vec<usize> = (0..40)
        .map(|_| 1 + (rng.next_u64() % 700) as usize)
        .collect();
    let arena = Arena::new(&ctx, &lens).unwrap();
    let total = arena.params.size() as usize / 4;
    let sentinel = vec![7.5f32; total];
    ctx.upload(&BufferRange::new(&arena.params, 0, total), &sentinel)
        .unwrap();
    ctx.upload(&BufferRange::new(&arena.grads, 0, total), &sentinel)
        .unwrap();
    let (params, grads) = common::upload_random(&ctx, &arena, &mut rng);
    let rule = Adam::adamw();
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    for i in 0..lens.len() {
        let g = opt.default_group();
        opt.add_tensor(g, arena.param(i), arena.grad(i)).unwrap();
    }
    for _ in 0..3 {
        opt.step().unwrap();
    }
    assert_eq!(opt.dispatches_per_step(), 1);
    assert!(!opt.kernel_variants()[0].dense);
    common::assert_twin(&ctx, &arena, &rule, 3, params, &grads);
    let all = ctx
        .download(&BufferRange::new(&arena.params, 0, total))
        .unwrap();
    let mut inside = vec![false; total];
    for i in 0..lens.len() {
        let r = arena.param(i);
        inside[r.offset as usize..r.offset as usize + r.len].fill(true);
    }
    for (e, (&x, &mine)) in all.iter().zip(&inside).enumerate() {
        assert!(
            mine || x == 7.5,
            "element {e} between tensors changed to {x}"
        );
    }
}
