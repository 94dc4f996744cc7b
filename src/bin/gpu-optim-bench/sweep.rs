//! What do many small tensors cost against one flat buffer of the same total, how does
//! preparing the optimizer grow with their number, and what does the host pay per step
//! against an empty submission? Uses the device only; writes no table or file.

use crate::anchors::ANCHOR_MIN_REPS;
use crate::Shared;
use gpu_optim::bench::{self, Sample};
use gpu_optim::verify::Rng;
use gpu_optim::{Adam, Arena, Context, Optimizer};
use serde::Serialize;
use std::time::Instant;

/// Tensor counts of the mixed-size sweep.
pub const MIXED_COUNTS: [usize; 5] = [10, 100, 1000, 5000, 20_000];

/// Tensors of the host-cost optimizer (GPT-2 small's count, at the sweep's sizes).
pub const HOST_COST_TENSORS: usize = 148;

/// One tensor count of the sweep: AdamW over `tensors` tensors of 64-4063 elements in one
/// group, batched, against one flat tensor of the same total, timed alternately.
#[derive(Serialize)]
pub struct MixedRow {
    pub tensors: usize,
    pub params: usize,
    pub steps_per_submission: usize,
    pub dispatches: usize,
    /// Seconds per step.
    pub batched: Sample,
    pub flat: Sample,
    /// Per-repetition batched / flat: median, min, max.
    pub ratio: Sample,
    /// Alternating repetitions (at least [`ANCHOR_MIN_REPS`], the gates' statistic).
    pub reps: usize,
    /// Seconds to create the optimizer, register the tensors and prepare it (kernels
    /// already compiled), median of 5 (it allocates and zeroes the state: linear in
    /// params as much as in tensors).
    pub prepare_s: f64,
    /// This row's preparation time over the previous row's, per repetition, the two
    /// prepared alternately `reps` times (the preparation gate's statistic: rows measured
    /// minutes apart drift with the machine); `None` for the first row.
    pub prepare_vs_previous: Option<Sample>,
}

/// The host's cost of a step against an empty submission.
#[derive(Serialize)]
pub struct HostCost {
    /// The optimizer's tensors (AdamW, one group, batched).
    pub tensors: usize,
    /// Seconds to encode and submit a step (not waiting for the device), K=1, timed in
    /// pairs with `empty_submit`.
    pub step_k1: Sample,
    /// The same per step at K=8 (seconds per step).
    pub step_k8: Sample,
    /// Seconds to encode and submit an empty compute pass, timed in pairs with `step_k1`.
    pub empty_submit: Sample,
    /// Per-pair step_k1 / empty_submit: median, min, max (the host-cost gate's statistic).
    pub k1_over_empty: Sample,
    /// The pairs.
    pub pairs: usize,
    /// An empty compute pass submitted after empty passes only (the least a submission
    /// costs; on a software device less than after any real work).
    pub empty_back_to_back: Sample,
}

/// `t` tensor lengths uniform in 64..=4063 (mean ~2,060: a deep model's biases and norms),
/// the same for every run.
pub fn mixed_lens(t: usize) -> Vec<usize> {
    let mut rng = Rng(0x5eed + t as u64);
    (0..t)
        .map(|_| 64 + (rng.next_u64() % 4000) as usize)
        .collect()
}

/// An arena of `lens` with random params and grads (zeros can run faster).
fn random_arena(ctx: &Context, lens: &[usize]) -> Result<Arena, gpu_optim::Error> {
    let arena = Arena::new(ctx, lens)?;
    bench::fill_random(ctx, &arena, arena.params.size() as usize / 4)?;
    Ok(arena)
}

/// AdamW over every tensor of `arena` in one group, `k` steps per submission, prepared
/// (batched over many tensors; over one flat tensor, the baseline).
fn adamw_over(ctx: &Context, arena: &Arena, k: usize) -> Result<Optimizer<Adam>, gpu_optim::Error> {
    let mut opt = Optimizer::new(ctx, Adam::adamw())?;
    opt.set_steps_per_submission(k as u32)?;
    opt.add_arena(arena, opt.default_group())?;
    opt.prepare()?;
    Ok(opt)
}

/// The sweep over [`MIXED_COUNTS`]: each count's batched and flat steps alternately,
/// `reps` times, and its preparation time.
pub fn mixed_rows(s: &Shared) -> Result<Vec<MixedRow>, Box<dyn std::error::Error>> {
    let Shared {
        ctx,
        timer,
        bar,
        reps,
        ..
    } = *s;
    // A median of 3 swung 0.94-1.45x here between runs; the gate takes at least 7.
    let reps = reps.max(ANCHOR_MIN_REPS);
    let mut rows = Vec::new();
    // The previous row's arena and K, kept for the alternating preparation ratio.
    let mut previous: Option<(Arena, usize)> = None;
    for t in MIXED_COUNTS {
        bar.set_message(format!("mixed sizes: {t} tensors"));
        let lens = mixed_lens(t);
        let total: usize = lens.iter().sum();
        let k = s.k_for(total);
        let arena = random_arena(ctx, &lens)?;
        // The first build compiles the kernels; the timed ones find them cached.
        let mut opt = adamw_over(ctx, &arena, k)?;
        let mut prep = Vec::new();
        for _ in 0..5 {
            prep.push(time_prepare(ctx, &arena, k)?);
        }
        prep.sort_by(f64::total_cmp);
        let prepare_vs_previous = match &previous {
            Some((before, before_k)) => {
                let mut ratios = Vec::with_capacity(reps);
                for _ in 0..reps {
                    let a = time_prepare(ctx, before, *before_k)?;
                    ratios.push(time_prepare(ctx, &arena, k)? / a);
                }
                Some(Sample::of(ratios))
            }
            None => None,
        };
        let flat_arena = bench::random_arena(ctx, total)?;
        let mut flat = adamw_over(ctx, &flat_arena, k)?;
        let (batched, flat, ratio) = timer.alternate(
            reps,
            k,
            |enc| opt.record_steps(enc, k as u32),
            |enc| flat.record_steps(enc, k as u32),
        )?;
        rows.push(MixedRow {
            tensors: t,
            params: total,
            steps_per_submission: k,
            dispatches: opt.dispatches_per_step(),
            batched,
            flat,
            ratio,
            reps,
            prepare_s: prep[2],
            prepare_vs_previous,
        });
        previous = Some((arena, k));
        bar.inc(1);
    }
    Ok(rows)
}

/// Seconds to build and prepare [`adamw_over`] `arena` (dropping it is not timed).
fn time_prepare(ctx: &Context, arena: &Arena, k: usize) -> Result<f64, gpu_optim::Error> {
    let t0 = Instant::now();
    let opt = adamw_over(ctx, arena, k)?;
    let secs = t0.elapsed().as_secs_f64();
    drop(opt);
    Ok(secs)
}

/// Pairs of a step and an empty pass in the host-cost measurement.
const HOST_COST_PAIRS: usize = 100;

/// Host cost of a step at K=1 (in pairs with an empty compute pass: the gate's statistic)
/// and K=8 on `tensors` tensors of the sweep's sizes, and of empty passes back to back.
pub fn host_cost(s: &Shared, tensors: usize) -> Result<HostCost, Box<dyn std::error::Error>> {
    let ctx = s.ctx;
    let arena = Arena::new(ctx, &mixed_lens(tensors))?;
    let mut opt = adamw_over(ctx, &arena, 8)?;
    let pairs = bench::host_cost_vs_empty(ctx, &mut opt, HOST_COST_PAIRS)?;
    let step_k8 = bench::host_cost(ctx, &mut opt, 20, 8)?;
    let empty_back_to_back = bench::empty_submit_cost(ctx, 20)?;
    s.bar.inc(1);
    Ok(HostCost {
        tensors,
        step_k1: pairs.step,
        step_k8,
        empty_submit: pairs.empty,
        k1_over_empty: pairs.ratio,
        pairs: HOST_COST_PAIRS,
        empty_back_to_back,
    })
}
