//! What do clip_grad_norm, GradScaler and bf16/f16 params through an f32 master cost against
//! the plain Adam step? Reads the rules' rows, never changes them; writes no table or file.

use gpu_optim::bench::{self, Sample, Setup};
use gpu_optim::{Adam, AnyRule, Arena, Context, Dtype, GradScaler, Optimizer, UpdateRule};
use serde::Serialize;

use crate::rules::RuleRow;
use crate::Shared;

#[derive(Serialize)]
pub struct FeatureRow {
    pub feature: String,
    pub params: usize,
    pub step: Sample,
    pub over_plain: f64,
    /// The time ratio the feature's bytes predict: its bytes per param over the plain
    /// step's (clipping or loss scaling: one more f32 read of the grads, 32/28 for Adam;
    /// 16-bit params and grads through an f32 master: 28/28).
    pub bytes_ratio: f64,
    /// Steps recorded per submission: the run's K at this size, or fewer with loss scaling
    /// where its candidates per slot allow fewer (see [`max_steps_with_scaler`]).
    pub steps_per_submission: usize,
}

/// The most steps per submission `rule` with `scaler` and one param group accepts on this
/// device: its loss scaling variant's candidates per slot less one (a slot covers every
/// step of a submission not yet acknowledged). The library caps the candidates at 32
/// (`kernel::MAX_LAG`, not public), fewer where the uniform limit leaves less room, so
/// this is at most 31; read from the planned variant of a one-element optimizer.
pub fn max_steps_with_scaler(
    ctx: &Context,
    rule: &AnyRule,
    scaler: GradScaler,
) -> Result<usize, gpu_optim::Error> {
    let arena = Arena::new(ctx, &[1])?;
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_steps_per_submission(1)?;
    opt.add_arena(&arena, opt.default_group())?;
    opt.set_grad_scaler(scaler)?;
    opt.prepare()?;
    let lag = opt
        .kernel_variants()
        .iter()
        .map(|v| v.lag)
        .min()
        .unwrap_or(0);
    Ok((lag as usize).saturating_sub(1).max(1))
}

/// The training-loop feature rows (none when no size is up to 2^24 or Adam was not timed).
pub fn feature_rows(
    s: &Shared,
    sizes: &[usize],
    rows: &[RuleRow],
) -> Result<Vec<FeatureRow>, Box<dyn std::error::Error>> {
    let Shared {
        ctx,
        timer,
        bar,
        reps,
        ..
    } = *s;
    let k_for = |n| s.k_for(n);
    // Training-loop features relative to the plain step, at the largest size up to 2^24:
    // clipping (one more read of the grads plus two small reductions), loss scaling with
    // the inf/NaN check (the same reduction), both.
    let mut features = Vec::new();
    if let Some(n) = sizes.iter().copied().filter(|&n| n <= 1 << 24).max() {
        let rule = AnyRule::Adam(Adam::default());
        let plain = rows
            .iter()
            .find(|r| r.timing.rule == "adam" && r.timing.params == n)
            .map(|r| r.timing.step.median);
        if let Some(plain) = plain {
            let clip = Some(gpu_optim::GradClip {
                max_norm: Some(1.0),
                value: None,
            });
            // A scale of 1: the random grads stand for already-scaled ones.
            let unit_scaler = GradScaler {
                init_scale: 1.0,
                ..GradScaler::default()
            };
            let scaler = Some(unit_scaler);
            let scaler_k = k_for(n).min(max_steps_with_scaler(ctx, &rule, unit_scaler)?);
            let arena = bench::random_arena(ctx, n)?;
            let plain_bytes = rule.bytes_per_param() as f64;
            // The pre-pass reads every f32 grad once more (clipping and the scaler's
            // inf/NaN check share it); its reductions move a few bytes per tile.
            let prepass_ratio = (plain_bytes + 4.0) / plain_bytes;
            for (name, setup) in [
                (
                    "adam + clip_grad_norm(1.0)",
                    Setup {
                        clip,
                        ..Setup::default()
                    },
                ),
                (
                    "adam + GradScaler",
                    Setup {
                        scaler,
                        ..Setup::default()
                    },
                ),
                (
                    "adam + clip + GradScaler",
                    Setup {
                        clip,
                        scaler,
                        ..Setup::default()
                    },
                ),
            ] {
                bar.set_message(name);
                // Loss scaling takes fewer steps per submission than a small size's
                // default K (64 at 2^18 and below): its row runs at most what it accepts,
                // and says so. Its ratio to the plain step then also holds a little more
                // submission overhead per step.
                let k = if setup.scaler.is_some() {
                    scaler_k
                } else {
                    k_for(n)
                };
                let t = bench::time_rule_on(ctx, timer, &rule, &arena, reps, k, &setup)?;
                features.push(FeatureRow {
                    feature: name.into(),
                    params: n,
                    step: t.step,
                    over_plain: t.step.median / plain,
                    bytes_ratio: prepass_ratio,
                    steps_per_submission: k,
                });
            }
            // Mixed precision: the caller's bf16 params and grads, the f32 master here.
            for (name, pd, gd) in [
                (
                    "adam, bf16 params+grads, f32 master",
                    Dtype::Bf16,
                    Dtype::Bf16,
                ),
                ("adam, f16 params+grads, f32 master", Dtype::F16, Dtype::F16),
            ] {
                bar.set_message(name);
                let arena = bench::random_arena_as(ctx, n, pd, gd)?;
                let t = bench::time_rule_on(
                    ctx,
                    timer,
                    &rule,
                    &arena,
                    reps,
                    k_for(n),
                    &Setup::default(),
                )?;
                features.push(FeatureRow {
                    feature: name.into(),
                    params: n,
                    step: t.step,
                    over_plain: t.step.median / plain,
                    // The master is read and written as the f32 params were; the grads are
                    // read as 2 bytes instead of 4, and the 16-bit params written (2).
                    bytes_ratio: (plain_bytes - 4.0 + 2.0 + 2.0) / plain_bytes,
                    steps_per_submission: k_for(n),
                });
            }
        }
    }
    Ok(features)
}
