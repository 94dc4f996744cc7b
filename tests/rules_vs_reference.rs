//! Every rule and every option combination, GPU kernel vs CPU twin, through `verify`.
//!
//! One table of rule configurations and one loop of checks (as optax's tests do): each
//! configuration runs 20 steps at every length in `LENS`, which covers a single element,
//! lengths below, at and around a vec4 (1, 3, 4), either side of a 1024-element boundary
//! (1023, 1025; the scalar and the partial last vector), whole 1024-element tiles (4096:
//! the update tests no range, `KernelVariant::exact`), and a length that needs many
//! workgroups and ends in a partial vector (100_003).
//!
//! ## Why `report.passed()` is the right check
//! `VerifyReport::passed` compares each buffer's max *scaled* error (|gpu − cpu| in units
//! of ε₃₂ · max(|cpu|, rms(cpu)), params and every state slot) with a tolerance of
//! `rounding_ops × steps` (see the module docs of `src/verify.rs`). That tolerance is not
//! fitted to any run: WGSL allows each rounded operation on an element's dependency chain
//! to differ from the CPU's correctly rounded one by about an ulp (division and sqrt by up
//! to ~2.5, counted as 3), so one step may differ by `rounding_ops` ulps, and the
//! difference propagates at most linearly through the state, hence `× steps`. A bug in a
//! kernel (a wrong operand, a missed option, a wrong lane mask, a state slot mixed up)
//! produces errors of the order of the values themselves (~10⁶–10⁷ scaled ulps), far
//! beyond the tolerance; a non-finite value on one side only fails `passed()` as well.
//! On lavapipe the measured figures are far below the bound (typically 0: lavapipe
//! rounds like the CPU); each run prints them.

mod common;

use gpu_optim::verify::{compare, BufferError};
use gpu_optim::*;

const LENS: [usize; 7] = [1, 3, 4, 1023, 1025, 4096, 100_003];
const STEPS: u32 = 20;

/// The table: (label, rule configuration). Everything not named is at torch's default.
fn table() -> Vec<(&'static str, AnyRule)> {
    use AnyRule as A;
    vec![
        // SGD
        ("sgd plain", A::Sgd(Sgd::default())),
        (
            "sgd momentum",
            A::Sgd(Sgd {
                momentum: 0.9,
                ..Sgd::default()
            }),
        ),
        (
            "sgd momentum dampening=0.1",
            A::Sgd(Sgd {
                momentum: 0.9,
                dampening: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            "sgd nesterov",
            A::Sgd(Sgd {
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            }),
        ),
        (
            "sgd weight_decay",
            A::Sgd(Sgd {
                weight_decay: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            "sgd momentum weight_decay",
            A::Sgd(Sgd {
                momentum: 0.9,
                weight_decay: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            "sgd maximize",
            A::Sgd(Sgd {
                maximize: true,
                ..Sgd::default()
            }),
        ),
        (
            "sgd nesterov maximize",
            A::Sgd(Sgd {
                momentum: 0.9,
                nesterov: true,
                maximize: true,
                ..Sgd::default()
            }),
        ),
        // Adagrad
        ("adagrad plain", A::Adagrad(Adagrad::default())),
        (
            "adagrad lr_decay",
            A::Adagrad(Adagrad {
                lr_decay: 0.05,
                ..Adagrad::default()
            }),
        ),
        (
            "adagrad initial_accumulator_value=0.1",
            A::Adagrad(Adagrad {
                initial_accumulator_value: 0.1,
                ..Adagrad::default()
            }),
        ),
        (
            "adagrad weight_decay",
            A::Adagrad(Adagrad {
                weight_decay: 0.1,
                ..Adagrad::default()
            }),
        ),
        (
            "adagrad maximize",
            A::Adagrad(Adagrad {
                maximize: true,
                ..Adagrad::default()
            }),
        ),
        // Adadelta
        ("adadelta plain", A::Adadelta(Adadelta::default())),
        (
            "adadelta weight_decay",
            A::Adadelta(Adadelta {
                weight_decay: 0.1,
                ..Adadelta::default()
            }),
        ),
        (
            "adadelta maximize",
            A::Adadelta(Adadelta {
                maximize: true,
                ..Adadelta::default()
            }),
        ),
        (
            "adadelta rho=0.5",
            A::Adadelta(Adadelta {
                rho: 0.5,
                ..Adadelta::default()
            }),
        ),
        // RMSprop
        ("rmsprop plain", A::RmsProp(RmsProp::default())),
        (
            "rmsprop centered",
            A::RmsProp(RmsProp {
                centered: true,
                ..RmsProp::default()
            }),
        ),
        (
            "rmsprop momentum",
            A::RmsProp(RmsProp {
                momentum: 0.9,
                ..RmsProp::default()
            }),
        ),
        (
            "rmsprop centered+momentum",
            A::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                ..RmsProp::default()
            }),
        ),
        (
            "rmsprop weight_decay",
            A::RmsProp(RmsProp {
                weight_decay: 0.1,
                ..RmsProp::default()
            }),
        ),
        (
            "rmsprop maximize",
            A::RmsProp(RmsProp {
                maximize: true,
                ..RmsProp::default()
            }),
        ),
        (
            // lerp weight 1 − α = 0.7 ≥ 0.5: the other branch of torch's lerp.
            "rmsprop centered alpha=0.3",
            A::RmsProp(RmsProp {
                centered: true,
                alpha: 0.3,
                ..RmsProp::default()
            }),
        ),
        // Adam
        ("adam plain", A::Adam(Adam::default())),
        (
            "adam weight_decay (coupled)",
            A::Adam(Adam {
                weight_decay: 0.1,
                ..Adam::default()
            }),
        ),
        ("adamw", A::Adam(Adam::adamw())),
        (
            "adam amsgrad",
            A::Adam(Adam {
                amsgrad: true,
                ..Adam::default()
            }),
        ),
        (
            "adam maximize",
            A::Adam(Adam {
                maximize: true,
                ..Adam::default()
            }),
        ),
        (
            "adamw maximize",
            A::Adam(Adam {
                maximize: true,
                ..Adam::adamw()
            }),
        ),
        (
            "adamw amsgrad",
            A::Adam(Adam {
                amsgrad: true,
                ..Adam::adamw()
            }),
        ),
        (
            // lerp weight 1 − β1 = 0.7 ≥ 0.5: the other branch of torch's lerp.
            "adam betas=(0.3, 0.999)",
            A::Adam(Adam {
                betas: (0.3, 0.999),
                ..Adam::default()
            }),
        ),
        // Beyond the classics.
        ("adamax", A::Adamax(Adamax::default())),
        (
            "adamax wd maximize",
            A::Adamax(Adamax {
                weight_decay: 0.1,
                maximize: true,
                ..Adamax::default()
            }),
        ),
        ("nadam", A::NAdam(NAdam::default())),
        (
            "nadamw",
            A::NAdam(NAdam {
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                ..NAdam::default()
            }),
        ),
        ("radam (rectified from step 7)", A::RAdam(RAdam::default())),
        (
            "radamw maximize",
            A::RAdam(RAdam {
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                maximize: true,
                ..RAdam::default()
            }),
        ),
        ("lion", A::Lion(Lion::default())),
        (
            "lion wd maximize",
            A::Lion(Lion {
                lr: 1e-3,
                weight_decay: 1.0,
                maximize: true,
                ..Lion::default()
            }),
        ),
    ]
}

/// Prints every report and fails listing those that did not pass (all of them, not just
/// the first), so one run shows the whole picture.
fn check_all(results: Vec<(String, VerifyReport)>) {
    let mut failed = Vec::new();
    let mut worst_ratio: f64 = 0.0;
    for (label, r) in &results {
        let w = r.worst();
        let ratio = w.max_scaled / r.tolerance;
        worst_ratio = worst_ratio.max(ratio);
        eprintln!(
            "{label:<45} worst {:<16} scaled {:>8.3} / tolerance {:>5} ({:.1e} of it)",
            w.name, w.max_scaled, r.tolerance, ratio
        );
        if !r.passed() {
            failed.push(format!("{label}:\n{r}"));
        }
    }
    eprintln!(
        "{} configurations; the worst used {:.1e} of its tolerance",
        results.len(),
        worst_ratio
    );
    assert!(
        failed.is_empty(),
        "{} of {} configurations failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

#[test]
fn every_rule_and_option_matches_its_cpu_twin_at_every_length() {
    let ctx = common::ctx();
    eprintln!("adapter: {:?}", ctx.adapter_info());
    let table = table();
    // The table spans every rule kernel (AnyRule::catalog's kernels) and every flag.
    for kernel in ["sgd", "adagrad", "adadelta", "rmsprop", "adam"] {
        assert!(
            table.iter().any(|(_, r)| r.kernel().name == kernel),
            "table lacks {kernel}"
        );
    }
    let mut results = Vec::new();
    for (label, rule) in &table {
        rule.validate()
            .unwrap_or_else(|e| panic!("{label}: table entry invalid: {e}"));
        for len in LENS {
            let plan = VerifyPlan::flat(rule.clone(), len, STEPS);
            let r = verify(&ctx, &plan).unwrap_or_else(|e| panic!("{label} len {len}: {e}"));
            assert_eq!(r.steps, STEPS);
            assert_eq!(r.tolerance, (rule.rounding_ops() * STEPS) as f64);
            assert_eq!(r.buffers.len(), 1 + rule.state_slots().len(), "{label}");
            assert!(r.buffers.iter().all(|b| b.len == len), "{label} len {len}");
            results.push((format!("{label} (len {len})"), r));
        }
    }
    check_all(results);
}

/// Two param groups with different lr and weight_decay, four tensors of awkward lengths
/// in one arena, alternating between the groups: every rule kernel.
#[test]
fn multi_tensor_multi_group_matches_its_cpu_twin() {
    let ctx = common::ctx();
    let lens = [5usize, 1024, 3, 70_001];
    let tensors: Vec<(usize, usize)> = lens.iter().enumerate().map(|(i, &n)| (i % 2, n)).collect();
    use AnyRule as A;
    let pairs: Vec<(&str, AnyRule, AnyRule)> = vec![
        (
            "sgd momentum",
            A::Sgd(Sgd {
                lr: 1e-2,
                momentum: 0.9,
                ..Sgd::default()
            }),
            A::Sgd(Sgd {
                lr: 3e-3,
                momentum: 0.9,
                weight_decay: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            "adagrad",
            A::Adagrad(Adagrad::default()),
            A::Adagrad(Adagrad {
                lr: 0.05,
                weight_decay: 0.2,
                ..Adagrad::default()
            }),
        ),
        (
            "adadelta",
            A::Adadelta(Adadelta::default()),
            A::Adadelta(Adadelta {
                lr: 0.5,
                weight_decay: 0.2,
                ..Adadelta::default()
            }),
        ),
        (
            "rmsprop centered+momentum",
            A::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                ..RmsProp::default()
            }),
            A::RmsProp(RmsProp {
                lr: 1e-3,
                centered: true,
                momentum: 0.9,
                weight_decay: 0.1,
                ..RmsProp::default()
            }),
        ),
        (
            "adam",
            A::Adam(Adam::default()),
            A::Adam(Adam {
                lr: 3e-3,
                weight_decay: 0.1,
                ..Adam::default()
            }),
        ),
        (
            "adamw",
            A::Adam(Adam::adamw()),
            A::Adam(Adam {
                lr: 1e-2,
                weight_decay: 0.3,
                ..Adam::adamw()
            }),
        ),
    ];
    let mut results = Vec::new();
    for (label, g0, g1) in pairs {
        assert_eq!(g0.state_slots(), g1.state_slots(), "{label}");
        let plan = VerifyPlan {
            groups: vec![g0, g1],
            tensors: tensors.clone(),
            steps: STEPS,
            seed: 0xfeed,
            state_format: gpu_optim::StateFormat::F32,
            dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
            clip: None,
        };
        let r = verify(&ctx, &plan).unwrap_or_else(|e| panic!("{label}: {e}"));
        let total: usize = lens.iter().sum();
        assert!(r.buffers.iter().all(|b| b.len == total), "{label}");
        results.push((format!("{label} (2 groups, 4 tensors)"), r));
    }
    check_all(results);
}

/// `passed()` is not vacuous: a report whose buffer exceeds the tolerance by one scaled ulp,
/// or has one non-finite mismatch, fails; and `compare` measures one ulp at 1.0 as one
/// scaled ulp.
#[test]
fn passed_rejects_errors_beyond_the_tolerance() {
    let one_ulp = compare("p", &[1.0 + f32::EPSILON], &[1.0]).unwrap();
    assert_eq!(one_ulp.max_ulps, 1);
    assert!((one_ulp.max_scaled - 1.0).abs() < 1e-12, "{one_ulp:?}");
    let report = |b: BufferError| VerifyReport {
        rule: "test".into(),
        steps: 1,
        tolerance: 8.0,
        buffers: vec![b],
    };
    let within = BufferError {
        max_scaled: 8.0,
        ..Default::default()
    };
    assert!(report(within.clone()).passed());
    assert!(!report(BufferError {
        max_scaled: 9.0,
        ..within.clone()
    })
    .passed());
    assert!(!report(BufferError {
        nonfinite_mismatches: 1,
        ..within
    })
    .passed());
    let nan = compare("p", &[f32::NAN, 1.0], &[0.5, 1.0]).unwrap();
    assert_eq!(nan.nonfinite_mismatches, 1);
}

/// LAMB's trust ratio is per tensor: several tensors of very different norms in one
/// batched dispatch, each must get its own ratio (compared with the CPU twin, which runs
/// each tensor separately), with and without clipping before it.
#[test]
fn lamb_trust_ratio_per_tensor() {
    let ctx = common::ctx();
    for clip in [
        None,
        Some(GradClip {
            max_norm: Some(2.0),
            value: None,
        }),
    ] {
        let plan = VerifyPlan {
            groups: vec![
                Lamb {
                    lr: 1e-2,
                    weight_decay: 0.01,
                    ..Lamb::default()
                },
                Lamb {
                    lr: 3e-3,
                    ..Lamb::default()
                },
            ],
            tensors: vec![(0, 5), (1, 4096), (0, 70_001), (1, 3), (0, 1025)],
            steps: 20,
            seed: 77,
            state_format: gpu_optim::StateFormat::F32,
            dtypes: (gpu_optim::Dtype::F32, gpu_optim::Dtype::F32),
            clip,
        };
        let r = verify(&ctx, &plan).unwrap();
        assert!(r.passed(), "{clip:?}: {r}");
    }
}
