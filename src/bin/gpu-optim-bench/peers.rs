//! How does PyTorch's (and with `peer-burn`, Burn's) time per step compare with ours at the
//! same size? Reads the rules' rows only; never times a gpu-optim rule itself.

use gpu_optim::{AnyRule, UpdateRule};
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
    /// gpu-optim's median / the peer's median (below 1: gpu-optim is faster).
    pub time_ratio: Option<f64>,
}

#[derive(serde::Deserialize)]
pub struct PeerFile {
    pub rules: Vec<PeerTiming>,
}

/// Burn's Adam on its wgpu backend at each size, when built with `--features peer-burn`
/// (wall clock with a device sync per step: compare with `--wall-clock` figures).
#[cfg(feature = "peer-burn")]
pub fn burn_rows(sizes: &[usize], reps: usize, wanted: bool) -> Vec<PeerTiming> {
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
pub fn burn_rows(_sizes: &[usize], _reps: usize, _wanted: bool) -> Vec<PeerTiming> {
    Vec::new()
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
    let Shared {
        bar, args, reps, ..
    } = *s;
    bar.set_message("peers");
    let mut peer_rows = torch_peer(args, sizes)?;
    peer_rows.extend(burn_rows(
        sizes,
        reps,
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
    Ok(peers)
}
