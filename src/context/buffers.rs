//! Buffers and ranges: creating them, checking a range against its buffer, uploading.
//! Reading back is `readback.rs`.

use super::Context;
use crate::error::{Error, Result};
use crate::half::Dtype;

impl Context {
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
        dst.check_dtype(&"upload destination", Dtype::F32)?;
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
        dst.check_dtype(&"upload destination", dtype)?;
        if dtype == Dtype::F32 {
            return self.upload(dst, data);
        }
        dst.check_sized(
            &"upload destination",
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
    /// `what` names the range in an error (formatted only then: registration checks every
    /// tensor).
    pub(crate) fn check_dtype(&self, what: &dyn std::fmt::Display, dtype: Dtype) -> Result<()> {
        match self.elem {
            Some(d) if d != dtype => Err(Error::BadRange {
                what: what.to_string(),
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
        self.check_sized(&what, usage, 4)
    }

    /// [`BufferRange::check`] for elements of `esize` bytes.
    pub(crate) fn check_sized(
        &self,
        what: &dyn std::fmt::Display,
        usage: wgpu::BufferUsages,
        esize: u64,
    ) -> Result<()> {
        let has = self.buffer.usage();
        if !has.contains(usage) {
            return Err(Error::MissingUsage {
                what: what.to_string(),
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
                what: what.to_string(),
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
pub(super) fn check_bytes(
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
