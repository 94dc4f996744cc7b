//! What does 8-bit block-wise state cost and save against f32 state, and does the MLP example
//! still converge with it? Reads the roofline only; writes no table or file. Each 8-bit
//! step is timed alternately with the f32-state step, like for like.

use gpu_optim::bench::{self, Roofline, Sample, Setup};
use gpu_optim::{verify, AnyRule, StateFormat, UpdateRule, VerifyPlan};
use serde::Serialize;

use crate::{mlp, Shared};

/// Rules the bench runs with 8-bit state (bitsandbytes' 8-bit optimizers).
pub const STATE8_RULES: [&str; 3] = ["adam", "adamw", "lion"];
/// Steps of the MLP example in the 8-bit convergence comparison.
pub const MLP_STEPS: usize = 500;
#[derive(Serialize)]
pub struct State8Row {
    pub rule: String,
    /// The verifier (GPU vs CPU twin, 8-bit state) passed; its worst scaled error.
    pub verified: bool,
    pub max_scaled: f64,
    pub params: usize,
    pub bytes_per_param: f64,
    pub step: Sample,
    pub gbps: f64,
    pub pct_roofline: f64,
    /// Time per step / the same rule's with f32 state (on buffers of its own, same size
    /// and K, timed alternately): median of the per-repetition ratios.
    pub over_f32: f64,
    /// The time ratio its bytes predict: bytes per param over the f32-state rule's
    /// (16.06/28 for Adam).
    pub bytes_ratio: f64,
    pub state_bytes_per_param: f64,
    pub f32_state_bytes_per_param: f64,
    pub mlp_steps: usize,
    pub mlp_loss_f32: f32,
    pub mlp_loss_8bit: f32,
    /// Final training loss with 8-bit state / with f32 state (1 = no loss of convergence).
    pub mlp_loss_ratio: f32,
    /// The same with stochastic requantization: time vs f32 state (timed alternately, as
    /// `over_f32`), final loss, ratio.
    pub sr_over_f32: f64,
    pub mlp_loss_8bit_sr: f32,
    pub mlp_loss_ratio_sr: f32,
}

/// The 8-bit state rows: each of `STATE8_RULES` in this run, at the largest size up to 2^24.
pub fn state8_rows(
    s: &Shared,
    sizes: &[usize],
    rules: &[AnyRule],
    roofs: &[Roofline],
) -> Result<Vec<State8Row>, Box<dyn std::error::Error>> {
    let Shared {
        ctx,
        timer,
        bar,
        args,
        reps,
        ..
    } = *s;
    let k_for = |n| s.k_for(n);
    // 8-bit state: speed against the f32 rule and the roofline at the largest size up to
    // 2^24, state memory, and the MLP example's final loss with 8-bit vs f32 state.
    let mut state8 = Vec::new();
    if let Some(n) = sizes.iter().copied().filter(|&n| n <= 1 << 24).max() {
        let roof = roofs
            .iter()
            .find(|r| r.params == n)
            .map(|r| r.gbps())
            .unwrap_or(f64::NAN);
        let arena = bench::random_arena(ctx, n)?;
        let f32_arena = bench::random_arena(ctx, n)?;
        let k = k_for(n);
        // The step with `setup` and the f32-state step, alternately: the first's times and
        // the median of the per-repetition ratios.
        let against_f32 =
            |rule: &AnyRule, setup: &Setup| -> Result<(Sample, f64), gpu_optim::Error> {
                let f32_setup = Setup::default();
                let (step, _, ratio) = bench::time_against(
                    ctx,
                    timer,
                    rule,
                    (&arena, setup),
                    (&f32_arena, &f32_setup),
                    reps,
                    k,
                )?;
                Ok((step, ratio.median))
            };
        for rule in rules
            .iter()
            .filter(|r| STATE8_RULES.contains(&r.name().as_str()))
        {
            bar.set_message(format!("{} 8-bit state", rule.name()));
            let f = StateFormat::blockwise8();
            let setup = Setup {
                format: f,
                ..Setup::default()
            };
            let (step, over_f32) = against_f32(rule, &setup)?;
            let slots = rule.state_slots().len() as f64;
            let mlp = |format| -> Result<f32, gpu_optim::Error> {
                let r = mlp::lr_for(rule.clone());
                let log = mlp::train_with(ctx, &r, format, MLP_STEPS, MLP_STEPS, |_, _, _| {})?;
                Ok(log.last().expect("logged").1)
            };
            // Every MLP tensor is below bitsandbytes' 4096 threshold: quantize them all.
            let loss_f32 = mlp(StateFormat::F32)?;
            let loss_8 = mlp(StateFormat::Blockwise8 {
                min_len: 0,
                stochastic: None,
            })?;
            let loss_sr = mlp(StateFormat::Blockwise8 {
                min_len: 0,
                stochastic: Some(1),
            })?;
            let sr_setup = Setup {
                format: StateFormat::Blockwise8 {
                    min_len: 4096,
                    stochastic: Some(1),
                },
                ..Setup::default()
            };
            let (_, sr_over_f32) = against_f32(rule, &sr_setup)?;
            let mut plan = VerifyPlan::flat(rule.clone(), 100_003, args.verify_steps);
            plan.state_format = f;
            let check = verify(ctx, &plan)?;
            let bpp = bench::bytes_per_param(rule, f);
            let gbps = bpp * n as f64 / step.median / 1e9;
            state8.push(State8Row {
                verified: check.passed(),
                max_scaled: check.worst().max_scaled,
                rule: rule.name(),
                params: n,
                bytes_per_param: bpp,
                step,
                gbps,
                pct_roofline: 100.0 * gbps / roof,
                over_f32,
                bytes_ratio: bpp / rule.bytes_per_param() as f64,
                state_bytes_per_param: slots * (1.0 + 4.0 / gpu_optim::quant::BLOCK as f64),
                f32_state_bytes_per_param: slots * 4.0,
                mlp_steps: MLP_STEPS,
                mlp_loss_f32: loss_f32,
                mlp_loss_8bit: loss_8,
                mlp_loss_ratio: loss_8 / loss_f32,
                sr_over_f32,
                mlp_loss_8bit_sr: loss_sr,
                mlp_loss_ratio_sr: loss_sr / loss_f32,
            });
        }
    }
    Ok(state8)
}
