//! Gradient clipping on the device: the reduction's norm, clamping and scaling against the
//! CPU model (through the verifier) and the CPU twin (`cpu_grad_clip`), non-finite
//! counting, determinism, and the API's refusals.

mod common;

use gpu_optim::verify::Rng;
use gpu_optim::*;

fn arena_with_grads(
    ctx: &Context,
    lens: &[usize],
    seed: u64,
    scale: f32,
) -> (Arena, Vec<Vec<f32>>) {
    let arena = Arena::new(ctx, lens).unwrap();
    let mut rng = Rng(seed);
    let mut grads = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
        let g = rng.vec(n, scale);
        ctx.upload(&arena.grad(i), &g).unwrap();
        grads.push(g);
    }
    (arena, grads)
}

#[test]
fn clipped_steps_match_the_cpu_twin() {
    let ctx = common::ctx();
    // (clip, whether the device equals the model exactly): a coefficient below 1 comes
    // from the norm, summed in f32 in a tree order on the device and in f64 in the model,
    // so it may differ in its last bit (within the verifier's tolerance); clamping, and a
    // coefficient of exactly 1, are the same operations on both.
    for (clip, exact) in [
        (
            GradClip {
                max_norm: Some(1.0),
                value: None,
            },
            false,
        ),
        (
            GradClip {
                max_norm: None,
                value: Some(0.25),
            },
            true,
        ),
        (
            GradClip {
                max_norm: Some(3.0),
                value: Some(0.5),
            },
            false,
        ),
        (
            GradClip {
                max_norm: Some(1e6),
                value: None,
            },
            true,
        ), // norm below max: scale exactly 1
    ] {
        for rule in [
            AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                ..Sgd::default()
            }),
            AnyRule::Adam(Adam::adamw()),
        ] {
            let plan = VerifyPlan {
                groups: vec![rule.clone()],
                tensors: vec![(0, 5), (0, 4096), (0, 70_001)],
                steps: 10,
                seed: 9,
                state_format: gpu_optim::StateFormat::F32,
                dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
                clip: Some(clip),
            };
            let r = verify(&ctx, &plan).unwrap();
            assert!(r.passed(), "{clip:?} {r}");
            if exact {
                let zero = |b: &gpu_optim::verify::BufferError| {
                    b.max_abs == 0.0 && b.nonfinite_mismatches == 0
                };
                assert!(r.buffers.iter().all(zero), "{clip:?}: not exact: {r}");
            }
        }
    }
}

#[test]
fn norm_and_nonfinite_count_are_reported() {
    let ctx = common::ctx();
    let lens = [1_000_000, 3, 4097];
    let (arena, mut grads) = arena_with_grads(&ctx, &lens, 5, 1.0);
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.set_grad_clip(GradClip::default()).unwrap(); // measure only

    // One inf among 10^6 values: counted, and the norm is inf (torch's clip_grad_norm_).
    let finite = grads[0][123_457];
    grads[0][123_457] = f32::INFINITY;
    ctx.upload(&arena.grad(0), &grads[0]).unwrap();
    opt.step().unwrap();
    let stats = opt.grad_stats().unwrap();
    let want = cpu_grad_clip(&mut grads.clone(), &GradClip::default());
    assert_eq!(stats, want);
    assert_eq!((stats.norm, stats.nonfinite), (f32::INFINITY, 1));

    grads[0][123_457] = finite;
    ctx.upload(&arena.grad(0), &grads[0]).unwrap();
    opt.step().unwrap();
    let stats = opt.grad_stats().unwrap();
    let want = cpu_grad_clip(&mut grads.clone(), &GradClip::default());
    assert_eq!((stats.nonfinite, want.nonfinite), (0, 0));
    // f32 tree sum vs f64 sum of 10^6 squares: relative difference well under 1e-5.
    assert!(
        ((stats.norm - want.norm) / want.norm).abs() < 1e-5,
        "{stats:?} vs {want:?}"
    );

    // Deterministic: the same grads give the same bits.
    opt.step().unwrap();
    assert_eq!(
        opt.grad_stats().unwrap().norm.to_bits(),
        stats.norm.to_bits()
    );
}

#[test]
fn clip_settings_can_change_after_the_first_step() {
    let ctx = common::ctx();
    let (arena, _) = arena_with_grads(&ctx, &[10_000], 6, 10.0);
    let p0 = ctx.download(&arena.param(0)).unwrap();
    let mut opt = Optimizer::new(
        &ctx,
        Sgd {
            lr: 1.0,
            ..Sgd::default()
        },
    )
    .unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.set_grad_clip(GradClip {
        max_norm: Some(1.0),
        value: None,
    })
    .unwrap();
    opt.step().unwrap();
    let p1 = ctx.download(&arena.param(0)).unwrap();
    // The whole step moved the params by (about) the max norm.
    let moved: f64 = p0
        .iter()
        .zip(&p1)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((moved - 1.0).abs() < 1e-3, "moved {moved}");
    opt.set_grad_clip(GradClip {
        max_norm: Some(0.5),
        value: None,
    })
    .unwrap();
    opt.step().unwrap();
    let p2 = ctx.download(&arena.param(0)).unwrap();
    let moved: f64 = p1
        .iter()
        .zip(&p2)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((moved - 0.5).abs() < 1e-3, "moved {moved}");
}

/// Value clipping is a constant of the kernels (`KernelVariant::clip_value`), switched
/// when the setting changes: turned on after the first step, off again, and on within a
/// submission of several steps, each step moves the params by exactly what its own setting
/// says. A tensor of whole tiles (4096: the `exact` kernels) and one with a partial vector.
#[test]
fn value_clipping_switched_between_steps_takes_effect() {
    let ctx = common::ctx();
    let lens = [4096, 1001];
    let arena = Arena::new(&ctx, &lens).unwrap();
    for (i, &n) in lens.iter().enumerate() {
        ctx.upload(&arena.param(i), &vec![0.0; n]).unwrap();
        // Grads of 8 and -3: a bound of 2 clamps both, a bound of 5 only the first.
        let g: Vec<f32> = (0..n)
            .map(|j| if j % 2 == 0 { 8.0 } else { -3.0 })
            .collect();
        ctx.upload(&arena.grad(i), &g).unwrap();
    }
    let sgd = Sgd {
        lr: 1.0,
        ..Sgd::default()
    };
    let mut opt = Optimizer::new(&ctx, sgd).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    let measure_only = GradClip::default();
    let by = |v: f32| GradClip {
        max_norm: None,
        value: Some(v),
    };
    opt.set_grad_clip(measure_only).unwrap();
    // (setting before the step, steps in one submission, the step of an even and an odd
    // element)
    let plan = [
        (measure_only, 1, (8.0, -3.0)),
        (by(2.0), 1, (2.0, -2.0)),
        (measure_only, 1, (8.0, -3.0)),
        (by(5.0), 3, (5.0, -3.0)),
        (measure_only, 2, (8.0, -3.0)),
    ];
    let mut want = (0.0f32, 0.0f32);
    for (clip, k, (even, odd)) in plan {
        opt.set_grad_clip(clip).unwrap();
        opt.step_many(k).unwrap();
        for _ in 0..k {
            want = (want.0 - even, want.1 - odd);
        }
        for (i, &n) in lens.iter().enumerate() {
            let p = ctx.download(&arena.param(i)).unwrap();
            for (j, x) in p.iter().enumerate() {
                let w = if j % 2 == 0 { want.0 } else { want.1 };
                assert_eq!(*x, w, "tensor {i} (n = {n}) element {j} after {clip:?}");
            }
        }
    }
}

#[test]
fn clipping_refusals() {
    let ctx = common::ctx();
    let (arena, _) = arena_with_grads(&ctx, &[100], 7, 1.0);
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    for bad in [
        GradClip {
            max_norm: Some(0.0),
            value: None,
        },
        GradClip {
            max_norm: Some(f32::NAN),
            value: None,
        },
        GradClip {
            max_norm: None,
            value: Some(-1.0),
        },
    ] {
        assert!(matches!(
            opt.set_grad_clip(bad),
            Err(Error::InvalidHyperparameter { .. })
        ));
    }
    assert!(matches!(opt.grad_stats(), Err(Error::InvalidState(_))));
    opt.step().unwrap();
    // Enabling after the first step would need a pass the plan does not have.
    let r = opt.set_grad_clip(GradClip {
        max_norm: Some(1.0),
        value: None,
    });
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    opt.step().unwrap();
    assert_eq!(opt.step_count(), 2);
}

#[test]
fn clipping_allocates_nothing_per_step() {
    let ctx = common::ctx();
    let (arena, _) = arena_with_grads(&ctx, &[5000, 7], 8, 1.0);
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.set_grad_clip(GradClip {
        max_norm: Some(1.0),
        value: Some(2.0),
    })
    .unwrap();
    opt.step().unwrap();
    let before = ctx.creation_counts();
    opt.step_many(10).unwrap();
    assert_eq!(ctx.creation_counts(), before);
}
