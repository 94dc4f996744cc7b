//! What the trajectories example's pictures claim, checked on a short run of the same
//! simulation (examples/trajectories/sim.rs): the gradient kernel and the optimizer step
//! in one submission, thousands of 2-D points as one flat buffer.

mod common;

#[path = "../examples/trajectories/sim.rs"]
mod sim;

use sim::{rules, run, Surface};

fn rule(surface: Surface, name: &str) -> gpu_optim::AnyRule {
    rules(surface)
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

/// Near the saddle plain SGD barely leaves the ridge; Adam and RMSprop escape.
#[test]
fn on_the_saddle_sgd_stalls_where_adaptive_rules_escape() {
    let ctx = common::ctx();
    let start = [(1.0f32, 1e-3f32)];
    let y = |name| {
        let r = run(
            &ctx,
            Surface::Saddle,
            &rule(Surface::Saddle, name),
            &start,
            150,
            0,
        )
        .unwrap();
        r.last[0].1.abs()
    };
    let (sgd, adam, rms) = (y("SGD"), y("Adam"), y("RMSprop"));
    assert!(sgd < 0.05, "SGD moved to |y| = {sgd}");
    assert!(
        adam > 1.0 && rms > 1.0,
        "Adam |y| = {adam}, RMSprop |y| = {rms}"
    );
}

/// In Rosenbrock's valley, with the same lr (2e-4) and steps, momentum gets much further
/// than plain SGD.
#[test]
fn in_the_valley_momentum_beats_sgd() {
    let ctx = common::ctx();
    let start = [(-1.2f32, 1.0f32)];
    let f = |name| {
        let r = run(
            &ctx,
            Surface::Rosenbrock,
            &rule(Surface::Rosenbrock, name),
            &start,
            1000,
            0,
        )
        .unwrap();
        let (x, y) = r.last[0];
        Surface::Rosenbrock.f(x as f64, y as f64)
    };
    let (sgd, momentum) = (f("SGD"), f("Momentum"));
    assert!(
        momentum < 0.5 * sgd,
        "momentum f = {momentum}, SGD f = {sgd}"
    );
}

/// Every rule makes progress on the valley (the loss decreases from its start).
#[test]
fn every_rule_decreases_the_valley_loss() {
    let ctx = common::ctx();
    let start = [(-1.2f32, 1.0f32)];
    let f0 = Surface::Rosenbrock.f(-1.2, 1.0);
    for (name, r) in rules(Surface::Rosenbrock) {
        let out = run(&ctx, Surface::Rosenbrock, &r, &start, 300, 0).unwrap();
        let (x, y) = out.last[0];
        let f = Surface::Rosenbrock.f(x as f64, y as f64);
        assert!(f < f0, "{name}: f {f} from {f0}");
    }
}

#[path = "../examples/train_mlp/net.rs"]
mod net;

/// The MLP example, short: every rule lowers the training loss from the same start (the
/// forward, loss and backward kernels are the example's; the step is the crate's, in the
/// same submission).
#[test]
fn every_rule_trains_the_mlp() {
    let ctx = common::ctx();
    for rule in gpu_optim::AnyRule::catalog() {
        let rule = net::lr_for(rule);
        let log = net::train(&ctx, &rule, 60, 60, |_, _, _| {}).unwrap();
        let (first, last) = (log[0].1, log.last().unwrap().1);
        assert!(
            last.is_finite() && last < first,
            "{rule:?}: loss {first} -> {last}"
        );
    }
}
