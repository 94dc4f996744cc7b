//! Non-finite gradients (NaN, ±inf) compute what torch computes, on the device as in the
//! CPU twin: clamping keeps NaN (torch's `clamp`), `clip_grad_norm_`'s norm includes
//! non-finite values (inf or NaN norm, coefficient 0 or NaN), LAMB's trust ratio
//! propagates a NaN norm, AMSGrad's and Adamax's maxima propagate NaN (`torch.maximum`),
//! Lion's sign of NaN is 0 (`torch.sign`), 8-bit state and 16-bit params carry NaN and inf
//! as their CPU twins do.
//!
//! Every rule of the catalog × (no clipping, by value, by norm, both) × (NaN, +inf, −inf in
//! one gradient element) on the device against the whole-step CPU model (`CpuModel`),
//! params, 16-bit params, every state slot, 8-bit codes and block maxima, and the
//! clipping's norm and count, bit for bit (any NaN equals any NaN): on lavapipe every
//! one-phase rule computes what the model computes, and the gradients are multiples of
//! 1/16 so that the clipping norm's f32 tree sum and the model's f64 sum are the same exact
//! number. LAMB's finite values are the one exception (its trust-ratio sums: f32 tree on
//! the device, f64 on the CPU), checked within the verifier's tolerance; its non-finite
//! values still bit for bit.

mod common;

use gpu_optim::verify::{compare, Rng};
use gpu_optim::{
    cpu_grad_clip, AnyRule, Arena, Context, CpuModel, CpuOptimizer, Dtype, GradClip, Lamb,
    Optimizer, Sgd, StateFormat, TensorId, UpdateRule,
};

/// Any NaN equals any NaN; everything else by its bits.
fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// The elements where `got` and `want` differ (at most a few, for the message).
fn diff(got: &[f32], want: &[f32]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("lengths {} vs {}", got.len(), want.len()));
    }
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (a, b))| !same(**a, **b))
        .take(4)
        .map(|(i, (a, b))| {
            format!(
                "[{i}] device {a:e} ({:#x}) CPU {b:e} ({:#x})",
                a.to_bits(),
                b.to_bits()
            )
        })
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

/// Bit for bit; for a two-phase rule (LAMB) finite values within `tol` scaled ulps.
fn check(what: &str, got: &[f32], want: &[f32], two_phase: bool, tol: f64) -> Option<String> {
    if !two_phase {
        return diff(got, want).map(|d| format!("{what}: {d}"));
    }
    let e = compare(what, got, want).unwrap();
    let finite_pattern = got
        .iter()
        .zip(want)
        .all(|(a, b)| a.is_finite() == b.is_finite());
    (e.nonfinite_mismatches > 0 || !finite_pattern || e.max_scaled > tol)
        .then(|| format!("{what}: {e:?}"))
}

/// Gradients that are multiples of 1/16 in [-2, 2]: their squares and sums are exact in
/// f32, so the device's clipping norm equals the model's bit for bit.
fn grads(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.uniform() * 32.0).round() / 16.0)
        .collect()
}

/// One configuration of the optimizer under test.
#[derive(Clone, Debug)]
struct Setup {
    rule: AnyRule,
    clip: Option<GradClip>,
    format: StateFormat,
    dtypes: (Dtype, Dtype),
    /// bf16 params without a master, rounded stochastically with this seed.
    sr: Option<u32>,
}

impl Setup {
    fn new(rule: AnyRule, clip: Option<GradClip>) -> Self {
        Self {
            rule,
            clip,
            format: StateFormat::F32,
            dtypes: (Dtype::F32, Dtype::F32),
            sr: None,
        }
    }
}

const LENS: &[usize] = &[8, 37];
const STEPS: u64 = 3;

/// Steps `setup` on the device and on the CPU model for [`STEPS`] steps; step 2 has `bad`
/// at one element of the second tensor. Returns the first difference found, if any.
fn run(ctx: &Context, setup: &Setup, bad: f32) -> Option<String> {
    let (pd, gd) = setup.dtypes;
    let rule = &setup.rule;
    let arena = Arena::with_dtypes(ctx, LENS, pd, gd).unwrap();
    let mut opt = Optimizer::new(ctx, rule.clone()).unwrap();
    let mut model = CpuModel::with_limits(rule.clone(), ctx.limits()).unwrap();
    opt.set_state_format(setup.format).unwrap();
    model.set_state_format(setup.format).unwrap();
    if let Some(c) = setup.clip {
        opt.set_grad_clip(c).unwrap();
        model.set_grad_clip(c).unwrap();
    }
    if setup.sr.is_some() {
        opt.set_stochastic_rounding(setup.sr).unwrap();
        model.set_stochastic_rounding(setup.sr).unwrap();
    }
    let ids = opt.add_arena(&arena, opt.default_group()).unwrap();
    let mut rng = Rng(17);
    for (i, &n) in LENS.iter().enumerate() {
        let (g, at) = (model.default_group(), arena.param(i).offset);
        let m = model.add_tensor(g, at, &rng.vec(n, 1.0), (pd, gd)).unwrap();
        // The params as their buffer holds them (rounded to the param type).
        ctx.upload_as(&arena.param(i), pd, model.stored_params(m).unwrap())
            .unwrap();
    }
    let two_phase = rule.kernel().two_phase;
    for t in 1..=STEPS {
        // The grads as the device reads them.
        let mut g: Vec<Vec<f32>> = LENS.iter().map(|&n| grads(&mut rng, n)).collect();
        if t == 2 {
            g[1][5] = bad;
        }
        let g: Vec<Vec<f32>> = g.iter().map(|x| gd.round(x)).collect();
        for (i, gi) in g.iter().enumerate() {
            ctx.upload_as(&arena.grad(i), gd, gi).unwrap();
        }
        opt.step().unwrap();
        model.step(&g).unwrap();
        if setup.clip.is_some() {
            let want = model.grad_stats().unwrap();
            let got = opt.grad_stats().unwrap();
            if !same(got.norm, want.norm) || got.nonfinite != want.nonfinite {
                return Some(format!("step {t}: grad stats {got:?} vs model {want:?}"));
            }
        }
        let tol = (rule.rounding_ops() as u64 * t) as f64;
        for (i, id) in ids.iter().enumerate() {
            let at = format!("step {t} tensor {i}");
            let m = TensorId(i);
            let got = opt.read_params(*id).unwrap();
            let want = model.params(m).unwrap();
            if let Some(d) = check(&format!("{at} params"), &got, want, two_phase, tol) {
                return Some(d);
            }
            if pd != Dtype::F32 {
                // The caller's 16-bit params: the model's master rounded (or, rounded
                // stochastically, its params).
                let (bytes, _) = opt.param_bytes(*id).unwrap();
                let got = pd.from_bytes(&bytes);
                let want = model.stored_params(m).unwrap();
                if let Some(d) = check(&format!("{at} 16-bit params"), &got, want, two_phase, tol) {
                    return Some(d);
                }
            }
            for k in 0..rule.state_slots().len() {
                let st = opt.read_state(*id, k).unwrap();
                let what = format!("{at} slot {}", rule.state_slots()[k]);
                let want = model.state(m, k).unwrap();
                if let Some(d) = check(&what, &st, want, two_phase, tol) {
                    return Some(d);
                }
                if let Some((codes, absmax)) = model.state_q8(m, k).unwrap() {
                    let (got_codes, got_absmax) = opt.read_state_q8(*id, k).unwrap();
                    if got_codes != codes {
                        return Some(format!("{what}: codes {got_codes:?} vs model {codes:?}"));
                    }
                    if let Some(d) = diff(&got_absmax, absmax) {
                        return Some(format!("{what}: absmax {d}"));
                    }
                }
            }
        }
    }
    None
}

const BAD: [f32; 3] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];

fn clips() -> [(&'static str, Option<GradClip>); 4] {
    [
        ("no clip", None),
        (
            "clip by value",
            Some(GradClip {
                max_norm: None,
                value: Some(0.5),
            }),
        ),
        (
            "clip by norm",
            Some(GradClip {
                max_norm: Some(1.0),
                value: None,
            }),
        ),
        (
            "clip by value and norm",
            Some(GradClip {
                max_norm: Some(1.0),
                value: Some(0.5),
            }),
        ),
    ]
}

/// Runs every setup with every bad value and fails with the list of the ones that differ.
fn run_all(ctx: &Context, setups: &[(String, Setup)]) {
    let mut failures = Vec::new();
    for (name, setup) in setups {
        for bad in BAD {
            if let Some(d) = run(ctx, setup, bad) {
                failures.push(format!("{name} with {bad}: {d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from the CPU model:\n{}",
        failures.len(),
        setups.len() * BAD.len(),
        failures.join("\n")
    );
}

/// Fault 1: WGSL's clamp dropped NaN (lavapipe returned −clip); torch's clamp keeps it.
#[test]
fn nan_grad_under_value_clip_stays_nan() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[3]).unwrap();
    ctx.upload(&arena.param(0), &[1.0; 3]).unwrap();
    let g = vec![f32::NAN, 2.0, -3.0];
    ctx.upload(&arena.grad(0), &g).unwrap();
    let rule = Sgd {
        lr: 0.1,
        ..Sgd::default()
    };
    let clip = GradClip {
        max_norm: None,
        value: Some(1.0),
    };
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.set_grad_clip(clip).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    let got = ctx.download(&arena.param(0)).unwrap();

    let mut want = vec![1.0f32; 3];
    let mut gc = vec![g];
    cpu_grad_clip(&mut gc, &clip);
    CpuOptimizer::new(rule, 3)
        .unwrap()
        .step(&mut want, &gc[0])
        .unwrap();
    assert!(
        want[0].is_nan() && want[1] == 0.9 && want[2] == 1.1,
        "twin {want:?}"
    );
    assert!(
        diff(&got, &want).is_none(),
        "device {got:?}, torch and twin {want:?}"
    );
}

/// Fault 2: a NaN gradient made LAMB's trust ratio 1 instead of NaN.
#[test]
fn lamb_nan_grad_gives_nan_params() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[3]).unwrap();
    let p = vec![3.0, 4.0, 1.0];
    let g = vec![f32::NAN, 1.0, 1.0];
    ctx.upload(&arena.param(0), &p).unwrap();
    ctx.upload(&arena.grad(0), &g).unwrap();
    let rule = Lamb {
        lr: 0.1,
        ..Lamb::default()
    };
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    let got = ctx.download(&arena.param(0)).unwrap();

    let mut want = p.clone();
    CpuOptimizer::new(rule, 3)
        .unwrap()
        .step(&mut want, &g)
        .unwrap();
    assert!(want.iter().all(|x| x.is_nan()), "twin {want:?}");
    assert!(got.iter().all(|x| x.is_nan()), "device {got:?}");
}

/// Fault 3: torch's clip_grad_norm_ includes non-finite values in the norm: inf here, so
/// the coefficient is max_norm / inf = 0 and the grads become [inf·0, 0, 0] = [NaN, 0, 0].
#[test]
fn clip_norm_with_inf_grad_follows_torch() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[3]).unwrap();
    ctx.upload(&arena.param(0), &[1.0; 3]).unwrap();
    let g = vec![f32::INFINITY, 3.0, 4.0];
    ctx.upload(&arena.grad(0), &g).unwrap();
    let rule = Sgd {
        lr: 0.1,
        ..Sgd::default()
    };
    let clip = GradClip {
        max_norm: Some(1.0),
        value: None,
    };
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.set_grad_clip(clip).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    opt.step().unwrap();
    let got = ctx.download(&arena.param(0)).unwrap();
    let stats = opt.grad_stats().unwrap();

    let mut want = vec![1.0f32; 3];
    let mut gc = vec![g];
    let cpu_stats = cpu_grad_clip(&mut gc, &clip);
    CpuOptimizer::new(rule, 3)
        .unwrap()
        .step(&mut want, &gc[0])
        .unwrap();
    assert!(
        want[0].is_nan() && want[1] == 1.0 && want[2] == 1.0,
        "twin {want:?}"
    );
    assert_eq!(cpu_stats.norm, f32::INFINITY);
    assert_eq!(cpu_stats.nonfinite, 1);
    assert!(
        diff(&got, &want).is_none(),
        "device {got:?}, torch and twin {want:?}"
    );
    assert_eq!(stats.norm, f32::INFINITY, "{stats:?}");
    assert_eq!(stats.nonfinite, 1, "{stats:?}");
}

/// A NaN gradient gives a NaN norm and a NaN coefficient (torch's clamp keeps NaN): every
/// gradient, and so every SGD param, becomes NaN. Value clipping first turns inf into
/// ±value: the norm is finite again, the count still says one non-finite gradient.
#[test]
fn grad_stats_follow_torch() {
    let ctx = common::ctx();
    let arena = Arena::new(&ctx, &[3]).unwrap();
    let cases = [
        (f32::NAN, None, f32::NAN),
        (f32::INFINITY, Some(1.0), 3f32.sqrt()),
        (f32::NEG_INFINITY, None, f32::INFINITY),
    ];
    for (bad, value, norm) in cases {
        let clip = GradClip {
            max_norm: Some(1.0),
            value,
        };
        let g = vec![bad, 1.0, -1.0];
        ctx.upload(&arena.param(0), &[1.0; 3]).unwrap();
        ctx.upload(&arena.grad(0), &g).unwrap();
        let mut opt = Optimizer::new(&ctx, Sgd::default()).unwrap();
        opt.set_grad_clip(clip).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        opt.step().unwrap();
        let stats = opt.grad_stats().unwrap();
        let cpu = cpu_grad_clip(&mut [g], &clip);
        for s in [stats, cpu] {
            let close = same(s.norm, norm) || (s.norm - norm).abs() <= 1e-6 * norm;
            assert!(close, "{bad} {value:?}: {s:?}, want norm {norm}");
            assert_eq!(s.nonfinite, 1, "{bad} {value:?}: {s:?}");
        }
        let p = ctx.download(&arena.param(0)).unwrap();
        assert_eq!(p.iter().all(|x| x.is_nan()), bad.is_nan(), "{bad}: {p:?}");
    }
}

/// `torch.maximum` keeps NaN: AMSGrad's max_exp_avg_sq and Adamax's exp_inf become NaN where
/// the gradient is NaN (`f32::max`, and WGSL's max on lavapipe, kept the old value).
/// `torch.sign(NaN)` is 0: Lion leaves that param where it was, its momentum NaN.
#[test]
fn maxima_keep_nan_and_lion_sign_of_nan_is_zero() {
    let ctx = common::ctx();
    let p = vec![1.0f32; 4];
    let g = vec![f32::NAN, 1.0, -1.0, 0.5];
    for (name, slot) in [("adam-amsgrad", 2), ("adamax", 1), ("lion", 0)] {
        let rule = AnyRule::by_name(name).unwrap();
        let arena = Arena::new(&ctx, &[4]).unwrap();
        ctx.upload(&arena.param(0), &p).unwrap();
        ctx.upload(&arena.grad(0), &g).unwrap();
        let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
        let id = opt.add_arena(&arena, opt.default_group()).unwrap()[0];
        opt.step().unwrap();
        let mut cpu = CpuOptimizer::new(rule, 4).unwrap();
        let mut want = p.clone();
        cpu.step(&mut want, &g).unwrap();
        let got = ctx.download(&arena.param(0)).unwrap();
        let state = opt.read_state(id, slot).unwrap();
        for (who, params, st) in [("device", &got, &state), ("twin", &want, &cpu.state[slot])] {
            assert!(st[0].is_nan(), "{name} {who}: state {st:?}");
            assert!(
                st[1..].iter().all(|x| x.is_finite()),
                "{name} {who}: {st:?}"
            );
            assert_eq!(
                params[0].is_nan(),
                name != "lion",
                "{name} {who}: {params:?}"
            );
        }
        if name == "lion" {
            assert_eq!(want[0], 1.0, "lion twin: {want:?}");
        }
        assert!(
            diff(&got, &want).is_none(),
            "{name}: device {got:?} twin {want:?}"
        );
        assert!(
            diff(&state, &cpu.state[slot]).is_none(),
            "{name}: {state:?}"
        );
    }
}

/// The whole kind: every rule × clipping × bad value, f32 params and state.
#[test]
fn every_rule_and_clip_matches_the_twin() {
    let ctx = common::ctx();
    let mut setups = Vec::new();
    for rule in AnyRule::catalog() {
        for (c, clip) in clips() {
            setups.push((
                format!("{} {c}", rule.name()),
                Setup::new(rule.clone(), clip),
            ));
        }
    }
    run_all(&ctx, &setups);
}

/// 8-bit state (every rule that has it; stochastic requantization for three): codes, block
/// maxima and the dequantized state.
#[test]
fn eight_bit_state_matches_the_twin() {
    let ctx = common::ctx();
    let mut setups = Vec::new();
    for rule in AnyRule::catalog() {
        if rule.kernel().two_phase || rule.state_slots().is_empty() {
            continue;
        }
        for (c, clip) in clips() {
            let mut s = Setup::new(rule.clone(), clip);
            s.format = StateFormat::Blockwise8 {
                min_len: 0,
                stochastic: None,
            };
            setups.push((format!("{} 8-bit {c}", rule.name()), s));
            if ["adam", "sgd-momentum", "lion"].contains(&rule.name().as_str()) {
                let mut s = Setup::new(rule.clone(), clip);
                s.format = StateFormat::Blockwise8 {
                    min_len: 0,
                    stochastic: Some(3),
                };
                setups.push((format!("{} 8-bit stochastic {c}", rule.name()), s));
            }
        }
    }
    run_all(&ctx, &setups);
}

/// bf16 params (through the f32 master, and stochastically rounded without one) and bf16
/// grads; f16 params and grads for Adam.
#[test]
fn bf16_and_f16_params_match_the_twin() {
    let ctx = common::ctx();
    let mut setups = Vec::new();
    for name in ["adam", "adamw", "sgd-momentum", "lion"] {
        let rule = AnyRule::by_name(name).unwrap();
        for (c, clip) in clips() {
            let mut s = Setup::new(rule.clone(), clip);
            s.dtypes = (Dtype::Bf16, Dtype::Bf16);
            setups.push((format!("{name} bf16 {c}"), s.clone()));
            s.sr = Some(5);
            setups.push((format!("{name} bf16 stochastic {c}"), s));
            if name == "adam" {
                let mut s = Setup::new(rule.clone(), clip);
                s.dtypes = (Dtype::F16, Dtype::F16);
                setups.push((format!("{name} f16 {c}"), s));
            }
        }
    }
    run_all(&ctx, &setups);
}
