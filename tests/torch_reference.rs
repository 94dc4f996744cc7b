//! gpu-optim against torch.optim itself: expected values produced by torch 2.15.0+cu132
//! (`python3 tests/torch_reference.py`, single-tensor path, foreach=False, CPU, f32): 5 steps
//! from fixed params, with grads `((7i + 3t) mod 11 − 5) / 8` (exact in f32).
//!
//! Tolerance: the same bound the verifier uses, `rounding_ops × steps` ulps scaled by
//! max(|ref|, rms) (see src/verify.rs): torch's vectorized CPU kernels may fuse or reorder
//! a few operations (e.g. FMA in addcmul/lerp), which moves results by an ulp or so per
//! operation. Both the CPU twin and the GPU are checked.

mod common;

use gpu_optim::verify::compare;
use gpu_optim::*;

const N: usize = 6;
const T: u64 = 5;
const P0: [f32; N] = [0.5, -0.25, 1.5, -2.0, 0.125, 3.0];

fn grad(i: usize, t: u64) -> f32 {
    (((i as u64 * 7 + t * 3) % 11) as f32 - 5.0) * 0.125
}

struct Case {
    name: &'static str,
    rule: AnyRule,
    params: [f32; N],
    state: Vec<(&'static str, [f32; N])>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "sgd",
            rule: AnyRule::Sgd(Sgd::default()),
            params: [
                f32::from_bits(0x3f001062),
                f32::from_bits(0xbe800000),
                f32::from_bits(0x3fbff7cf),
                f32::from_bits(0xbfffe354),
                f32::from_bits(0x3dfe76ca),
                f32::from_bits(0x40400625),
            ],
            state: vec![],
        },
        Case {
            name: "sgd_momentum",
            rule: AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.1,
                weight_decay: 0.01,
                ..Sgd::default()
            }),
            params: [
                f32::from_bits(0x3f083e56),
                f32::from_bits(0xbec9b778),
                f32::from_bits(0x3fb2cf7c),
                f32::from_bits(0xbfe46e1e),
                f32::from_bits(0x3baf4987),
                f32::from_bits(0x404200bd),
            ],
            state: vec![(
                "momentum_buffer",
                [
                    f32::from_bits(0xbe5cef77),
                    f32::from_bits(0xbddbdeae),
                    f32::from_bits(0x3e64ee0e),
                    f32::from_bits(0xbf46b7d5),
                    f32::from_bits(0x3f2d554b),
                    f32::from_bits(0xbe3ff50d),
                ],
            )],
        },
        Case {
            name: "sgd_nesterov_max",
            rule: AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                maximize: true,
                ..Sgd::default()
            }),
            params: [
                f32::from_bits(0x3ee4bc4a),
                f32::from_bits(0xbe02e8fa),
                f32::from_bits(0x3fcd70a2),
                f32::from_bits(0xc010df2f),
                f32::from_bits(0x3e98984f),
                f32::from_bits(0x40394199),
            ],
            state: vec![(
                "momentum_buffer",
                [
                    f32::from_bits(0x3e78bac6),
                    f32::from_bits(0x3e1a6e98),
                    f32::from_bits(0xbe374f0c),
                    f32::from_bits(0x3f4139c1),
                    f32::from_bits(0xbf36594b),
                    f32::from_bits(0x3eaa6e98),
                ],
            )],
        },
        Case {
            name: "adagrad",
            rule: AnyRule::Adagrad(Adagrad {
                lr: 0.1,
                lr_decay: 0.01,
                initial_accumulator_value: 0.1,
                weight_decay: 0.01,
                ..Adagrad::default()
            }),
            params: [
                f32::from_bits(0x3f070735),
                f32::from_bits(0xbe8dba29),
                f32::from_bits(0x3fb5e383),
                f32::from_bits(0xbff03a77),
                f32::from_bits(0x3d02fb17),
                f32::from_bits(0x403faf3a),
            ],
            state: vec![(
                "sum",
                [
                    f32::from_bits(0x3f313793),
                    f32::from_bits(0x3f94fbe7),
                    f32::from_bits(0x3f33f9b4),
                    f32::from_bits(0x3f5eff4b),
                    f32::from_bits(0x3f8918ac),
                    f32::from_bits(0x3f31438a),
                ],
            )],
        },
        Case {
            name: "adadelta",
            rule: AnyRule::Adadelta(Adadelta {
                weight_decay: 0.01,
                ..Adadelta::default()
            }),
            params: [
                f32::from_bits(0x3f00955e),
                f32::from_bits(0xbe7fa25b),
                f32::from_bits(0x3fbf6416),
                f32::from_bits(0xbfff2295),
                f32::from_bits(0x3df6478f),
                f32::from_bits(0x403fe427),
            ],
            state: vec![
                (
                    "square_avg",
                    [
                        f32::from_bits(0x3d4a07a6),
                        f32::from_bits(0x3db392d9),
                        f32::from_bits(0x3d43be09),
                        f32::from_bits(0x3d858a58),
                        f32::from_bits(0x3da56606),
                        f32::from_bits(0x3d4262b7),
                    ],
                ),
                (
                    "acc_delta",
                    [
                        f32::from_bits(0x36948576),
                        f32::from_bits(0x3641479c),
                        f32::from_bits(0x36922c3c),
                        f32::from_bits(0x366cbe36),
                        f32::from_bits(0x36601e64),
                        f32::from_bits(0x36ad9385),
                    ],
                ),
            ],
        },
        Case {
            name: "rmsprop",
            rule: AnyRule::RmsProp(RmsProp::default()),
            params: [
                f32::from_bits(0x3f0ccdf2),
                f32::from_bits(0xbe911570),
                f32::from_bits(0x3fadba4f),
                f32::from_bits(0xbfeebadf),
                f32::from_bits(0x3c83b02c),
                f32::from_bits(0x404025df),
            ],
            state: vec![(
                "square_avg",
                [
                    f32::from_bits(0x3bbf26cb),
                    f32::from_bits(0x3c2aa4b8),
                    f32::from_bits(0x3bbe3e65),
                    f32::from_bits(0x3beca094),
                    f32::from_bits(0x3c1bbc72),
                    f32::from_bits(0x3bc38f32),
                ],
            )],
        },
        Case {
            name: "rmsprop_centered_momentum",
            rule: AnyRule::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                weight_decay: 0.01,
                ..RmsProp::default()
            }),
            params: [
                f32::from_bits(0x3f264c61),
                f32::from_bits(0xbf01a373),
                f32::from_bits(0x3f6ef775),
                f32::from_bits(0xbfc9ba7e),
                f32::from_bits(0xbdfc0513),
                f32::from_bits(0x4020543d),
            ],
            state: vec![
                (
                    "square_avg",
                    [
                        f32::from_bits(0x3bbe8893),
                        f32::from_bits(0x3c2b170b),
                        f32::from_bits(0x3bc10868),
                        f32::from_bits(0x3bf78ef9),
                        f32::from_bits(0x3c1bd64c),
                        f32::from_bits(0x3bbeae28),
                    ],
                ),
                (
                    "grad_avg",
                    [
                        f32::from_bits(0xbb1012d7),
                        f32::from_bits(0xb9bce5a0),
                        f32::from_bits(0x3b4655fb),
                        f32::from_bits(0xbc1bded0),
                        f32::from_bits(0x3bf492e5),
                        f32::from_bits(0xbb1ab4c5),
                    ],
                ),
                (
                    "momentum_buffer",
                    [
                        f32::from_bits(0xc05c36a0),
                        f32::from_bits(0x3f385530),
                        f32::from_bits(0x4122d890),
                        f32::from_bits(0xc139032a),
                        f32::from_bits(0x4116e0be),
                        f32::from_bits(0x40cf62f5),
                    ],
                ),
            ],
        },
        Case {
            name: "adam",
            rule: AnyRule::Adam(Adam::default()),
            params: [
                f32::from_bits(0x3f0046db),
                f32::from_bits(0xbe80d61d),
                f32::from_bits(0x3fbfbea9),
                f32::from_bits(0xbfffaf4b),
                f32::from_bits(0x3dfd6893),
                f32::from_bits(0x4040020b),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0xbcc6fbd3),
                        f32::from_bits(0xbc77175d),
                        f32::from_bits(0x3c92a5a6),
                        f32::from_bits(0xbd9a949b),
                        f32::from_bits(0x3d91e109),
                        f32::from_bits(0xbd085879),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a1b5fae),
                        f32::from_bits(0x3a8afc60),
                        f32::from_bits(0x3a1b4cd6),
                        f32::from_bits(0x3a40304d),
                        f32::from_bits(0x3a7d7823),
                        f32::from_bits(0x3a1f6996),
                    ],
                ),
            ],
        },
        Case {
            name: "adam_l2",
            rule: AnyRule::Adam(Adam {
                lr: 0.01,
                weight_decay: 0.1,
                ..Adam::default()
            }),
            params: [
                f32::from_bits(0x3f011b56),
                f32::from_bits(0xbe873b71),
                f32::from_bits(0x3fbc0156),
                f32::from_bits(0xbffb223c),
                f32::from_bits(0x3de3ed5f),
                f32::from_bits(0x403de815),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0xbb6a952b),
                        f32::from_bits(0xbcd2f201),
                        f32::from_bits(0x3da10652),
                        f32::from_bits(0xbe206637),
                        f32::from_bits(0x3d9bb355),
                        f32::from_bits(0x3db5f5be),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a185b6d),
                        f32::from_bits(0x3a8bab82),
                        f32::from_bits(0x3a4bc34e),
                        f32::from_bits(0x3aa73aa2),
                        f32::from_bits(0x3a813b4f),
                        f32::from_bits(0x3a5987a2),
                    ],
                ),
            ],
        },
        Case {
            name: "adamw",
            rule: AnyRule::Adam(Adam::adamw()),
            params: [
                f32::from_bits(0x3f004537),
                f32::from_bits(0xbe80d478),
                f32::from_bits(0x3fbfbc33),
                f32::from_bits(0xbfffac03),
                f32::from_bits(0x3dfd654f),
                f32::from_bits(0x403fff95),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0xbcc6fbd3),
                        f32::from_bits(0xbc77175d),
                        f32::from_bits(0x3c92a5a6),
                        f32::from_bits(0xbd9a949b),
                        f32::from_bits(0x3d91e109),
                        f32::from_bits(0xbd085879),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a1b5fae),
                        f32::from_bits(0x3a8afc60),
                        f32::from_bits(0x3a1b4cd6),
                        f32::from_bits(0x3a40304d),
                        f32::from_bits(0x3a7d7823),
                        f32::from_bits(0x3a1f6996),
                    ],
                ),
            ],
        },
        Case {
            name: "adam_amsgrad_max",
            rule: AnyRule::Adam(Adam {
                amsgrad: true,
                maximize: true,
                ..Adam::default()
            }),
            params: [
                f32::from_bits(0x3eff7247),
                f32::from_bits(0xbe7e53c9),
                f32::from_bits(0x3fc04157),
                f32::from_bits(0xc0002859),
                f32::from_bits(0x3e014bb7),
                f32::from_bits(0x403ffdf5),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cc6fbd3),
                        f32::from_bits(0x3c77175d),
                        f32::from_bits(0xbc92a5a6),
                        f32::from_bits(0x3d9a949b),
                        f32::from_bits(0xbd91e109),
                        f32::from_bits(0x3d085879),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a1b5fae),
                        f32::from_bits(0x3a8afc60),
                        f32::from_bits(0x3a1b4cd6),
                        f32::from_bits(0x3a40304d),
                        f32::from_bits(0x3a7d7823),
                        f32::from_bits(0x3a1f6996),
                    ],
                ),
                (
                    "max_exp_avg_sq",
                    [
                        f32::from_bits(0x3a1b5fae),
                        f32::from_bits(0x3a8afc60),
                        f32::from_bits(0x3a1b4cd6),
                        f32::from_bits(0x3a40304d),
                        f32::from_bits(0x3a7d7823),
                        f32::from_bits(0x3a1f6996),
                    ],
                ),
            ],
        },
    ]
}

fn tolerance(rule: &AnyRule) -> f64 {
    rule.rounding_ops() as f64 * T as f64
}

#[test]
fn cpu_reference_matches_torch() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut cpu = CpuOptimizer::new(c.rule.clone(), N).unwrap();
        let mut p = P0;
        for t in 1..=T {
            let g: Vec<f32> = (0..N).map(|i| grad(i, t)).collect();
            cpu.step(&mut p, &g).unwrap();
        }
        let tol = tolerance(&c.rule);
        let mut checks = vec![compare("params", &p, &c.params)];
        for (name, want) in &c.state {
            let k = c.rule.state_slots().iter().position(|s| s == name).unwrap();
            checks.push(compare(name, &cpu.state[k], want));
        }
        for e in checks {
            eprintln!(
                "{:<28} {:<16} max_ulps {:>3} scaled {:.2}",
                c.name, e.name, e.max_ulps, e.max_scaled
            );
            if e.max_scaled > tol || e.nonfinite_mismatches > 0 {
                failures.push(format!("{}: {:?}", c.name, e));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn gpu_matches_torch() {
    let ctx = common::ctx();
    for c in cases() {
        let arena = Arena::new(&ctx, &[N]).unwrap();
        ctx.upload(&arena.param(0), &P0).unwrap();
        let mut opt = Optimizer::new(&ctx, c.rule.clone()).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        for t in 1..=T {
            let g: Vec<f32> = (0..N).map(|i| grad(i, t)).collect();
            ctx.upload(&arena.grad(0), &g).unwrap();
            opt.step().unwrap();
        }
        let e = compare("params", &ctx.download(&arena.param(0)).unwrap(), &c.params);
        assert!(e.max_scaled <= tolerance(&c.rule), "{}: {e:?}", c.name);
    }
}
