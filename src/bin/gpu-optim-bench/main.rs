//! gpu-optim-bench: how fast and how correct every rule is on this device, and how close
//! to the device's own copy bandwidth. Run `gpu-optim-bench --help` for what each figure
//! means.
//!
//! `run` calls the sections in order, each in its own file: `rules` (roofline, rules, verify,
//! CPU twin), `anchors` (the generality tax), `features`, `state8`, `peers`, `model`; `report` prints and writes what they found.
//! `--dump-wgsl` runs `dump` instead and times nothing.

use std::path::PathBuf;
use std::process::ExitCode;

mod anchors;
mod budget;
#[cfg(feature = "peer-burn")]
mod burn_peer;
mod dump;
mod features;
mod machine;
/// The MLP example's training loop: the 8-bit state section's convergence check.
#[path = "../../../examples/train_mlp/net.rs"]
mod mlp;
mod model;
mod peers;
mod report;
mod rules;
mod state8;
mod sweep;

use clap::Parser;
use gpu_optim::bench::Timer;
use gpu_optim::{list_adapters, AnyRule, Context, ContextOptions, UpdateRule};
use indicatif::{ProgressBar, ProgressStyle};
use machine::MachineReport;
use report::{AdapterReport, LimitsReport, Report};

const ABOUT: &str = "Speed and correctness of every gpu-optim rule on this device.

Figures:
  roofline      the device's ceiling: the faster of copy_buffer_to_buffer and a vec4 copy
                kernel over the same bytes, in GB/s counting bytes read plus written.
  B/param       bytes a rule must move per parameter per step (read p, g, each state slot;
                write p and each slot): SGD 12, momentum/Adagrad/RMSprop/Lion 20, Adam
                family 28, AMSGrad 36, LAMB 40 (two passes).
  ms/step       median GPU time per step (timestamps where the device has them inside
                encoders, else wall clock around a blocking wait), K steps per submission,
                after a warm-up; [min-max] over the repetitions.
  GB/s, %roof   B/param x params / time, and that as a percentage of the roofline at the
                same size, measured in the same run; %copyk: of the copy kernel alone (on
                software devices shader memory access costs more than memcpy).
  verify        GPU vs the CPU reference after a few steps on random data: max relative
                error, max ulps, and the max scaled error |d|/(eps32*max(|ref|,rms)), which
                must stay within the rule's tolerance (op count x steps); FAIL otherwise.
  cpu           the CPU reference (one thread) at the same size: what the GPU buys.
  ours/minimal  the generality tax: our step vs a minimal hand-written kernel for SGD, SGD
                momentum and Adam at torch defaults (one vec4 per invocation, scalars in a
                uniform, no range test where the grid is whole workgroups; no tiles,
                groups, flags or features) on the same buffers, timed
                alternately with the same timer: median of the per-repetition ratios
                (at least 7 repetitions, whatever --reps or the time budget says);
                verify ok when both give the same bits after a few steps from the same
                start, else DIFF and the max ulps. Noise floor: per size, the first
                rule's minimal kernel against itself, timed the same way; were timing
                exact it would read 1.000x. On lavapipe (2 cores) its median of 7 read
                0.88-1.20x over 12 runs, of 21 0.95-1.02x: judge 5% with --reps 21.
  model         GPT-2 small's 148 tensors (124M params) in one arena vs one flat buffer
                of the same size, and vs one dispatch per tensor; host cost of encoding and
                submitting a step (K=1 and K=8). Many small tensors: AdamW over T = 10 ..
                20,000 tensors of 64-4063 elements batched vs one flat buffer of the same
                total (alternating), and the time to prepare each; the host cost of a step
                (K=1) on 148 of them against an empty compute pass, in pairs that find the
                device as a training loop's step does, idle right after a step (untimed
                step, timed step, timed empty pass, each followed by a wait): median of
                the per-pair ratios. Empty passes back to back cost less on a software
                device: after a step's work, which ran on the host's CPU, any submission
                costs more. Batched: an arena's tensors of one group run as one piece,
                their padding with them.
  features      Adam with clip_grad_norm, with GradScaler (loss scaling + inf/NaN skip),
                with both, and with bf16 / f16 params and grads through an f32 master
                copy: time relative to the plain f32 step at the same size and K, the
                two timed alternately (median of the per-repetition ratios, at least 7
                repetitions); K steps per submission, at most what loss scaling accepts
                (31) in its rows. bytes: the
                ratio the feature's bytes predict (clipping and the scaler's check read
                the grads once more: 32/28; bf16/f16 with the master: 28/28; 8-bit
                Adam: 16/28). On a software device (lavapipe, llvmpipe) the time ratio
                exceeds it: its shaders are bound by instructions, not memory, so a
                feature costs its instructions (the pre-pass's loads, the two barriers
                of each workgroup's reduction, the reductions' dispatches, 16-bit
                conversions, loss scaling's per-lane choice of its step's scalars,
                8-bit (de)quantization) rather than its bytes; a GPU's ratio is the one to
                hold to the bytes.
  8-bit state   Adam, AdamW and Lion with bitsandbytes-style 8-bit block-wise state: bytes
                per param (p, g, 1-byte codes and per-block absmax), GB/s, % of roofline,
                time vs the f32-state rule (timed alternately, same size and K: median
                of the per-repetition ratios), state bytes per param, the verifier (GPU vs
                the bit-exact CPU twin), and the MLP example's final loss with 8-bit vs
                f32 state after the same steps (ratio 1 = no loss of convergence).
  peers         PyTorch (benches/torch_optim.py; --torch / --torch-json) and, built with
                --features peer-burn, Burn's Adam and SGD with momentum on its wgpu
                backend: their time per step and ours / theirs at the same size (Burn
                and ours each in a process of its own, alternately, one step then a
                wait, wall clock; median of the per-repetition ratios, at least 15
                repetitions).

The header names the adapter (backend, driver) and, on a software device, the CPU; on
wgpu's GL backend it says what that means and what to install. On a slow device (software
or GL) a time budget trims what is left at its default (sizes 2^16,2^20,2^22, ~2^22 params
per submission, 3 repetitions, no model, 8-bit state for adam only) and says so; --full
runs everything.

Exit status is 1 if any correctness check fails, 2 on an error (no adapter, bad flag).";

#[derive(Parser, Debug)]
#[command(name = "gpu-optim-bench", version, about = ABOUT)]
struct Args {
    /// List the adapters wgpu sees and exit.
    #[arg(long)]
    list_adapters: bool,
    /// Use the adapter whose name contains this (case-insensitive); default WGPU_ADAPTER_NAME,
    /// else the best one.
    #[arg(long)]
    adapter: Option<String>,
    /// Backends to consider, e.g. `vulkan` or `vulkan,gl` (default WGPU_BACKEND, else all).
    #[arg(long)]
    backend: Option<String>,
    /// Internal: time one side of the Burn comparison in this process (SIDE:RULE:N).
    #[cfg(feature = "peer-burn")]
    #[arg(long, hide = true, value_name = "SIDE:RULE:N")]
    peer_child: Option<String>,
    /// Rules to run, comma-separated (default: all). Names as listed in the table.
    #[arg(long, value_delimiter = ',')]
    rules: Vec<String>,
    /// Sizes in parameters, comma-separated; `2^24` or `16777216` (default 2^16,2^20,2^24,2^25;
    /// 2^16,2^20,2^22 under a slow device's time budget, which says so).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Steps recorded per submission, 1 to 1024 (default: enough to make each submission
    /// ~2^24 params, 2^22 under a slow device's time budget, at most 64; rows with loss
    /// scaling: at most what it accepts, 31).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
        .range(1..=gpu_optim::MAX_STEPS_PER_SUBMISSION as u64))]
    steps: Option<usize>,
    /// Timed repetitions per figure (median reported; default 5, fewer on a slow device
    /// under the time budget, which says so). At least 1.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    reps: Option<usize>,
    /// The whole default run even on a slow device (software or GL): no time budget.
    #[arg(long)]
    full: bool,
    /// Steps run by the correctness check (at least 1: none would compare nothing).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    verify_steps: u32,
    /// Skip the model workloads: GPT-2 small, the mixed-size sweep and the host cost.
    #[arg(long)]
    no_model: bool,
    /// Skip the CPU reference timing.
    #[arg(long)]
    no_cpu: bool,
    /// PyTorch's timings (JSON written by benches/torch_optim.py) to print side by side.
    #[arg(long)]
    torch_json: Option<PathBuf>,
    /// Run benches/torch_optim.py at the same sizes (needs `python3 -c "import torch"`).
    /// Done by default when torch sees a CUDA device.
    #[arg(long)]
    torch: bool,
    /// Invocations per workgroup of the rule kernels (a power of two; default 256).
    #[arg(long)]
    workgroup: Option<u32>,
    /// Time with the host clock even where timestamps exist.
    #[arg(long)]
    wall_clock: bool,
    /// Write every figure, the machine (CPU), adapter, limits, time budget and crate version
    /// as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw bandwidth vs size per rule with the roofline, as SVG (one size: a bar per rule).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the WGSL of every kernel variant the selected rules run into DIR and exit.
    #[arg(long, value_name = "DIR")]
    dump_wgsl: Option<PathBuf>,
}

/// What every section shares: the device, its timer, the progress bar and the flags.
struct Shared<'a> {
    ctx: &'a Context,
    timer: &'a Timer,
    bar: &'a ProgressBar,
    args: &'a Args,
    /// Timed repetitions per figure: `--reps`, else the time budget's.
    reps: usize,
    /// Params per submission without `--steps`: 2^24, less under the time budget.
    params_per_submission: usize,
}

impl Shared<'_> {
    /// Steps recorded per submission at `n` params: `--steps`, else ~2^24 params per
    /// submission (2^22 under the time budget), 1 to 64.
    fn k_for(&self, n: usize) -> usize {
        self.args
            .steps
            .unwrap_or((self.params_per_submission / n).clamp(1, 64))
    }
}

/// `path` can be written as a file: not a directory, in a directory that exists.
fn check_output_path(flag: &str, path: &std::path::Path) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("{flag} {shown}: is a directory, not a file"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!("{flag} {shown}: no directory {}", parent.display()));
    }
    Ok(())
}

fn bad_size(s: &str) -> String {
    format!("--sizes {s:?}: not a size; give `2^k` or a count of params, e.g. 2^20,16777216")
}

/// A `--sizes` entry: `2^k` or a count of params, at least 1.
fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let n = match s.strip_prefix("2^") {
        Some(e) => {
            let e: u32 = e.parse().map_err(|_| bad_size(s))?;
            1usize
                .checked_shl(e)
                .ok_or(format!("--sizes {s}: too large"))?
        }
        None => s.parse().map_err(|_| bad_size(s))?,
    };
    match n {
        0 => Err("a size must be at least 1 param, not 0".into()),
        n => Ok(n),
    }
}

fn fmt_size(n: usize) -> String {
    if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

/// `--rules` as rules; all of them when none is named.
fn parse_rules(names: &[String]) -> Result<Vec<AnyRule>, String> {
    Ok(if names.is_empty() {
        AnyRule::catalog()
    } else {
        names
            .iter()
            .map(|n| {
                AnyRule::by_name(n).ok_or_else(|| {
                    let names: Vec<_> = AnyRule::catalog().iter().map(|r| r.name()).collect();
                    format!("unknown rule {n}; known: {}", names.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gpu-optim-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let t0 = std::time::Instant::now();
    let args = Args::parse();
    let backends = args.backend.as_deref().map(wgpu::Backends::from_comma_list);
    if args.list_adapters {
        for a in list_adapters(backends) {
            println!(
                "{} | {:?} | {:?} | driver {} {}",
                a.name, a.backend, a.device_type, a.driver, a.driver_info
            );
        }
        return Ok(true);
    }
    let sizes: Vec<usize> = args
        .sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<Result<_, _>>()?;
    let rules = parse_rules(&args.rules)?;
    // Files written at the end of a run: a bad path fails now, not after minutes of it.
    for (flag, path) in [("--json", &args.json), ("--plot", &args.plot)] {
        if let Some(path) = path {
            check_output_path(flag, path)?;
        }
    }
    if let Some(path) = args.torch_json.as_ref().filter(|p| !p.is_file()) {
        return Err(format!("--torch-json {}: no such file", path.display()).into());
    }

    let options = ContextOptions {
        adapter_name: args.adapter.clone(),
        backends,
        workgroup_size: args.workgroup,
        ..Default::default()
    };
    #[cfg(feature = "peer-burn")]
    if let Some(spec) = &args.peer_child {
        peers::run_child(spec, &options)?;
        return Ok(true);
    }
    let ctx = match Context::with_options(&options) {
        Ok(ctx) => ctx,
        Err(e @ gpu_optim::Error::NoAdapter { .. }) => {
            return Err(format!("{e}\n{}", machine::no_adapter_help()).into())
        }
        Err(e) => return Err(e.into()),
    };
    let machine = MachineReport::this();
    let explicit_backend = backends.is_some() || wgpu::Backends::from_env().is_some();
    machine::print_header(&ctx, &machine, explicit_backend);
    // Every size is an f32 buffer of its own (params, grads, each state slot).
    let max = ctx.limits().max_buffer_size;
    if let Some(&n) = sizes.iter().find(|&&n| n as u64 * 4 > max) {
        return Err(format!(
            "--sizes {}: {} bytes per f32 buffer exceed this device's max_buffer_size of \
             {max} bytes",
            fmt_size(n),
            n as u64 * 4
        )
        .into());
    }
    if let Some(dir) = &args.dump_wgsl {
        dump::dump_wgsl(&ctx, &args, &rules, dir)?;
        return Ok(true);
    }
    let plan = budget::plan(&ctx, &args, sizes);
    for line in plan.describe() {
        println!("{line}");
    }
    let (sizes, reps) = (plan.sizes.clone(), plan.reps);
    let timer = Timer::new(&ctx, args.wall_clock);
    println!(
        "timing: {:?}; median of {} repetitions after a warm-up\n",
        timer.method(),
        reps
    );

    let model_jobs = if plan.model { 3 } else { 0 }
        + if args.no_model {
            0
        } else {
            sweep::MIXED_COUNTS.len() + 1
        };
    let anchored = anchors::anchored(&rules).len();
    let total = sizes.len() * (1 + rules.len() + anchored + (anchored > 0) as usize)
        + rules.len() * (1 + !args.no_cpu as usize)
        + anchored
        + model_jobs;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}").unwrap(),
    );
    let s = Shared {
        ctx: &ctx,
        timer: &timer,
        bar: &bar,
        args: &args,
        reps,
        params_per_submission: plan.params_per_submission,
    };

    let (roofs, rows) = rules::roofline_and_rules(&s, &sizes, &rules)?;
    let verifies = rules::verify_rows(&s, &rules)?;
    let cpus = rules::cpu_rows(&s, &sizes, &rules, &rows)?;
    let (anchors, anchor_noise) = anchors::anchor_rows(&s, &sizes, &rules)?;
    let features = features::feature_rows(&s, &sizes, &rows)?;
    let state8 = state8::state8_rows(&s, &sizes, &plan.state8_rules(&rules), &roofs)?;
    let peers = peers::peer_rows(&s, &sizes, &rules, &rows)?;
    let model = if plan.model {
        Some(model::model_workload(&ctx, &timer, &bar, reps)?)
    } else {
        None
    };
    let (mixed_sizes, host_cost) = match args.no_model {
        true => (Vec::new(), None),
        false => (
            sweep::mixed_rows(&s)?,
            Some(sweep::host_cost(&s, sweep::HOST_COST_TENSORS)?),
        ),
    };
    bar.finish_and_clear();

    let report = Report {
        crate_version: env!("CARGO_PKG_VERSION"),
        machine,
        adapter: AdapterReport::of(&ctx),
        limits: LimitsReport::of(&ctx),
        timing: timer.method(),
        time_budget: plan.notes,
        steps_per_submission: sizes.iter().map(|&n| (n, s.k_for(n))).collect(),
        reps,
        roofline: roofs,
        rules: rows,
        verify: verifies,
        cpu: cpus,
        anchors,
        anchor_noise,
        model,
        mixed_sizes,
        host_cost,
        features,
        state8,
        peers,
    };
    let all_ok = report::print_tables(&report)?;
    report::write_files(&args, &report)?;
    println!("\nran {:.0} s", t0.elapsed().as_secs_f64());
    Ok(all_ok)
}
