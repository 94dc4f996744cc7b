//! Loss scaling and the inf/NaN skip on the device (issue 5), against the whole-step CPU
//! model (`CpuModel`): skipped steps change nothing and do not advance the rule's step
//! count, even when several skips sit in one submission the host has not seen; the scale
//! follows GradScaler's growth and backoff.
//!
//! Comparison: bit for bit (NaN equal to NaN), 8-bit codes and block maxima included: the
//! scales are powers of two, so unscaling is exact, and on lavapipe every one-phase rule
//! computes what the model computes. Two cases sum in another order than the model (f32
//! tree on the device, f64 in the model) and are held to the verifier's tolerance instead
//! (the rule's `rounding_ops` scaled ulps per applied step, src/verify.rs): clipping by
//! norm, and LAMB's per-tensor norms.

mod common;

use gpu_optim::verify::{bit_difference, compare, Rng};
use gpu_optim::{
    Adam, AnyRule, Arena, BufferRange, Context, CpuModel, GradClip, GradScaler, Lion, Optimizer,
    StateFormat, TensorId, UpdateRule,
};

/// The device optimizer against the model: step counts, scale, non-finite count, and every
/// tensor's params and state slots (with 8-bit state its codes and block maxima too), bit
/// for bit if `exact`, else within the verifier's tolerance.
fn check<R: UpdateRule>(opt: &mut Optimizer<R>, model: &CpuModel<R>, exact: bool, what: &str) {
    assert_eq!(opt.step_count(), model.step_count(), "{what}: steps");
    let applied = model.applied_steps();
    assert_eq!(
        opt.applied_steps().unwrap(),
        applied,
        "{what}: applied steps"
    );
    assert_eq!(
        opt.skipped_steps().unwrap(),
        model.skipped_steps(),
        "{what}: skipped"
    );
    assert_eq!(
        opt.loss_scale().unwrap(),
        model.loss_scale().unwrap(),
        "{what}: scale"
    );
    // The device reports the gradient statistics with clipping on only.
    if let Ok(got) = opt.grad_stats() {
        let want = model.grad_stats().expect("the model's reduction ran");
        assert_eq!(got.nonfinite, want.nonfinite, "{what}: non-finite count");
    }
    let rule = model.group(model.default_group()).unwrap().clone();
    let tol = (rule.rounding_ops() as u64 * applied.max(1)) as f64;
    let same = |name: String, got: &[f32], want: &[f32]| {
        if exact {
            if let Some(d) = bit_difference(got, want) {
                panic!("{what}: {name}: {d}");
            }
        } else {
            let e = compare(&name, got, want).unwrap();
            assert!(e.max_scaled <= tol, "{what}: {e:?} (tolerance {tol})");
        }
    };
    for i in 0..model.num_tensors() {
        let id = TensorId(i);
        let got = opt.read_params(id).unwrap();
        same(
            format!("tensor {i} params"),
            &got,
            model.params(id).unwrap(),
        );
        for k in 0..rule.state_slots().len() {
            let st = opt.read_state(id, k).unwrap();
            same(
                format!("tensor {i} slot {k}"),
                &st,
                model.state(id, k).unwrap(),
            );
            if let Some((codes, absmax)) = model.state_q8(id, k).unwrap() {
                let (got_codes, got_absmax) = opt.read_state_q8(id, k).unwrap();
                assert!(got_codes == codes, "{what}: tensor {i} slot {k} codes");
                same(format!("tensor {i} slot {k} absmax"), &got_absmax, absmax);
            }
        }
    }
}

/// An arena of `lens` with random params, the optimizer over it with `scaler`, and the
/// model of that optimizer.
fn setup<R: UpdateRule>(
    ctx: &Context,
    rule: R,
    lens: &[usize],
    scaler: GradScaler,
    format: StateFormat,
) -> (Arena, Optimizer<R>, CpuModel<R>) {
    let arena = Arena::new(ctx, lens).unwrap();
    let mut opt = Optimizer::new(ctx, rule.clone()).unwrap();
    let mut model = CpuModel::with_limits(rule, ctx.limits()).unwrap();
    opt.set_state_format(format).unwrap();
    model.set_state_format(format).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    let mut rng = Rng(21);
    for (i, &n) in lens.iter().enumerate() {
        let p = rng.vec(n, 1.0);
        ctx.upload(&arena.param(i), &p).unwrap();
        let dtypes = arena.dtypes();
        let at = arena.param(i).offset;
        model
            .add_tensor(model.default_group(), at, &p, dtypes)
            .unwrap();
    }
    opt.set_grad_scaler(scaler).unwrap();
    model.set_grad_scaler(scaler).unwrap();
    (arena, opt, model)
}

/// Grads as a backward pass with the current loss scale would produce them.
fn scaled_grads(rng: &mut Rng, lens: &[usize], scale: f32) -> Vec<Vec<f32>> {
    lens.iter()
        .map(|&n| rng.vec(n, 1.0).iter().map(|g| g * 1e-2 * scale).collect())
        .collect()
}

fn upload(ctx: &Context, arena: &Arena, grads: &[Vec<f32>]) {
    for (i, g) in grads.iter().enumerate() {
        ctx.upload(&arena.grad(i), g).unwrap();
    }
}

/// The case: one inf among 10^6 gradients. Nothing changes, bit for bit; the step
/// count stays; the scale backs off; the next clean step proceeds as the model's.
#[test]
fn one_inf_among_a_million_skips_everything() {
    let ctx = common::ctx();
    let lens = [600_000, 300_000, 100_000];
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let (arena, mut opt, mut model) = setup(
            &ctx,
            Adam::adamw(),
            &lens,
            GradScaler::default(),
            StateFormat::F32,
        );
        clean_skip_clean(
            &ctx,
            &arena,
            &mut opt,
            &mut model,
            &lens,
            (1, 123_457, bad),
            3,
        );
    }
}

/// With the default GradScaler: a clean step, a step with one non-finite gradient (tensor,
/// element, value) that changes nothing, bit for bit, is counted as skipped and halves the
/// scale, then a clean step; each against the model (bit for bit but for LAMB).
fn clean_skip_clean<R: UpdateRule>(
    ctx: &Context,
    arena: &Arena,
    opt: &mut Optimizer<R>,
    model: &mut CpuModel<R>,
    lens: &[usize],
    (tensor, element, bad): (usize, usize, f32),
    seed: u64,
) {
    let exact = !model
        .group(model.default_group())
        .unwrap()
        .kernel()
        .two_phase;
    let mut rng = Rng(seed);
    let step = |g: &[Vec<f32>], opt: &mut Optimizer<R>, model: &mut CpuModel<R>| {
        upload(ctx, arena, g);
        opt.step().unwrap();
        model.step(g).unwrap();
    };
    let g = scaled_grads(&mut rng, lens, model.loss_scale().unwrap());
    step(&g, opt, model);
    check(opt, model, exact, "clean step 1");
    let before = common::snapshot(ctx, arena, opt);

    let mut g = scaled_grads(&mut rng, lens, model.loss_scale().unwrap());
    g[tensor][element] = bad;
    step(&g, opt, model);
    assert_eq!(
        common::snapshot(ctx, arena, opt),
        before,
        "{bad}: something changed"
    );
    assert_eq!(opt.skipped_steps().unwrap(), 1);
    assert_eq!(opt.step_count(), 2);
    check(opt, model, exact, "skipped step 2");
    assert_eq!(opt.loss_scale().unwrap(), 32768.0);

    let g = scaled_grads(&mut rng, lens, model.loss_scale().unwrap());
    step(&g, opt, model);
    check(opt, model, exact, "clean step 3");
}

/// Steps with and without a non-finite gradient, recorded into one encoder so that the
/// host cannot know which were skipped: each applied step must still use its own step
/// number (Adam's bias corrections, visibly different from step to step).
#[test]
fn skips_inside_one_submission_use_the_device_step_count() {
    let ctx = common::ctx();
    let lens = [5000, 70_001];
    let total = 12;
    let pattern = [
        false, true, false, false, true, true, false, true, false, false, false, true,
    ];
    for rule in [
        AnyRule::Adam(Adam::default()),
        AnyRule::by_name("nadam").unwrap(),
        AnyRule::by_name("radam").unwrap(),
    ] {
        let config = GradScaler {
            growth_interval: 3,
            ..GradScaler::default()
        };
        let (arena, mut opt, mut model) =
            setup(&ctx, rule.clone(), &lens, config, StateFormat::F32);
        // Each step's grads, made with the scale the model has before that step, are
        // staged in their own buffer and copied in by the encoder.
        let mut rng = Rng(9);
        let mut staged = Vec::new();
        for &bad in &pattern[..total] {
            let mut g = scaled_grads(&mut rng, &lens, model.loss_scale().unwrap());
            if bad {
                g[0][17] = f32::NAN;
            }
            let flat: Vec<f32> = g.iter().flatten().copied().collect();
            staged.push(ctx.create_buffer("staged grads", &flat).unwrap());
            model.step(&g).unwrap();
        }
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        for buf in &staged {
            let mut at = 0u64;
            for (i, &n) in lens.iter().enumerate() {
                let dst = arena.grad(i);
                let bytes = n as u64 * 4;
                enc.copy_buffer_to_buffer(buf, at * 4, &dst.buffer, dst.offset * 4, bytes);
                at += n as u64;
            }
            opt.record_step(&mut enc).unwrap();
        }
        ctx.queue().submit([enc.finish()]);
        assert_eq!(opt.skipped_steps().unwrap(), 5);
        check(&mut opt, &model, true, &rule.name());
    }
}

/// The scale over many steps, clean and not, as GradScaler's update; with clipping too.
#[test]
fn scale_follows_gradscaler_with_clipping() {
    let ctx = common::ctx();
    let lens = [4096, 1000];
    let config = GradScaler {
        init_scale: 1024.0,
        growth_interval: 2,
        ..GradScaler::default()
    };
    let (arena, mut opt, mut model) = setup(&ctx, Adam::default(), &lens, config, StateFormat::F32);
    let clip = GradClip {
        max_norm: Some(0.5),
        value: Some(0.02),
    };
    opt.set_grad_clip(clip).unwrap();
    model.set_grad_clip(clip).unwrap();
    let mut rng = Rng(5);
    // Clipping by norm sums the norm in another order than the model (see the module
    // docs): bit for bit while the norm stays clear of max_norm (the coefficient exactly
    // 1 on both), else within the tolerance from then on.
    let mut exact = true;
    for s in 0..10 {
        let mut g = scaled_grads(&mut rng, &lens, model.loss_scale().unwrap());
        if s % 4 == 3 {
            g[1][999] = f32::INFINITY;
        }
        upload(&ctx, &arena, &g);
        opt.step().unwrap();
        model.step(&g).unwrap();
        exact &= model.grad_stats().unwrap().norm < 0.49;
        check(&mut opt, &model, exact, &format!("step {s}"));
    }
    assert_eq!(opt.skipped_steps().unwrap(), 2);
}

/// The loss scale lives in a device buffer the caller's backward kernel can bind.
#[test]
fn loss_scale_buffer_holds_the_scale() {
    let ctx = common::ctx();
    let (_arena, mut opt, _model) = setup(
        &ctx,
        Lion::default(),
        &[100],
        GradScaler::default(),
        StateFormat::F32,
    );
    let r: BufferRange = opt.loss_scale_buffer().unwrap();
    assert_eq!(r.len, 1);
    assert_eq!(ctx.download(&r).unwrap(), vec![65536.0]);
}

/// 8-bit state is untouched by a skipped step too (its codes, block maxima).
#[test]
fn skip_leaves_8bit_state_alone() {
    let ctx = common::ctx();
    let lens = [8192];
    let f = StateFormat::blockwise8();
    let (arena, mut opt, mut model) = setup(&ctx, Adam::default(), &lens, GradScaler::default(), f);
    let mut rng = Rng(8);
    let g = scaled_grads(&mut rng, &lens, model.loss_scale().unwrap());
    upload(&ctx, &arena, &g);
    opt.step().unwrap();
    model.step(&g).unwrap();
    let before = (
        opt.read_state_q8(TensorId(0), 0).unwrap(),
        opt.read_state_q8(TensorId(0), 1).unwrap(),
    );
    let mut g = scaled_grads(&mut rng, &lens, model.loss_scale().unwrap());
    g[0][8000] = f32::NAN;
    upload(&ctx, &arena, &g);
    opt.step().unwrap();
    model.step(&g).unwrap();
    let after = (
        opt.read_state_q8(TensorId(0), 0).unwrap(),
        opt.read_state_q8(TensorId(0), 1).unwrap(),
    );
    assert_eq!(before, after);
    check(&mut opt, &model, true, "after skip");
}

#[test]
fn misuse_is_refused() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[64]).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    assert!(matches!(
        opt.loss_scale(),
        Err(gpu_optim::Error::InvalidState(_))
    ));
    for bad in [
        GradScaler {
            init_scale: 0.0,
            ..GradScaler::default()
        },
        GradScaler {
            growth_factor: 0.5,
            ..GradScaler::default()
        },
        GradScaler {
            backoff_factor: 1.5,
            ..GradScaler::default()
        },
        GradScaler {
            growth_interval: 0,
            ..GradScaler::default()
        },
        GradScaler {
            init_scale: f32::NAN,
            ..GradScaler::default()
        },
    ] {
        assert!(
            matches!(
                opt.set_grad_scaler(bad),
                Err(gpu_optim::Error::InvalidHyperparameter { .. })
            ),
            "{bad:?}"
        );
    }
    opt.step().unwrap();
    assert!(matches!(
        opt.set_grad_scaler(GradScaler::default()),
        Err(gpu_optim::Error::InvalidState(_))
    ));
}

/// Save after a skipped step, load into a fresh optimizer, continue through more skips:
/// bit-identical to the uninterrupted run, scale and counts included.
#[test]
fn checkpoint_resume_keeps_the_scaler() {
    let ctx = common::ctx();
    let lens = [3000, 500];
    let config = GradScaler {
        growth_interval: 2,
        ..GradScaler::default()
    };
    let grads = |t: u64, scale: f32| {
        let mut g = scaled_grads(&mut Rng(50 + t), &lens, scale);
        if t % 3 == 1 {
            g[0][7] = f32::INFINITY;
        }
        g
    };
    let run = |arena: &Arena, opt: &mut Optimizer<Adam>, from: u64, to: u64| {
        for t in from..to {
            let s = opt.loss_scale().unwrap();
            upload(&ctx, arena, &grads(t, s));
            opt.step().unwrap();
        }
    };
    let (a, mut straight, _) = setup(&ctx, Adam::default(), &lens, config, StateFormat::F32);
    run(&a, &mut straight, 0, 8);
    let want = (
        common::snapshot(&ctx, &a, &mut straight),
        straight.loss_scale().unwrap(),
        straight.applied_steps().unwrap(),
    );

    let (b, mut first, _) = setup(&ctx, Adam::default(), &lens, config, StateFormat::F32);
    run(&b, &mut first, 0, 4);
    let path = std::env::temp_dir().join(format!("gpu-optim-scaler-{}.st", std::process::id()));
    first.save(&path, true).unwrap();
    let (c, mut resumed, _) = setup(&ctx, Adam::default(), &lens, config, StateFormat::F32);
    resumed.load(&path).unwrap();
    assert_eq!(
        resumed.applied_steps().unwrap(),
        first.applied_steps().unwrap()
    );
    run(&c, &mut resumed, 4, 8);
    let got = (
        common::snapshot(&ctx, &c, &mut resumed),
        resumed.loss_scale().unwrap(),
        resumed.applied_steps().unwrap(),
    );
    assert!(got == want, "resume differs: scale {} vs {}", got.1, want.1);

    // A checkpoint with a scaler: a prepared optimizer without one refuses it (loss
    // scaling adds passes), and so does strict mode; an unprepared one takes it on.
    let arena = Arena::new(&ctx, &lens).unwrap();
    let mut plain = Optimizer::new(&ctx, Adam::default()).unwrap();
    plain.add_arena(&arena, plain.default_group()).unwrap();
    let e = plain
        .load_with(&path, gpu_optim::LoadMode::Strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grad_scaler"), "{e}");
    plain.prepare().unwrap();
    let e = plain.load(&path).unwrap_err().to_string();
    assert!(e.contains("grad_scaler"), "{e}");
    let mut fresh = Optimizer::new(&ctx, Adam::default()).unwrap();
    fresh.add_arena(&arena, fresh.default_group()).unwrap();
    fresh.load(&path).unwrap();
    assert_eq!(fresh.loss_scale().unwrap(), first.loss_scale().unwrap());
    assert_eq!(
        fresh.skipped_steps().unwrap(),
        first.skipped_steps().unwrap()
    );
    std::fs::remove_file(&path).unwrap();
}

/// Hostile scaler words in a checkpoint (a NaN scale, more skipped than executed steps,
/// counts that are not integers) are refused before anything changes.
#[test]
fn corrupt_scaler_words_are_refused() {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let ctx = common::ctx();
    let lens = [256];
    let (arena, mut opt, _) = setup(
        &ctx,
        Adam::default(),
        &lens,
        GradScaler::default(),
        StateFormat::F32,
    );
    upload(&ctx, &arena, &[vec![1.0; 256]]);
    opt.step_many(3).unwrap();
    let dir = std::env::temp_dir();
    let path = dir.join(format!("gpu-optim-scaler-bad-{}.st", std::process::id()));
    opt.save(&path, false).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    for bad in [
        [f32::NAN, 0.0, 0.0, 3.0, 0.0],
        [65536.0, 0.0, 0.0, 2.0, 3.0],
        [65536.0, 0.5, 0.0, 3.0, 0.0],
        [-1.0, 0.0, 0.0, 3.0, 0.0],
        [65536.0, 0.0, 0.0, 4.0, 0.0],
    ] {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
            .collect();
        for t in tensors.iter_mut().filter(|t| t.0 == "scaler") {
            t.2 = bytemuck::cast_slice(&bad).to_vec();
        }
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, s, d)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
                )
            })
            .collect();
        let out = dir.join(format!("gpu-optim-scaler-bad2-{}.st", std::process::id()));
        std::fs::write(
            &out,
            safetensors::serialize(views, Some(meta.clone())).unwrap(),
        )
        .unwrap();
        let (_, mut fresh, _) = setup(
            &ctx,
            Adam::default(),
            &lens,
            GradScaler::default(),
            StateFormat::F32,
        );
        let e = fresh.load(&out).unwrap_err().to_string();
        assert!(e.contains("scaler"), "{bad:?}: {e}");
        assert_eq!(fresh.loss_scale().unwrap(), 65536.0);
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_file(&path).unwrap();
}

/// A two-phase rule (LAMB: a measuring pass before the update) skips as a whole too.
#[test]
fn two_phase_rule_skips_as_a_whole() {
    let ctx = common::ctx();
    let lens = [3000, 40];
    let (arena, mut opt, mut model) = setup(
        &ctx,
        gpu_optim::Lamb::default(),
        &lens,
        GradScaler::default(),
        StateFormat::F32,
    );
    // LAMB's norms are summed in another order than the model's: `clean_skip_clean`
    // compares it within the verifier's tolerance (the skip itself still bit for bit).
    clean_skip_clean(
        &ctx,
        &arena,
        &mut opt,
        &mut model,
        &lens,
        (1, 39, f32::NAN),
        12,
    );
}
