//! The verifier: `verify` refuses malformed plans, invalid rules (`InvalidHyperparameter`) and
//! incompatible groups (`IncompatibleGroup`); `verify::compare` refuses buffers of different
//! lengths (`LengthMismatch`). Never a panic.

use gpu_optim::*;

use crate::common;

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
