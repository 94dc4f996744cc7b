//! What the run found, as the stdout tables, the JSON report (`--json`) and the SVG plot
//! (`--plot`). Measures nothing: it only formats the rows the sections returned.

use std::io::Write;
use std::path::PathBuf;

use gpu_optim::bench::{self, Roofline, TimingMethod};
use gpu_optim::Context;
use serde::Serialize;

use crate::anchors::{
    AnchorRow, NoiseRow, ANCHOR_MIN_REPS, ANCHOR_VERIFY_LEN, ANCHOR_VERIFY_STEPS,
};
use crate::features::FeatureRow;
use crate::machine::MachineReport;
use crate::model::ModelReport;
use crate::peers::PeerRow;
use crate::rules::{CpuRow, RuleRow, VerifyRow, VERIFY_LEN};
use crate::state8::{State8Row, MLP_STEPS};
use crate::sweep::{HostCost, MixedRow};
use crate::{fmt_size, Args};

#[derive(Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    pub device_type: String,
    pub software: bool,
}

#[derive(Serialize)]
pub struct LimitsReport {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub min_storage_buffer_offset_alignment: u32,
}

impl AdapterReport {
    /// The adapter `ctx` runs on.
    pub fn of(ctx: &Context) -> AdapterReport {
        let info = ctx.adapter_info();
        AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            device_type: format!("{:?}", info.device_type),
            software: ctx.is_software(),
        }
    }
}

impl LimitsReport {
    /// The limits of `ctx`'s device that bound the sizes.
    pub fn of(ctx: &Context) -> LimitsReport {
        let limits = ctx.limits();
        LimitsReport {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            min_storage_buffer_offset_alignment: limits.min_storage_buffer_offset_alignment,
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    pub crate_version: &'static str,
    /// The host: CPU model and cores (a software device's figures are this CPU's).
    pub machine: MachineReport,
    pub adapter: AdapterReport,
    pub limits: LimitsReport,
    pub timing: TimingMethod,
    /// What the default run's time budget trimmed on a slow device, one sentence each;
    /// empty when nothing was (explicit `--sizes` / `--reps`, `--full`, or a fast device).
    pub time_budget: Vec<String>,
    pub steps_per_submission: Vec<(usize, usize)>,
    pub reps: usize,
    pub roofline: Vec<Roofline>,
    pub rules: Vec<RuleRow>,
    pub verify: Vec<VerifyRow>,
    pub cpu: Vec<CpuRow>,
    /// The generality tax: the crate's step vs a minimal kernel, same buffers, interleaved.
    pub anchors: Vec<AnchorRow>,
    /// Per size, the minimal kernel against itself: the tax's noise floor in this run.
    pub anchor_noise: Vec<NoiseRow>,
    pub model: Option<ModelReport>,
    /// Many small tensors batched vs one flat buffer of the same total; preparation time.
    pub mixed_sizes: Vec<MixedRow>,
    /// The host's cost of a step vs an empty submission.
    pub host_cost: Option<HostCost>,
    pub features: Vec<FeatureRow>,
    pub state8: Vec<State8Row>,
    pub peers: Vec<PeerRow>,
}

/// The tables on stdout; false if a correctness check failed.
pub fn print_tables(report: &Report) -> Result<bool, Box<dyn std::error::Error>> {
    let Report {
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
        ..
    } = report;
    let vlen = VERIFY_LEN;
    // The table.
    let mut out = std::io::stdout().lock();
    writeln!(out, "roofline (GB/s, read + write)")?;
    writeln!(
        out,
        "  {:>8} {:>12} {:>12} {:>10}",
        "params", "copy_buffer", "copy_kernel", "roofline"
    )?;
    for r in roofs {
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
    for r in rows {
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
    for v in verifies {
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
        for c in cpus {
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
    if !anchors.is_empty() {
        writeln!(
            out,
            "\ngenerality tax: ours vs a minimal kernel (same buffers, interleaved)"
        )?;
        writeln!(
            out,
            "  (median of {} alternating repetitions, at least {ANCHOR_MIN_REPS} whatever the \
             budget; anchor verify: bit for bit vs ours after {ANCHOR_VERIFY_STEPS} steps, {} \
             params)",
            anchors[0].reps,
            fmt_size(ANCHOR_VERIFY_LEN)
        )?;
        writeln!(
            out,
            "  {:<14} {:>8} {:>4} {:>10} {:>11} {:>13} {:>17}  anchor verify",
            "rule", "params", "K", "ours ms", "minimal ms", "ours/minimal", "[min - max]"
        )?;
        for a in anchors {
            writeln!(
                out,
                "  {:<14} {:>8} {:>4} {:>10.3} {:>11.3} {:>12.3}x {:>17}  {}",
                a.rule,
                fmt_size(a.params),
                a.steps_per_submission,
                a.ours.median * 1e3,
                a.anchor.median * 1e3,
                a.ratio.median,
                format!("[{:.3} - {:.3}]", a.ratio.min, a.ratio.max),
                if a.bit_exact {
                    "ok".to_string()
                } else {
                    format!("DIFF (max ulps {})", a.max_ulps)
                }
            )?;
        }
        if !anchor_noise.is_empty() {
            writeln!(
                out,
                "  noise floor: the first minimal kernel against itself, timed the same way\n  \
                 (1.000x were timing exact; a ratio above can stray about as far by chance)"
            )?;
        }
        for a in anchor_noise {
            writeln!(
                out,
                "  {:<14} {:>8} {:>4} {:>10} {:>11} {:>12.3}x {:>17}",
                format!("{} itself", a.rule),
                fmt_size(a.params),
                a.steps_per_submission,
                "",
                "",
                a.ratio.median,
                format!("[{:.3} - {:.3}]", a.ratio.min, a.ratio.max),
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
    if !mixed_sizes.is_empty() {
        writeln!(
            out,
            "\nmany small tensors: AdamW over T tensors of 64-4063 elements, batched vs one flat \
             buffer of the same total\n  (median of {} alternating repetitions, at least \
             {ANCHOR_MIN_REPS} whatever the budget; prepare: new + add_arena + prepare, kernels \
             cached)",
            mixed_sizes[0].reps
        )?;
        writeln!(
            out,
            "  {:>6} {:>10} {:>4} {:>10} {:>10} {:>13} {:>17} {:>11}",
            "T",
            "params",
            "K",
            "batched ms",
            "flat ms",
            "batched/flat",
            "[min - max]",
            "prepare ms"
        )?;
        for m in mixed_sizes {
            writeln!(
                out,
                "  {:>6} {:>10} {:>4} {:>10.3} {:>10.3} {:>12.3}x {:>17} {:>11.2}",
                m.tensors,
                m.params,
                m.steps_per_submission,
                m.batched.median * 1e3,
                m.flat.median * 1e3,
                m.ratio.median,
                format!("[{:.3} - {:.3}]", m.ratio.min, m.ratio.max),
                m.prepare_s * 1e3
            )?;
        }
        if let [.., a, b] = &mixed_sizes[..] {
            let (ratio, how) = match &b.prepare_vs_previous {
                Some(r) => (
                    r.median,
                    format!(
                        " (median of {} alternating repetitions, [{:.2} - {:.2}])",
                        b.reps, r.min, r.max
                    ),
                ),
                None => (b.prepare_s / a.prepare_s, String::new()),
            };
            writeln!(
                out,
                "  preparation {} -> {} tensors: {:.2}x the time for {:.1}x the tensors{how}",
                a.tensors,
                b.tensors,
                ratio,
                b.tensors as f64 / a.tensors as f64
            )?;
        }
    }
    if let Some(h) = host_cost {
        writeln!(
            out,
            "host cost of step() ({} tensors, encode + submit, not waiting): {:.1} us at K=1 \
             against {:.1} us for an empty compute pass, {} pairs, each of the two right after \
             a step: K=1 is {:.2}x it per pair (median, [{:.2} - {:.2}]); {:.1} us/step \
             at K=8; empty passes back to back {:.1} us (less than after a step's work)",
            h.tensors,
            h.step_k1.median * 1e6,
            h.empty_submit.median * 1e6,
            h.pairs,
            h.k1_over_empty.median,
            h.k1_over_empty.min,
            h.k1_over_empty.max,
            h.step_k8.median * 1e6,
            h.empty_back_to_back.median * 1e6,
        )?;
    }
    if !features.is_empty() {
        writeln!(
            out,
            "\ntraining-loop features (time relative to the plain step, same size and K, \
             alternately: median of {} repetitions [min - max]; bytes: the ratio its bytes \
             predict)",
            features[0].reps
        )?;
        writeln!(
            out,
            "  {:<36} {:>8} {:>10} {:>9} {:>17} {:>8} {:>3}",
            "feature", "params", "ms/step", "vs plain", "[min - max]", "bytes", "K"
        )?;
        // Over the bytes by more than 15%: on a software device its instructions, not
        // its bytes, set the time (--help says why); on a GPU, worth a look.
        let over = match report.adapter.software {
            true => "  (> bytes: instruction-bound, see --help)",
            false => "  (> bytes by more than 15%)",
        };
        for f in features {
            writeln!(
                out,
                "  {:<36} {:>8} {:>10.3} {:>8.3}x {:>17} {:>7.3}x {:>3}{}",
                f.feature,
                fmt_size(f.params),
                f.step.median * 1e3,
                f.over_plain.median,
                format!("[{:.3} - {:.3}]", f.over_plain.min, f.over_plain.max),
                f.bytes_ratio,
                f.steps_per_submission,
                if f.over_plain.median > 1.15 * f.bytes_ratio {
                    over
                } else {
                    ""
                }
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
            "  {:<8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>6} {:>13} {:>16}",
            "rule",
            "params",
            "B/param",
            "ms/step",
            "GB/s",
            "% roof",
            "vs f32",
            "bytes",
            "state B/param",
            "MLP loss 8b/f32"
        )?;
        let mut ok = true;
        for r in state8 {
            writeln!(
                out,
                "  {:<8} {:>8} {:>9.2} {:>10.3} {:>8.1} {:>7.0}% {:>7.2}x {:>5.2}x {:>6.2} (f32 {:.0}) {:>7.4}/{:.4} = {:.3}",
                r.rule,
                fmt_size(r.params),
                r.bytes_per_param,
                r.step.median * 1e3,
                r.gbps,
                r.pct_roofline,
                r.over_f32,
                r.bytes_ratio,
                r.state_bytes_per_param,
                r.f32_state_bytes_per_param,
                r.mlp_loss_8bit,
                r.mlp_loss_f32,
                r.mlp_loss_ratio
            )?;
            ok &= r.verified;
        }
        for r in state8 {
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
        for p in peers {
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
            writeln!(out, "  {:<28} timed: {}", "", p.timing)?;
        }
    }
    if !all_ok {
        writeln!(
            out,
            "\nFAIL: a rule disagrees with its CPU reference beyond tolerance"
        )?;
    }
    Ok(all_ok)
}

/// The JSON report and the plot, where asked for.
pub fn write_files(args: &Args, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .map_err(|e| format!("--json {}: {e}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(path, report).map_err(|e| format!("--plot {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Rule names in the order the rows first name them.
fn rule_names(report: &Report) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in &report.rules {
        if !names.contains(&r.timing.rule.as_str()) {
            names.push(&r.timing.rule);
        }
    }
    names
}

/// Bandwidth vs size per rule with the roofline; with one size, a bar per rule instead (a
/// line through one point is a dot, and every tick of a one-size axis reads the same).
fn plot(path: &PathBuf, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    bench::register_plot_font();
    if report.roofline.len() == 1 {
        plot_one_size(path, report)
    } else {
        plot_sizes(path, report)
    }
}

/// The GB/s axis's range: every figure drawn, with room above and below (log scale).
fn gbps_range(report: &Report) -> (f64, f64) {
    let ys = report
        .roofline
        .iter()
        .flat_map(|r| [r.copy_buffer_gbps, r.copy_kernel_gbps])
        .chain(report.rules.iter().map(|r| r.timing.gbps));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    // Log scale: in-cache copies can run 10x faster than the memory-bound rules.
    (lo * 0.7, hi * 1.5)
}

/// Log-axis ticks: 1, 2 and 5 times the powers of ten within `lo..hi` (1 to 9 times when
/// that gives fewer than three), and the 1-to-9 multiples for the light grid. Plotters'
/// own log-axis labels leave out everything below 10, where a software device's rules lie.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let within = |ms: &[f64]| {
        let mut ts = Vec::new();
        let mut e = lo.log10().floor() as i32;
        while 10f64.powi(e) <= hi {
            ts.extend(
                ms.iter()
                    .map(|m| m * 10f64.powi(e))
                    .filter(|t| (lo..=hi).contains(t)),
            );
            e += 1;
        }
        ts
    };
    let all = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let bold = within(&[1.0, 2.0, 5.0]);
    (if bold.len() < 3 { all.clone() } else { bold }, all)
}

/// A tick's GB/s with as many decimals as it needs: `0.5`, `2`, `20`.
fn fmt_gbps(y: f64) -> String {
    let digits = (-y.log10().floor()).max(0.0) as usize;
    format!("{y:.digits$}")
}

fn plot_sizes(path: &PathBuf, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let log2 = |n: usize| (n as f64).log2();
    let xs: Vec<f64> = report.roofline.iter().map(|r| log2(r.params)).collect();
    let x0 = xs.iter().cloned().fold(f64::INFINITY, f64::min) - 0.5;
    let x1 = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + 0.5;
    let (lo, hi) = gbps_range(report);
    let (ticks, grid) = log_ticks(lo, hi);
    let title = format!("gpu-optim on {}", report.adapter.name);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            x0..x1,
            (lo..hi)
                .log_scale()
                .with_key_points(ticks)
                .with_light_points(grid),
        )?;
    chart
        .configure_mesh()
        .x_desc("parameters")
        .y_desc("effective bandwidth, GB/s (log scale)")
        // Powers of two only: a tick between two of them would read as one of them.
        .x_labels((x1 - x0).ceil() as usize + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("2^{x:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| fmt_gbps(*y))
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
    for (i, name) in rule_names(report).iter().enumerate() {
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

/// One size: a horizontal bar per rule (its GB/s, labelled with the % of roofline), the
/// roofline and the copy kernel as vertical lines across all of them.
fn plot_one_size(path: &PathBuf, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let roof = &report.roofline[0];
    let names = rule_names(report);
    let n = names.len();
    // One row per rule, and the segmented axis's extra top row: the legend's.
    let root =
        SVGBackend::new(path, (1000, (130 + 34 * (n + 1).max(4)) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = gbps_range(report);
    let (ticks, grid) = log_ticks(lo, hi);
    let title = format!(
        "gpu-optim on {}, {} parameters",
        report.adapter.name,
        fmt_size(roof.params)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(210)
        .build_cartesian_2d(
            (lo..hi)
                .log_scale()
                .with_key_points(ticks)
                .with_light_points(grid),
            (0..n).into_segmented(),
        )?;
    // The first rule at the top, as in the table.
    let row = |i: usize| n - 1 - i;
    // The rule names are drawn beside their bars below, not as axis labels: a label would
    // also tick the legend's row, and without ticks the labels touch the bars.
    chart
        .configure_mesh()
        .disable_y_mesh()
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .x_desc("effective bandwidth, GB/s (log scale)")
        .x_label_formatter(&|x| fmt_gbps(*x))
        .y_label_formatter(&|_| String::new())
        .draw()?;
    let name_style = ("sans-serif", 15)
        .into_font()
        .into_text_style(&root)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, name) in names.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, SegmentValue::CenterOf(row(i))));
        root.draw(&Text::new(name.to_string(), (x - 8, y), name_style.clone()))?;
    }
    let font = ("sans-serif", 14).into_font();
    for (i, name) in names.iter().enumerate() {
        let Some(r) = report.rules.iter().find(|r| r.timing.rule == *name) else {
            continue;
        };
        let y = row(i);
        let color = Palette99::pick(i);
        let mut bar = Rectangle::new(
            [
                (lo, SegmentValue::Exact(y)),
                (r.timing.gbps, SegmentValue::Exact(y + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(5, 5, 0, 0);
        chart.draw_series([bar])?;
        let label = format!(
            "{:.2} GB/s, {:.0}% of roofline",
            r.timing.gbps, r.pct_roofline
        );
        chart.draw_series(
            [EmptyElement::at((r.timing.gbps, SegmentValue::CenterOf(y)))
                + Text::new(label, (6, -7), font.clone())],
        )?;
    }
    // Up to the legend's row, not through it.
    let vline = |x: f64| vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Exact(n))];
    let black = BLACK.stroke_width(3);
    let grey = BLACK.mix(0.45).stroke_width(2);
    chart
        .draw_series([PathElement::new(vline(roof.gbps()), black)])?
        .label(format!("roofline (best copy) {:.1} GB/s", roof.gbps()))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], black));
    chart
        .draw_series([PathElement::new(vline(roof.copy_kernel_gbps), grey)])?
        .label(format!("copy kernel {:.1} GB/s", roof.copy_kernel_gbps))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
