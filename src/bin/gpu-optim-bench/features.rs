//! What do clip_grad_norm, GradScaler and bf16/f16 params through an f32 master cost against
//! the plain Adam step? Reads the rules' rows, never changes them; writes no table or file.

use gpu_optim::bench::{self, Sample, Setup};
use gpu_optim::{Adam, AnyRule, Arena, Context, Dtype, GradScaler, Optimizer, UpdateRule};
use serde::Serialize;

use crate::anchors::ANCHOR_MIN_REPS;
use crate::rules::RuleRow;
use crate::Shared;

#[derive(Serialize)]
pub struct FeatureRow {
    pub feature: String,
    pub params: usize,
    /// Seconds per step with the feature.
    pub step: Sample,
    /// Seconds per step of the plain f32 Adam step on its own f32 buffers of the same
    /// size at the same K, timed alternately with `step`.
    pub plain: Sample,
    /// Per-repetition step / plain (each pair timed back to back): median, min, max.
    pub over_plain: Sample,
    /// Alternating repetitions (at least [`ANCHOR_MIN_REPS`], as every gate's ratio).
    pub reps: usize,
    /// The time ratio the feature's bytes predict: its bytes per param over the plain
    /// step's (clipping or loss scaling: one more f32 read of the grads, 32/28 for Adam;
    /// 16-bit params and grads through an f32 master: 28/28).
    pub bytes_ratio: f64,
    /// Steps recorded per submission, the feature's and the plain step's: the run's K at
    /// this size, or fewer with loss scaling where its candidates per slot allow fewer
    /// (see [`max_steps_with_scaler`]).
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

/// The training-loop feature rows (none when no size is up to 2^24 or Adam was not timed),
/// each timed alternately with the plain step, like for like: the same size and K, the
/// plain step on f32 buffers of its own. (Its time from the rules' table would come from
/// another minute of the run, and on a noisy software device that moved the ratio by
/// 1.3x between runs.)
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
    let reps = reps.max(ANCHOR_MIN_REPS);
    let k_for = |n| s.k_for(n);
    // Training-loop features relative to the plain step, at the largest size up to 2^24:
    // clipping (one more read of the grads plus two small reductions), loss scaling with
    // the inf/NaN check (the same reduction), both; 16-bit params and grads.
    let mut features = Vec::new();
    let Some(n) = sizes.iter().copied().filter(|&n| n <= 1 << 24).max() else {
        return Ok(features);
    };
    if !rows
        .iter()
        .any(|r| r.timing.rule == "adam" && r.timing.params == n)
    {
        return Ok(features);
    }
    let rule = AnyRule::Adam(Adam::default());
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
    let f32_arena = bench::random_arena(ctx, n)?;
    let plain_arena = bench::random_arena(ctx, n)?;
    let plain_bytes = rule.bytes_per_param() as f64;
    // The pre-pass reads every f32 grad once more (clipping and the scaler's inf/NaN
    // check share it); its reductions move a few bytes per tile.
    let prepass_ratio = (plain_bytes + 4.0) / plain_bytes;
    // The master is read and written as the f32 params were; the grads are read as 2
    // bytes instead of 4, and the 16-bit params written (2).
    let half_ratio = (plain_bytes - 4.0 + 2.0 + 2.0) / plain_bytes;
    let bf16_arena = bench::random_arena_as(ctx, n, Dtype::Bf16, Dtype::Bf16)?;
    let f16_arena = bench::random_arena_as(ctx, n, Dtype::F16, Dtype::F16)?;
    let with = |clip, scaler| Setup {
        clip,
        scaler,
        ..Setup::default()
    };
    let cases = [
        (
            "adam + clip_grad_norm(1.0)",
            &f32_arena,
            with(clip, None),
            prepass_ratio,
        ),
        (
            "adam + GradScaler",
            &f32_arena,
            with(None, scaler),
            prepass_ratio,
        ),
        (
            "adam + clip + GradScaler",
            &f32_arena,
            with(clip, scaler),
            prepass_ratio,
        ),
        // Mixed precision: the caller's bf16 params and grads, the f32 master here.
        (
            "adam, bf16 params+grads, f32 master",
            &bf16_arena,
            Setup::default(),
            half_ratio,
        ),
        (
            "adam, f16 params+grads, f32 master",
            &f16_arena,
            Setup::default(),
            half_ratio,
        ),
    ];
    for (name, arena, setup, bytes_ratio) in cases {
        bar.set_message(name);
        // Loss scaling takes fewer steps per submission than a small size's default K
        // (64 at 2^18 and below): its row runs at most what it accepts, and says so; the
        // plain step beside it runs as many.
        let k = if setup.scaler.is_some() {
            scaler_k
        } else {
            k_for(n)
        };
        let plain_setup = Setup::default();
        let (step, plain, over_plain) = bench::time_against(
            ctx,
            timer,
            &rule,
            (arena, &setup),
            (&plain_arena, &plain_setup),
            reps,
            k,
        )?;
        features.push(FeatureRow {
            feature: name.into(),
            params: n,
            step,
            plain,
            over_plain,
            reps,
            bytes_ratio,
            steps_per_submission: k,
        });
    }
    Ok(features)
}
