//! # gpu-optim
//!
//! torch.optim's update rules as WGSL compute kernels that run in place on large flat f32
//! buffers, on any GPU wgpu drives (Vulkan, Metal, DX12, GL; lavapipe in CI), with a CPU
//! reference for every rule and a verifier that compares the two.
//!
//! - [`rules`]: SGD (momentum, Nesterov), Adagrad, Adadelta, RMSprop, Adam/AdamW/AMSGrad,
//!   Adamax, NAdam, RAdam, Lion, LAMB — torch.optim's names, defaults and order of
//!   operations; each with its CPU twin.
//! - [`Optimizer`]: registers tensors (your `wgpu::Buffer`s or an [`Arena`]) in param
//!   groups and steps them all in a few dispatches, many steps per submission if asked.
//! - [`CpuModel`] ([`cpu_model`]): the whole optimizer step on the host — groups,
//!   schedules, clipping, loss scaling, 16-bit params, 8-bit state — to check a whole run.
//! - [`verify()`]: GPU vs CPU reference, max abs/rel/ulp error per buffer.
//!
//! ```
//! use gpu_optim::{Adam, Arena, Context, Optimizer};
//! # fn main() -> gpu_optim::Result<()> {
//! let ctx = Context::new()?;                        // best adapter; WGPU_* env honoured
//! let arena = Arena::new(&ctx, &[1000, 10])?;        // two tensors: weights, bias
//! ctx.upload(&arena.param(0), &vec![0.5; 1000])?;
//! let mut opt = Optimizer::new(&ctx, Adam { lr: 1e-2, ..Adam::default() })?;
//! opt.add_arena(&arena, opt.default_group())?;
//! ctx.upload(&arena.grad(0), &vec![1.0; 1000])?;     // normally your backward pass
//! opt.step()?;
//! let w = ctx.download(&arena.param(0))?;
//! assert!((w[0] - 0.49).abs() < 1e-6);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod arena;
#[cfg(feature = "bench")]
pub mod bench;
mod checkpoint;
mod clip;
mod context;
pub mod cpu_model;
mod device;
mod error;
pub mod half;
mod kernel;
mod optimizer;
mod plan;
pub mod quant;
mod registry;
pub mod rules;
pub mod scaler;
mod schedule;
pub mod verify;
pub mod workloads;

pub use arena::{Arena, ARENA_ALIGN};
pub use checkpoint::LoadMode;
pub use clip::{cpu_grad_clip, GradClip, GradStats};
pub use context::{list_adapters, BufferRange, Context, ContextOptions};
pub use cpu_model::{CpuModel, HostLayout};
pub use error::{Error, Result};
pub use half::Dtype;
pub use kernel::{shader_source, shader_source_q8, shader_source_typed, KernelVariant, Q8Kernel};
pub use optimizer::Optimizer;
pub use quant::StateFormat;
pub use registry::{GroupId, TensorId};
pub use rules::{
    cpu_step, Adadelta, Adagrad, Adam, Adamax, AnyRule, CpuOptimizer, Hyper, Kernel, Lamb, Lion,
    NAdam, RAdam, RmsProp, Sgd, UpdateRule,
};
pub use scaler::{CpuGradScaler, GradScaler};
pub use schedule::LrSchedule;
pub use verify::{verify, VerifyPlan, VerifyReport};

/// The README's usage example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
