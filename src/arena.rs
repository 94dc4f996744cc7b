//! Tensors allocated together for the caller: one params buffer and one grads buffer with
//! the same layout. Allocation only; the optimizer registers an arena's ranges like any.

use crate::context::{BufferRange, Context};
use crate::error::Result;
use crate::half::Dtype;
use crate::plan::layout;

/// Tensors allocated together: one params buffer and one grads buffer with the same layout,
/// each tensor at a 256-byte aligned offset so the caller's kernels can bind it directly.
/// An optimizer steps all of an arena's tensors in one dispatch (per 128 MiB).
#[derive(Debug)]
pub struct Arena {
    /// All parameters.
    pub params: wgpu::Buffer,
    /// All gradients, laid out as `params`.
    pub grads: wgpu::Buffer,
    ranges: Vec<(u64, usize)>,
    dtypes: (Dtype, Dtype),
}

/// Alignment of arena tensors, in elements: 256 bytes, the largest
/// `min_storage_buffer_offset_alignment` WebGPU allows.
pub const ARENA_ALIGN: u64 = layout::ARENA_ALIGN;

impl Arena {
    /// Zero-filled f32 params and grads for tensors of the given lengths.
    pub fn new(ctx: &Context, lens: &[usize]) -> Result<Self> {
        Self::with_dtypes(ctx, lens, Dtype::F32, Dtype::F32)
    }

    /// Zero-filled params and grads of the given element types (mixed precision: e.g. bf16
    /// params and grads, updated through the optimizer's f32 master copy). Offsets and
    /// lengths of [`Arena::param`] / [`Arena::grad`] count elements of these types.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, Dtype, Optimizer, TensorId};
    /// let ctx = Context::new()?;
    /// let arena = Arena::with_dtypes(&ctx, &[1000], Dtype::Bf16, Dtype::Bf16)?;
    /// ctx.upload_as(&arena.param(0), Dtype::Bf16, &vec![1.0; 1000])?; // the model's weights
    /// ctx.upload_as(&arena.grad(0), Dtype::Bf16, &vec![1.0; 1000])?; // its gradients
    /// let mut opt = Optimizer::new(&ctx, Adam { lr: 1e-3, ..Adam::default() })?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// opt.step()?;
    /// // The f32 master moved by lr; the bf16 params hold it rounded to nearest.
    /// assert_eq!(opt.read_params(TensorId(0))?[0], 0.999);
    /// assert_eq!(ctx.download_as(&arena.param(0), Dtype::Bf16)?[0], 1.0);
    /// # Ok(()) }
    /// ```
    pub fn with_dtypes(ctx: &Context, lens: &[usize], param: Dtype, grad: Dtype) -> Result<Self> {
        // 256 bytes in the smaller element type (and a multiple of 4 elements).
        let align = 256 / param.size().min(grad.size());
        let mut ranges = Vec::with_capacity(lens.len());
        let mut end = 0u64;
        for &len in lens {
            ranges.push((end, len));
            end = (end + len as u64).div_ceil(align) * align;
        }
        // `end` is a multiple of 64: no overflow, no rounding.
        let words = |d: Dtype| (end / 4 * d.size()) as usize;
        Ok(Self {
            params: ctx.create_zeroed("gpu-optim arena params", words(param))?,
            grads: ctx.create_zeroed("gpu-optim arena grads", words(grad))?,
            ranges,
            dtypes: (param, grad),
        })
    }

    /// Element types of the params and the grads.
    pub fn dtypes(&self) -> (Dtype, Dtype) {
        self.dtypes
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the arena holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Where tensor `i`'s parameters live. Panics if `i >= len()`, as slice indexing does.
    pub fn param(&self, i: usize) -> BufferRange {
        let (o, n) = self.ranges[i];
        BufferRange::new(&self.params, o, n).of(self.dtypes.0)
    }

    /// Where tensor `i`'s gradient lives. Panics if `i >= len()`, as slice indexing does.
    pub fn grad(&self, i: usize) -> BufferRange {
        let (o, n) = self.ranges[i];
        BufferRange::new(&self.grads, o, n).of(self.dtypes.1)
    }
}
