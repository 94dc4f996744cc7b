//! How does PyTorch's (and with `peer-burn`, Burn's) time per step compare with ours at the
//! same size? Reads the rules' rows only; never times a gpu-optim rule itself.

use gpu_optim::AnyRule;
use serde::Serialize;

#[cfg(feature = "peer-burn")]
use crate::burn_peer;
use crate::rules::RuleRow;
use crate::{Args, Shared};

/// A peer's row beside ours: its time per step, and ours / its at the same size.
#[derive(Serialize, serde::Deserialize, Clone)]
pub struct PeerStep {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Serialize, serde::Deserialize, Clone)]
pub struct PeerTiming {
    pub rule: String,
    pub params: usize,
    pub bytes_per_param: usize,
    pub step: PeerStep,
    pub gbps: f64,
}

#[derive(Serialize)]
pub struct PeerRow {
    #[serde(flatten)]
    pub peer: PeerTiming,
    /// The gpu-optim rule it is compared with.
    pub ours: String,
    /// gpu-optim's time / the peer's (below 1: gpu-optim is faster).
    pub time_ratio: Option<f64>,
    /// How the two were timed.
    pub timing: String,
}

#[derive(serde::Deserialize)]
pub struct PeerFile {
    pub rules: Vec<PeerTiming>,
}

/// Burn's Adam and SGD with momentum on its wgpu backend at each size, when built with
/// `--features peer-burn` and the rule is among `rules`: timed like for like with ours,
/// each side in its own process (this binary run with `--peer-child`), as each library's
/// users run it, so neither side's device, threads or memory sit beside the other's.
/// Alternately, `reps` times (at least [`PEER_MIN_REPS`]), each side first in every other
/// repetition; each process warms up, then times [`CHILD_STEPS`] steps, one step then a
/// wait, wall clock, on the same number of params, and reports their median. The row's
/// ratio is the median of the per-repetition ratios.
#[cfg(feature = "peer-burn")]
pub fn burn_rows(s: &Shared, sizes: &[usize], rules: &[AnyRule]) -> Vec<PeerRow> {
    use gpu_optim::bench::Sample;
    use gpu_optim::UpdateRule;
    let pairs: Vec<(burn_peer::PeerRule, &AnyRule)> = rules
        .iter()
        .filter_map(|r| burn_peer::PeerRule::of(&r.name()).map(|p| (p, r)))
        .collect();
    if pairs.is_empty() {
        return Vec::new();
    }
    if let Some(name) = burn_peer::burn_adapter_name() {
        eprintln!("burn peer on: {name}");
    }
    let mut out = Vec::new();
    for &n in sizes {
        for &(peer, rule) in &pairs {
            s.bar.set_message(format!("peer {} {n}", peer.name()));
            match like_for_like(s.args, &rule.name(), n, s.reps.max(PEER_MIN_REPS)) {
                Ok((burn, ratio)) => out.push(PeerRow {
                    peer: PeerTiming {
                        rule: peer.name().into(),
                        params: n,
                        bytes_per_param: rule.bytes_per_param(),
                        step: PeerStep {
                            median: burn.median,
                            min: burn.min,
                            max: burn.max,
                        },
                        gbps: rule.bytes_per_param() as f64 * n as f64 / burn.median / 1e9,
                    },
                    ours: rule.name(),
                    time_ratio: Some(ratio.median),
                    timing: like_for_like_timing(),
                }),
                Err(e) => eprintln!("burn peer {} at {n}: {e}", peer.name()),
            }
        }
    }

    /// (Burn's seconds per step, ours / Burn's per repetition).
    fn like_for_like(
        args: &Args,
        rule: &str,
        n: usize,
        reps: usize,
    ) -> Result<(Sample, Sample), Box<dyn std::error::Error>> {
        let (mut theirs, mut ratios) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            let (o, b) = if rep % 2 == 0 {
                let o = child(args, "ours", rule, n)?;
                (o, child(args, "burn", rule, n)?)
            } else {
                let b = child(args, "burn", rule, n)?;
                (child(args, "ours", rule, n)?, b)
            };
            theirs.push(b);
            ratios.push(o / b);
        }
        Ok((Sample::of(theirs), Sample::of(ratios)))
    }

    /// One `--peer-child` process: its median seconds per step.
    fn child(
        args: &Args,
        side: &str,
        rule: &str,
        n: usize,
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.arg("--peer-child").arg(format!("{side}:{rule}:{n}"));
        if let Some(a) = &args.adapter {
            cmd.arg("--adapter").arg(a);
        }
        if let Some(b) = &args.backend {
            cmd.arg("--backend").arg(b);
        }
        if let Some(w) = args.workgroup {
            cmd.arg("--workgroup").arg(w.to_string());
        }
        let out = cmd.stdin(std::process::Stdio::null()).output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("{side} process failed ({}): {last}", out.status).into());
        }
        Ok(String::from_utf8(out.stdout)?.trim().parse::<f64>()?)
    }
    out
}

/// Repetitions of a Burn row at the least, whatever `--reps` or a slow device's time
/// budget says. The gate (ours <= Burn) is judged by the median of at least 7; here each
/// repetition is two processes, and on a 2-core lavapipe machine their per-repetition
/// ratios spread over interquartile ranges of 0.90-1.11 and 0.90-1.05 (Adam at 2^24, two
/// sets of 15 pairs), so a median of 7 moves by about ±5% from run to run: 15 bring that
/// to about ±3.5%. (One
/// repetition costs ~0.5 s at 2^22 and ~1.5 s at 2^24, both sides together.)
#[cfg(feature = "peer-burn")]
const PEER_MIN_REPS: usize = 15;

/// Steps each `--peer-child` process times after its warm-up; it reports their median.
#[cfg(feature = "peer-burn")]
const CHILD_STEPS: usize = 3;

/// `--peer-child SIDE:RULE:N` (hidden; [`burn_rows`] runs it): times `RULE` ("adam" or
/// "sgd-momentum") on `N` random params, `SIDE` "ours" (on a context opened with
/// `options`: the parent's `--adapter`, `--backend` and `--workgroup`; two untimed steps
/// first) or "burn" (Burn's two warm-up steps first, and
/// its result checked after), [`CHILD_STEPS`] steps, each one step then a wait, wall
/// clock; prints the median seconds per step on stdout.
#[cfg(feature = "peer-burn")]
pub fn run_child(
    spec: &str,
    options: &gpu_optim::ContextOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    use burn_peer::{BurnPeer, PeerRule};
    use gpu_optim::bench::Sample;
    let bad = || format!("--peer-child wants SIDE:RULE:N, got {spec:?}");
    let [side, rule, n] = spec.split(':').collect::<Vec<_>>()[..] else {
        return Err(bad().into());
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    let peer = PeerRule::of(rule).ok_or_else(bad)?;
    let mut secs = Vec::with_capacity(CHILD_STEPS);
    match side {
        "ours" => {
            let ctx = gpu_optim::Context::with_options(options)?;
            let rule = crate::parse_rules(&[rule.to_string()])?.remove(0);
            let arena = gpu_optim::bench::random_arena(&ctx, n)?;
            let mut opt = gpu_optim::Optimizer::new(&ctx, rule)?;
            opt.add_arena(&arena, opt.default_group())?;
            for _ in 0..2 {
                opt.step()?;
                ctx.wait()?;
            }
            for _ in 0..CHILD_STEPS {
                let t0 = std::time::Instant::now();
                opt.step()?;
                ctx.wait()?;
                secs.push(t0.elapsed().as_secs_f64());
            }
        }
        "burn" => {
            let mut burn = BurnPeer::new(peer, n)?;
            for _ in 0..CHILD_STEPS {
                secs.push(burn.step_timed()?);
            }
            burn.check()?;
        }
        _ => return Err(bad().into()),
    }
    println!("{}", Sample::of(secs).median);
    Ok(())
}

#[cfg(not(feature = "peer-burn"))]
pub fn burn_rows(_s: &Shared, _sizes: &[usize], _rules: &[AnyRule]) -> Vec<PeerRow> {
    Vec::new()
}

/// How a Burn row is timed.
#[cfg(feature = "peer-burn")]
fn like_for_like_timing() -> String {
    format!(
        "each side in its own process, alternating (each first in every other repetition, at \
         least {PEER_MIN_REPS} repetitions), median of {CHILD_STEPS} steps per process, each \
         one step then a wait, wall clock"
    )
}

/// The torch peer: read `--torch-json`, or run the script when asked or when torch has CUDA.
pub fn torch_peer(
    args: &Args,
    sizes: &[usize],
) -> Result<Vec<PeerTiming>, Box<dyn std::error::Error>> {
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
    let at = |e: &dyn std::fmt::Display| format!("torch timings {}: {e}", path.display());
    let text = std::fs::read_to_string(&path).map_err(|e| at(&e))?;
    let file: PeerFile = serde_json::from_str(&text).map_err(|e| at(&e))?;
    Ok(file.rules)
}

/// The peers' rows, each with ours / theirs where we timed the same rule at the same size.
pub fn peer_rows(
    s: &Shared,
    sizes: &[usize],
    rules: &[AnyRule],
    rows: &[RuleRow],
) -> Result<Vec<PeerRow>, Box<dyn std::error::Error>> {
    let Shared { bar, args, .. } = *s;
    bar.set_message("peers");
    let mut peers: Vec<PeerRow> = torch_peer(args, sizes)?
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
                timing: "ours: its rules row; torch: benches/torch_optim.py".into(),
            }
        })
        .collect();
    peers.extend(burn_rows(s, sizes, rules));
    Ok(peers)
}
