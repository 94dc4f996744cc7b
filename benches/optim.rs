//! `cargo bench`: per-rule step time at 2^24 params as a % of the copy roofline, and
//! GPT-2-small-shaped tensors (148) vs one flat buffer vs one dispatch per tensor.
//! GPU time comes from timestamp queries where the device has them (see
//! `gpu_optim::bench::Timer`), so criterion's host-clock statistics would measure the
//! wrong thing; this harness prints medians of GPU-timed repetitions instead.
//! `gpu-optim-bench` is the full report; this is the quick regression check.

use gpu_optim::bench::{self, Timer};
use gpu_optim::workloads::gpt2_small_lens;
use gpu_optim::{Adam, AnyRule, Arena, Context, Optimizer, UpdateRule};

fn main() -> gpu_optim::Result<()> {
    // `cargo test --benches` runs this with --bench absent: keep that a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let (n, reps) = if full { (1 << 24, 7) } else { (1 << 12, 1) };
    let ctx = Context::new()?;
    let timer = Timer::new(&ctx, false);
    println!("{} ({:?} timing)", ctx.adapter_info().name, timer.method());
    let roof = bench::roofline(&ctx, &timer, n, reps, 4)?;
    println!("roofline at {n} params: {:.1} GB/s", roof.gbps());
    for rule in AnyRule::catalog() {
        let t = bench::time_rule(&ctx, &timer, &rule, n, reps, 4)?;
        println!(
            "{:<26} {:>9.3} ms  {:>7.1} GB/s  {:>5.1}% of roofline",
            rule.name(),
            t.step.median * 1e3,
            t.gbps,
            100.0 * t.gbps / roof.gbps()
        );
    }

    let scale = if full { 1 } else { 4096 };
    let lens: Vec<usize> = gpt2_small_lens()
        .iter()
        .map(|l| (l / scale).max(1))
        .collect();
    let total: usize = lens.iter().sum();
    let rule = Adam::adamw();
    let flat = bench::time_rule(&ctx, &timer, &rule, total, reps, 1)?
        .step
        .median;
    let arena = Arena::new(&ctx, &lens)?;
    let mut times = Vec::new();
    for naive in [false, true] {
        let mut opt = Optimizer::new(&ctx, rule.clone())?;
        opt.set_dispatch_per_tensor(naive)?;
        opt.add_arena(&arena, opt.default_group())?;
        times.push(bench::time_steps(&timer, &mut opt, reps, 1)?.median);
    }
    println!(
        "GPT-2 small shapes ({} tensors, {total} params, {}): flat {:.3} ms, batched {:.3} ms \
         ({:.3}x flat), one dispatch per tensor {:.3} ms ({:.3}x batched)",
        lens.len(),
        rule.name(),
        flat * 1e3,
        times[0] * 1e3,
        times[0] / flat,
        times[1] * 1e3,
        times[1] / times[0]
    );
    Ok(())
}
