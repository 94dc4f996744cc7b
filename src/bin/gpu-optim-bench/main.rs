//! gpu-optim-bench: how fast and how correct every rule is on this device, and how close
//! to the device's own copy bandwidth. Run `gpu-optim-bench --help` for what each figure
//! means.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "peer-burn")]
mod burn_peer;
/// The MLP example's training loop: the 8-bit state section's convergence check.
#[path = "../../../examples/train_mlp/net.rs"]
mod mlp;

use clap::Parser;
use gpu_optim::bench::{self, Roofline, RuleTiming, Sample, Setup, Timer, TimingMethod};
use gpu_optim::workloads::{gpt2_small_lens, GPT2_SMALL};
use gpu_optim::{
    list_adapters, verify, Adam, AnyRule, Arena, Context, ContextOptions, Dtype, GradScaler,
    Optimizer, StateFormat, UpdateRule, VerifyPlan,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

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
  model         GPT-2 small's 148 tensors (124M params) in one arena vs one flat buffer
                of the same size, and vs one dispatch per tensor; host cost of encoding and
                submitting a step (K=1 and K=8).
  features      Adam with clip_grad_norm, with GradScaler (loss scaling + inf/NaN skip),
                with both, and with bf16 / f16 params and grads through an f32 master
                copy: time relative to the plain f32 step at the same size.
  8-bit state   Adam, AdamW and Lion with bitsandbytes-style 8-bit block-wise state: bytes
                per param (p, g, 1-byte codes and per-block absmax), GB/s, % of roofline,
                time vs the f32-state rule, state bytes per param, the verifier (GPU vs
                the bit-exact CPU twin), and the MLP example's final loss with 8-bit vs
                f32 state after the same steps (ratio 1 = no loss of convergence).
  peers         PyTorch (benches/torch_optim.py; --torch / --torch-json) and, built with
                --features peer-burn, Burn's Adam on its wgpu backend: their time per step
                and ours / theirs at the same size.

Exit status is 1 if any correctness check fails.";

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
    /// Rules to run, comma-separated (default: all). Names as listed in the table.
    #[arg(long, value_delimiter = ',')]
    rules: Vec<String>,
    /// Sizes in parameters, comma-separated; `2^24` or `16777216`.
    #[arg(long, value_delimiter = ',', default_value = "2^16,2^20,2^24,2^25")]
    sizes: Vec<String>,
    /// Steps recorded per submission (default: enough to make each submission ~2^24 params,
    /// at most 64).
    #[arg(long)]
    steps: Option<usize>,
    /// Timed repetitions per figure (median reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Steps run by the correctness check.
    #[arg(long, default_value_t = 10)]
    verify_steps: u32,
    /// Skip the GPT-2-small model workload.
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
    /// Write every figure, the adapter, limits and crate version as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw bandwidth vs size per rule with the roofline, as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Serialize)]
struct AdapterReport {
    name: String,
    backend: String,
    driver: String,
    driver_info: String,
    device_type: String,
    software: bool,
}

#[derive(Serialize)]
struct LimitsReport {
    max_storage_buffer_binding_size: u64,
    max_buffer_size: u64,
    max_compute_workgroups_per_dimension: u32,
    min_storage_buffer_offset_alignment: u32,
}

#[derive(Serialize)]
struct RuleRow {
    #[serde(flatten)]
    timing: RuleTiming,
    roofline_gbps: f64,
    pct_roofline: f64,
    pct_copy_kernel: f64,
}

#[derive(Serialize)]
struct VerifyRow {
    rule: String,
    steps: u32,
    params: usize,
    passed: bool,
    max_rel: f64,
    max_ulps: u64,
    max_scaled: f64,
    tolerance: f64,
}

#[derive(Serialize)]
struct CpuRow {
    rule: String,
    params: usize,
    cpu: Sample,
    gpu_median: f64,
    gpu_speedup: f64,
}

#[derive(Serialize)]
struct ModelReport {
    rule: String,
    tensors: usize,
    params: usize,
    flat: Sample,
    multi_tensor: Sample,
    per_tensor_dispatch: Sample,
    multi_over_flat: f64,
    naive_over_multi: f64,
    dispatches_multi: usize,
    dispatches_naive: usize,
    host_us_per_step_k1: f64,
    host_us_per_step_k8: f64,
}

#[derive(Serialize)]
struct Report {
    crate_version: &'static str,
    adapter: AdapterReport,
    limits: LimitsReport,
    timing: TimingMethod,
    steps_per_submission: Vec<(usize, usize)>,
    reps: usize,
    roofline: Vec<Roofline>,
    rules: Vec<RuleRow>,
    verify: Vec<VerifyRow>,
    cpu: Vec<CpuRow>,
    model: Option<ModelReport>,
    features: Vec<FeatureRow>,
    state8: Vec<State8Row>,
    peers: Vec<PeerRow>,
}

/// Rules the bench runs with 8-bit state (bitsandbytes' 8-bit optimizers).
const STATE8_RULES: [&str; 3] = ["adam", "adamw", "lion"];
/// Steps of the MLP example in the 8-bit convergence comparison.
const MLP_STEPS: usize = 500;

#[derive(Serialize)]
struct State8Row {
    rule: String,
    /// The verifier (GPU vs CPU twin, 8-bit state) passed; its worst scaled error.
    verified: bool,
    max_scaled: f64,
    params: usize,
    bytes_per_param: f64,
    step: Sample,
    gbps: f64,
    pct_roofline: f64,
    /// Time per step / the same rule's with f32 state.
    over_f32: f64,
    state_bytes_per_param: f64,
    f32_state_bytes_per_param: f64,
    mlp_steps: usize,
    mlp_loss_f32: f32,
    mlp_loss_8bit: f32,
    /// Final training loss with 8-bit state / with f32 state (1 = no loss of convergence).
    mlp_loss_ratio: f32,
    /// The same with stochastic requantization: time vs f32 state, final loss, ratio.
    sr_over_f32: f64,
    mlp_loss_8bit_sr: f32,
    mlp_loss_ratio_sr: f32,
}

#[derive(Serialize)]
struct FeatureRow {
    feature: String,
    params: usize,
    step: Sample,
    over_plain: f64,
}

/// A peer's row beside ours: its time per step, and ours / its at the same size.
#[derive(Serialize, serde::Deserialize, Clone)]
struct PeerStep {
    median: f64,
    min: f64,
    max: f64,
}

#[derive(Serialize, serde::Deserialize, Clone)]
struct PeerTiming {
    rule: String,
    params: usize,
    bytes_per_param: usize,
    step: PeerStep,
    gbps: f64,
}

#[derive(Serialize)]
struct PeerRow {
    #[serde(flatten)]
    peer: PeerTiming,
    /// The gpu-optim rule it is compared with.
    ours: String,
    /// gpu-optim's median / the peer's median (below 1: gpu-optim is faster).
    time_ratio: Option<f64>,
}

#[derive(serde::Deserialize)]
struct PeerFile {
    rules: Vec<PeerTiming>,
}

/// Burn's Adam on its wgpu backend at each size, when built with `--features peer-burn`
/// (wall clock with a device sync per step: compare with `--wall-clock` figures).
#[cfg(feature = "peer-burn")]
fn burn_rows(sizes: &[usize], reps: usize, wanted: bool) -> Vec<PeerTiming> {
    if !wanted {
        return Vec::new();
    }
    if let Some(name) = burn_peer::burn_adapter_name() {
        eprintln!("burn peer on: {name}");
    }
    sizes
        .iter()
        .filter_map(|&n| match burn_peer::time_burn_adam(n, reps.max(5)) {
            Ok(s) => Some(PeerTiming {
                rule: "burn-adam-wgpu".into(),
                params: n,
                bytes_per_param: 28,
                step: PeerStep {
                    median: s,
                    min: s,
                    max: s,
                },
                gbps: 28.0 * n as f64 / s / 1e9,
            }),
            Err(e) => {
                eprintln!("burn peer at {n}: {e}");
                None
            }
        })
        .collect()
}

#[cfg(not(feature = "peer-burn"))]
fn burn_rows(_sizes: &[usize], _reps: usize, _wanted: bool) -> Vec<PeerTiming> {
    Vec::new()
}

/// The torch peer: read `--torch-json`, or run the script when asked or when torch has CUDA.
fn torch_peer(args: &Args, sizes: &[usize]) -> Result<Vec<PeerTiming>, Box<dyn std::error::Error>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_optim.py");
    let path = match &args.torch_json {
        Some(p) => p.clone(),
        None => {
            let probe = |code: &str| {
                std::process::Command::new("python3")
                    .args(["-c", code])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            };
            let want = args.torch
                || probe("import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)");
            if !want || !std::path::Path::new(script).exists() || !probe("import torch") {
                return Ok(Vec::new());
            }
            let out = std::env::temp_dir().join("gpu-optim-torch.json");
            let list: Vec<String> = sizes.iter().map(|n| n.to_string()).collect();
            let status = std::process::Command::new("python3")
                .arg(script)
                .args(["--sizes", &list.join(","), "--json"])
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                return Err(format!("{script} failed: {status}").into());
            }
            out
        }
    };
    let file: PeerFile = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    Ok(file.rules)
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    if let Some(e) = s.strip_prefix("2^") {
        let e: u32 = e.parse().map_err(|_| format!("bad size {s}"))?;
        return 1usize.checked_shl(e).ok_or(format!("size {s} too large"));
    }
    s.parse().map_err(|_| format!("bad size {s}"))
}

fn fmt_size(n: usize) -> String {
    if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
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
    let rules: Vec<AnyRule> = if args.rules.is_empty() {
        AnyRule::catalog()
    } else {
        args.rules
            .iter()
            .map(|n| {
                AnyRule::by_name(n).ok_or_else(|| {
                    let names: Vec<_> = AnyRule::catalog().iter().map(|r| r.name()).collect();
                    format!("unknown rule {n}; known: {}", names.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };

    let ctx = Context::with_options(&ContextOptions {
        adapter_name: args.adapter.clone(),
        backends,
        workgroup_size: args.workgroup,
        ..Default::default()
    })?;
    let info = ctx.adapter_info().clone();
    let limits = ctx.limits();
    println!(
        "adapter: {} ({:?}, {:?}; driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    if ctx.is_software() {
        println!(
            "NOTE: this is a software (CPU) device: its figures measure this CPU's memory \
             system, not a GPU."
        );
    }
    let timer = Timer::new(&ctx, args.wall_clock);
    let k_for = |n: usize| args.steps.unwrap_or(((1usize << 24) / n).clamp(1, 64));
    println!(
        "timing: {:?}; median of {} repetitions after a warm-up\n",
        timer.method(),
        args.reps
    );

    let model_jobs = if args.no_model { 0 } else { 3 };
    let total =
        sizes.len() * (1 + rules.len()) + rules.len() * (1 + !args.no_cpu as usize) + model_jobs;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}").unwrap(),
    );

    // Roofline and rules per size.
    let mut roofs = Vec::new();
    let mut rows = Vec::new();
    for &n in &sizes {
        bar.set_message(format!("copy {}", fmt_size(n)));
        let roof = bench::roofline(&ctx, &timer, n, args.reps, k_for(n))?;
        bar.inc(1);
        let arena = bench::random_arena(&ctx, n)?;
        for rule in &rules {
            bar.set_message(format!("{} {}", rule.name(), fmt_size(n)));
            let t = bench::time_rule_on(
                &ctx,
                &timer,
                rule,
                &arena,
                args.reps,
                k_for(n),
                &Setup::default(),
            )?;
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

    // Correctness.
    let mut verifies = Vec::new();
    let vlen = 100_003;
    for rule in &rules {
        bar.set_message(format!("verify {}", rule.name()));
        let r = verify(
            &ctx,
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

    // CPU reference, at the largest size up to 2^24.
    let mut cpus = Vec::new();
    if !args.no_cpu {
        let n = sizes
            .iter()
            .copied()
            .filter(|&n| n <= 1 << 24)
            .max()
            .unwrap_or(sizes[0]);
        for rule in &rules {
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
            let scaler = Some(GradScaler {
                init_scale: 1.0,
                ..GradScaler::default()
            });
            let arena = bench::random_arena(&ctx, n)?;
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
                let t =
                    bench::time_rule_on(&ctx, &timer, &rule, &arena, args.reps, k_for(n), &setup)?;
                features.push(FeatureRow {
                    feature: name.into(),
                    params: n,
                    step: t.step,
                    over_plain: t.step.median / plain,
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
                let arena = bench::random_arena_as(&ctx, n, pd, gd)?;
                let t = bench::time_rule_on(
                    &ctx,
                    &timer,
                    &rule,
                    &arena,
                    args.reps,
                    k_for(n),
                    &Setup::default(),
                )?;
                features.push(FeatureRow {
                    feature: name.into(),
                    params: n,
                    step: t.step,
                    over_plain: t.step.median / plain,
                });
            }
        }
    }

    // 8-bit state: speed against the f32 rule and the roofline at the largest size up to
    // 2^24, state memory, and the MLP example's final loss with 8-bit vs f32 state.
    let mut state8 = Vec::new();
    if let Some(n) = sizes.iter().copied().filter(|&n| n <= 1 << 24).max() {
        let roof = roofs
            .iter()
            .find(|r| r.params == n)
            .map(|r| r.gbps())
            .unwrap_or(f64::NAN);
        let arena = bench::random_arena(&ctx, n)?;
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
            let t = bench::time_rule_on(&ctx, &timer, rule, &arena, args.reps, k_for(n), &setup)?;
            let plain = rows
                .iter()
                .find(|r| r.timing.rule == rule.name() && r.timing.params == n)
                .map_or(f64::NAN, |r| r.timing.step.median);
            let slots = rule.state_slots().len() as f64;
            let mlp = |format| -> Result<f32, gpu_optim::Error> {
                let r = mlp::lr_for(rule.clone());
                let log = mlp::train_with(&ctx, &r, format, MLP_STEPS, MLP_STEPS, |_, _, _| {})?;
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
            let t_sr =
                bench::time_rule_on(&ctx, &timer, rule, &arena, args.reps, k_for(n), &sr_setup)?;
            let mut plan = VerifyPlan::flat(rule.clone(), 100_003, args.verify_steps);
            plan.state_format = f;
            let check = verify(&ctx, &plan)?;
            let bpp = bench::bytes_per_param(rule, f);
            state8.push(State8Row {
                verified: check.passed(),
                max_scaled: check.worst().max_scaled,
                rule: rule.name(),
                params: n,
                bytes_per_param: bpp,
                step: t.step,
                gbps: t.gbps,
                pct_roofline: 100.0 * t.gbps / roof,
                over_f32: t.step.median / plain,
                state_bytes_per_param: slots * (1.0 + 4.0 / gpu_optim::quant::BLOCK as f64),
                f32_state_bytes_per_param: slots * 4.0,
                mlp_steps: MLP_STEPS,
                mlp_loss_f32: loss_f32,
                mlp_loss_8bit: loss_8,
                mlp_loss_ratio: loss_8 / loss_f32,
                sr_over_f32: t_sr.step.median / plain,
                mlp_loss_8bit_sr: loss_sr,
                mlp_loss_ratio_sr: loss_sr / loss_f32,
            });
        }
    }

    bar.set_message("peers");
    let mut peer_rows = torch_peer(&args, &sizes)?;
    peer_rows.extend(burn_rows(
        &sizes,
        args.reps,
        rules.iter().any(|r| r.name() == "adam"),
    ));
    let peers: Vec<PeerRow> = peer_rows
        .into_iter()
        .map(|p| {
            // "torch-adamw-fused" / "burn-adam-wgpu" are compared with our "adamw" /
            // "adam" at the same size.
            let ours = p
                .rule
                .trim_start_matches("torch-")
                .trim_start_matches("burn-")
                .rsplit_once('-')
                .map_or(p.rule.clone(), |(r, _)| r.to_string());
            let time_ratio = rows
                .iter()
                .find(|r| r.timing.rule == ours && r.timing.params == p.params)
                .map(|r| r.timing.step.median / p.step.median);
            PeerRow {
                peer: p,
                ours,
                time_ratio,
            }
        })
        .collect();

    let model = if args.no_model {
        None
    } else {
        Some(model_workload(&ctx, &timer, &bar, args.reps)?)
    };
    bar.finish_and_clear();

    // The table.
    let mut out = std::io::stdout().lock();
    writeln!(out, "roofline (GB/s, read + write)")?;
    writeln!(
        out,
        "  {:>8} {:>12} {:>12} {:>10}",
        "params", "copy_buffer", "copy_kernel", "roofline"
    )?;
    for r in &roofs {
        writeln!(
            out,
            "  {:>8} {:>12.1} {:>12.1} {:>10.1}",
            fmt_size(r.params),
            r.copy_buffer_gbps,
            r.copy_kernel_gbps,
            r.gbps()
        )?;
    }
    writeln!(out, "\nrules")?;
    writeln!(
        out,
        "  {:<26} {:>8} {:>7} {:>10} {:>21} {:>8} {:>7} {:>7}",
        "rule", "params", "B/param", "ms/step", "[min - max]", "GB/s", "%roof", "%copyk"
    )?;
    for r in &rows {
        let t = &r.timing;
        writeln!(
            out,
            "  {:<26} {:>8} {:>7} {:>10.3} {:>21} {:>8.1} {:>6.1}% {:>6.1}%",
            t.rule,
            fmt_size(t.params),
            t.bytes_per_param,
            t.step.median * 1e3,
            format!("[{:.3} - {:.3}]", t.step.min * 1e3, t.step.max * 1e3),
            t.gbps,
            r.pct_roofline,
            r.pct_copy_kernel
        )?;
    }
    writeln!(out, "\ncorrectness: GPU vs CPU reference, {} params", vlen)?;
    writeln!(
        out,
        "  {:<26} {:>6} {:>11} {:>9} {:>10} {:>10}  result",
        "rule", "steps", "max rel", "max ulps", "scaled", "tolerance"
    )?;
    let mut all_ok = true;
    for v in &verifies {
        all_ok &= v.passed;
        writeln!(
            out,
            "  {:<26} {:>6} {:>11.3e} {:>9} {:>10.2} {:>10}  {}",
            v.rule,
            v.steps,
            v.max_rel,
            v.max_ulps,
            v.max_scaled,
            v.tolerance,
            if v.passed { "ok" } else { "FAIL" }
        )?;
    }
    if !cpus.is_empty() {
        writeln!(
            out,
            "\nCPU reference (one thread) vs GPU, {} params",
            fmt_size(cpus[0].params)
        )?;
        writeln!(
            out,
            "  {:<26} {:>10} {:>10} {:>9}",
            "rule", "cpu ms", "gpu ms", "speedup"
        )?;
        for c in &cpus {
            writeln!(
                out,
                "  {:<26} {:>10.2} {:>10.3} {:>8.1}x",
                c.rule,
                c.cpu.median * 1e3,
                c.gpu_median * 1e3,
                c.gpu_speedup
            )?;
        }
    }
    if let Some(m) = &model {
        writeln!(
            out,
            "\nmodel: GPT-2 small, {} tensors, {} params, {} (ms/step, median)",
            m.tensors, m.params, m.rule
        )?;
        writeln!(
            out,
            "  one flat buffer            {:>9.2}",
            m.flat.median * 1e3
        )?;
        writeln!(
            out,
            "  148 tensors, batched       {:>9.2}   {:.3}x flat   ({} dispatches)",
            m.multi_tensor.median * 1e3,
            m.multi_over_flat,
            m.dispatches_multi
        )?;
        writeln!(
            out,
            "  one dispatch per tensor    {:>9.2}   {:.3}x batched ({} dispatches)",
            m.per_tensor_dispatch.median * 1e3,
            m.naive_over_multi,
            m.dispatches_naive
        )?;
        writeln!(
            out,
            "  host encode+submit per step: {:.1} us (K=1), {:.1} us (K=8)",
            m.host_us_per_step_k1, m.host_us_per_step_k8
        )?;
    }
    if !features.is_empty() {
        writeln!(
            out,
            "\ntraining-loop features (time relative to the plain step, same size)"
        )?;
        for f in &features {
            writeln!(
                out,
                "  {:<36} {:>8} {:>10.3} ms  {:.3}x plain",
                f.feature,
                fmt_size(f.params),
                f.step.median * 1e3,
                f.over_plain
            )?;
        }
    }
    if !state8.is_empty() {
        writeln!(
            out,
            "\n8-bit state (bitsandbytes' block-wise; MLP example: final loss after {MLP_STEPS} steps)"
        )?;
        writeln!(
            out,
            "  {:<8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>13} {:>16}",
            "rule",
            "params",
            "B/param",
            "ms/step",
            "GB/s",
            "% roof",
            "vs f32",
            "state B/param",
            "MLP loss 8b/f32"
        )?;
        let mut ok = true;
        for r in &state8 {
            writeln!(
                out,
                "  {:<8} {:>8} {:>9.2} {:>10.3} {:>8.1} {:>7.0}% {:>7.2}x {:>6.2} (f32 {:.0}) {:>7.4}/{:.4} = {:.3}",
                r.rule,
                fmt_size(r.params),
                r.bytes_per_param,
                r.step.median * 1e3,
                r.gbps,
                r.pct_roofline,
                r.over_f32,
                r.state_bytes_per_param,
                r.f32_state_bytes_per_param,
                r.mlp_loss_8bit,
                r.mlp_loss_f32,
                r.mlp_loss_ratio
            )?;
            ok &= r.verified;
        }
        for r in &state8 {
            writeln!(
                out,
                "  {:<8} stochastic requantization: {:.2}x f32 time, MLP loss {:.4} = {:.3}x f32",
                r.rule, r.sr_over_f32, r.mlp_loss_8bit_sr, r.mlp_loss_ratio_sr
            )?;
        }
        all_ok &= ok;
        writeln!(
            out,
            "  verifier (GPU vs bit-exact CPU twin, 100003 params): {}",
            if ok { "ok" } else { "FAILED" }
        )?;
    }
    if !peers.is_empty() {
        writeln!(
            out,
            "\npeers (time ratio = gpu-optim / peer; below 1 means gpu-optim is faster)"
        )?;
        writeln!(
            out,
            "  {:<28} {:>8} {:>10} {:>8} {:>12}",
            "peer", "params", "ms/step", "GB/s", "ratio"
        )?;
        for p in &peers {
            writeln!(
                out,
                "  {:<28} {:>8} {:>10.3} {:>8.1} {:>12}",
                p.peer.rule,
                fmt_size(p.peer.params),
                p.peer.step.median * 1e3,
                p.peer.gbps,
                p.time_ratio
                    .map_or("-".into(), |r| format!("{r:.3}x {}", p.ours))
            )?;
        }
    }
    if !all_ok {
        writeln!(
            out,
            "\nFAIL: a rule disagrees with its CPU reference beyond tolerance"
        )?;
    }

    let report = Report {
        crate_version: env!("CARGO_PKG_VERSION"),
        adapter: AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            device_type: format!("{:?}", info.device_type),
            software: ctx.is_software(),
        },
        limits: LimitsReport {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            min_storage_buffer_offset_alignment: limits.min_storage_buffer_offset_alignment,
        },
        timing: timer.method(),
        steps_per_submission: sizes.iter().map(|&n| (n, k_for(n))).collect(),
        reps: args.reps,
        roofline: roofs,
        rules: rows,
        verify: verifies,
        cpu: cpus,
        model,
        features,
        state8,
        peers,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(all_ok)
}

/// GPT-2 small with AdamW (decay on 2-D tensors only): one flat buffer vs the 148 tensors
/// batched vs one dispatch per tensor; host cost per step on the batched optimizer.
fn model_workload(
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
    let build = |naive: bool| -> Result<Optimizer<Adam>, gpu_optim::Error> {
        let mut opt = Optimizer::new(ctx, rule.clone())?;
        opt.set_dispatch_per_tensor(naive)?;
        opt.set_steps_per_submission(8)?;
        let no_decay = opt.add_group(Adam {
            weight_decay: 0.0,
            ..rule.clone()
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
    };
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
    let small: Vec<usize> = lens.iter().map(|n| (n / 256).max(1)).collect();
    let arena = Arena::new(ctx, &small)?;
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    opt.set_steps_per_submission(8)?;
    opt.add_arena(&arena, opt.default_group())?;
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

fn plot(path: &PathBuf, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    bench::register_plot_font();
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let log2 = |n: usize| (n as f64).log2();
    let xs: Vec<f64> = report.roofline.iter().map(|r| log2(r.params)).collect();
    let x0 = xs.iter().cloned().fold(f64::INFINITY, f64::min) - 0.5;
    let x1 = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + 0.5;
    let ys = report
        .roofline
        .iter()
        .flat_map(|r| [r.copy_buffer_gbps, r.copy_kernel_gbps])
        .chain(report.rules.iter().map(|r| r.timing.gbps));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    // Log scale: in-cache copies can run 10x faster than the memory-bound rules.
    let (lo, hi) = (lo * 0.7, hi * 1.5);
    let title = format!("gpu-optim on {}", report.adapter.name);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("parameters")
        .y_desc("effective bandwidth, GB/s (log scale)")
        .x_label_formatter(&|x| format!("2^{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    let line = |pts: Vec<(f64, f64)>, style: ShapeStyle| LineSeries::new(pts, style);
    let roof: Vec<_> = report
        .roofline
        .iter()
        .map(|r| (log2(r.params), r.gbps()))
        .collect();
    let copyk: Vec<_> = report
        .roofline
        .iter()
        .map(|r| (log2(r.params), r.copy_kernel_gbps))
        .collect();
    let black = BLACK.stroke_width(3);
    let grey = BLACK.mix(0.45).stroke_width(2);
    chart
        .draw_series(line(roof, black))?
        .label("roofline (best copy)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], black));
    chart
        .draw_series(line(copyk, grey))?
        .label("copy kernel")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    let mut names: Vec<&str> = Vec::new();
    for r in &report.rules {
        if !names.contains(&r.timing.rule.as_str()) {
            names.push(&r.timing.rule);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let style = Palette99::pick(i).stroke_width(2);
        let pts: Vec<(f64, f64)> = report
            .rules
            .iter()
            .filter(|r| r.timing.rule == *name)
            .map(|r| (log2(r.timing.params), r.timing.gbps))
            .collect();
        chart
            .draw_series(line(pts.clone(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, style.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
