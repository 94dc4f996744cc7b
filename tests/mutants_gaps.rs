//! Tests for the mutants that cargo-mutants 27.1.0 found surviving in the host modules
//! (src/schedule.rs, src/scaler.rs, the rules' `hyper` functions). Each test is named
//! after what it guards. Expected values come from torch's formulas worked by hand or from
//! the documented contract, not from the code under test. All of them run on the host (no
//! device needed).

use gpu_optim::{CpuGradScaler, CpuOptimizer, Error, GradScaler, LrSchedule, RAdam};

fn refused(r: gpu_optim::Result<()>, param: &str) -> bool {
    matches!(r, Err(Error::InvalidHyperparameter { name, .. }) if name == param)
}

/// `LrSchedule::validate`: each parameter outside its documented range is refused, naming
/// it, and the documented bounds themselves are accepted (`warmup <= t_max`).
/// Mutants: `validate -> Ok(())`, `gamma.is_finite() && gamma >= 0` as `||`,
/// `eta_min.is_finite() && eta_min >= 0` as `||`, `warmup > t_max` as `>=`.
#[test]
fn lr_schedule_validate_refuses_out_of_range_and_accepts_the_bounds() {
    let step = |step_size, gamma| LrSchedule::Step { step_size, gamma };
    assert!(refused(step(0, 0.5).validate(), "step_size"));
    assert!(refused(step(1, -0.5).validate(), "gamma"));
    assert!(refused(step(1, f64::INFINITY).validate(), "gamma"));
    assert!(refused(step(1, f64::NAN).validate(), "gamma"));
    step(1, 0.0).validate().unwrap();
    step(1, 1.0).validate().unwrap();

    let cosine = |t_max, eta_min| LrSchedule::Cosine { t_max, eta_min };
    assert!(refused(cosine(0, 0.0).validate(), "t_max"));
    assert!(refused(cosine(10, -1e-3).validate(), "eta_min"));
    assert!(refused(cosine(10, f64::INFINITY).validate(), "eta_min"));
    cosine(1, 0.0).validate().unwrap();

    let warm = |warmup, t_max, eta_min| LrSchedule::WarmupCosine {
        warmup,
        t_max,
        eta_min,
    };
    assert!(refused(warm(2, 10, -1e-3).validate(), "eta_min"));
    assert!(refused(warm(11, 10, 0.0).validate(), "warmup"));
    // All warm-up, no cosine: the documented bound warmup <= t_max.
    warm(10, 10, 0.0).validate().unwrap();
    // No warm-up at all.
    warm(0, 10, 0.0).validate().unwrap();
}

/// `WarmupCosine` with `warmup: 0` is the plain cosine: its first step runs at the base lr
/// (torch: no `LinearLR` phase, `CosineAnnealingLR` starts at the group's lr), then
/// η_min + (lr − η_min)(1 + cos(π·k/T))/2. Mutants: the guard `warmup > 0` of `initial`
/// as `true` or `>=` (then lr / 0 = inf).
#[test]
fn warmup_cosine_without_warmup_starts_at_the_base_lr() {
    let s = LrSchedule::WarmupCosine {
        warmup: 0,
        t_max: 4,
        eta_min: 0.0,
    };
    assert_eq!(s.initial(0.1), 0.1);
    assert_eq!(s.lr(0.1, 1), 0.1);
    // The chain from there: (1 + cos(π/4))/2 = 0.853553..., 0.5, 0.146446..., then η_min.
    let want = [0.853_553_390_593_273_8, 0.5, 0.146_446_609_406_726_24, 0.0];
    let mut lr = s.initial(0.1);
    for (epoch, w) in (1..=4u64).zip(want) {
        lr = s.next(lr, epoch);
        assert!(
            (lr - 0.1 * w).abs() < 1e-15,
            "epoch {epoch}: {lr} vs {}",
            0.1 * w
        );
    }
}

/// `LrSchedule::lr`, the closed forms: `StepLR` lr·γ^⌊(t−1)/step_size⌋ and
/// `CosineAnnealingLR` η_min + (lr − η_min)(1 + cos(π(t−1)/T))/2 held at η_min after T,
/// worked by hand. Mutants: `base * gamma.powi(k / step_size)` with `*` as `+`/`/` and `/`
/// as `%`/`*` (tests/scheduler.rs checks only the warm-up cosine's closed form).
#[test]
fn lr_schedule_closed_forms_step_and_cosine() {
    let step = LrSchedule::Step {
        step_size: 3,
        gamma: 0.5,
    };
    let want = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
    for (t, w) in (1..=10u64).zip(want) {
        assert_eq!(step.lr(0.1, t), w, "StepLR t={t}");
    }

    let cosine = LrSchedule::Cosine {
        t_max: 4,
        eta_min: 0.01,
    };
    // (1 + cos(π·k/4))/2 for k = 0..4: 1, 0.853553..., 0.5, 0.146446..., 0.
    let f = [
        1.0,
        0.853_553_390_593_273_8,
        0.5,
        0.146_446_609_406_726_24,
        0.0,
    ];
    for t in 1..=7u64 {
        let w = 0.01 + (1.0 - 0.01) * f[(t as usize - 1).min(4)];
        let got = cosine.lr(1.0, t);
        assert!((got - w).abs() < 1e-15, "Cosine t={t}: {got} vs {w}");
    }
}

/// `GradScaler::validate`: backoff_factor in (0, 1] (0 would zero the scale and make
/// 1/scale infinite) and growth_interval in [1, 2^24), both ends checked.
/// Mutants: `backoff_factor > 0.0` as `>=`, `growth_interval < (1 << 24)` as `<=`.
#[test]
fn grad_scaler_validate_bounds() {
    let with = |f: fn(&mut GradScaler)| {
        let mut s = GradScaler::default();
        f(&mut s);
        s.validate()
    };
    assert!(refused(with(|s| s.backoff_factor = 0.0), "backoff_factor"));
    assert!(refused(with(|s| s.backoff_factor = -0.5), "backoff_factor"));
    with(|s| s.backoff_factor = 1.0).unwrap();
    with(|s| s.backoff_factor = f32::MIN_POSITIVE).unwrap();
    assert!(refused(
        with(|s| s.growth_interval = 1 << 24),
        "growth_interval"
    ));
    with(|s| s.growth_interval = (1 << 24) - 1).unwrap();
    with(|s| s.growth_interval = 1).unwrap();
    assert!(refused(with(|s| s.growth_interval = 0), "growth_interval"));
}

/// `GradScaler::skip_only()` as documented: a static scale of 1 that only skips. Its CPU
/// twin leaves finite gradients as they are, reports a NaN or inf, and never changes the
/// scale. Mutant: `skip_only -> Default::default()` (also killed at HEAD by
/// tests/contract.rs `skip_only_skips_without_scaling`, on the device).
#[test]
fn grad_scaler_skip_only_is_a_static_unit_scale() {
    let cfg = GradScaler::skip_only();
    cfg.validate().unwrap();
    let mut s = CpuGradScaler::new(cfg);
    assert_eq!(s.scale, 1.0);
    let mut g = vec![vec![0.3f32, -7.0, 1e-30], vec![65504.0]];
    let before = g.clone();
    assert!(!s.unscale(&mut g));
    assert_eq!(g, before);
    let mut bad = vec![vec![1.0f32, f32::INFINITY]];
    assert!(s.unscale(&mut bad));
    for found in [false, true, false, false, true] {
        s.update(found);
        assert_eq!(s.scale, 1.0);
    }
}

/// RAdam at ρ_t = 5 exactly: torch's `_single_tensor_radam` rectifies only when
/// `rho_t > 5`, so that step is the SGD-with-momentum one, θ ← θ − lr·m/(1 − β1^t).
/// β2 = 0.8397685748659791 makes ρ_6 exactly 5.0 in f64 (checked below with torch's
/// formula); steps 1..5 have ρ_t < 5. With a constant gradient 1, m/(1 − β1^t) = 1, so
/// each of the 6 steps moves θ by lr (the rectified step 6 would move it by lr·r·√(1−β2^6)
/// /√v ≈ 0.31·lr). Mutant: `flag(rho_t > 5.0)` as `>=` in RAdam's `hyper`.
#[test]
fn radam_at_rho_t_exactly_5_is_not_rectified() {
    let b2: f64 = 0.839_768_574_865_979_1;
    let t = 6.0f64;
    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
    let rho_t = rho_inf - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t));
    assert_eq!(rho_t, 5.0, "the test's premise");

    let lr = 0.1;
    let rule = RAdam {
        lr,
        betas: (0.9, b2),
        ..RAdam::default()
    };
    let mut opt = CpuOptimizer::new(rule, 1).unwrap();
    let mut p = [0.0f32];
    let mut last = p[0];
    for step in 1..=6 {
        opt.step(&mut p, &[1.0]).unwrap();
        let moved = (last - p[0]) as f64;
        assert!(
            (moved - lr).abs() < 1e-5,
            "step {step}: moved {moved}, torch moves lr = {lr}"
        );
        last = p[0];
    }
}
