//! Train a small MLP whose forward, loss and backward are WGSL kernels owned by this
//! example, with gpu-optim updating the parameters in place in the same submission as the
//! backward pass. Data: two interleaved spirals (generated, deterministic), 2 → 32 → 32 → 2
//! with tanh, softmax cross-entropy, full batch. Loss and accuracy are read back every
//! `--every` steps only.
//!
//! `cargo run --release --example train_mlp [-- RULE|all [STEPS]]` prints loss and
//! accuracy as it trains and, for `all`, writes docs/mlp_loss.png comparing every rule
//! from the same initialization.

mod net;

use gpu_optim::{AnyRule, Context, UpdateRule};
use net::{lr_for, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let steps: usize = std::env::args().nth(2).map_or(Ok(2000), |s| s.parse())?;
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter_info().name);
    let rules: Vec<AnyRule> = AnyRule::catalog()
        .into_iter()
        .filter(|r| which == "all" || r.name() == which)
        .collect();
    if rules.is_empty() {
        let names: Vec<_> = AnyRule::catalog().iter().map(|r| r.name()).collect();
        return Err(format!("unknown rule {which}; known: {}", names.join(", ")).into());
    }
    let mut curves = Vec::new();
    for rule in rules {
        let rule = lr_for(rule);
        let bar = indicatif::ProgressBar::new(steps as u64).with_message(rule.name());
        let verbose = which != "all";
        let log = train(&ctx, &rule, steps, 100, |s, loss, acc| {
            bar.set_position(s as u64);
            if verbose {
                bar.suspend(|| {
                    println!("step {s:>6}  loss {loss:.4}  accuracy {:.1}%", 100.0 * acc)
                });
            }
        })?;
        bar.finish_and_clear();
        let last = log.last().unwrap();
        println!(
            "{:<26} lr {:<8} loss {:.4} -> {:.4}   train accuracy {:.1}%",
            rule.name(),
            rule.lr(),
            log[0].1,
            last.1,
            100.0 * last.2
        );
        curves.push((rule.name(), log));
    }
    if curves.len() > 1 {
        plot("docs/mlp_loss.png", &curves)?;
        println!("wrote docs/mlp_loss.png");
    }
    Ok(())
}

/// (step, loss, accuracy) rows of one rule's run.
type Log = Vec<(usize, f32, f32)>;

fn plot(file: &str, curves: &[(String, Log)]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    std::fs::create_dir_all("docs")?;
    gpu_optim::bench::register_plot_font();
    let root = BitMapBackend::new(file, (860, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let steps = curves[0].1.last().unwrap().0 as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "two spirals, 2-32-32-2 tanh MLP: training loss per rule",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..steps, (1e-3f64..1.0f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy (log)")
        .draw()?;
    for (k, (name, log)) in curves.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let pts = log
            .iter()
            .map(|&(s, l, _)| (s as f64, (l as f64).clamp(1e-3, 1.0)));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
