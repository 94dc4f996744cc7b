//! The device: acquire one, or wrap the caller's; buffers; upload and read-back.
//!
//! Every wgpu call whose API tends to move between releases (poll, map, error scopes)
//! lives in this module (this file, `buffers.rs` for buffers and ranges, `readback.rs`
//! for reading the device back, a future at its core), so an upgrade touches one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::kernel::cache::PipelineCache;

mod buffers;
mod readback;

pub use buffers::BufferRange;
pub use readback::{Download, ReadBack};

/// How to pick an adapter and which limits to ask for. `Default` honours the same
/// environment variables as wgpu's own helpers: `WGPU_BACKEND` (e.g. `vulkan,metal`),
/// `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter's name) and
/// `WGPU_POWER_PREF` (`low` / `high`).
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Substring of the adapter's name to require; `None` reads `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// Backends to consider; `None` reads `WGPU_BACKEND`, else all.
    pub backends: Option<wgpu::Backends>,
    /// Prefer a low-power adapter instead of the fastest (`WGPU_POWER_PREF=low`).
    pub low_power: bool,
    /// Lower the device's storage binding size limit (bytes): exercises chunking on small data.
    pub max_storage_buffer_binding_size: Option<u64>,
    /// Lower the device's workgroups-per-dimension limit: exercises 2D dispatch.
    pub max_compute_workgroups_per_dimension: Option<u32>,
    /// Invocations per workgroup of the rule kernels (default 256, clamped to the
    /// device's limits). Each invocation updates one vec4. A size given here must be a
    /// power of two within the device's `max_compute_invocations_per_workgroup` and
    /// `max_compute_workgroup_size_x`, else [`Context::with_options`] refuses it.
    pub workgroup_size: Option<u32>,
}

/// A device and queue with what gpu-optim needs beside them (pipeline cache, loss flag).
/// Cheap to clone; clones share the device.
///
/// Buffers must come from this context's device. One of another device of the same wgpu
/// instance is refused when registered ([`crate::Error::WrongDevice`]); one from another
/// `wgpu::Instance` cannot be told apart by wgpu (its ids may name an unrelated buffer of
/// this device, which a step would then write). If your model owns a device, wrap that
/// device with [`Context::from_device`] instead of creating a second context.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    lost: Arc<Mutex<Option<String>>>,
    pub(crate) pipelines: Mutex<PipelineCache>,
    pub(crate) counters: Mutex<HashMap<&'static str, u64>>,
    pub(crate) workgroup_size: Option<u32>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .finish()
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn env_backends(opts: &ContextOptions) -> wgpu::Backends {
    opts.backends
        .or_else(wgpu::Backends::from_env)
        .unwrap_or(wgpu::Backends::all())
}

/// Every adapter wgpu can see on the chosen backends (`WGPU_BACKEND` if `None`).
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::AdapterInfo> {
    let opts = ContextOptions {
        backends,
        ..Default::default()
    };
    let inst = instance(env_backends(&opts));
    pollster::block_on(inst.enumerate_adapters(env_backends(&opts)))
        .iter()
        .map(|a| a.get_info())
        .collect()
}

/// Higher is preferred: real GPUs over software, native APIs over GL.
fn adapter_score(info: &wgpu::AdapterInfo, low_power: bool) -> u32 {
    use wgpu::DeviceType::*;
    let kind = match (info.device_type, low_power) {
        (DiscreteGpu, false) | (IntegratedGpu, true) => 40,
        (IntegratedGpu, false) | (DiscreteGpu, true) => 30,
        (VirtualGpu, _) => 20,
        (Cpu, _) => 10,
        (Other, _) => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Gl => 0,
        _ => 1,
    };
    kind + api
}

impl Context {
    /// Picks the best adapter (see [`ContextOptions`]'s environment variables) and opens a
    /// device with all of that adapter's limits and its timestamp features.
    pub fn new() -> Result<Self> {
        Self::with_options(&ContextOptions::default())
    }

    /// As [`Context::new`], with explicit choices.
    pub fn with_options(opts: &ContextOptions) -> Result<Self> {
        let backends = env_backends(opts);
        let inst = instance(backends);
        let name = opts
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .map(|n| n.to_lowercase());
        let low_power = opts.low_power
            || wgpu::PowerPreference::from_env() == Some(wgpu::PowerPreference::LowPower);
        let adapter = pollster::block_on(inst.enumerate_adapters(backends))
            .into_iter()
            .filter(|a| {
                let n = a.get_info().name.to_lowercase();
                name.as_ref().is_none_or(|want| n.contains(want))
            })
            .max_by_key(|a| adapter_score(&a.get_info(), low_power))
            .ok_or_else(|| Error::NoAdapter {
                detail: match &name {
                    Some(n) => format!(" matching \"{n}\" on backends {backends:?}"),
                    None => format!(" on backends {backends:?}"),
                },
            })?;

        let mut limits = adapter.limits();
        if let Some(b) = opts.max_storage_buffer_binding_size {
            limits.max_storage_buffer_binding_size = b.min(limits.max_storage_buffer_binding_size);
        }
        if let Some(w) = opts.max_compute_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                w.min(limits.max_compute_workgroups_per_dimension);
        }
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("gpu-optim"),
                required_features: features,
                required_limits: limits,
                ..Default::default()
            }))?;

        // Our own device: errors outside our error scopes are reported, not panicked on,
        // and a loss is remembered so the next call returns Error::DeviceLost.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("gpu-optim: uncaptured wgpu error: {e}")
        }));
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *flag.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        let mut ctx = Self::build(device, queue, adapter.get_info(), lost);
        if let Some(wg) = opts.workgroup_size {
            if !wg.is_power_of_two() {
                return Err(Error::InvalidHyperparameter {
                    rule: "context",
                    name: "workgroup_size",
                    value: wg as f64,
                    why: "a power of two",
                });
            }
            // A size the device cannot run is refused, not silently clamped.
            let l = ctx.limits();
            let most = l
                .max_compute_invocations_per_workgroup
                .min(l.max_compute_workgroup_size_x);
            if wg > most {
                return Err(Error::InvalidState(format!(
                    "workgroup_size {wg}: this device runs at most {most} invocations per \
                     workgroup (max_compute_invocations_per_workgroup {}, \
                     max_compute_workgroup_size_x {})",
                    l.max_compute_invocations_per_workgroup, l.max_compute_workgroup_size_x
                )));
            }
            Arc::get_mut(&mut ctx.inner).expect("fresh").workgroup_size = Some(wg);
        }
        Ok(ctx)
    }

    /// Wraps a device the caller already owns. gpu-optim installs no callbacks on it; wgpu
    /// errors from its own calls are still captured in error scopes and returned as
    /// [`Error`]. `info` is only used for reporting.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: Option<wgpu::AdapterInfo>,
    ) -> Self {
        let info = info.unwrap_or_else(|| device.adapter_info());
        Self::build(device, queue, info, Arc::new(Mutex::new(None)))
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                lost,
                pipelines: Mutex::new(PipelineCache::default()),
                counters: Mutex::new(HashMap::new()),
                workgroup_size: None,
            }),
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter's name, backend, driver and type.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The device's limits.
    pub fn limits(&self) -> wgpu::Limits {
        self.inner.device.limits()
    }

    /// True on a CPU (software) adapter such as lavapipe: its figures are not GPU figures.
    pub fn is_software(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// How many buffers, bind groups and pipelines gpu-optim has created on this context,
    /// by kind. Lets a training loop (and the tests) check that steps allocate nothing.
    pub fn creation_counts(&self) -> HashMap<&'static str, u64> {
        self.inner.counters.lock().unwrap().clone()
    }

    pub(crate) fn count(&self, what: &'static str) {
        *self.inner.counters.lock().unwrap().entry(what).or_default() += 1;
    }

    pub(crate) fn check_lost(&self) -> Result<()> {
        match self.inner.lost.lock().unwrap().as_ref() {
            Some(why) => Err(Error::DeviceLost(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns what
    /// they catch into an [`Error`].
    pub(crate) fn scoped<T>(&self, during: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_lost()?;
        let d = &self.inner.device;
        let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = d.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(internal.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(match e {
                wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory { during },
                other => Error::Wgpu {
                    during,
                    message: other.to_string(),
                },
            });
        }
        // A loss (driver reset, destroy) is only reported from a poll; a non-blocking one
        // here makes the very call that hit it fail instead of later ones silently doing
        // nothing.
        if let Err(e) = d.poll(wgpu::PollType::Poll) {
            return Err(Error::DeviceLost(e.to_string()));
        }
        self.check_lost()?;
        Ok(out)
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| match e {
                wgpu::PollError::Timeout => Error::DeviceLost("poll timed out".into()),
                other => Error::DeviceLost(other.to_string()),
            })?;
        self.check_lost()
    }
}
