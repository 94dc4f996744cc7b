//! The pictures of the optimizer story, computed on the GPU: paths of SGD, Momentum,
//! Nesterov, Adagrad, Adadelta, RMSprop and Adam from one start on a saddle (x² − y²) and
//! in Rosenbrock's long narrow valley, drawn over the surface; and the fraction of 4096
//! starts near the saddle that each rule escapes from. Each point is 2 parameters of one
//! flat buffer; the surface's gradient is a WGSL kernel recorded in the same command
//! encoder as the optimizer step.
//!
//! `cargo run --release --example trajectories [-- OUT_DIR]` writes saddle.png and
//! valley.png (default: docs/).

mod sim;

use gpu_optim::verify::Rng;
use gpu_optim::Context;
use plotters::prelude::*;
use sim::{rules, run, Surface};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "docs".into());
    std::fs::create_dir_all(&out)?;
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter_info().name);

    // Saddle: one start just off the ridge, and 4096 starts near the saddle point.
    let mut rng = Rng(3);
    let mut starts = vec![(1.0f32, 1e-3f32)];
    starts.extend((0..4095).map(|_| (rng.uniform(), rng.uniform() * 1e-2)));
    let steps = 150;
    let mut saddle = Vec::new();
    println!("\nsaddle x² − y², {steps} steps from (1, 0.001); escaped = |y| > 1 of 4096 starts");
    for (name, rule) in rules(Surface::Saddle) {
        let r = run(&ctx, Surface::Saddle, &rule, &starts, steps, 1)?;
        let escaped = r.last.iter().filter(|p| p.1.abs() > 1.0).count();
        let (x, y) = r.paths[0].last().copied().unwrap();
        println!(
            "  {name:<9} end ({x:>7.3}, {y:>7.3})  escaped {:>5.1}%",
            100.0 * escaped as f64 / starts.len() as f64
        );
        saddle.push((name, r.paths.into_iter().next().unwrap()));
    }
    draw(
        &format!("{out}/saddle.png"),
        Surface::Saddle,
        &saddle,
        (-1.2, 1.2),
        (-1.2, 1.2),
    )?;

    // Rosenbrock from the classic start (−1.2, 1).
    let steps = 3000;
    let mut valley = Vec::new();
    println!("\nRosenbrock, {steps} steps from (−1.2, 1); minimum at (1, 1)");
    for (name, rule) in rules(Surface::Rosenbrock) {
        let r = run(&ctx, Surface::Rosenbrock, &rule, &[(-1.2, 1.0)], steps, 1)?;
        let (x, y) = *r.paths[0].last().unwrap();
        println!(
            "  {name:<9} end ({x:>7.3}, {y:>7.3})  f = {:.3e}",
            Surface::Rosenbrock.f(x as f64, y as f64)
        );
        valley.push((name, r.paths.into_iter().next().unwrap()));
    }
    draw(
        &format!("{out}/valley.png"),
        Surface::Rosenbrock,
        &valley,
        (-2.0, 2.0),
        (-1.0, 3.0),
    )?;
    println!("\nwrote {out}/saddle.png, {out}/valley.png");
    Ok(())
}

type Path = Vec<(f32, f32)>;

fn draw(
    file: &str,
    surface: Surface,
    paths: &[(&str, Path)],
    xr: (f64, f64),
    yr: (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    gpu_optim::bench::register_plot_font();
    let root = BitMapBackend::new(file, (760, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = match surface {
        Surface::Saddle => "saddle  f = x² − y²",
        Surface::Rosenbrock => "Rosenbrock's valley  f = (1 − x)² + 100 (y − x²)²",
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
    chart.configure_mesh().disable_mesh().draw()?;
    // The surface as shaded cells (log scale for the valley), light = low.
    let cells = 60;
    let (dx, dy) = ((xr.1 - xr.0) / cells as f64, (yr.1 - yr.0) / cells as f64);
    let mut values = Vec::new();
    for i in 0..cells {
        for j in 0..cells {
            let (x, y) = (xr.0 + (i as f64 + 0.5) * dx, yr.0 + (j as f64 + 0.5) * dy);
            let f = surface.f(x, y);
            let v = match surface {
                Surface::Saddle => f,
                Surface::Rosenbrock => (1.0 + f).ln(),
            };
            values.push((i, j, v));
        }
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v.2), b.max(v.2))
        });
    chart.draw_series(values.iter().map(|&(i, j, v)| {
        let t = (v - lo) / (hi - lo);
        let c = (255.0 - 150.0 * t) as u8;
        let (x, y) = (xr.0 + i as f64 * dx, yr.0 + j as f64 * dy);
        Rectangle::new([(x, y), (x + dx, y + dy)], RGBColor(c, c, 255).filled())
    }))?;
    for (k, (name, path)) in paths.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let pts: Vec<(f64, f64)> = path
            .iter()
            .map(|&(x, y)| (x as f64, y as f64))
            .filter(|&(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| (x.clamp(xr.0, xr.1), y.clamp(yr.0, yr.1)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
