//! The device: acquire one, or wrap the caller's; buffers; upload and read-back.
//!
//! Every wgpu call whose API tends to move between releases (poll, map, error scopes)
//! lives in this file, so an upgrade touches one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::kernel::cache::PipelineCache;

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
    /// device's limits; a power of two). Each invocation updates one vec4.
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

    /// A storage buffer holding `data`, usable as params, grads or state, and copyable both
    /// ways. Its size is rounded up to 16 bytes so the vec4 kernels can cover the tail.
    pub fn create_buffer(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        let buffer = self.create_zeroed(label, data.len())?;
        self.upload(&BufferRange::whole(&buffer, data.len()), data)?;
        Ok(buffer)
    }

    /// A zero-filled buffer of `len` f32 (see [`Context::create_buffer`]).
    pub fn create_zeroed(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let size = (len.max(1) as u64)
            .checked_mul(4)
            .map_or(u64::MAX, |b| b.div_ceil(16) * 16);
        let limit = self.limits().max_buffer_size;
        if size > limit {
            return Err(Error::TooLarge {
                what: format!("buffer {label:?}"),
                size,
                limit,
            });
        }
        self.count("buffer");
        self.scoped("create_buffer", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// Writes `data` into `dst` (takes effect before the next submission's work).
    pub fn upload(&self, dst: &BufferRange, data: &[f32]) -> Result<()> {
        dst.check_dtype("upload destination", Dtype::F32)?;
        dst.check("upload destination", wgpu::BufferUsages::COPY_DST)?;
        if data.len() != dst.len {
            return Err(Error::LengthMismatch {
                what: "upload data".into(),
                got: data.len(),
                expected: dst.len,
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        self.scoped("upload", || {
            self.inner.queue.write_buffer(
                &dst.buffer,
                dst.byte_offset(),
                bytemuck::cast_slice(data),
            )
        })
    }

    /// Writes `data` into `dst`, whose elements are of type `dtype` (16-bit: rounded to
    /// nearest even, see [`crate::half`]). A 16-bit range that starts or ends inside a
    /// 4-byte word keeps its neighbours' halves of that word, which are read back first
    /// (waiting for submitted work); an aligned range is written as [`Context::upload`].
    pub fn upload_as(&self, dst: &BufferRange, dtype: Dtype, data: &[f32]) -> Result<()> {
        dst.check_dtype("upload destination", dtype)?;
        if dtype == Dtype::F32 {
            return self.upload(dst, data);
        }
        dst.check_sized(
            "upload destination",
            wgpu::BufferUsages::COPY_DST,
            dtype.size(),
        )?;
        if data.len() != dst.len {
            return Err(Error::LengthMismatch {
                what: "upload data".into(),
                got: data.len(),
                expected: dst.len,
            });
        }
        self.write_bytes(
            &dst.buffer,
            dst.offset * dtype.size(),
            &dtype.to_bytes(data),
        )
    }

    /// Reads `src`, whose elements are of type `dtype`, back to the host as f32 (exact).
    pub fn download_as(&self, src: &BufferRange, dtype: Dtype) -> Result<Vec<f32>> {
        src.check_dtype("download source", dtype)?;
        if dtype == Dtype::F32 {
            return self.download(src);
        }
        src.check_sized(
            "download source",
            wgpu::BufferUsages::COPY_SRC,
            dtype.size(),
        )?;
        let e = dtype.size();
        let b = self.read_bytes(&src.buffer, src.offset * e, src.len as u64 * e)?;
        Ok(dtype.from_bytes(&b))
    }

    /// Writes `data` at byte `offset` of `buffer` (any alignment): the bytes of the 4-byte
    /// words it shares with its neighbours are read back and kept.
    pub(crate) fn write_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset + data.len() as u64;
        let (w0, w1) = (offset / 4 * 4, end.div_ceil(4) * 4);
        let mut words = vec![0u8; (w1 - w0) as usize];
        if offset != w0 {
            words[..4].copy_from_slice(&self.download_bytes(buffer, w0, 4)?);
        }
        if end != w1 {
            let k = words.len() - 4;
            words[k..].copy_from_slice(&self.download_bytes(buffer, w1 - 4, 4)?);
        }
        words[(offset - w0) as usize..(end - w0) as usize].copy_from_slice(data);
        self.scoped("upload", || {
            self.inner.queue.write_buffer(buffer, w0, &words)
        })
    }

    /// Reads `len` bytes at byte `offset` of `buffer` (any alignment; waits).
    pub(crate) fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let (w0, w1) = (offset / 4 * 4, (offset + len).div_ceil(4) * 4);
        let b = self.download_bytes(buffer, w0, w1 - w0)?;
        Ok(b[(offset - w0) as usize..(offset - w0 + len) as usize].to_vec())
    }

    /// Reads `src` back to the host (waits for all submitted work).
    pub fn download(&self, src: &BufferRange) -> Result<Vec<f32>> {
        src.check_dtype("download source", Dtype::F32)?;
        src.check("download source", wgpu::BufferUsages::COPY_SRC)?;
        let bytes = self.download_bytes(&src.buffer, src.byte_offset(), (src.len * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads `size` bytes at `offset` of `buffer` (needs `COPY_SRC`; offset and size
    /// multiples of 4). Waits for all submitted work.
    pub fn download_bytes(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let d = &self.inner.device;
        let staging = self.scoped("download", || {
            let staging = d.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gpu-optim readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = d.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
            self.inner.queue.submit([enc.finish()]);
            staging
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::Readback(e.to_string()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Readback(e.to_string()))?;
        let out = view.to_vec();
        drop(view);
        staging.unmap();
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

/// A range of elements in a wgpu buffer: where a tensor lives. The caller's own
/// buffers work as they are; offsets and lengths count elements of the type the range is
/// used with (f32 for [`Context::upload`] and [`crate::Optimizer::add_tensor`], the given
/// [`Dtype`] for the `_as` forms). The buffer must belong to the optimizer's device: see
/// [`Context`] on buffers of other devices and instances.
#[derive(Clone, Debug)]
pub struct BufferRange {
    /// The buffer.
    pub buffer: wgpu::Buffer,
    /// First element (an element index, not bytes).
    pub offset: u64,
    /// Number of elements.
    pub len: usize,
    /// The element type the range was made for, where known (an [`crate::Arena`]'s):
    /// using it as another type is refused instead of reading or writing the wrong bytes.
    elem: Option<Dtype>,
}

impl BufferRange {
    /// `len` elements from `offset` (elements).
    pub fn new(buffer: &wgpu::Buffer, offset: u64, len: usize) -> Self {
        Self {
            buffer: buffer.clone(),
            offset,
            len,
            elem: None,
        }
    }

    /// The same range, known to hold elements of `dtype`.
    pub(crate) fn of(mut self, dtype: Dtype) -> Self {
        self.elem = Some(dtype);
        self
    }

    /// The element type the range was made for, if known (an [`crate::Arena`]'s ranges).
    pub fn dtype(&self) -> Option<Dtype> {
        self.elem
    }

    /// Refuses using a range made for one element type as another.
    pub(crate) fn check_dtype(&self, what: &str, dtype: Dtype) -> Result<()> {
        match self.elem {
            Some(d) if d != dtype => Err(Error::BadRange {
                what: what.into(),
                why: format!(
                    "the range counts {d:?} elements (its Arena's type), used as {dtype:?}: \
                     use the _as form with Dtype::{d:?} (or add_arena)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The first `len` elements of `buffer`.
    pub fn whole(buffer: &wgpu::Buffer, len: usize) -> Self {
        Self::new(buffer, 0, len)
    }

    pub(crate) fn byte_offset(&self) -> u64 {
        self.offset * 4
    }

    /// Fails unless the range lies inside the buffer and the buffer has `usage`.
    pub(crate) fn check(&self, what: &str, usage: wgpu::BufferUsages) -> Result<()> {
        self.check_sized(what, usage, 4)
    }

    /// [`BufferRange::check`] for elements of `esize` bytes.
    pub(crate) fn check_sized(
        &self,
        what: &str,
        usage: wgpu::BufferUsages,
        esize: u64,
    ) -> Result<()> {
        let has = self.buffer.usage();
        if !has.contains(usage) {
            return Err(Error::MissingUsage {
                what: what.into(),
                needed: usage,
                has,
            });
        }
        let end = self
            .offset
            .checked_add(self.len as u64)
            .and_then(|e| e.checked_mul(esize))
            .unwrap_or(u64::MAX);
        if end > self.buffer.size() {
            return Err(Error::BadRange {
                what: what.into(),
                why: format!(
                    "elements {}..{} end at byte {end}, past the buffer's {} bytes",
                    self.offset,
                    self.offset + self.len as u64,
                    self.buffer.size()
                ),
            });
        }
        Ok(())
    }
}
