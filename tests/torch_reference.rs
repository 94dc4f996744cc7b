//! gpu-optim against torch.optim itself: expected values produced by torch 2.15.0+cu132
//! (`python3 tests/torch_reference.py`, single-tensor path, foreach=False, CPU, f32): 8 steps
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
const T: u64 = 8;
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
                f32::from_bits(0x3effdf3a),
                f32::from_bits(0xbe803127),
                f32::from_bits(0x3fbfef9e),
                f32::from_bits(0xbfffe76d),
                f32::from_bits(0x3dfe76ca),
                f32::from_bits(0x40400831),
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
                f32::from_bits(0x3ee56d6d),
                f32::from_bits(0xbebe1bbc),
                f32::from_bits(0x3f9fa788),
                f32::from_bits(0xbfd426a0),
                f32::from_bits(0xbdd0ec03),
                f32::from_bits(0x4042574e),
            ],
            state: vec![(
                "momentum_buffer",
                [
                    f32::from_bits(0x3e530a0e),
                    f32::from_bits(0x3e904e5a),
                    f32::from_bits(0x3eb1cc51),
                    f32::from_bits(0xbf0fe975),
                    f32::from_bits(0x3f0ea247),
                    f32::from_bits(0xbe5d4ebb),
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
                f32::from_bits(0x3f13d903),
                f32::from_bits(0xbdf1c277),
                f32::from_bits(0x3fe0f946),
                f32::from_bits(0xc01621e2),
                f32::from_bits(0x3ecb19d6),
                f32::from_bits(0x40356481),
            ],
            state: vec![(
                "momentum_buffer",
                [
                    f32::from_bits(0xbe5a0940),
                    f32::from_bits(0xbe99a12a),
                    f32::from_bits(0xbe99374f),
                    f32::from_bits(0x3eff7b9f),
                    f32::from_bits(0xbf172c1a),
                    f32::from_bits(0x3ed348f2),
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
                f32::from_bits(0x3ef30845),
                f32::from_bits(0xbe9b6784),
                f32::from_bits(0x3fb2437d),
                f32::from_bits(0xbff1d497),
                f32::from_bits(0x3d0be790),
                f32::from_bits(0x403f8741),
            ],
            state: vec![(
                "sum",
                [
                    f32::from_bits(0x3fa55404),
                    f32::from_bits(0x3fbebe13),
                    f32::from_bits(0x3f9f06ef),
                    f32::from_bits(0x3fb1176c),
                    f32::from_bits(0x3fad20a8),
                    f32::from_bits(0x3f9a1506),
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
                f32::from_bits(0x3efef3f4),
                f32::from_bits(0xbe80f7e0),
                f32::from_bits(0x3fbf248b),
                f32::from_bits(0xbfff3841),
                f32::from_bits(0x3df62755),
                f32::from_bits(0x403fef11),
            ],
            state: vec![
                (
                    "square_avg",
                    [
                        f32::from_bits(0x3db9a143),
                        f32::from_bits(0x3dc2f1a2),
                        f32::from_bits(0x3da33b7c),
                        f32::from_bits(0x3dc50872),
                        f32::from_bits(0x3dacbe55),
                        f32::from_bits(0x3da00683),
                    ],
                ),
                (
                    "acc_delta",
                    [
                        f32::from_bits(0x36f67943),
                        f32::from_bits(0x36612d9b),
                        f32::from_bits(0x36d2f5f4),
                        f32::from_bits(0x36b040ef),
                        f32::from_bits(0x367a3c60),
                        f32::from_bits(0x3701e561),
                    ],
                ),
            ],
        },
        Case {
            name: "rmsprop",
            rule: AnyRule::RmsProp(RmsProp::default()),
            params: [
                f32::from_bits(0x3efbdbb8),
                f32::from_bits(0xbea11682),
                f32::from_bits(0x3faa2b7c),
                f32::from_bits(0xbff14792),
                f32::from_bits(0x3c92b82c),
                f32::from_bits(0x4040804c),
            ],
            state: vec![(
                "square_avg",
                [
                    f32::from_bits(0x3c3d2c5c),
                    f32::from_bits(0x3c5b1b14),
                    f32::from_bits(0x3c31d528),
                    f32::from_bits(0x3c46d1ae),
                    f32::from_bits(0x3c44bb6a),
                    f32::from_bits(0x3c32217c),
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
                f32::from_bits(0x3f101139),
                f32::from_bits(0xbf05c838),
                f32::from_bits(0x3f13b34b),
                f32::from_bits(0xbfaff327),
                f32::from_bits(0xbe93df4e),
                f32::from_bits(0x40129170),
            ],
            state: vec![
                (
                    "square_avg",
                    [
                        f32::from_bits(0x3c3e0289),
                        f32::from_bits(0x3c5af771),
                        f32::from_bits(0x3c342506),
                        f32::from_bits(0x3c4b91b9),
                        f32::from_bits(0x3c44b70f),
                        f32::from_bits(0x3c2f3cc1),
                    ],
                ),
                (
                    "grad_avg",
                    [
                        f32::from_bits(0x3b40bedf),
                        f32::from_bits(0x3b57b258),
                        f32::from_bits(0x3bb7050f),
                        f32::from_bits(0xbc0b4dbd),
                        f32::from_bits(0x3bee18c5),
                        f32::from_bits(0xbb3c64e3),
                    ],
                ),
                (
                    "momentum_buffer",
                    [
                        f32::from_bits(0x40108ba2),
                        f32::from_bits(0x40778ce2),
                        f32::from_bits(0x4118abcd),
                        f32::from_bits(0xc0f4937e),
                        f32::from_bits(0x40eadf1d),
                        f32::from_bits(0x4086a9b9),
                    ],
                ),
            ],
        },
        Case {
            name: "adam",
            rule: AnyRule::Adam(Adam::default()),
            params: [
                f32::from_bits(0x3f0029f6),
                f32::from_bits(0xbe80bfed),
                f32::from_bits(0x3fbfa74b),
                f32::from_bits(0xbfff9d16),
                f32::from_bits(0x3dfc5d50),
                f32::from_bits(0x404005e0),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
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
                f32::from_bits(0x3efdf485),
                f32::from_bits(0xbe856bdc),
                f32::from_bits(0x3fb9f5f5),
                f32::from_bits(0xbff8ef1c),
                f32::from_bits(0x3dd7d513),
                f32::from_bits(0x403ccfcd),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3d4cb96c),
                        f32::from_bits(0x3c77f685),
                        f32::from_bits(0x3de91d16),
                        f32::from_bits(0xbe25f349),
                        f32::from_bits(0x3d862efd),
                        f32::from_bits(0x3e0312e0),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3aa152a1),
                        f32::from_bits(0x3ab3f967),
                        f32::from_bits(0x3abd2679),
                        f32::from_bits(0x3af2dabf),
                        f32::from_bits(0x3aa5b100),
                        f32::from_bits(0x3ac8bba1),
                    ],
                ),
            ],
        },
        Case {
            name: "adamw",
            rule: AnyRule::Adam(Adam::adamw()),
            params: [
                f32::from_bits(0x3f002756),
                f32::from_bits(0xbe80bd4b),
                f32::from_bits(0x3fbfa35b),
                f32::from_bits(0xbfff97d6),
                f32::from_bits(0x3dfc581a),
                f32::from_bits(0x404001f0),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
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
                f32::from_bits(0x3effac12),
                f32::from_bits(0xbe7e802a),
                f32::from_bits(0x3fc058b5),
                f32::from_bits(0xc0003174),
                f32::from_bits(0x3e01d154),
                f32::from_bits(0x403ffa20),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0xbcae6dcb),
                        f32::from_bits(0xbcf5ceaa),
                        f32::from_bits(0xbcf5254d),
                        f32::from_bits(0x3d4c62e8),
                        f32::from_bits(0xbd71e02b),
                        f32::from_bits(0x3d290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
                (
                    "max_exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a93135e),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
            ],
        },
        Case {
            name: "adamax",
            rule: AnyRule::Adamax(Adamax::default()),
            params: [
                f32::from_bits(0x3f006cb8),
                f32::from_bits(0xbe815c76),
                f32::from_bits(0x3fbf7131),
                f32::from_bits(0xbfff69e8),
                f32::from_bits(0x3df9e836),
                f32::from_bits(0x40400525),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_inf",
                    [
                        f32::from_bits(0x3f1fd70a),
                        f32::from_bits(0x3f1f853e),
                        f32::from_bits(0x3f1fae1f),
                        f32::from_bits(0x3f1f5c68),
                        f32::from_bits(0x3f1f853e),
                        f32::from_bits(0x3f1f339c),
                    ],
                ),
            ],
        },
        Case {
            name: "adamax_wd_max",
            rule: AnyRule::Adamax(Adamax {
                lr: 0.01,
                weight_decay: 0.1,
                maximize: true,
                ..Adamax::default()
            }),
            params: [
                f32::from_bits(0x3ef8a6fc),
                f32::from_bits(0xbe6fde64),
                f32::from_bits(0x3fbe3891),
                f32::from_bits(0xbfffc0ed),
                f32::from_bits(0x3e0db871),
                f32::from_bits(0x403d9a1c),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3bd4870e),
                        f32::from_bits(0xbd3237ea),
                        f32::from_bits(0x3d613b84),
                        f32::from_bits(0xbd838a42),
                        f32::from_bits(0xbd529057),
                        f32::from_bits(0x3e57f4f7),
                    ],
                ),
                (
                    "exp_inf",
                    [
                        f32::from_bits(0x3f1372db),
                        f32::from_bits(0x3f253d1c),
                        f32::from_bits(0x3f2570be),
                        f32::from_bits(0x3f33160b),
                        f32::from_bits(0x3f1c1fec),
                        f32::from_bits(0x3f6b46e2),
                    ],
                ),
            ],
        },
        Case {
            name: "nadam",
            rule: AnyRule::NAdam(NAdam::default()),
            params: [
                f32::from_bits(0x3effcae7),
                f32::from_bits(0xbe80e68b),
                f32::from_bits(0x3fbf7754),
                f32::from_bits(0xbfff9364),
                f32::from_bits(0x3df98830),
                f32::from_bits(0x40400c01),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
            ],
        },
        Case {
            name: "nadamw",
            rule: AnyRule::NAdam(NAdam {
                lr: 0.01,
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                ..NAdam::default()
            }),
            params: [
                f32::from_bits(0x3efce97b),
                f32::from_bits(0xbe83763a),
                f32::from_bits(0x3fbbd0a7),
                f32::from_bits(0xbffbd92b),
                f32::from_bits(0x3dddbb3b),
                f32::from_bits(0x403eb463),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
            ],
        },
        Case {
            name: "nadam_l2",
            rule: AnyRule::NAdam(NAdam {
                weight_decay: 0.1,
                momentum_decay: 0.01,
                ..NAdam::default()
            }),
            params: [
                f32::from_bits(0x3eff0405),
                f32::from_bits(0xbe8098db),
                f32::from_bits(0x3fbf171f),
                f32::from_bits(0xbfff06df),
                f32::from_bits(0x3df8f1eb),
                f32::from_bits(0x403f850a),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3d4bc551),
                        f32::from_bits(0x3c80d871),
                        f32::from_bits(0x3debbe38),
                        f32::from_bits(0xbe277e6c),
                        f32::from_bits(0x3d8753e0),
                        f32::from_bits(0x3e047148),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3aa12574),
                        f32::from_bits(0x3ab3d18d),
                        f32::from_bits(0x3abde25f),
                        f32::from_bits(0x3af4219e),
                        f32::from_bits(0x3aa5cea8),
                        f32::from_bits(0x3ac99b82),
                    ],
                ),
            ],
        },
        Case {
            name: "radam",
            rule: AnyRule::RAdam(RAdam::default()),
            params: [
                f32::from_bits(0x3f000f53),
                f32::from_bits(0xbe8075d0),
                f32::from_bits(0x3fbfef55),
                f32::from_bits(0xbfffe2cf),
                f32::from_bits(0x3dfeb576),
                f32::from_bits(0x4040026a),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3cae6dcb),
                        f32::from_bits(0x3cf5ceaa),
                        f32::from_bits(0x3cf5254d),
                        f32::from_bits(0xbd4c62e8),
                        f32::from_bits(0x3d71e02b),
                        f32::from_bits(0xbd290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
            ],
        },
        Case {
            name: "radamw_max",
            rule: AnyRule::RAdam(RAdam {
                lr: 0.01,
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                maximize: true,
                ..RAdam::default()
            }),
            params: [
                f32::from_bits(0x3efcc523),
                f32::from_bits(0xbe74d051),
                f32::from_bits(0x3fbf1dc6),
                f32::from_bits(0xbfff17ed),
                f32::from_bits(0x3e0565dc),
                f32::from_bits(0x403e6004),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0xbcae6dcb),
                        f32::from_bits(0xbcf5ceaa),
                        f32::from_bits(0xbcf5254d),
                        f32::from_bits(0x3d4c62e8),
                        f32::from_bits(0xbd71e02b),
                        f32::from_bits(0x3d290726),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3a9b35e2),
                        f32::from_bits(0x3ab58f14),
                        f32::from_bits(0x3a92edb7),
                        f32::from_bits(0x3aa35a7e),
                        f32::from_bits(0x3aa32e97),
                        f32::from_bits(0x3a92f3fd),
                    ],
                ),
            ],
        },
        Case {
            name: "radam_l2",
            rule: AnyRule::RAdam(RAdam {
                weight_decay: 0.1,
                betas: (0.9, 0.99),
                ..RAdam::default()
            }),
            params: [
                f32::from_bits(0x3efff489),
                f32::from_bits(0xbe806205),
                f32::from_bits(0x3fbfd232),
                f32::from_bits(0xbfffbcd9),
                f32::from_bits(0x3dfe7c3f),
                f32::from_bits(0x403fe6da),
            ],
            state: vec![
                (
                    "exp_avg",
                    [
                        f32::from_bits(0x3d4bdc54),
                        f32::from_bits(0x3c80da1a),
                        f32::from_bits(0x3dec229f),
                        f32::from_bits(0xbe27a7e1),
                        f32::from_bits(0x3d877462),
                        f32::from_bits(0x3e04a476),
                    ],
                ),
                (
                    "exp_avg_sq",
                    [
                        f32::from_bits(0x3c44652a),
                        f32::from_bits(0x3c58f115),
                        f32::from_bits(0x3c65a5d6),
                        f32::from_bits(0x3c94391b),
                        f32::from_bits(0x3c47ea96),
                        f32::from_bits(0x3c73d158),
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
        let mut checks = vec![compare("params", &p, &c.params).unwrap()];
        for (name, want) in &c.state {
            let k = c.rule.state_slots().iter().position(|s| s == name).unwrap();
            checks.push(compare(name, &cpu.state[k], want).unwrap());
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

/// The device against torch: params and every state slot the rule keeps (each one torch
/// keeps too, by torch's name), within the same tolerance as the CPU twin.
#[test]
fn gpu_matches_torch() {
    let ctx = common::ctx();
    let mut failures = Vec::new();
    for c in cases() {
        let arena = Arena::new(&ctx, &[N]).unwrap();
        ctx.upload(&arena.param(0), &P0).unwrap();
        let mut opt = Optimizer::new(&ctx, c.rule.clone()).unwrap();
        let id = opt.add_arena(&arena, opt.default_group()).unwrap()[0];
        for t in 1..=T {
            let g: Vec<f32> = (0..N).map(|i| grad(i, t)).collect();
            ctx.upload(&arena.grad(0), &g).unwrap();
            opt.step().unwrap();
        }
        let slots = c.rule.state_slots();
        let mut names: Vec<&str> = c.state.iter().map(|(n, _)| *n).collect();
        let mut want_names = slots.to_vec();
        names.sort_unstable();
        want_names.sort_unstable();
        assert_eq!(
            names, want_names,
            "{}: torch's state vs the rule's slots",
            c.name
        );
        let params = ctx.download(&arena.param(0)).unwrap();
        let mut checks = vec![compare("params", &params, &c.params).unwrap()];
        for (name, want) in &c.state {
            let k = slots.iter().position(|s| s == name).unwrap();
            checks.push(compare(name, &opt.read_state(id, k).unwrap(), want).unwrap());
        }
        for e in checks {
            if e.max_scaled > tolerance(&c.rule) || e.nonfinite_mismatches > 0 {
                failures.push(format!("{}: {e:?}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// torch.amp.GradScaler("cpu", init_scale=2^16, growth_interval=2) around single-tensor
/// Adam, grads = scale × grad(i, t) with an inf at steps 2, 5 and 6 (elements 1, 4, 0);
/// values from torch 2.15.0+cu132 (the second part of tests/torch_reference.py). The scale
/// after each step must match exactly, as must the 5 applied steps; the params within
/// Adam's tolerance for 5 steps.
#[test]
fn grad_scaler_matches_torch() {
    let want_params = [
        f32::from_bits(0x3f0028b3),
        f32::from_bits(0xbe82093d),
        f32::from_bits(0x3fc02fa7),
        f32::from_bits(0xbfffc879),
        f32::from_bits(0x3df96779),
        f32::from_bits(0x404033d4),
    ];
    let want_scales = [
        65536.0, 32768.0, 32768.0, 65536.0, 32768.0, 16384.0, 16384.0, 32768.0,
    ];
    let bad = |t: u64| match t {
        2 => Some(1),
        5 => Some(4),
        6 => Some(0),
        _ => None,
    };
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[N]).unwrap();
    ctx.upload(&arena.param(0), &P0).unwrap();
    let rule = Adam::default();
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    let config = GradScaler {
        growth_interval: 2,
        ..GradScaler::default()
    };
    opt.set_grad_scaler(config).unwrap();
    // The CPU twin alongside.
    let mut twin = CpuGradScaler::new(config);
    let mut cpu = CpuOptimizer::new(rule.clone(), N).unwrap();
    let mut p = P0;
    for t in 1..=T {
        let scale = opt.loss_scale().unwrap();
        assert_eq!(scale, twin.scale);
        let mut g: Vec<f32> = (0..N).map(|i| grad(i, t) * scale).collect();
        if let Some(i) = bad(t) {
            g[i] = f32::INFINITY;
        }
        ctx.upload(&arena.grad(0), &g).unwrap();
        opt.step().unwrap();
        let mut gs = vec![g];
        let found = twin.unscale(&mut gs);
        if !found {
            cpu.step(&mut p, &gs[0]).unwrap();
        }
        twin.update(found);
        assert_eq!(
            opt.loss_scale().unwrap(),
            want_scales[t as usize - 1],
            "step {t}"
        );
        assert_eq!(twin.scale, want_scales[t as usize - 1], "twin, step {t}");
    }
    assert_eq!(opt.applied_steps().unwrap(), 5);
    assert_eq!(cpu.t, 5);
    let tol = rule.rounding_ops() as f64 * 5.0;
    let gpu = ctx.download(&arena.param(0)).unwrap();
    for (what, got) in [("gpu", &gpu[..]), ("cpu", &p[..])] {
        let e = compare("params", got, &want_params).unwrap();
        assert!(e.max_scaled <= tol, "{what}: {e:?}");
    }
}
