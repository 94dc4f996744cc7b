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
/// alternately, `reps` times (at least [`crate::anchors::ANCHOR_MIN_REPS`], the gates' statistic), each
/// going first in every other repetition: one step then a wait, wall clock, each side on
/// the same number of params. The row's ratio is the median of the per-repetition ratios.
#[cfg(feature = "peer-burn")]
pub fn burn_rows(s: &Shared, sizes: &[usize], rules: &[AnyRule]) -> Vec<PeerRow> {
    use crate::anchors::ANCHOR_MIN_REPS;
    use burn_peer::{BurnPeer, PeerRule};
    use gpu_optim::bench::Sample;
    use gpu_optim::UpdateRule;
    let pairs: Vec<(PeerRule, &AnyRule)> = [
        (PeerRule::Adam, "adam"),
        (PeerRule::SgdMomentum, "sgd-momentum"),
    ]
    .into_iter()
    .filter_map(|(p, name)| rules.iter().find(|r| r.name() == name).map(|r| (p, r)))
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
            match like_for_like(s.ctx, rule, peer, n, s.reps.max(ANCHOR_MIN_REPS)) {
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
                    timing: LIKE_FOR_LIKE.into(),
                }),
                Err(e) => eprintln!("burn peer {} at {n}: {e}", peer.name()),
            }
        }
    }

    /// (Burn's seconds per step, ours / Burn's per repetition).
    fn like_for_like(
        ctx: &gpu_optim::Context,
        rule: &AnyRule,
        peer: PeerRule,
        n: usize,
        reps: usize,
    ) -> Result<(Sample, Sample), Box<dyn std::error::Error>> {
        let arena = gpu_optim::bench::random_arena(ctx, n)?;
        let mut opt = gpu_optim::Optimizer::new(ctx, rule.clone())?;
        opt.add_arena(&arena, opt.default_group())?;
        for _ in 0..2 {
            opt.step()?;
            ctx.wait()?;
        }
        let mut burn = BurnPeer::new(peer, n)?;
        let mut ours = || -> gpu_optim::Result<f64> {
            let t0 = std::time::Instant::now();
            opt.step()?;
            ctx.wait()?;
            Ok(t0.elapsed().as_secs_f64())
        };
        let (mut theirs, mut ratios) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            // Ours first in even repetitions, Burn's first in odd ones: neither side always
            // runs right after the other's step.
            let (o, b) = if rep % 2 == 0 {
                let o = ours()?;
                (o, burn.step_timed()?)
            } else {
                let b = burn.step_timed()?;
                (ours()?, b)
            };
            theirs.push(b);
            ratios.push(o / b);
        }
        burn.check()?;
        Ok((Sample::of(theirs), Sample::of(ratios)))
    }
    out
}

#[cfg(not(feature = "peer-burn"))]
pub fn burn_rows(_s: &Shared, _sizes: &[usize], _rules: &[AnyRule]) -> Vec<PeerRow> {
    Vec::new()
}

/// How a Burn row is timed.
#[cfg(feature = "peer-burn")]
const LIKE_FOR_LIKE: &str =
    "alternating with ours (each first in every other repetition), each one step then a wait, wall clock";

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
    let file: PeerFile = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
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
