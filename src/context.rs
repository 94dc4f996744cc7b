//! The device: acquire one, or wrap the caller's; buffers; upload and read-back.
//!
//! Every wgpu call whose API tends to move between releases (poll, map, error scopes)
//! lives in this file, so an upgrade touches one place.
//!
//! ## Read-back
//! There is one read-back, and it is a future: [`ReadBack`] (bytes) wraps `map_async`,
//! whose callback fills a one-shot slot and wakes the task that polled it. Everything that
//! reads the device is built on it:
//!
//! - [`Context::read_back_async`] copies a byte range into a fresh `MAP_READ` staging
//!   buffer, submits the copy and maps the staging buffer; [`Context::map_read_async`]
//!   maps a `MAP_READ` buffer the caller has already filled (no copy, no allocation).
//! - [`Context::download_async`] / [`Context::download_as_async`] read a [`BufferRange`]
//!   as f32 ([`Download`]).
//! - The blocking forms [`Context::download_bytes`], [`Context::download`] and
//!   [`Context::download_as`] start the same future, wait for the device
//!   ([`Context::wait`]) and then take its result (`pollster::block_on`).
//!
//! Every refusal (range, alignment, usage, element type) is decided when the read-back is
//! started, before anything is submitted: the future is then already resolved with the
//! error. Errors that only the device can report resolve the future with
//! [`Error::DeviceLost`] (the device was lost meanwhile) or [`Error::Readback`] (the
//! mapping failed).
//!
//! **Who drives it.** Natively, wgpu runs map callbacks only from a device poll: a
//! read-back future stays pending until someone calls
//! `ctx.device().poll(wgpu::PollType::Poll)` (non-blocking; poll it again later) or
//! [`Context::wait`] (blocks until all submitted work is done), after which the future is
//! ready. The future itself never polls the device, so an executor alone does not finish
//! it (gpu-optim's own calls that submit work also poll once without blocking, which may
//! complete read-backs started earlier). In a browser (WebGPU) the event loop runs the
//! callback, which wakes the task: just `.await` it (and never use the blocking forms
//! there: they would block the very event loop that completes the map).
//!
//! Units: the byte forms take byte offsets and sizes and resolve with bytes; the
//! [`BufferRange`] forms count elements (f32, or the given [`Dtype`]) and resolve with f32.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

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
    /// Waits for all submitted work: the blocking form of [`Context::download_as_async`].
    pub fn download_as(&self, src: &BufferRange, dtype: Dtype) -> Result<Vec<f32>> {
        let bytes = self.finish(self.start_download(src, dtype))?;
        Ok(dtype.from_bytes(&bytes))
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
        self.finish(self.read_bytes_async(buffer, offset, len))
    }

    /// [`Context::read_back_async`] of the 4-byte words covering `len` bytes at byte
    /// `offset` (any alignment), resolving with just those bytes.
    fn read_bytes_async(&self, buffer: &wgpu::Buffer, offset: u64, len: u64) -> ReadBack {
        let Some(end) = offset.checked_add(len) else {
            return ReadBack::refused(Error::BadRange {
                what: "read-back source".into(),
                why: format!("{len} bytes from byte {offset} end past u64::MAX"),
            });
        };
        let (w0, w1) = (offset / 4 * 4, end.div_ceil(4) * 4);
        let keep = (offset - w0) as usize..(end - w0) as usize;
        self.start_read_back(buffer, w0, w1 - w0, keep)
    }

    /// Reads `src` back to the host (waits for all submitted work): the blocking form of
    /// [`Context::download_async`].
    pub fn download(&self, src: &BufferRange) -> Result<Vec<f32>> {
        self.download_as(src, Dtype::F32)
    }

    /// Reads `src` back to the host as f32, asynchronously: `src.len` elements from
    /// element `src.offset` (f32 elements). Refusals ([`Error::BadRange`],
    /// [`Error::MissingUsage`], as [`Context::download`] returns them) are decided here,
    /// before anything is submitted, and the future resolves with them at once.
    ///
    /// The copy is submitted now and sees all work submitted before. Natively the future
    /// completes only once the device is polled (see the module docs: poll with
    /// `ctx.device().poll(wgpu::PollType::Poll)` or [`Context::wait`]); in a browser
    /// `.await` it.
    pub fn download_async(&self, src: &BufferRange) -> Download {
        self.download_as_async(src, Dtype::F32)
    }

    /// [`Context::download_async`] for `src` holding elements of type `dtype` (offsets
    /// and lengths count `dtype` elements), resolving with them as f32 (exact).
    pub fn download_as_async(&self, src: &BufferRange, dtype: Dtype) -> Download {
        Download {
            bytes: self.start_download(src, dtype),
            dtype,
        }
    }

    /// The checks of a download (in the order the blocking forms always made them), then
    /// the read-back of its bytes.
    fn start_download(&self, src: &BufferRange, dtype: Dtype) -> ReadBack {
        let e = dtype.size();
        let checked = src
            .check_dtype("download source", dtype)
            .and_then(|()| src.check_sized("download source", wgpu::BufferUsages::COPY_SRC, e));
        match checked {
            Err(err) => ReadBack::refused(err),
            Ok(()) => self.read_bytes_async(&src.buffer, src.offset * e, src.len as u64 * e),
        }
    }

    /// Reads `size` bytes at `offset` of `buffer` (needs `COPY_SRC`; offset and size
    /// multiples of 4). Waits for all submitted work: the blocking form of
    /// [`Context::read_back_async`], with its errors.
    pub fn download_bytes(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        self.finish(self.read_back_async(buffer, offset, size))
    }

    /// The core read-back: copies `size` bytes at byte `offset` of `buffer` into a fresh
    /// `MAP_READ` staging buffer, submits the copy (it sees all work submitted before),
    /// maps the staging buffer and returns the future of those bytes.
    ///
    /// `buffer` needs `COPY_SRC`; `offset` and `size` are bytes, multiples of 4
    /// (`wgpu::COPY_BUFFER_ALIGNMENT`), and `offset + size` at most the buffer's size.
    /// A request breaking one of those is refused here, before anything is submitted
    /// ([`Error::MissingUsage`], [`Error::BadRange`]; the future resolves with the error at
    /// once); `size == 0` resolves at once with no bytes and checks nothing. wgpu's own
    /// refusals of the copy (e.g. a buffer of another device) are returned the same way
    /// ([`Error::Wgpu`], [`Error::DeviceLost`]).
    ///
    /// Natively the future completes only once the device is polled
    /// (`ctx.device().poll(wgpu::PollType::Poll)` or [`Context::wait`]; see the module
    /// docs); in a browser the event loop completes it. Dropping it before it completes is
    /// fine: the staging buffer is freed and the map callback finds nobody waiting.
    pub fn read_back_async(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> ReadBack {
        self.start_read_back(buffer, offset, size, 0..size as usize)
    }

    /// [`Context::read_back_async`], resolving with the bytes `keep` of the range read.
    fn start_read_back(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
        keep: Range<usize>,
    ) -> ReadBack {
        if size == 0 {
            return ReadBack::ready(Ok(Vec::new()));
        }
        let refused = check_bytes(
            "read-back source",
            buffer,
            wgpu::BufferUsages::COPY_SRC,
            offset,
            size,
            wgpu::COPY_BUFFER_ALIGNMENT,
        );
        if let Err(e) = refused {
            return ReadBack::refused(e);
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
        });
        match staging {
            Err(e) => ReadBack::refused(e),
            Ok(staging) => ReadBack::map(staging, 0..size, keep, false, self.inner.lost.clone()),
        }
    }

    /// Maps `size` bytes at byte `offset` of `buffer`, a `MAP_READ` buffer the caller has
    /// already filled (a copy in a command buffer submitted before this call), and returns
    /// the future of those bytes: [`Context::read_back_async`] without the copy and the
    /// staging buffer, so a buffer reused every step allocates nothing. When the future
    /// resolves (or is dropped) the buffer is unmapped, ready for the next copy.
    ///
    /// `offset` must be a multiple of 8 (`wgpu::MAP_ALIGNMENT`), `size` of 4, and the
    /// range inside the buffer; the buffer must not be mapped or being mapped already (the
    /// future then resolves with [`Error::Readback`]). Refusals as
    /// [`Context::read_back_async`]'s; driven the same way (see the module docs).
    pub fn map_read_async(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> ReadBack {
        if size == 0 {
            return ReadBack::ready(Ok(Vec::new()));
        }
        let refused = check_bytes(
            "mapped read-back source",
            buffer,
            wgpu::BufferUsages::MAP_READ,
            offset,
            size,
            wgpu::MAP_ALIGNMENT,
        )
        .and_then(|()| self.check_lost());
        match refused {
            Err(e) => ReadBack::refused(e),
            Ok(()) => ReadBack::map(
                buffer.clone(),
                offset..offset + size,
                0..size as usize,
                true,
                self.inner.lost.clone(),
            ),
        }
    }

    /// The blocking end of a read-back: waits for the device (unless the read-back was
    /// decided without it), then takes the future's result.
    fn finish(&self, read: ReadBack) -> Result<Vec<u8>> {
        if read.in_flight() {
            self.wait()?;
        }
        pollster::block_on(read)
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

/// Refuses a byte range of `buffer` unless the buffer has `usage`, `offset` is a multiple
/// of `align` and `size` of 4, and the range lies inside the buffer.
fn check_bytes(
    what: &str,
    buffer: &wgpu::Buffer,
    usage: wgpu::BufferUsages,
    offset: u64,
    size: u64,
    align: u64,
) -> Result<()> {
    let has = buffer.usage();
    if !has.contains(usage) {
        return Err(Error::MissingUsage {
            what: what.into(),
            needed: usage,
            has,
        });
    }
    if offset % align != 0 || size % wgpu::COPY_BUFFER_ALIGNMENT != 0 {
        return Err(Error::BadRange {
            what: what.into(),
            why: format!(
                "byte offset {offset} must be a multiple of {align} and size {size} a \
                 multiple of {}",
                wgpu::COPY_BUFFER_ALIGNMENT
            ),
        });
    }
    let end = offset.saturating_add(size);
    if end > buffer.size() {
        return Err(Error::BadRange {
            what: what.into(),
            why: format!(
                "bytes {offset}..{end} end past the buffer's {} bytes",
                buffer.size()
            ),
        });
    }
    Ok(())
}

/// A mutex that a panic elsewhere cannot poison for us: the slot holds plain data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The future of a read-back's bytes: see the module docs ("Read-back") and
/// [`Context::read_back_async`]. `'static` (it owns what it reads) and, natively, `Send`.
///
/// Natively it completes only once the device is polled (`device.poll`, [`Context::wait`]);
/// polling the future never polls the device. Polling it again after it has completed
/// returns an [`Error::Readback`]. Dropping it before it completes is fine: nothing is
/// leaked, and a buffer of [`Context::map_read_async`] is unmapped (its pending map
/// aborted).
#[must_use = "a read-back's bytes arrive only by polling (awaiting) it"]
pub struct ReadBack {
    state: ReadState,
}

enum ReadState {
    /// Decided without the device (a refusal, an empty read), or already taken (`None`).
    Ready(Option<Result<Vec<u8>>>),
    /// `map_async` was called on `buffer` for `range`; its callback fills `slot`.
    Mapping {
        buffer: wgpu::Buffer,
        range: Range<u64>,
        /// The bytes of the mapped range the future resolves with.
        keep: Range<usize>,
        slot: Arc<Mutex<MapSlot>>,
        /// The caller's buffer (map_read_async): unmapped if the future is dropped.
        callers: bool,
        /// The context's device-lost message, to tell a loss from a failed map.
        lost: Arc<Mutex<Option<String>>>,
    },
}

/// The one-shot slot between the map callback and the future.
#[derive(Default)]
struct MapSlot {
    /// The map's outcome, once the callback ran (or was dropped unrun).
    outcome: Option<std::result::Result<(), String>>,
    /// The task to wake when the outcome arrives.
    waker: Option<Waker>,
}

/// Owned by the map callback: fills the slot when called, and also if wgpu drops the
/// callback without calling it, so the future never waits forever.
struct Completer(Option<Arc<Mutex<MapSlot>>>);

impl Completer {
    fn complete(mut self, outcome: std::result::Result<(), String>) {
        if let Some(slot) = self.0.take() {
            fill(&slot, outcome);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            fill(
                &slot,
                Err("wgpu dropped the map callback without calling it".into()),
            );
        }
    }
}

fn fill(slot: &Mutex<MapSlot>, outcome: std::result::Result<(), String>) {
    let waker = {
        let mut s = lock(slot);
        s.outcome = Some(outcome);
        s.waker.take()
    };
    // Woken outside the lock: the task may poll at once.
    if let Some(w) = waker {
        w.wake();
    }
}

impl ReadBack {
    fn ready(result: Result<Vec<u8>>) -> Self {
        Self {
            state: ReadState::Ready(Some(result)),
        }
    }

    fn refused(e: Error) -> Self {
        Self::ready(Err(e))
    }

    /// Calls `map_async` on `buffer` (a `MAP_READ` buffer whose copy has been submitted).
    fn map(
        buffer: wgpu::Buffer,
        range: Range<u64>,
        keep: Range<usize>,
        callers: bool,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Self {
        let slot = Arc::new(Mutex::new(MapSlot::default()));
        let completer = Completer(Some(slot.clone()));
        buffer.map_async(wgpu::MapMode::Read, range.clone(), move |r| {
            completer.complete(r.map_err(|e| e.to_string()))
        });
        Self {
            state: ReadState::Mapping {
                buffer,
                range,
                keep,
                slot,
                callers,
                lost,
            },
        }
    }

    /// True while the result depends on the device (a map was started and not taken).
    fn in_flight(&self) -> bool {
        matches!(self.state, ReadState::Mapping { .. })
    }
}

impl Future for ReadBack {
    type Output = Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outcome = match &mut this.state {
            ReadState::Ready(r) => {
                return Poll::Ready(r.take().unwrap_or_else(|| {
                    Err(Error::Readback(
                        "read-back polled after it completed".into(),
                    ))
                }))
            }
            ReadState::Mapping { slot, .. } => {
                let mut s = lock(slot);
                match s.outcome.take() {
                    Some(outcome) => outcome,
                    None => {
                        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            s.waker = Some(cx.waker().clone());
                        }
                        return Poll::Pending;
                    }
                }
            }
        };
        let ReadState::Mapping {
            buffer,
            range,
            keep,
            lost,
            ..
        } = std::mem::replace(&mut this.state, ReadState::Ready(None))
        else {
            return Poll::Ready(Err(Error::Readback("read-back state lost".into())));
        };
        if let Err(why) = outcome {
            // A map fails when the device is lost (or the buffer destroyed): say which.
            return Poll::Ready(Err(match lock(&lost).clone() {
                Some(reason) => Error::DeviceLost(reason),
                None => Error::Readback(why),
            }));
        }
        let bytes = buffer
            .get_mapped_range(range)
            .map_err(|e| Error::Readback(e.to_string()))
            .map(|view| view[keep].to_vec());
        buffer.unmap();
        Poll::Ready(bytes)
    }
}

impl Drop for ReadBack {
    fn drop(&mut self) {
        // A buffer of ours (staging) is simply freed. The caller's is unmapped, or its
        // pending map aborted, so it can take the next copy; not on a lost device, where
        // wgpu would report the unmap itself as an error.
        if let ReadState::Mapping {
            buffer,
            slot,
            callers: true,
            lost,
            ..
        } = &self.state
        {
            let mapped_or_pending = !matches!(lock(slot).outcome, Some(Err(_)));
            if mapped_or_pending && lock(lost).is_none() {
                buffer.unmap();
            }
        }
    }
}

impl std::fmt::Debug for ReadBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            ReadState::Ready(Some(Ok(_))) => "ready",
            ReadState::Ready(Some(Err(_))) => "refused",
            ReadState::Ready(None) => "taken",
            ReadState::Mapping { slot, .. } => match lock(slot).outcome {
                None => "mapping",
                Some(_) => "mapped",
            },
        };
        f.debug_struct("ReadBack").field("state", &state).finish()
    }
}

/// The future of a download's elements as f32 ([`Context::download_async`],
/// [`Context::download_as_async`]): a [`ReadBack`] of the range's bytes, decoded. Driven,
/// dropped and failing as [`ReadBack`].
#[must_use = "a download's values arrive only by polling (awaiting) it"]
#[derive(Debug)]
pub struct Download {
    bytes: ReadBack,
    dtype: Dtype,
}

impl Future for Download {
    type Output = Result<Vec<f32>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.bytes)
            .poll(cx)
            .map(|r| r.map(|b| this.dtype.from_bytes(&b)))
    }
}
