//! The CPU reference checked against the algorithms themselves, not against itself.
//!
//! `rules_vs_reference.rs` shows that the GPU kernels agree with the CPU twins; this file
//! shows that the CPU twins compute torch.optim's algorithms. Every expected value here is
//! computed in f64 by formulas written out below, transcribed from torch.optim's
//! single-tensor loops (`torch/optim/<rule>.py`, `_single_tensor_<rule>`; the summary is in
//! the repository's `shared/semantics.md`), in the textbook's form where that differs from
//! torch's only by algebra (e.g. Adam's m̂ = m / (1 − β1ᵗ)), so a slip shared by the crate's
//! Rust and WGSL would not be copied here. Nothing in this file calls a rule's `update` or
//! `hyper` except through `CpuOptimizer` / `Optimizer`, the things under test.
//!
//! ## Tolerance: relative 1e-5
//! The crate computes in f32 (hyperparameters rounded to f32 once, each operation rounded
//! to f32), the formulas here in f64 from the same f32 inputs, so the difference is f32
//! rounding alone: a handful of roundings of at most 2⁻²⁴ ≈ 6e-8 relative each per
//! element update (10–25 operations), over 4 steps at most ~100 of them, a linear worst
//! case of ~6e-6 (no case below divides by a difference that cancels, which would amplify
//! them). Measured: ≤ 8e-7 (printed per case). Each case is built so that a wrong formula
//! moves values by far more than 1e-5: every parameter moves by at least 1e-3 of its size
//! (asserted), so a 1% error in an update is a ≥ 1e-5 error in the parameter; the state
//! slots are compared directly as well; and the options under test change the result by
//! ≥ 100x the tolerance (asserted). Swapping in a plausible mistake (dampening on SGD's
//! first step, Adam's eps before the bias correction, RMSprop's eps inside the root,
//! Adagrad's lr_decay off by one step, Adadelta's acc_delta not updated, AdamW decaying by
//! wd instead of lr·wd) fails the CPU check at step 1.

mod common;

use gpu_optim::*;

const REL_TOL: f64 = 1e-5;

/// Initial parameters and the gradient of each step: three parameters, signs fixed per
/// element (so no state value crosses zero and relative errors stay meaningful), element 2
/// with a gradient that shrinks fast (AMSGrad's running max then differs from v).
const P0: [f32; 3] = [0.5, -1.5, 2.0];
const GRADS: [[f32; 3]; 4] = [
    [0.3, -0.8, 1.2],
    [0.25, -0.6, 0.1],
    [0.4, -0.7, 0.05],
    [0.35, -0.9, 0.02],
];

/// After each step: the parameters and the state slots by torch's state names.
#[derive(Clone, Debug)]
struct Snapshot {
    params: Vec<f64>,
    state: Vec<(&'static str, Vec<f64>)>,
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

// ---------------------------------------------------------------------------------------
// The formulas. Each function runs all of GRADS on P0, one element at a time, in f64.
// ---------------------------------------------------------------------------------------

/// Adam / AdamW / AMSGrad — torch/optim/adam.py `_single_tensor_adam` (AdamW:
/// torch/optim/adamw.py = Adam with `decoupled_weight_decay=True`); Kingma & Ba, Alg. 1:
/// ```text
/// if maximize: g ← −g
/// AdamW:  θ ← θ·(1 − lr·wd)            Adam with wd: g ← g + wd·θ
/// m ← β1·m + (1 − β1)·g                 v ← β2·v + (1 − β2)·g²
/// m̂ = m / (1 − β1ᵗ)                     v̂ = v / (1 − β2ᵗ)
/// amsgrad: vmax ← max(vmax, v) (uncorrected), v̂ = vmax / (1 − β2ᵗ)
/// θ ← θ − lr·m̂ / (√v̂ + eps)
/// ```
fn textbook_adam(r: &Adam) -> Vec<Snapshot> {
    let (b1, b2) = r.betas;
    let mut p = f64s(&P0);
    let (mut m, mut v, mut vmax) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
    let mut out = Vec::new();
    for (k, g_step) in GRADS.iter().enumerate() {
        let t = (k + 1) as i32;
        for i in 0..3 {
            let mut g = g_step[i] as f64;
            if r.maximize {
                g = -g;
            }
            if r.decoupled_weight_decay {
                p[i] *= 1.0 - r.lr * r.weight_decay;
            } else {
                g += r.weight_decay * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            vmax[i] = f64::max(vmax[i], v[i]);
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = if r.amsgrad { vmax[i] } else { v[i] } / (1.0 - b2.powi(t));
            p[i] -= r.lr * m_hat / (v_hat.sqrt() + r.eps);
        }
        let mut state = vec![("exp_avg", m.clone()), ("exp_avg_sq", v.clone())];
        if r.amsgrad {
            state.push(("max_exp_avg_sq", vmax.clone()));
        }
        out.push(Snapshot {
            params: p.clone(),
            state,
        });
    }
    out
}

/// SGD — torch/optim/sgd.py `_single_tensor_sgd`:
/// ```text
/// if maximize: g ← −g;   g ← g + wd·θ
/// if μ ≠ 0:  b ← g on the first step (torch.clone(grad): no dampening),
///            b ← μ·b + (1 − τ)·g afterwards;
///            g ← g + μ·b if nesterov, else g ← b
/// θ ← θ − lr·g
/// ```
fn textbook_sgd(r: &Sgd) -> Vec<Snapshot> {
    let mut p = f64s(&P0);
    let mut buf: Option<Vec<f64>> = None;
    let mut out = Vec::new();
    for g_step in GRADS.iter() {
        let mut d: Vec<f64> = (0..3)
            .map(|i| {
                let g = g_step[i] as f64;
                let g = if r.maximize { -g } else { g };
                g + r.weight_decay * p[i]
            })
            .collect();
        if r.momentum != 0.0 {
            let b = match buf.take() {
                None => d.clone(),
                Some(b) => (0..3)
                    .map(|i| r.momentum * b[i] + (1.0 - r.dampening) * d[i])
                    .collect(),
            };
            for i in 0..3 {
                d[i] = if r.nesterov {
                    d[i] + r.momentum * b[i]
                } else {
                    b[i]
                };
            }
            buf = Some(b);
        }
        for i in 0..3 {
            p[i] -= r.lr * d[i];
        }
        out.push(Snapshot {
            params: p.clone(),
            state: buf.iter().map(|b| ("momentum_buffer", b.clone())).collect(),
        });
    }
    out
}

/// Adagrad — torch/optim/adagrad.py `_single_tensor_adagrad`; Duchi et al. 2011:
/// ```text
/// if maximize: g ← −g;   g ← g + wd·θ
/// clr = lr / (1 + (t − 1)·lr_decay)
/// S ← S + g²        (S₀ = initial_accumulator_value)
/// θ ← θ − clr·g / (√S + eps)
/// ```
fn textbook_adagrad(r: &Adagrad) -> Vec<Snapshot> {
    let mut p = f64s(&P0);
    let mut s = vec![r.initial_accumulator_value; 3];
    let mut out = Vec::new();
    for (k, g_step) in GRADS.iter().enumerate() {
        let clr = r.lr / (1.0 + k as f64 * r.lr_decay);
        for i in 0..3 {
            let g = g_step[i] as f64;
            let g = if r.maximize { -g } else { g } + r.weight_decay * p[i];
            s[i] += g * g;
            p[i] -= clr * g / (s[i].sqrt() + r.eps);
        }
        out.push(Snapshot {
            params: p.clone(),
            state: vec![("sum", s.clone())],
        });
    }
    out
}

/// Adadelta — torch/optim/adadelta.py `_single_tensor_adadelta`; Zeiler 2012, Alg. 1:
/// ```text
/// if maximize: g ← −g;   g ← g + wd·θ
/// E[g²] ← ρ·E[g²] + (1 − ρ)·g²
/// Δ = √(E[Δ²] + eps) / √(E[g²] + eps) · g
/// E[Δ²] ← ρ·E[Δ²] + (1 − ρ)·Δ²
/// θ ← θ − lr·Δ
/// ```
fn textbook_adadelta(r: &Adadelta) -> Vec<Snapshot> {
    let mut p = f64s(&P0);
    let (mut eg2, mut ed2) = (vec![0.0; 3], vec![0.0; 3]);
    let mut out = Vec::new();
    for g_step in GRADS.iter() {
        for i in 0..3 {
            let g = g_step[i] as f64;
            let g = if r.maximize { -g } else { g } + r.weight_decay * p[i];
            eg2[i] = r.rho * eg2[i] + (1.0 - r.rho) * g * g;
            let delta = (ed2[i] + r.eps).sqrt() / (eg2[i] + r.eps).sqrt() * g;
            ed2[i] = r.rho * ed2[i] + (1.0 - r.rho) * delta * delta;
            p[i] -= r.lr * delta;
        }
        out.push(Snapshot {
            params: p.clone(),
            state: vec![("square_avg", eg2.clone()), ("acc_delta", ed2.clone())],
        });
    }
    out
}

/// RMSprop — torch/optim/rmsprop.py `_single_tensor_rmsprop`; Hinton lecture 6e,
/// centered form Graves 2013, eq. 38–41:
/// ```text
/// if maximize: g ← −g;   g ← g + wd·θ
/// E[g²] ← α·E[g²] + (1 − α)·g²
/// centered: E[g] ← α·E[g] + (1 − α)·g;  avg = √(E[g²] − E[g]²) + eps
/// else:     avg = √E[g²] + eps                       (eps outside the root)
/// μ > 0: b ← μ·b + g / avg;  θ ← θ − lr·b             else θ ← θ − lr·g / avg
/// ```
fn textbook_rmsprop(r: &RmsProp) -> Vec<Snapshot> {
    let mut p = f64s(&P0);
    let (mut eg2, mut eg, mut b) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
    let mut out = Vec::new();
    for g_step in GRADS.iter() {
        for i in 0..3 {
            let g = g_step[i] as f64;
            let g = if r.maximize { -g } else { g } + r.weight_decay * p[i];
            eg2[i] = r.alpha * eg2[i] + (1.0 - r.alpha) * g * g;
            let avg = if r.centered {
                eg[i] = r.alpha * eg[i] + (1.0 - r.alpha) * g;
                (eg2[i] - eg[i] * eg[i]).sqrt() + r.eps
            } else {
                eg2[i].sqrt() + r.eps
            };
            if r.momentum > 0.0 {
                b[i] = r.momentum * b[i] + g / avg;
                p[i] -= r.lr * b[i];
            } else {
                p[i] -= r.lr * g / avg;
            }
        }
        let mut state = vec![("square_avg", eg2.clone())];
        if r.centered {
            state.push(("grad_avg", eg.clone()));
        }
        if r.momentum > 0.0 {
            state.push(("momentum_buffer", b.clone()));
        }
        out.push(Snapshot {
            params: p.clone(),
            state,
        });
    }
    out
}

fn textbook(rule: &AnyRule) -> Vec<Snapshot> {
    match rule {
        AnyRule::Sgd(r) => textbook_sgd(r),
        AnyRule::Adagrad(r) => textbook_adagrad(r),
        AnyRule::Adadelta(r) => textbook_adadelta(r),
        AnyRule::RmsProp(r) => textbook_rmsprop(r),
        AnyRule::Adam(r) => textbook_adam(r),
        // Adamax, NAdam and RAdam are checked against torch itself (torch_reference.rs),
        // Lion by lion_matches_the_paper below.
        other => panic!("no textbook formula here for {}", other.name()),
    }
}

// ---------------------------------------------------------------------------------------
// The cases. Learning rates are raised above torch's defaults where that makes every
// parameter move by ≥ 1e-3 of its size in four steps (see the tolerance note); eps is
// raised where its placement (inside or outside the root, before or after the bias
// correction) should show in the result.
// ---------------------------------------------------------------------------------------

fn cases() -> Vec<(&'static str, AnyRule)> {
    use AnyRule as A;
    vec![
        (
            // eps = 1e-3: putting eps before the bias correction (√v + eps)/√(1 − β2ᵗ)
            // would make it ~30x larger at t = 1 and move θ by ~10% of the step.
            "adam",
            A::Adam(Adam {
                lr: 0.1,
                eps: 1e-3,
                ..Adam::default()
            }),
        ),
        ("adam torch defaults", A::Adam(Adam::default())),
        (
            "adam coupled weight_decay",
            A::Adam(Adam {
                lr: 0.1,
                eps: 1e-3,
                weight_decay: 0.1,
                ..Adam::default()
            }),
        ),
        (
            "adamw",
            A::Adam(Adam {
                lr: 0.1,
                eps: 1e-3,
                weight_decay: 0.1,
                ..Adam::adamw()
            }),
        ),
        (
            // β2 = 0.5 lets v shrink once element 2's gradient does: vmax ≠ v.
            "adam amsgrad",
            A::Adam(Adam {
                lr: 0.1,
                eps: 1e-3,
                betas: (0.9, 0.5),
                amsgrad: true,
                ..Adam::default()
            }),
        ),
        (
            "adamw amsgrad maximize",
            A::Adam(Adam {
                lr: 0.1,
                eps: 1e-3,
                betas: (0.9, 0.5),
                amsgrad: true,
                maximize: true,
                weight_decay: 0.1,
                ..Adam::adamw()
            }),
        ),
        (
            "sgd nesterov",
            A::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            }),
        ),
        (
            "sgd momentum dampening",
            A::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            "sgd momentum weight_decay maximize",
            A::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.5,
                weight_decay: 0.1,
                maximize: true,
                ..Sgd::default()
            }),
        ),
        (
            "adagrad lr_decay",
            A::Adagrad(Adagrad {
                lr: 0.1,
                lr_decay: 0.5,
                initial_accumulator_value: 0.1,
                ..Adagrad::default()
            }),
        ),
        ("adadelta torch defaults", A::Adadelta(Adadelta::default())),
        (
            "adadelta rho weight_decay",
            A::Adadelta(Adadelta {
                rho: 0.5,
                eps: 1e-4,
                weight_decay: 0.1,
                ..Adadelta::default()
            }),
        ),
        (
            // eps = 1e-2 (torch: 1e-8) so that eps outside vs inside the root shows.
            "rmsprop centered momentum",
            A::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                eps: 1e-2,
                ..RmsProp::default()
            }),
        ),
        ("rmsprop torch defaults", A::RmsProp(RmsProp::default())),
    ]
}

fn close(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= REL_TOL * want.abs()
}

/// Compares one snapshot (params and every state slot the rule keeps) with f32 results;
/// returns the largest relative error seen.
fn check_snapshot(
    label: &str,
    step: usize,
    rule: &AnyRule,
    want: &Snapshot,
    params: &[f32],
    state: &[Vec<f32>],
) -> f64 {
    let mut bad = Vec::new();
    let mut worst: f64 = 0.0;
    let mut cmp = |what: &str, got: &[f32], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{label} {what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            worst = worst.max(((g as f64 - w) / w).abs());
            if !close(g, w) {
                bad.push(format!(
                    "{what}[{i}]: got {g:e}, textbook {w:e} (rel {:.1e})",
                    ((g as f64 - w) / w).abs()
                ));
            }
        }
    };
    cmp("params", params, &want.params);
    let slots = rule.state_slots();
    assert_eq!(
        slots.len(),
        want.state.len(),
        "{label}: the rule keeps {slots:?}, the textbook {:?}",
        want.state.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    for (k, name) in slots.iter().enumerate() {
        let (_, w) = want
            .state
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{label}: textbook has no state {name}"));
        cmp(name, &state[k], w);
    }
    assert!(
        bad.is_empty(),
        "{label}, step {step}: differs from the textbook beyond rel {REL_TOL:e}:\n  {}",
        bad.join("\n  ")
    );
    worst
}

#[test]
fn cpu_reference_follows_the_textbook_formulas() {
    for (label, rule) in cases() {
        let want = textbook(&rule);
        // The check is sensitive: every parameter moved by ≥ 1e-3 of its size.
        let last = &want.last().unwrap().params;
        for i in 0..3 {
            let moved = (last[i] - P0[i] as f64).abs() / last[i].abs();
            assert!(moved >= 1e-3, "{label}: param {i} moved only {moved:.1e}");
        }
        let mut cpu = CpuOptimizer::new(rule.clone(), 3).unwrap();
        let mut p = P0.to_vec();
        let mut worst: f64 = 0.0;
        for (k, g) in GRADS.iter().enumerate() {
            cpu.step(&mut p, g).unwrap();
            worst = worst.max(check_snapshot(
                label,
                k + 1,
                &rule,
                &want[k],
                &p,
                &cpu.state,
            ));
        }
        assert_eq!(cpu.t, GRADS.len() as u64);
        eprintln!("cpu {label:<36} worst relative error {worst:.1e}");
    }
}

/// A few first- and second-step values worked out by hand (no loop, no state), as a check
/// on the formulas above themselves. p₀ = (0.5, −1.5, 2.0), g₁ = (0.3, −0.8, 1.2),
/// g₂ = (0.25, −0.6, 0.1).
#[test]
fn hand_computed_first_steps() {
    let first = |rule: AnyRule| {
        let mut cpu = CpuOptimizer::new(rule.clone(), 3).unwrap();
        let mut p = P0.to_vec();
        cpu.step(&mut p, &GRADS[0]).unwrap();
        let tb = textbook(&rule)[0].params.clone();
        (p, tb, cpu, rule)
    };
    let assert_all = |label: &str, got: &[f32], want: [f64; 3]| {
        for i in 0..3 {
            assert!(
                close(got[i], want[i]),
                "{label}[{i}]: got {}, hand-computed {}",
                got[i],
                want[i]
            );
        }
    };

    // Adam, step 1 (adam.py): m̂₁ = g, v̂₁ = g² whatever β, so θ₁ = θ₀ − lr·g / (|g| + eps).
    // lr 0.1, eps 1e-3: 0.5 − 0.1·0.3/0.301, −1.5 + 0.1·0.8/0.801, 2 − 0.1·1.2/1.201.
    let want = [0.4003322259136213, -1.4001248439450686, 1.9000832639467111];
    let (p, tb, ..) = first(AnyRule::Adam(Adam {
        lr: 0.1,
        eps: 1e-3,
        ..Adam::default()
    }));
    assert_all("adam step 1", &p, want);
    assert_all(
        "adam step 1 (textbook fn)",
        &tb.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        want,
    );

    // SGD Nesterov, step 1 (sgd.py): b₁ = g, g ← g + μ·b₁ = (1 + μ)·g, θ₁ = θ₀ − lr·1.9·g.
    let (p, ..) = first(AnyRule::Sgd(Sgd {
        lr: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..Sgd::default()
    }));
    assert_all("sgd nesterov step 1", &p, [0.443, -1.348, 1.772]);

    // SGD momentum 0.9, dampening 0.1 (sgd.py): step 1 b₁ = g₁ undampened, θ₁ = θ₀ − 0.1·g₁
    // (dampening there would give 0.473 for element 0); step 2 b₂ = 0.9·g₁ + 0.9·g₂,
    // θ₂ = θ₁ − 0.1·b₂: 0.47 − 0.1·0.9·(0.3 + 0.25) = 0.4205.
    let (mut p, _, mut cpu, _) = first(AnyRule::Sgd(Sgd {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        ..Sgd::default()
    }));
    assert_all("sgd dampening step 1", &p, [0.47, -1.42, 1.88]);
    assert_all("momentum_buffer step 1", &cpu.state[0], [0.3, -0.8, 1.2]);
    cpu.step(&mut p, &GRADS[1]).unwrap();
    assert_all("sgd dampening step 2", &p, [0.4205, -1.294, 1.763]);

    // Adagrad (adagrad.py), S₀ = 0.1, step 1: clr = lr, θ₁ = θ₀ − 0.1·g / √(0.1 + g²).
    let (p, ..) = first(AnyRule::Adagrad(Adagrad {
        lr: 0.1,
        lr_decay: 0.5,
        initial_accumulator_value: 0.1,
        ..Adagrad::default()
    }));
    assert_all(
        "adagrad step 1",
        &p,
        [0.43117527985462095, -1.4070018890157554, 1.9033012443247466],
    );

    // Adadelta defaults (adadelta.py), step 1: E[g²] = 0.1·g², E[Δ²] = 0,
    // θ₁ = θ₀ − √1e-6 / √(0.1·g² + 1e-6) · g  (≈ θ₀ − 3.16e-3·sign g).
    let (p, ..) = first(AnyRule::Adadelta(Adadelta::default()));
    assert_all(
        "adadelta step 1",
        &p,
        [0.496837898007285, -1.4968377470448364, 1.9968377333199052],
    );

    // RMSprop centered, μ 0.9, eps 1e-2 (rmsprop.py), step 1: E[g²] = 0.01·g², E[g] = 0.01·g,
    // avg = √(0.01·g² − 1e-4·g²) + 0.01, b₁ = g/avg, θ₁ = θ₀ − 0.01·b₁.
    let (p, ..) = first(AnyRule::RmsProp(RmsProp {
        centered: true,
        momentum: 0.9,
        eps: 1e-2,
        ..RmsProp::default()
    }));
    assert_all(
        "rmsprop centered momentum step 1",
        &p,
        [0.4247169793431153, -1.4107132841968832, 1.9072632163440568],
    );
}

/// The options the cases rely on do change the result, by far more than the tolerance:
/// otherwise a case could pass with the option ignored.
#[test]
fn options_under_test_change_the_textbook_result() {
    let differs = |a: &AnyRule, b: &AnyRule| {
        let (x, y) = (textbook(a), textbook(b));
        let (x, y) = (&x.last().unwrap().params, &y.last().unwrap().params);
        (0..3).any(|i| (x[i] - y[i]).abs() > 100.0 * REL_TOL * y[i].abs())
    };
    let adam = Adam {
        lr: 0.1,
        eps: 1e-3,
        betas: (0.9, 0.5),
        ..Adam::default()
    };
    let pairs = [
        (
            AnyRule::Adam(adam.clone()),
            AnyRule::Adam(Adam {
                amsgrad: true,
                ..adam.clone()
            }),
        ),
        (
            AnyRule::Adam(Adam {
                weight_decay: 0.1,
                ..adam.clone()
            }),
            AnyRule::Adam(Adam {
                weight_decay: 0.1,
                decoupled_weight_decay: true,
                ..adam.clone()
            }),
        ),
        (
            AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                ..Sgd::default()
            }),
            AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.1,
                ..Sgd::default()
            }),
        ),
        (
            AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                ..Sgd::default()
            }),
            AnyRule::Sgd(Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            }),
        ),
        (
            AnyRule::Adagrad(Adagrad {
                lr: 0.1,
                ..Adagrad::default()
            }),
            AnyRule::Adagrad(Adagrad {
                lr: 0.1,
                lr_decay: 0.5,
                ..Adagrad::default()
            }),
        ),
        (
            AnyRule::RmsProp(RmsProp {
                momentum: 0.9,
                eps: 1e-2,
                ..RmsProp::default()
            }),
            AnyRule::RmsProp(RmsProp {
                centered: true,
                momentum: 0.9,
                eps: 1e-2,
                ..RmsProp::default()
            }),
        ),
    ];
    for (a, b) in &pairs {
        assert!(differs(a, b), "{a:?} vs {b:?}: indistinguishable");
    }
}

/// The GPU, through `Optimizer` as a user drives it, agrees with the textbook values too.
#[test]
fn gpu_follows_the_textbook_formulas() {
    let ctx = common::ctx();
    for (label, rule) in cases() {
        let want = textbook(&rule);
        let arena = Arena::new(&ctx, &[3]).unwrap();
        ctx.upload(&arena.param(0), &P0).unwrap();
        let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
        let id = opt.add_arena(&arena, opt.default_group()).unwrap()[0];
        let mut worst: f64 = 0.0;
        for (k, g) in GRADS.iter().enumerate() {
            ctx.upload(&arena.grad(0), g).unwrap();
            opt.step().unwrap();
            let p = ctx.download(&arena.param(0)).unwrap();
            let state: Vec<Vec<f32>> = (0..rule.state_slots().len())
                .map(|s| opt.read_state(id, s).unwrap())
                .collect();
            let e = check_snapshot(&format!("gpu {label}"), k + 1, &rule, &want[k], &p, &state);
            worst = worst.max(e);
        }
        assert_eq!(opt.step_count(), GRADS.len() as u64);
        eprintln!("gpu {label:<36} worst relative error {worst:.1e}");
    }
}

/// `Default` equals torch.optim's constructor defaults (torch 2.x signatures).
#[test]
fn defaults_equal_torch() {
    // torch.optim.SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    //                 nesterov=False, *, maximize=False)
    assert_eq!(
        Sgd::default(),
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    );
    // torch.optim.Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0,
    //                     initial_accumulator_value=0, eps=1e-10, maximize=False)
    assert_eq!(
        Adagrad::default(),
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    );
    // torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)
    assert_eq!(
        Adadelta::default(),
        Adadelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    );
    // torch.optim.RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0,
    //                     momentum=0, centered=False, maximize=False)
    assert_eq!(
        RmsProp::default(),
        RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    );
    // torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    //                  amsgrad=False, *, maximize=False, decoupled_weight_decay=False)
    assert_eq!(
        Adam::default(),
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    );
    // torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
    //                   amsgrad=False, *, maximize=False): Adam with decoupled decay.
    assert_eq!(
        Adam::adamw(),
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: true,
        }
    );
    // Initial state as torch creates it: zeros, Adagrad's sum at initial_accumulator_value.
    let cpu = CpuOptimizer::new(
        Adagrad {
            initial_accumulator_value: 0.25,
            ..Adagrad::default()
        },
        2,
    )
    .unwrap();
    assert_eq!(cpu.state, vec![vec![0.25f32; 2]]);
    let cpu = CpuOptimizer::new(Adam::default(), 2).unwrap();
    assert_eq!(cpu.state, vec![vec![0.0f32; 2]; 2]);
}

/// Lion, from the paper's Algorithm 2 (Chen et al. 2023) written out in f64:
/// θ ← θ(1 − lr·λ); c = β1·m + (1 − β1)·g; θ ← θ − lr·sign(c); m ← β2·m + (1 − β2)·g.
/// Element 2's first gradient is 0, so c = 0 there and only the decay moves it.
#[test]
fn lion_matches_the_paper() {
    let (lr, wd, b1, b2) = (0.1f64, 0.1f64, 0.9f64, 0.99f64);
    let grads: [[f64; 3]; 3] = [[1.0, -2.0, 0.0], [-9.0, 0.5, 0.25], [0.5, 0.5, -1.0]];
    let mut p = [0.5f64, -0.25, 1.0];
    let mut m = [0.0f64; 3];
    for g in &grads {
        for i in 0..3 {
            p[i] *= 1.0 - lr * wd;
            let c = b1 * m[i] + (1.0 - b1) * g[i];
            let s = if c > 0.0 {
                1.0
            } else if c < 0.0 {
                -1.0
            } else {
                0.0
            };
            p[i] -= lr * s;
            m[i] = b2 * m[i] + (1.0 - b2) * g[i];
        }
    }
    let rule = Lion {
        lr,
        betas: (b1, b2),
        weight_decay: wd,
        maximize: false,
    };
    let mut cpu = CpuOptimizer::new(rule, 3).unwrap();
    let mut q = [0.5f32, -0.25, 1.0];
    for g in &grads {
        let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
        cpu.step(&mut q, &g32).unwrap();
    }
    for i in 0..3 {
        assert!(
            ((q[i] as f64) - p[i]).abs() <= 1e-5 * p[i].abs().max(1.0),
            "element {i}: {} vs {}",
            q[i],
            p[i]
        );
        assert!(((cpu.state[0][i] as f64) - m[i]).abs() <= 1e-5 * m[i].abs().max(1e-3));
    }
    // sign(0) = 0 (f32::signum would give 1): a zero gradient on fresh state moves the
    // parameter by the decay alone.
    let mut one = CpuOptimizer::new(
        Lion {
            lr,
            betas: (b1, b2),
            weight_decay: wd,
            maximize: false,
        },
        1,
    )
    .unwrap();
    let mut x = [1.0f32];
    one.step(&mut x, &[0.0]).unwrap();
    assert_eq!(x[0], 0.99);
}

/// LAMB in f64 from the paper / optax's chain (scale_by_adam, add_decayed_weights,
/// scale_by_trust_ratio, scale_by_learning_rate), two tensors of different scale so the
/// trust ratios differ: r = ‖θ‖ / ‖u‖ per tensor.
#[test]
fn lamb_matches_the_formula() {
    let (lr, b1, b2, eps, wd) = (0.01f64, 0.9f64, 0.999f64, 1e-6f64, 0.01f64);
    let p0: [Vec<f64>; 2] = [vec![0.5, -0.25, 1.0], vec![10.0, -20.0, 5.0, 0.0]];
    let grads = |t: usize, k: usize, i: usize| ((t * 3 + k * 5 + i * 7) % 9) as f64 * 0.25 - 1.0;
    let rule = Lamb {
        lr,
        betas: (b1, b2),
        eps,
        eps_root: 0.0,
        weight_decay: wd,
        maximize: false,
    };
    for (k, start) in p0.iter().enumerate() {
        let n = start.len();
        let (mut p, mut m, mut v) = (start.clone(), vec![0.0; n], vec![0.0; n]);
        let mut cpu = CpuOptimizer::new(rule.clone(), n).unwrap();
        let mut q: Vec<f32> = start.iter().map(|&x| x as f32).collect();
        for t in 1..=4 {
            let g: Vec<f64> = (0..n).map(|i| grads(t, k, i)).collect();
            let mut u = vec![0.0; n];
            for i in 0..n {
                m[i] = (1.0 - b1) * g[i] + b1 * m[i];
                v[i] = (1.0 - b2) * g[i] * g[i] + b2 * v[i];
                let mh = m[i] / (1.0 - b1.powi(t as i32));
                let vh = v[i] / (1.0 - b2.powi(t as i32));
                u[i] = mh / (vh.sqrt() + eps) + wd * p[i];
            }
            let pn = p.iter().map(|x| x * x).sum::<f64>().sqrt();
            let un = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            let r = if pn > 0.0 && un > 0.0 { pn / un } else { 1.0 };
            for i in 0..n {
                p[i] -= lr * r * u[i];
            }
            let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            cpu.step(&mut q, &g32).unwrap();
            for i in 0..n {
                assert!(
                    ((q[i] as f64) - p[i]).abs() <= 1e-5 * p[i].abs().max(1.0),
                    "tensor {k} step {t} element {i}: {} vs {}",
                    q[i],
                    p[i]
                );
            }
        }
    }
}
