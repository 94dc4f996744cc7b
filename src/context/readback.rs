//! Reading the device back.
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

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use super::buffers::check_bytes;
use super::{BufferRange, Context};
use crate::error::{Error, Result};
use crate::half::Dtype;

impl Context {
    /// Reads `src`, whose elements are of type `dtype`, back to the host as f32 (exact).
    /// Waits for all submitted work: the blocking form of [`Context::download_as_async`].
    pub fn download_as(&self, src: &BufferRange, dtype: Dtype) -> Result<Vec<f32>> {
        let bytes = self.finish(self.start_download(src, dtype))?;
        Ok(dtype.from_bytes(&bytes))
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
    /// completes only once the device is polled (see [`ReadBack`]: poll with
    /// `ctx.device().poll(wgpu::PollType::Poll)` or [`Context::wait`]), and any executor
    /// then takes its value; in a browser `.await` it.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{BufferRange, Context};
    /// let ctx = Context::new()?;
    /// let buf = ctx.create_buffer("x", &[1.0, 2.0, 3.0])?;
    /// let read = ctx.download_async(&BufferRange::whole(&buf, 3));
    /// ctx.wait()?; // natively, the device runs the map's callback
    /// let v = pollster::block_on(read)?; // any executor; in a browser, `.await`
    /// assert_eq!(v, [1.0, 2.0, 3.0]);
    /// # Ok(()) }
    /// ```
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
            .check_dtype(&"download source", dtype)
            .and_then(|()| src.check_sized(&"download source", wgpu::BufferUsages::COPY_SRC, e));
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
    /// [`Context::read_back_async`]'s; driven the same way (see [`ReadBack`]).
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
}

/// A mutex that a panic elsewhere cannot poison for us: the slot holds plain data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The future of a read-back's bytes ([`Context::read_back_async`],
/// [`Context::map_read_async`]). `'static` (it owns what it reads) and, natively, `Send`.
/// It is the one read-back: the blocking forms ([`Context::download`] and the others)
/// start one, wait for the device and take its value.
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
