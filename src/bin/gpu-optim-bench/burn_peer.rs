//! Peer measurement (feature `peer-burn`): Burn's Adam (`burn::optim::AdamConfig`, burn 0.22)
//! on Burn's wgpu backend, timed per optimizer step for one flat parameter tensor of `n` f32
//! elements. Built only with `--features peer-burn`, so the normal build never compiles Burn.
//!
//! What is timed: `ModuleOptimizer::step(lr, module, grads)` followed by `Device::sync()`,
//! wall clock, per step; the median over `reps` steps is returned. This is what a Burn user
//! pays per optimizer step for that tensor, so it includes everything Burn does per step
//! besides the arithmetic:
//!
//! * Burn's Adam is written with ordinary tensor ops (`mul_scalar`, `add`, `square`, `sqrt`,
//!   `div`, ...). Each step produces *new* tensors for the parameter, both moments and the
//!   temporaries; they come from CubeCL's memory pool (no fresh `wgpu::Buffer` per step once it
//!   is warm), but it is not an in-place update like a hand-written fused kernel.
//! * With the `fusion` feature (on in Burn's default feature set, and on here) the element-wise
//!   chain is fused into a few JIT kernels; without it each op is its own kernel and its own
//!   pass over memory. `autotune` is on as well, as in Burn's defaults.
//! * Host-side work per step: module mapping, the per-parameter state `HashMap`, type-erased
//!   state boxing, fusion graph matching, and the bias-correction scalars computed on the CPU.
//! * The `sync()` after every step adds one queue round trip per step, as it does for any
//!   per-step wall-clock timing. These are host wall-clock figures, not GPU timestamps, so
//!   compare them with gpu-optim's `--wall-clock` figures, not its timestamp ones.
//! * No backward pass: the gradient is one fixed random tensor, handed over in a fresh
//!   `GradientsParams` each step (built outside the timed region).
//! * Burn picks its own adapter and opens its own `wgpu::Device` (see below); it does not
//!   follow `--adapter`. Both devices are alive in the process at once.
//!
//! Adapter: `Device::default()` with only the `wgpu` backend compiled in is
//! `Device::wgpu(DeviceKind::DefaultDevice)`: CubeCL asks wgpu for an adapter, preferring an
//! API with a non-CPU adapter and a high-performance (discrete) GPU; `CUBECL_WGPU_DEFAULT_DEVICE`
//! overrides it. On a GPU machine that is the default discrete GPU (the same one `wgpu`'s
//! `HighPerformance` request picks); on a machine without a GPU it is lavapipe (Mesa's
//! software Vulkan, `llvmpipe`). [`burn_adapter_name`] reports what was picked. Burn goes
//! through WGSL here (the `vulkan` feature, which would switch to SPIR-V, is not enabled).
//!
//! Adam hyper-parameters are set to torch's defaults: betas (0.9, 0.999), eps 1e-8, no weight
//! decay, no AMSGrad, no gradient clipping. Burn's `AdamConfig` default eps is **1e-5** (torch:
//! 1e-8); its betas already match torch. Burn folds the bias corrections differently —
//! `m * (sqrt(1-b2^t) / (1-b1^t)) / (sqrt(v) + eps * sqrt(1-b2^t))` — which is algebraically the
//! same as torch's `(m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.

use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

/// Learning rate used for the timed steps (its value does not affect the cost).
const LR: f64 = 1e-3;

/// Untimed steps before timing. Two, not one: Burn's first Adam step takes a different branch
/// (no optimizer state yet: the moments are created from the gradient), so the second step is
/// the first to run — and JIT-compile/fuse/autotune — the kernels that every later step uses.
const WARMUP_STEPS: usize = 2;

/// The smallest possible Burn module: one flat trainable tensor.
#[derive(Module, Debug)]
struct FlatParams {
    w: Param<Tensor<1>>,
}

/// The adapter Burn's default device resolves to (e.g. "llvmpipe (LLVM ...)" for lavapipe),
/// or `None` if the backend does not report one. Opens the device.
pub fn burn_adapter_name() -> Option<String> {
    Device::default().identity().map(|id| id.name)
}

/// Median wall-clock seconds per Burn Adam step (step + device sync) for one parameter
/// tensor of `n` f32 elements, over `reps` timed steps after [`WARMUP_STEPS`] untimed ones.
///
/// Errors (instead of panicking) when Burn cannot open a device or a step fails: Burn reports
/// most backend failures by panicking, so the whole run is wrapped in `catch_unwind`.
pub fn time_burn_adam(n: usize, reps: usize) -> Result<f64, String> {
    if n == 0 || reps == 0 {
        return Err("time_burn_adam: n and reps must be > 0".into());
    }
    match std::panic::catch_unwind(|| run(n, reps)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("burn panicked: {msg}"))
        }
    }
}

fn first_value(t: &Tensor<1>) -> Result<f32, String> {
    let data = t.clone().narrow(0, 0, 1).into_data();
    let v = data
        .try_to_vec::<f32>()
        .map_err(|e| format!("read-back: {e:?}"))?;
    v.first().copied().ok_or_else(|| "read-back: empty".into())
}

fn run(n: usize, reps: usize) -> Result<f64, String> {
    // Default device: see the module docs (lavapipe without a GPU, default discrete GPU with one).
    // The module lives on the autodiff view of that device, as in training (Burn's
    // `ModuleOptimizer` requires autodiff parameters: it panics "Requires autodiff tensor"
    // otherwise). It steps the inner (non-autodiff) tensors and re-wraps the result, and the
    // gradients are plain tensors on the inner device, as `backward()` would hand them over.
    // No backward pass is run: the gradient is a fixed random tensor.
    let device = Device::default();
    let ad_device = device.clone().autodiff();
    let sync = |d: &Device| d.sync().map_err(|e| format!("sync: {e:?}"));

    let mut module = FlatParams {
        w: Param::from_tensor(Tensor::<1>::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            &ad_device,
        )),
    };
    let grad = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
    let id = module.w.id;

    let eps = 1e-8;
    let mut optim = AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(eps as f32)
        .init();
    sync(&device)?;

    let make_grads = || {
        let mut g = GradientsParams::new();
        g.register(id, grad.clone());
        g
    };

    // Plausibility check on the first (untimed) step: with no state yet, m_hat = g and
    // v_hat = g^2, so p <- p - lr * g / (|g| + eps): the element moves by ~lr against the sign
    // of its gradient. Read one element back before and after.
    let p0 = first_value(&module.w.val())?;
    let g0 = first_value(&grad)?;
    module = optim.step(LR, module, make_grads());
    sync(&device)?;
    let p1 = first_value(&module.w.val())?;
    let expected = p0 - (LR as f32) * g0 / (g0.abs() + eps as f32);
    if p1 == p0 || (p1 - expected).abs() > 1e-5 * (1.0 + expected.abs()) {
        return Err(format!(
            "implausible Adam step: w[0] {p0} -> {p1}, expected {expected} (g[0] = {g0})"
        ));
    }
    for _ in 1..WARMUP_STEPS {
        module = optim.step(LR, module, make_grads());
        sync(&device)?;
    }

    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let grads = make_grads();
        let t0 = Instant::now();
        module = optim.step(LR, module, grads);
        sync(&device)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    // Every timed step really ran: replay element 0 through the same number of Adam steps on
    // the CPU (f64, torch's formula) and compare with what the device holds now.
    let steps = WARMUP_STEPS + reps;
    let (mut p, mut m, mut v) = (p0 as f64, 0.0f64, 0.0f64);
    let g = g0 as f64;
    for t in 1..=steps as i32 {
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        let m_hat = m / (1.0 - 0.9f64.powi(t));
        let v_hat = v / (1.0 - 0.999f64.powi(t));
        p -= LR * m_hat / (v_hat.sqrt() + eps);
    }
    let p_dev = first_value(&module.w.val())? as f64;
    if (p_dev - p).abs() > 1e-4 * (1.0 + p.abs()) {
        return Err(format!(
            "Burn Adam after {steps} steps: w[0] = {p_dev}, CPU reference {p} (start {p0})"
        ));
    }

    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}
