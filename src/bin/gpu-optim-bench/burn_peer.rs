//! Peer measurement (feature `peer-burn`): Burn's Adam (`burn::optim::AdamConfig`, burn 0.22)
//! and SGD with momentum (`SgdConfig`) on Burn's wgpu backend, one optimizer step at a time
//! ([`BurnPeer::step_timed`]) for one flat parameter tensor of `n` f32 elements, so the bench
//! can time them the same way as its own, each side in its own process (peers.rs). Built only with
//! `--features peer-burn`, so the normal build never compiles Burn.
//!
//! What is timed: `ModuleOptimizer::step(lr, module, grads)` followed by `Device::sync()`,
//! wall clock, one step. This is what a Burn user
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
//!   per-step wall-clock timing; gpu-optim's side is timed the same way (`step()` then a
//!   wait, wall clock), in another process, alternately.
//! * No backward pass: the gradient is one fixed random tensor, handed over in a fresh
//!   `GradientsParams` each step (built outside the timed region).
//! * Burn picks its own adapter and opens its own `wgpu::Device` (see below); it does not
//!   follow `--adapter`. The process that times Burn opens no gpu-optim device, and the
//!   one that times gpu-optim runs no Burn: in one process, alternating, gpu-optim's step
//!   read 1.1-1.3x slower at 2^24 than in a process of its own, where it was as fast as
//!   Burn's (lavapipe, 2-core Intel Xeon, 2026-11-30); the cause was not found.
//!
//! Adapter: `Device::default()` with only the `wgpu` backend compiled in is
//! `Device::wgpu(DeviceKind::DefaultDevice)`: CubeCL asks wgpu for an adapter, preferring an
//! API with a non-CPU adapter and a high-performance (discrete) GPU; `CUBECL_WGPU_DEFAULT_DEVICE`
//! overrides it. On a GPU machine that is the default discrete GPU (the same one `wgpu`'s
//! `HighPerformance` request picks); on a machine without a GPU it is lavapipe (Mesa's
//! software Vulkan, `llvmpipe`). [`burn_adapter_name`] reports what was picked. Burn goes
//! through WGSL here (the `vulkan` feature, which would switch to SPIR-V, is not enabled).
//!
//! Hyper-parameters are torch's defaults: Adam's betas (0.9, 0.999), eps 1e-8, no weight
//! decay, no AMSGrad, no gradient clipping; SGD's momentum 0.9 with dampening 0 (Burn's
//! `MomentumConfig` default dampening is 0.1; torch's is 0). Burn's `AdamConfig` default eps is **1e-5** (torch:
//! 1e-8); its betas already match torch. Burn folds the bias corrections differently —
//! `m * (sqrt(1-b2^t) / (1-b1^t)) / (sqrt(v) + eps * sqrt(1-b2^t))` — which is algebraically the
//! same as torch's `(m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};

/// Learning rate used for the timed steps (its value does not affect the cost).
const LR: f64 = 1e-3;

/// Untimed steps before timing. Two, not one: Burn's first step takes a different branch
/// (no optimizer state yet: the moments are created from the gradient), so the second step is
/// the first to run — and JIT-compile/fuse/autotune — the kernels that every later step uses.
const WARMUP_STEPS: usize = 2;

const EPS: f64 = 1e-8;

/// The smallest possible Burn module: one flat trainable tensor.
#[derive(Module, Debug)]
struct FlatParams {
    w: Param<Tensor<1>>,
}

/// The rules Burn is timed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRule {
    /// torch.optim.Adam's defaults.
    Adam,
    /// torch.optim.SGD(momentum=0.9).
    SgdMomentum,
}

impl PeerRule {
    /// The peer of our rule named `name` ("adam", "sgd-momentum"), if Burn is timed with it.
    pub fn of(name: &str) -> Option<PeerRule> {
        match name {
            "adam" => Some(PeerRule::Adam),
            "sgd-momentum" => Some(PeerRule::SgdMomentum),
            _ => None,
        }
    }

    /// The peer row's name ("burn-<ours>-wgpu").
    pub fn name(self) -> &'static str {
        match self {
            PeerRule::Adam => "burn-adam-wgpu",
            PeerRule::SgdMomentum => "burn-sgd-momentum-wgpu",
        }
    }

    /// Element 0 after `steps` steps from `p0` with gradient `g` each step (f64, torch's
    /// formulas): the check that every timed step ran.
    fn replay(self, p0: f64, g: f64, steps: usize) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0f64, 0.0f64);
        for t in 1..=steps as i32 {
            match self {
                PeerRule::Adam => {
                    m = 0.9 * m + 0.1 * g;
                    v = 0.999 * v + 0.001 * g * g;
                    let m_hat = m / (1.0 - 0.9f64.powi(t));
                    let v_hat = v / (1.0 - 0.999f64.powi(t));
                    p -= LR * m_hat / (v_hat.sqrt() + EPS);
                }
                PeerRule::SgdMomentum => {
                    m = if t == 1 { g } else { 0.9 * m + g };
                    p -= LR * m;
                }
            }
        }
        p
    }
}

/// Burn's optimizer over one flat tensor of `n` f32 on its default device, warmed up.
pub struct BurnPeer {
    rule: PeerRule,
    device: Device,
    module: Option<FlatParams>,
    optim: ModuleOptimizer,
    grad: Tensor<1>,
    /// Element 0 of the params and the gradient at the start, and the steps taken.
    p0: f32,
    g0: f32,
    steps: usize,
}

/// Runs `f`, turning a panic (how Burn reports most backend failures) into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
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

impl BurnPeer {
    /// Burn's `rule` over `n` random params with a fixed random gradient, after
    /// [`WARMUP_STEPS`] untimed steps. Errors (instead of panicking) when Burn cannot open
    /// a device or a step fails.
    pub fn new(rule: PeerRule, n: usize) -> Result<BurnPeer, String> {
        if n == 0 {
            return Err("BurnPeer: n must be > 0".into());
        }
        guarded(|| {
            // Default device: see the module docs. The module lives on the autodiff view
            // of that device, as in training (Burn's `ModuleOptimizer` requires autodiff
            // parameters); the gradients are plain tensors on the inner device, as
            // `backward()` would hand them over. No backward pass is run.
            let device = Device::default();
            let ad_device = device.clone().autodiff();
            let module = FlatParams {
                w: Param::from_tensor(Tensor::<1>::random(
                    [n],
                    Distribution::Normal(0.0, 1.0),
                    &ad_device,
                )),
            };
            let grad = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
            let optim = match rule {
                PeerRule::Adam => AdamConfig::new()
                    .with_beta_1(0.9)
                    .with_beta_2(0.999)
                    .with_epsilon(EPS as f32)
                    .init(),
                PeerRule::SgdMomentum => SgdConfig::new()
                    .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                    .init(),
            };
            device.sync().map_err(|e| format!("sync: {e:?}"))?;
            let p0 = first_value(&module.w.val())?;
            let g0 = first_value(&grad)?;
            let mut peer = BurnPeer {
                rule,
                device,
                module: Some(module),
                optim,
                grad,
                p0,
                g0,
                steps: 0,
            };
            for _ in 0..WARMUP_STEPS {
                peer.step()?;
            }
            peer.check()?;
            Ok(peer)
        })
    }

    fn step(&mut self) -> Result<(), String> {
        let mut grads = GradientsParams::new();
        let module = self.module.take().ok_or("a failed step left no module")?;
        grads.register(module.w.id, self.grad.clone());
        self.module = Some(self.optim.step(LR, module, grads));
        self.device.sync().map_err(|e| format!("sync: {e:?}"))?;
        self.steps += 1;
        Ok(())
    }

    /// One step and the device sync after it, in wall-clock seconds.
    pub fn step_timed(&mut self) -> Result<f64, String> {
        guarded(|| {
            let t0 = Instant::now();
            self.step()?;
            Ok(t0.elapsed().as_secs_f64())
        })
    }

    /// Element 0 of the params agrees with the steps taken (replayed on the CPU in f64).
    pub fn check(&self) -> Result<(), String> {
        let module = self.module.as_ref().ok_or("no module")?;
        let p_dev = first_value(&module.w.val())? as f64;
        let p = self.rule.replay(self.p0 as f64, self.g0 as f64, self.steps);
        if (p_dev - p).abs() > 1e-4 * (1.0 + p.abs()) || self.steps > 0 && p_dev == self.p0 as f64 {
            return Err(format!(
                "Burn {:?} after {} steps: w[0] = {p_dev}, CPU reference {p} (start {})",
                self.rule, self.steps, self.p0
            ));
        }
        Ok(())
    }
}

/// The adapter Burn's default device resolves to (e.g. "llvmpipe (LLVM ...)" for lavapipe),
/// or `None` if the backend does not report one. Opens the device.
pub fn burn_adapter_name() -> Option<String> {
    Device::default().identity().map(|id| id.name)
}

fn first_value(t: &Tensor<1>) -> Result<f32, String> {
    let data = t.clone().narrow(0, 0, 1).into_data();
    let v = data
        .try_to_vec::<f32>()
        .map_err(|e| format!("read-back: {e:?}"))?;
    v.first().copied().ok_or_else(|| "read-back: empty".into())
}
