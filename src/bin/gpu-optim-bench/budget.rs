//! The default run's time budget. The default run (sizes 2^16 to 2^25, ~2^24 params per
//! submission, 5 repetitions, every section) suits a GPU; on a slow device, a software one
//! (lavapipe, llvmpipe) or wgpu's GL backend, it took 2-4 min on a 2-core box (2:10 idle,
//! 3:30 sharing its cores with a build) and 8 on a slower one. There, whatever the user
//! left at its default is trimmed, to 27-40 s on that box, and every trim is said (on
//! stdout, and in the JSON's `time_budget`). A flag the user gave is kept exactly;
//! `--full` turns the budget off.

use gpu_optim::{AnyRule, Context, UpdateRule};

use crate::state8::STATE8_RULES;
use crate::{fmt_size, machine, Args};

/// Sizes when `--sizes` is not given.
pub const DEFAULT_SIZES: [usize; 4] = [1 << 16, 1 << 20, 1 << 24, 1 << 25];
/// Repetitions when `--reps` is not given.
pub const DEFAULT_REPS: usize = 5;
/// Params per submission when `--steps` is not given: K = this / n steps, 1 to 64.
pub const DEFAULT_PARAMS_PER_SUBMISSION: usize = 1 << 24;
/// On a slow device: sizes (the features, 8-bit state and CPU reference rows are at the
/// largest). 2^22 f32 is 16 MiB a buffer, 64 MiB for Adam's four: past most CPUs' caches.
const SLOW_SIZES: [usize; 3] = [1 << 16, 1 << 20, 1 << 22];
/// On a slow device: params per submission. K amortizes the submission's fixed cost,
/// which a software device's tens of ms for 2^22 params dwarf; every figure at 2^20 and
/// up then costs a quarter of its default time.
const SLOW_PARAMS_PER_SUBMISSION: usize = 1 << 22;
/// On a slow device: repetitions (a warm-up and this many timed submissions per figure).
const SLOW_REPS: usize = 3;
/// On a slow device: the one rule the 8-bit state section runs (its MLP convergence
/// check trains three times per rule, ~4 s each on lavapipe, 2 cores).
const SLOW_STATE8_RULE: &str = "adam";

/// What this run measures, after the budget.
pub struct Plan {
    pub sizes: Vec<usize>,
    pub reps: usize,
    /// Params per submission when `--steps` is not given (see `Shared::k_for`).
    pub params_per_submission: usize,
    /// Run the GPT-2-small workload.
    pub model: bool,
    /// The one rule the 8-bit state section runs; `None`: each of `--rules` it covers.
    pub state8_only: Option<&'static str>,
    /// Why the device is slow, when the budget trimmed anything.
    pub reason: Option<String>,
    /// What the budget trimmed, one phrase each.
    pub notes: Vec<String>,
}

impl Plan {
    /// The rules the 8-bit state section sees.
    pub fn state8_rules(&self, rules: &[AnyRule]) -> Vec<AnyRule> {
        rules
            .iter()
            .filter(|r| self.state8_only.is_none_or(|only| r.name() == only))
            .cloned()
            .collect()
    }

    /// The budget's lines for stdout (none when it trimmed nothing).
    pub fn describe(&self) -> Vec<String> {
        let Some(reason) = &self.reason else {
            return Vec::new();
        };
        let mut lines = vec![format!(
            "time budget: this is {reason}, so the default run is trimmed (to 30-50 s on 2 \
             cores; untrimmed 2-4 min):"
        )];
        lines.extend(self.notes.iter().map(|n| format!("  - {n}")));
        lines.push(
            "  `--full` runs everything; --sizes, --reps, --steps and --rules choose \
             exactly."
                .into(),
        );
        lines
    }
}

/// Why `ctx`'s device is too slow for the whole default run, if it is.
fn slow_reason(ctx: &Context) -> Option<String> {
    match (machine::is_gl(ctx), ctx.is_software()) {
        (true, true) => Some("wgpu's GL backend on a software rasterizer".into()),
        (true, false) => Some("wgpu's GL backend".into()),
        (false, true) => Some("a software (CPU) device".into()),
        (false, false) => None,
    }
}

/// The run's sizes, repetitions and sections: `sizes` as parsed from `--sizes` (empty
/// when not given) and the other flags as given; trimmed where left at their defaults on
/// a slow device unless `--full`.
pub fn plan(ctx: &Context, args: &Args, sizes: Vec<usize>) -> Plan {
    let mut plan = Plan {
        sizes: if sizes.is_empty() {
            DEFAULT_SIZES.to_vec()
        } else {
            sizes.clone()
        },
        reps: args.reps.unwrap_or(DEFAULT_REPS),
        params_per_submission: DEFAULT_PARAMS_PER_SUBMISSION,
        model: !args.no_model,
        state8_only: None,
        reason: None,
        notes: Vec::new(),
    };
    let reason = match slow_reason(ctx) {
        Some(r) if !args.full => r,
        _ => return plan,
    };
    if sizes.is_empty() {
        plan.sizes = SLOW_SIZES.to_vec();
        let list =
            |ns: &mut dyn Iterator<Item = usize>| ns.map(fmt_size).collect::<Vec<_>>().join(", ");
        plan.notes.push(format!(
            "sizes {} (not {})",
            list(&mut SLOW_SIZES.into_iter()),
            list(
                &mut DEFAULT_SIZES
                    .into_iter()
                    .filter(|n| !SLOW_SIZES.contains(n))
            )
        ));
    }
    if args.steps.is_none() {
        plan.params_per_submission = SLOW_PARAMS_PER_SUBMISSION;
        plan.notes.push(format!(
            "K = {}/params steps per submission (1 to 64) instead of {}/params",
            fmt_size(SLOW_PARAMS_PER_SUBMISSION),
            fmt_size(DEFAULT_PARAMS_PER_SUBMISSION)
        ));
    }
    if args.reps.is_none() {
        plan.reps = SLOW_REPS;
        plan.notes.push(format!(
            "{SLOW_REPS} repetitions per figure instead of {DEFAULT_REPS}"
        ));
    }
    if plan.model {
        plan.model = false;
        plan.notes
            .push("skipped the GPT-2-small workload (124 M params: ~40 s on 2 cores)".into());
    }
    if args.rules.is_empty() {
        plan.state8_only = Some(SLOW_STATE8_RULE);
        let skipped: Vec<&str> = STATE8_RULES
            .iter()
            .copied()
            .filter(|&r| r != SLOW_STATE8_RULE)
            .collect();
        plan.notes.push(format!(
            "8-bit state for {SLOW_STATE8_RULE} only (skipped {})",
            skipped.join(", ")
        ));
    }
    if !plan.notes.is_empty() {
        plan.reason = Some(reason);
    }
    plan
}
