//! What do GPT-2 small's 148 tensors cost against one flat buffer and one dispatch per tensor,
//! and what does the host pay per step? Uses the device only; writes no table or file.

use gpu_optim::bench::{self, Sample, Timer};
use gpu_optim::workloads::{gpt2_small_lens, GPT2_SMALL};
use gpu_optim::{Adam, Arena, Context, Optimizer, UpdateRule};
use indicatif::ProgressBar;
use serde::Serialize;

#[derive(Serialize)]
pub struct ModelReport {
    pub rule: String,
    pub tensors: usize,
    pub params: usize,
    pub flat: Sample,
    pub multi_tensor: Sample,
    pub per_tensor_dispatch: Sample,
    pub multi_over_flat: f64,
    pub naive_over_multi: f64,
    pub dispatches_multi: usize,
    pub dispatches_naive: usize,
    pub host_us_per_step_k1: f64,
    pub host_us_per_step_k8: f64,
}

/// GPT-2 small's tensors scaled down 256x (at least 1 element each): the host-cost
/// measurement's arena (host cost depends on the number and layout of tensors, not on
/// their sizes).
pub fn gpt2_small_scaled_lens() -> Vec<usize> {
    gpt2_small_lens().iter().map(|n| (n / 256).max(1)).collect()
}

/// The model's batched optimizer over `arena` (GPT-2 small's tensors, in order): AdamW
/// with weight decay on 2-D tensors only (a second group without it), 8 steps per
/// submission; one dispatch per tensor when `naive`. Prepared.
pub fn gpt2_optimizer(
    ctx: &Context,
    arena: &Arena,
    naive: bool,
) -> Result<Optimizer<Adam>, gpu_optim::Error> {
    let rule = Adam::adamw();
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_dispatch_per_tensor(naive)?;
    opt.set_steps_per_submission(8)?;
    let no_decay = opt.add_group(Adam {
        weight_decay: 0.0,
        ..rule
    })?;
    for (i, (_, shape)) in GPT2_SMALL.iter().enumerate() {
        let g = if shape.len() == 2 {
            opt.default_group()
        } else {
            no_decay
        };
        opt.add_tensor(g, arena.param(i), arena.grad(i))?;
    }
    opt.prepare()?;
    Ok(opt)
}

/// The host-cost measurement's optimizer: AdamW over all of `arena` in one group, 8 steps
/// per submission.
pub fn host_cost_optimizer(
    ctx: &Context,
    arena: &Arena,
) -> Result<Optimizer<Adam>, gpu_optim::Error> {
    let mut opt = Optimizer::new(ctx, Adam::adamw())?;
    opt.set_steps_per_submission(8)?;
    opt.add_arena(arena, opt.default_group())?;
    Ok(opt)
}

/// GPT-2 small with AdamW (decay on 2-D tensors only): one flat buffer vs the 148 tensors
/// batched vs one dispatch per tensor; host cost per step on the batched optimizer.
pub fn model_workload(
    ctx: &Context,
    timer: &Timer,
    bar: &ProgressBar,
    reps: usize,
) -> Result<ModelReport, Box<dyn std::error::Error>> {
    let lens = gpt2_small_lens();
    let total: usize = lens.iter().sum();
    let rule = Adam::adamw();
    let k = 1;
    bar.set_message("model: flat");
    let flat = bench::time_rule(ctx, timer, &rule, total, reps, k)?.step;
    bar.inc(1);

    let arena = Arena::new(ctx, &lens)?;
    let build = |naive: bool| gpt2_optimizer(ctx, &arena, naive);
    bar.set_message("model: 148 tensors");
    let mut multi_opt = build(false)?;
    let multi = bench::time_steps(timer, &mut multi_opt, reps, k)?;
    bar.inc(1);
    bar.set_message("model: per-tensor dispatch");
    let mut naive_opt = build(true)?;
    let naive = bench::time_steps(timer, &mut naive_opt, reps, k)?;
    bar.inc(1);
    drop(naive_opt);
    drop(multi_opt);
    drop(arena);

    // Host cost does not depend on tensor sizes, only on their number and layout: measure
    // it on the same 148 tensors scaled down 256x so the GPU keeps up.
    let arena = Arena::new(ctx, &gpt2_small_scaled_lens())?;
    let mut opt = host_cost_optimizer(ctx, &arena)?;
    let h1 = bench::host_cost(ctx, &mut opt, 50, 1)?;
    let h8 = bench::host_cost(ctx, &mut opt, 20, 8)?;
    Ok(ModelReport {
        rule: rule.name(),
        tensors: lens.len(),
        params: total,
        flat,
        multi_tensor: multi,
        per_tensor_dispatch: naive,
        multi_over_flat: multi.median / flat.median,
        naive_over_multi: naive.median / multi.median,
        dispatches_multi: 1,
        dispatches_naive: lens.len(),
        host_us_per_step_k1: h1.median * 1e6,
        host_us_per_step_k8: h8.median * 1e6,
    })
}
