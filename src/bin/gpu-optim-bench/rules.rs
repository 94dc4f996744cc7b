//! How fast is each rule at each size against the copy roofline, does it agree with the CPU
//! reference, and what does the GPU buy over the CPU twin? Prints no table, writes no file.

use gpu_optim::bench::{self, Roofline, RuleTiming, Sample, Setup};
use gpu_optim::{verify, AnyRule, UpdateRule, VerifyPlan};
use serde::Serialize;

use crate::{fmt_size, Shared};

/// Elements of the random buffers the verifier compares (the correctness table's size).
pub const VERIFY_LEN: usize = 100_003;

#[derive(Serialize)]
pub struct RuleRow {
    #[serde(flatten)]
    pub timing: RuleTiming,
    pub roofline_gbps: f64,
    pub pct_roofline: f64,
    pub pct_copy_kernel: f64,
}

#[derive(Serialize)]
pub struct VerifyRow {
    pub rule: String,
    pub steps: u32,
    pub params: usize,
    pub passed: bool,
    pub max_rel: f64,
    pub max_ulps: u64,
    pub max_scaled: f64,
    pub tolerance: f64,
}

#[derive(Serialize)]
pub struct CpuRow {
    pub rule: String,
    pub params: usize,
    pub cpu: Sample,
    pub gpu_median: f64,
    pub gpu_speedup: f64,
}

/// The copy roofline at each size, and every rule's time per step at that size.
pub fn roofline_and_rules(
    s: &Shared,
    sizes: &[usize],
    rules: &[AnyRule],
) -> Result<(Vec<Roofline>, Vec<RuleRow>), Box<dyn std::error::Error>> {
    let Shared {
        ctx,
        timer,
        bar,
        reps,
        ..
    } = *s;
    let k_for = |n| s.k_for(n);
    // Roofline and rules per size.
    let mut roofs = Vec::new();
    let mut rows = Vec::new();
    for &n in sizes {
        bar.set_message(format!("copy {}", fmt_size(n)));
        let roof = bench::roofline(ctx, timer, n, reps, k_for(n))?;
        bar.inc(1);
        let arena = bench::random_arena(ctx, n)?;
        for rule in rules {
            bar.set_message(format!("{} {}", rule.name(), fmt_size(n)));
            let t =
                bench::time_rule_on(ctx, timer, rule, &arena, reps, k_for(n), &Setup::default())?;
            rows.push(RuleRow {
                roofline_gbps: roof.gbps(),
                pct_roofline: 100.0 * t.gbps / roof.gbps(),
                pct_copy_kernel: 100.0 * t.gbps / roof.copy_kernel_gbps,
                timing: t,
            });
            bar.inc(1);
        }
        roofs.push(roof);
    }
    Ok((roofs, rows))
}

/// Every rule's correctness: GPU vs the CPU reference after `--verify-steps` steps.
pub fn verify_rows(
    s: &Shared,
    rules: &[AnyRule],
) -> Result<Vec<VerifyRow>, Box<dyn std::error::Error>> {
    let Shared { ctx, bar, args, .. } = *s;
    // Correctness.
    let mut verifies = Vec::new();
    let vlen = VERIFY_LEN;
    for rule in rules {
        bar.set_message(format!("verify {}", rule.name()));
        let r = verify(
            ctx,
            &VerifyPlan::flat(rule.clone(), vlen, args.verify_steps),
        )?;
        let pick = |f: fn(&gpu_optim::verify::BufferError) -> f64| {
            r.buffers.iter().map(f).fold(0.0, f64::max)
        };
        verifies.push(VerifyRow {
            rule: r.rule.clone(),
            steps: r.steps,
            params: vlen,
            passed: r.passed(),
            max_rel: pick(|b| b.max_rel),
            max_ulps: r.buffers.iter().map(|b| b.max_ulps).max().unwrap_or(0),
            max_scaled: pick(|b| b.max_scaled),
            tolerance: r.tolerance,
        });
        bar.inc(1);
    }
    Ok(verifies)
}

/// The CPU reference's time per step beside the GPU's (none with `--no-cpu`).
pub fn cpu_rows(
    s: &Shared,
    sizes: &[usize],
    rules: &[AnyRule],
    rows: &[RuleRow],
) -> Result<Vec<CpuRow>, Box<dyn std::error::Error>> {
    let Shared { bar, args, .. } = *s;
    // CPU reference, at the largest size up to 2^24.
    let mut cpus = Vec::new();
    if !args.no_cpu {
        let n = sizes
            .iter()
            .copied()
            .filter(|&n| n <= 1 << 24)
            .max()
            .unwrap_or(sizes[0]);
        for rule in rules {
            bar.set_message(format!("cpu {}", rule.name()));
            let s = bench::time_cpu(rule, n, 3)?;
            let gpu = rows
                .iter()
                .find(|r| r.timing.rule == rule.name() && r.timing.params == n)
                .map(|r| r.timing.step.median)
                .unwrap_or(f64::NAN);
            cpus.push(CpuRow {
                rule: rule.name(),
                params: n,
                cpu: s,
                gpu_median: gpu,
                gpu_speedup: s.median / gpu,
            });
            bar.inc(1);
        }
    }
    Ok(cpus)
}
