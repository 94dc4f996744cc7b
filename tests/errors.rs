//! Every bad input is refused with its typed `gpu_optim::Error` variant, never a panic, and
//! a refused call leaves the optimizer as it was (same step count, still steps).

mod common;

use gpu_optim::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A buffer of `len` f32 with exactly the given usages (not through `Context`, which
/// always adds STORAGE | COPY_SRC | COPY_DST).
fn raw_buffer(ctx: &Context, len: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test raw buffer"),
        size: (len * 4) as u64,
        usage,
        mapped_at_creation: false,
    })
}

/// Steps once more and checks the count went up by exactly one: the optimizer survived.
fn still_steps<R: UpdateRule>(ctx: &Context, opt: &mut Optimizer<R>, before: u64) {
    assert_eq!(
        opt.step_count(),
        before,
        "a refused call changed the step count"
    );
    opt.step()
        .unwrap_or_else(|e| panic!("valid step after a refusal failed: {e}"));
    ctx.wait().unwrap();
    assert_eq!(opt.step_count(), before + 1);
}

/// An optimizer over one 8-element tensor whose params and grads are non-zero.
fn one_tensor<R: UpdateRule>(ctx: &Context, rule: R) -> (Arena, Optimizer<R>) {
    let arena = Arena::new(ctx, &[8]).unwrap();
    ctx.upload(&arena.param(0), &[0.5; 8]).unwrap();
    ctx.upload(&arena.grad(0), &[0.25; 8]).unwrap();
    let mut opt = Optimizer::new(ctx, rule).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    (arena, opt)
}

// ---------------------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------------------

/// (label, valid rule of the same kind and state slots, invalid rule, rule name, the
/// hyperparameter torch.optim names in its ValueError).
fn bad_hyperparameters() -> Vec<(&'static str, AnyRule, AnyRule, &'static str, &'static str)> {
    use AnyRule as A;
    let sgd = Sgd::default();
    let sgd_m = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    vec![
        // SGD
        (
            "sgd lr < 0",
            A::Sgd(sgd.clone()),
            A::Sgd(Sgd {
                lr: -0.1,
                ..sgd.clone()
            }),
            "sgd",
            "lr",
        ),
        (
            "sgd lr NaN",
            A::Sgd(sgd.clone()),
            A::Sgd(Sgd {
                lr: f64::NAN,
                ..sgd.clone()
            }),
            "sgd",
            "lr",
        ),
        (
            "sgd lr inf",
            A::Sgd(sgd.clone()),
            A::Sgd(Sgd {
                lr: f64::INFINITY,
                ..sgd.clone()
            }),
            "sgd",
            "lr",
        ),
        (
            "sgd momentum < 0",
            A::Sgd(sgd_m.clone()),
            A::Sgd(Sgd {
                momentum: -0.5,
                ..sgd.clone()
            }),
            "sgd",
            "momentum",
        ),
        (
            "sgd nesterov with momentum 0",
            A::Sgd(sgd.clone()),
            A::Sgd(Sgd {
                nesterov: true,
                ..sgd.clone()
            }),
            "sgd",
            "momentum",
        ),
        (
            "sgd nesterov with dampening 0.5",
            A::Sgd(sgd_m.clone()),
            A::Sgd(Sgd {
                nesterov: true,
                dampening: 0.5,
                ..sgd_m.clone()
            }),
            "sgd",
            "dampening",
        ),
        (
            "sgd weight_decay < 0",
            A::Sgd(sgd.clone()),
            A::Sgd(Sgd {
                weight_decay: -1e-4,
                ..sgd.clone()
            }),
            "sgd",
            "weight_decay",
        ),
        // Adagrad
        (
            "adagrad lr < 0",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                lr: -1e-2,
                ..Adagrad::default()
            }),
            "adagrad",
            "lr",
        ),
        (
            "adagrad lr_decay < 0",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                lr_decay: -0.1,
                ..Adagrad::default()
            }),
            "adagrad",
            "lr_decay",
        ),
        (
            "adagrad initial_accumulator_value < 0",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                initial_accumulator_value: -0.1,
                ..Adagrad::default()
            }),
            "adagrad",
            "initial_accumulator_value",
        ),
        (
            "adagrad eps inf",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                eps: f64::INFINITY,
                ..Adagrad::default()
            }),
            "adagrad",
            "eps",
        ),
        (
            "adagrad weight_decay < 0",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                weight_decay: -0.1,
                ..Adagrad::default()
            }),
            "adagrad",
            "weight_decay",
        ),
        // Adadelta
        (
            "adadelta rho 1.5",
            A::Adadelta(Adadelta::default()),
            A::Adadelta(Adadelta {
                rho: 1.5,
                ..Adadelta::default()
            }),
            "adadelta",
            "rho",
        ),
        (
            "adadelta lr NaN",
            A::Adadelta(Adadelta::default()),
            A::Adadelta(Adadelta {
                lr: f64::NAN,
                ..Adadelta::default()
            }),
            "adadelta",
            "lr",
        ),
        (
            "adadelta eps inf",
            A::Adadelta(Adadelta::default()),
            A::Adadelta(Adadelta {
                eps: f64::INFINITY,
                ..Adadelta::default()
            }),
            "adadelta",
            "eps",
        ),
        (
            "adadelta weight_decay < 0",
            A::Adadelta(Adadelta::default()),
            A::Adadelta(Adadelta {
                weight_decay: -0.1,
                ..Adadelta::default()
            }),
            "adadelta",
            "weight_decay",
        ),
        // RMSprop
        (
            "rmsprop lr < 0",
            A::RmsProp(RmsProp::default()),
            A::RmsProp(RmsProp {
                lr: -1e-2,
                ..RmsProp::default()
            }),
            "rmsprop",
            "lr",
        ),
        (
            "rmsprop eps inf",
            A::RmsProp(RmsProp::default()),
            A::RmsProp(RmsProp {
                eps: f64::INFINITY,
                ..RmsProp::default()
            }),
            "rmsprop",
            "eps",
        ),
        (
            "rmsprop alpha < 0",
            A::RmsProp(RmsProp::default()),
            A::RmsProp(RmsProp {
                alpha: -0.5,
                ..RmsProp::default()
            }),
            "rmsprop",
            "alpha",
        ),
        (
            "rmsprop momentum < 0",
            A::RmsProp(RmsProp::default()),
            A::RmsProp(RmsProp {
                momentum: -0.9,
                ..RmsProp::default()
            }),
            "rmsprop",
            "momentum",
        ),
        (
            "rmsprop weight_decay < 0",
            A::RmsProp(RmsProp::default()),
            A::RmsProp(RmsProp {
                weight_decay: -0.1,
                ..RmsProp::default()
            }),
            "rmsprop",
            "weight_decay",
        ),
        // Adam
        (
            "adam lr < 0",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                lr: -1e-3,
                ..Adam::default()
            }),
            "adam",
            "lr",
        ),
        (
            "adam lr NaN",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                lr: f64::NAN,
                ..Adam::default()
            }),
            "adam",
            "lr",
        ),
        (
            "adam eps inf",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                eps: f64::INFINITY,
                ..Adam::default()
            }),
            "adam",
            "eps",
        ),
        (
            "adam beta1 = 1.0",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                betas: (1.0, 0.999),
                ..Adam::default()
            }),
            "adam",
            "betas.0",
        ),
        (
            "adam beta2 = -0.1",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                betas: (0.9, -0.1),
                ..Adam::default()
            }),
            "adam",
            "betas.1",
        ),
        (
            "adamw weight_decay < 0",
            A::Adam(Adam::adamw()),
            A::Adam(Adam {
                weight_decay: -1e-2,
                ..Adam::adamw()
            }),
            "adam",
            "weight_decay",
        ),
    ]
}

fn assert_invalid<T: std::fmt::Debug>(
    label: &str,
    where_: &str,
    r: Result<T>,
    want_rule: &str,
    want_name: &str,
) {
    match r {
        Err(Error::InvalidHyperparameter {
            rule, name, value, ..
        }) => {
            assert_eq!(rule, want_rule, "{label} ({where_})");
            assert_eq!(name, want_name, "{label} ({where_}): value {value}");
        }
        other => panic!("{label} ({where_}): expected InvalidHyperparameter, got {other:?}"),
    }
}

#[test]
fn invalid_hyperparameters_refused_by_validate_and_cpu_optimizer() {
    for (label, good, bad, rule, name) in bad_hyperparameters() {
        good.validate()
            .unwrap_or_else(|e| panic!("{label}: base rule invalid: {e}"));
        assert_invalid(label, "validate", bad.validate(), rule, name);
        assert_invalid(
            label,
            "CpuOptimizer::new",
            CpuOptimizer::new(bad.clone(), 4),
            rule,
            name,
        );
        let e = bad.validate().unwrap_err();
        assert!(
            e.to_string().contains(name),
            "{label}: message {e} does not name {name}"
        );
    }
}

#[test]
fn invalid_hyperparameters_refused_by_optimizer_new_add_group_set_group() {
    let ctx = common::ctx();
    for (label, good, bad, rule, name) in bad_hyperparameters() {
        assert_invalid(
            label,
            "Optimizer::new",
            Optimizer::new(&ctx, bad.clone()),
            rule,
            name,
        );

        let (_arena, mut opt) = one_tensor(&ctx, good.clone());
        assert_invalid(label, "add_group", opt.add_group(bad.clone()), rule, name);
        assert_invalid(
            label,
            "set_group",
            opt.set_group(opt.default_group(), bad.clone()),
            rule,
            name,
        );
        // The refused group was not added, group 0 kept its hyperparameters.
        assert_eq!(
            format!("{:?}", opt.group(opt.default_group()).unwrap()),
            format!("{good:?}"),
            "{label}"
        );
        still_steps(&ctx, &mut opt, 0);
        // After the first step set_group still validates.
        assert_invalid(
            label,
            "set_group after a step",
            opt.set_group(opt.default_group(), bad),
            rule,
            name,
        );
        still_steps(&ctx, &mut opt, 1);
    }
}

// ---------------------------------------------------------------------------------------
// CPU reference
// ---------------------------------------------------------------------------------------

#[test]
fn cpu_step_length_mismatches() {
    let rule = Adam::default();
    let mut params = vec![0.5f32; 4];
    let mut state = vec![vec![0.0f32; 4]; 2];

    let r = cpu_step(&rule, 1, &mut params, &[0.1; 3], &mut state);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 3,
                expected: 4,
                ..
            })
        ),
        "{r:?}"
    );
    let mut one_slot = vec![vec![0.0f32; 4]];
    let r = cpu_step(&rule, 1, &mut params, &[0.1; 4], &mut one_slot);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 1,
                expected: 2,
                ..
            })
        ),
        "{r:?}"
    );
    let mut short_slot = vec![vec![0.0f32; 4], vec![0.0f32; 5]];
    let r = cpu_step(&rule, 1, &mut params, &[0.1; 4], &mut short_slot);
    match r {
        Err(Error::LengthMismatch {
            what,
            got: 5,
            expected: 4,
        }) => assert!(what.contains("exp_avg_sq"), "{what}"),
        other => panic!("{other:?}"),
    }
    // Nothing was touched by the refused calls.
    assert_eq!(params, vec![0.5; 4]);
    assert_eq!(state, vec![vec![0.0; 4]; 2]);
    assert_eq!(one_slot, vec![vec![0.0; 4]]);

    // Rules without state: an extra slot is a mismatch too.
    let mut extra = vec![vec![0.0f32; 4]];
    let r = cpu_step(&Sgd::default(), 1, &mut params, &[0.1; 4], &mut extra);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 1,
                expected: 0,
                ..
            })
        ),
        "{r:?}"
    );

    // CpuOptimizer::step: refused, step count and params unchanged, then a valid step.
    let mut cpu = CpuOptimizer::new(Adam::default(), 4).unwrap();
    let r = cpu.step(&mut params, &[0.1; 5]);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    let mut short = vec![0.5f32; 3];
    let r = cpu.step(&mut short, &[0.1; 3]);
    assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    assert_eq!(cpu.t, 0);
    assert_eq!(params, vec![0.5; 4]);
    cpu.step(&mut params, &[0.1; 4]).unwrap();
    assert_eq!(cpu.t, 1);
    assert!(params.iter().all(|&p| p < 0.5));
}

// ---------------------------------------------------------------------------------------
// Optimizer: registering tensors and groups
// ---------------------------------------------------------------------------------------

#[test]
fn add_tensor_grad_length_differs() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Adam::default());
    let p = ctx.create_zeroed("p", 16).unwrap();
    let g = ctx.create_zeroed("g", 16).unwrap();
    let r = opt.add_tensor(
        opt.default_group(),
        BufferRange::new(&p, 0, 16),
        BufferRange::new(&g, 0, 15),
    );
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 15,
                expected: 16,
                ..
            })
        ),
        "{r:?}"
    );
    // Still registers and steps.
    opt.add_tensor(
        opt.default_group(),
        BufferRange::new(&p, 0, 16),
        BufferRange::new(&g, 0, 16),
    )
    .unwrap();
    still_steps(&ctx, &mut opt, 0);
}

#[test]
fn add_tensor_range_past_the_end() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Sgd::default());
    let p = ctx.create_zeroed("p", 16).unwrap();
    let g = ctx.create_zeroed("g", 16).unwrap();
    for (param, grad) in [
        // params run past the end (by one element, and by a lot)
        (BufferRange::new(&p, 1, 16), BufferRange::new(&g, 0, 16)),
        (BufferRange::new(&p, 1000, 4), BufferRange::new(&g, 0, 4)),
        // grads run past the end
        (BufferRange::new(&p, 0, 8), BufferRange::new(&g, 12, 8)),
    ] {
        let r = opt.add_tensor(opt.default_group(), param, grad);
        assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    }
    still_steps(&ctx, &mut opt, 0);
}

#[test]
fn add_tensor_overlapping_another() {
    let ctx = common::ctx();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let p = ctx.create_zeroed("p", 64).unwrap();
    let g = ctx.create_zeroed("g", 64).unwrap();
    let gid = opt.default_group();
    opt.add_tensor(
        gid,
        BufferRange::new(&p, 0, 16),
        BufferRange::new(&g, 0, 16),
    )
    .unwrap();
    for (what, param, grad) in [
        (
            "params overlap",
            BufferRange::new(&p, 15, 4),
            BufferRange::new(&g, 32, 4),
        ),
        (
            "grads overlap",
            BufferRange::new(&p, 32, 4),
            BufferRange::new(&g, 8, 4),
        ),
        (
            "same ranges",
            BufferRange::new(&p, 0, 16),
            BufferRange::new(&g, 0, 16),
        ),
        (
            "new grads on the old params",
            BufferRange::new(&p, 32, 4),
            BufferRange::new(&p, 4, 4),
        ),
        (
            "new params on the old grads",
            BufferRange::new(&g, 4, 4),
            BufferRange::new(&g, 32, 4),
        ),
    ] {
        let r = opt.add_tensor(gid, param, grad);
        assert!(matches!(r, Err(Error::BadRange { .. })), "{what}: {r:?}");
    }
    // Adjacent, not overlapping: accepted.
    opt.add_tensor(
        gid,
        BufferRange::new(&p, 16, 4),
        BufferRange::new(&g, 16, 4),
    )
    .unwrap();
    still_steps(&ctx, &mut opt, 0);
}

/// A tensor whose grads overlap its own params: the kernel would read gradients that other
/// invocations of the same dispatch are overwriting (a data race), or with identical ranges
/// use the parameters as their own gradient.
#[test]
fn add_tensor_grads_overlapping_own_params() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("pg", 64).unwrap();
    for (param, grad) in [
        (BufferRange::new(&b, 0, 16), BufferRange::new(&b, 0, 16)),
        (BufferRange::new(&b, 0, 16), BufferRange::new(&b, 4, 16)),
    ] {
        let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
        let r = opt.add_tensor(opt.default_group(), param, grad);
        assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    }
}

#[test]
fn add_tensor_buffer_without_storage_usage() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Adam::default());
    let no_storage = raw_buffer(
        &ctx,
        16,
        wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    );
    let ok = ctx.create_zeroed("ok", 16).unwrap();
    for (param, grad) in [
        (
            BufferRange::new(&no_storage, 0, 16),
            BufferRange::new(&ok, 0, 16),
        ),
        (
            BufferRange::new(&ok, 0, 16),
            BufferRange::new(&no_storage, 0, 16),
        ),
    ] {
        let r = opt.add_tensor(opt.default_group(), param, grad);
        match r {
            Err(Error::MissingUsage { needed, has, .. }) => {
                assert_eq!(needed, wgpu::BufferUsages::STORAGE);
                assert!(!has.contains(wgpu::BufferUsages::STORAGE));
            }
            other => panic!("expected MissingUsage, got {other:?}"),
        }
    }
    still_steps(&ctx, &mut opt, 0);
}

#[test]
fn add_tensor_to_a_group_that_does_not_exist() {
    let ctx = common::ctx();
    let (arena, mut opt) = one_tensor(&ctx, Sgd::default());
    let p = ctx.create_zeroed("p", 4).unwrap();
    let g = ctx.create_zeroed("g", 4).unwrap();
    let r = opt.add_tensor(
        GroupId(3),
        BufferRange::new(&p, 0, 4),
        BufferRange::new(&g, 0, 4),
    );
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.add_arena(&arena, GroupId(1));
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.set_group(GroupId(7), Sgd::default());
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    still_steps(&ctx, &mut opt, 0);
}

/// `set_schedule` returns a Result like `set_group`, so an unknown group should be an
/// error, as it is there.
#[test]
fn set_schedule_for_a_group_that_does_not_exist() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Sgd::default());
    let r = opt.set_schedule(GroupId(5), LrSchedule::Constant);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    still_steps(&ctx, &mut opt, 0);
}

#[test]
fn add_group_with_different_state_slots() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Adam::default());
    let ams = Adam {
        amsgrad: true,
        ..Adam::default()
    };
    let r = opt.add_group(ams.clone());
    assert!(
        matches!(r, Err(Error::IncompatibleGroup { group: 1, .. })),
        "{r:?}"
    );
    let r = opt.set_group(opt.default_group(), ams);
    assert!(
        matches!(r, Err(Error::IncompatibleGroup { group: 0, .. })),
        "{r:?}"
    );
    // Also across rule options that change the slots: SGD with and without momentum,
    // RMSprop centered or not.
    let (_a2, mut sgd) = one_tensor(&ctx, Sgd::default());
    let r = sgd.add_group(Sgd {
        momentum: 0.9,
        ..Sgd::default()
    });
    assert!(matches!(r, Err(Error::IncompatibleGroup { .. })), "{r:?}");
    let (_a3, mut rms) = one_tensor(&ctx, RmsProp::default());
    let r = rms.add_group(RmsProp {
        centered: true,
        ..RmsProp::default()
    });
    assert!(matches!(r, Err(Error::IncompatibleGroup { .. })), "{r:?}");

    // Same slots, other hyperparameters: fine.
    let g = opt
        .add_group(Adam {
            lr: 1e-2,
            ..Adam::adamw()
        })
        .unwrap();
    assert_eq!(g, GroupId(1));
    still_steps(&ctx, &mut opt, 0);
    still_steps(&ctx, &mut sgd, 0);
    still_steps(&ctx, &mut rms, 0);
}

#[test]
fn kernel_settings_after_the_first_step() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Adam::default());
    opt.step().unwrap();
    // Registering stays open (torch's add_param_group); settings that choose kernels close.
    let r = opt.set_state_format(StateFormat::blockwise8());
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.set_stochastic_rounding(Some(1));
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.set_dispatch_per_tensor(true);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.set_grad_clip(GradClip {
        max_norm: Some(1.0),
        value: None,
    });
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.set_grad_scaler(GradScaler::default());
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    // A new group after steps is fine; the optimizer plans again on its next step.
    let r = opt.add_group(Adam {
        lr: 1e-2,
        ..Adam::default()
    });
    assert!(r.is_ok(), "{r:?}");
    still_steps(&ctx, &mut opt, 1);

    // The same after prepare() without a step.
    let (_a2, mut opt2) = one_tensor(&ctx, Sgd::default());
    opt2.prepare().unwrap();
    let r = opt2.set_stochastic_rounding(Some(1));
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    still_steps(&ctx, &mut opt2, 0);
}

#[test]
fn stepping_with_no_tensors() {
    let ctx = common::ctx();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let r = opt.step();
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.step_many(3);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.prepare();
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let r = opt.record_step(&mut enc);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    drop(enc);
    let r = opt.read_state(TensorId(0), 0);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    assert_eq!(opt.step_count(), 0);
    // The refusal did not freeze it: tensors can still be registered, then it steps.
    let arena = Arena::new(&ctx, &[8]).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    still_steps(&ctx, &mut opt, 0);
}

#[test]
fn state_of_unknown_tensor_or_slot() {
    let ctx = common::ctx();
    let (_arena, mut opt) = one_tensor(&ctx, Adam::default());
    let r = opt.read_state(TensorId(1), 0);
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    let r = opt.read_state(TensorId(0), 2); // plain Adam has two slots
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    still_steps(&ctx, &mut opt, 0);
}

// ---------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------

#[test]
fn upload_and_download_refusals() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("b", 8).unwrap();

    let r = ctx.upload(&BufferRange::new(&b, 0, 8), &[1.0; 7]);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 7,
                expected: 8,
                ..
            })
        ),
        "{r:?}"
    );
    let r = ctx.upload(&BufferRange::new(&b, 4, 8), &[1.0; 8]);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let r = ctx.download(&BufferRange::new(&b, 0, 9));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");

    let no_copy_src = raw_buffer(
        &ctx,
        8,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    match ctx.download(&BufferRange::whole(&no_copy_src, 8)) {
        Err(Error::MissingUsage { needed, .. }) => {
            assert_eq!(needed, wgpu::BufferUsages::COPY_SRC)
        }
        other => panic!("expected MissingUsage, got {other:?}"),
    }
    let no_copy_dst = raw_buffer(
        &ctx,
        8,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    match ctx.upload(&BufferRange::whole(&no_copy_dst, 8), &[1.0; 8]) {
        Err(Error::MissingUsage { needed, .. }) => {
            assert_eq!(needed, wgpu::BufferUsages::COPY_DST)
        }
        other => panic!("expected MissingUsage, got {other:?}"),
    }

    // Nothing was written by the refusals; the context still works.
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 8)).unwrap(),
        vec![0.0; 8]
    );
    ctx.upload(&BufferRange::new(&b, 4, 4), &[2.0; 4]).unwrap();
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 8)).unwrap(),
        vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]
    );
}

/// A range whose end in bytes does not fit in u64 is out of bounds like any other.
#[test]
fn ranges_whose_byte_end_overflows() {
    let ctx = common::ctx();
    let b = ctx.create_zeroed("b", 8).unwrap();
    let huge = u64::MAX / 4; // (huge + 4) * 4 > u64::MAX
    let r = ctx.upload(&BufferRange::new(&b, huge, 4), &[1.0; 4]);
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let r = ctx.download(&BufferRange::new(&b, huge, 4));
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
    let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
    let r = opt.add_tensor(
        opt.default_group(),
        BufferRange::new(&b, huge, 4),
        BufferRange::new(&b, 0, 4),
    );
    assert!(matches!(r, Err(Error::BadRange { .. })), "{r:?}");
}

/// A buffer larger than the device allows is refused (the code's chosen variant is
/// TooLarge), also when its size in bytes does not fit in usize.
#[test]
fn buffers_larger_than_the_address_space() {
    let ctx = common::ctx();
    let r = ctx.create_zeroed("huge", usize::MAX / 2);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    let r = Arena::new(&ctx, &[usize::MAX / 2]);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
}

/// Fault: a buffer over `max_buffer_size` was reported as out of memory; it is a limit.
#[test]
fn buffer_larger_than_max_buffer_size() {
    let ctx = common::ctx();
    let too_big = (ctx.limits().max_buffer_size / 4 + 1) as usize;
    let r = ctx.create_zeroed("too big", too_big);
    match &r {
        Err(e @ Error::TooLarge { size, limit, .. }) => {
            assert!(size > limit);
            assert!(e.to_string().contains("max_buffer_size"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The context still works.
    let b = ctx.create_buffer("fine", &[1.0, 2.0]).unwrap();
    assert_eq!(
        ctx.download(&BufferRange::whole(&b, 2)).unwrap(),
        vec![1.0, 2.0]
    );
}

#[test]
fn no_adapter_by_that_name() {
    let r = Context::with_options(&ContextOptions {
        adapter_name: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    });
    match r {
        Err(e @ Error::NoAdapter { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
            assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
        }
        Err(other) => panic!("expected NoAdapter, got {other:?}"),
        Ok(ctx) => panic!("expected NoAdapter, got {ctx:?}"),
    }
    // The adapters that do exist are still found.
    common::ctx();
}

// ---------------------------------------------------------------------------------------
// The verifier
// ---------------------------------------------------------------------------------------

/// `verify` returns a Result; a malformed plan should be an error, not a panic.
#[test]
fn verify_malformed_plans() {
    let ctx = common::ctx();
    let no_groups: VerifyPlan<Sgd> = VerifyPlan {
        groups: vec![],
        tensors: vec![(0, 4)],
        steps: 1,
        seed: 1,
        state_format: gpu_optim::StateFormat::F32,
        dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
        clip: None,
    };
    assert!(verify(&ctx, &no_groups).is_err());
    let bad_group = VerifyPlan {
        groups: vec![Sgd::default()],
        tensors: vec![(3, 4)],
        steps: 1,
        seed: 1,
        state_format: gpu_optim::StateFormat::F32,
        dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
        clip: None,
    };
    assert!(verify(&ctx, &bad_group).is_err());
}

#[test]
fn verify_refuses_invalid_rules() {
    let ctx = common::ctx();
    let r = verify(
        &ctx,
        &VerifyPlan::flat(
            Adam {
                betas: (1.0, 0.999),
                ..Adam::default()
            },
            8,
            1,
        ),
    );
    assert!(
        matches!(r, Err(Error::InvalidHyperparameter { .. })),
        "{r:?}"
    );
    let r = verify(
        &ctx,
        &VerifyPlan {
            groups: vec![
                Adam::default(),
                Adam {
                    amsgrad: true,
                    ..Adam::default()
                },
            ],
            tensors: vec![(0, 4), (1, 4)],
            steps: 1,
            seed: 1,
            state_format: gpu_optim::StateFormat::F32,
            dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
            clip: None,
        },
    );
    assert!(matches!(r, Err(Error::IncompatibleGroup { .. })), "{r:?}");
}

/// A lost device (here: destroyed on purpose) is reported as an error by the next step,
/// never a panic, and the step count does not advance.
#[test]
fn device_loss_is_an_error() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[1000]).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    ctx.wait().unwrap();
    ctx.device().destroy();
    let err = opt.step().unwrap_err();
    assert!(
        matches!(err, Error::DeviceLost(_) | Error::Wgpu { .. }),
        "unexpected error {err:?}"
    );
    assert_eq!(opt.step_count(), 1);
    assert!(ctx.download(&arena.param(0)).is_err());
}

/// The public comparison refuses buffers of different lengths instead of panicking.
#[test]
fn compare_with_different_lengths() {
    let r = gpu_optim::verify::compare("params", &[1.0, 2.0], &[1.0]);
    assert!(
        matches!(
            r,
            Err(Error::LengthMismatch {
                got: 2,
                expected: 1,
                ..
            })
        ),
        "{r:?}"
    );
}
