//! Registering tensors and groups on an `Optimizer`: lengths (`LengthMismatch`), ranges and
//! overlaps (`BadRange`), usages (`MissingUsage`), incompatible groups (`IncompatibleGroup`),
//! unknown groups, settings frozen after the first step, stepping with no tensors, unknown
//! tensor or slot (`InvalidState`); after each refusal the optimizer still steps.

use gpu_optim::*;

use crate::{common, one_tensor, raw_buffer, still_steps};

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
    // Group 0 against its own current rule, said so (a newcomer read "param group 0 is
    // incompatible with group 0").
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("group 0's current rule"), "{msg}");
    assert!(!msg.contains("with group 0"), "{msg}");
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
