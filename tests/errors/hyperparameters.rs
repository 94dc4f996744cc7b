//! Hyperparameters: an invalid rule is refused with `InvalidHyperparameter` (naming the rule and
//! torch's hyperparameter) by `validate`, `CpuOptimizer::new`, `Optimizer::new`, `add_group`
//! and `set_group`, before and after the first step.

use gpu_optim::*;

use crate::{common, one_tensor, still_steps};

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
