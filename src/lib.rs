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
//! - [`KernelVariant`]: which WGSL runs for a configuration, by name, with its full text
//!   ([`Optimizer::kernel_variants`]; `gpu-optim-bench --dump-wgsl DIR` writes them).
//!
//! ## One step through the rooms
//! Each module answers one question and may not touch what the next answers:
//!
//! | room | answers |
//! |---|---|
//! | `optimizer.rs` | the public API: a thin facade over the rooms below |
//! | `registry.rs` | what did the caller register? groups, tensors, range rules (pure) |
//! | `plan/settings.rs` | which features are on, and are they valid? |
//! | `plan/layout.rs` | where does each element go? launch groups, windows, tiles (pure) |
//! | `plan/program.rs` | in which order do the passes run? (pure) |
//! | `plan/scalars.rs` | what goes in this step's uniform slot? (pure) |
//! | `plan/aux.rs` | what is each device scratch word? |
//! | `kernel/variant.rs` | which kernel text runs? (pure) |
//! | `kernel/cache.rs` | compiled once per context? |
//! | `device/state.rs` | what does the device hold? state, master copies, 8-bit codes |
//! | `device/bind.rs` | how is a dispatch bound? buffers and bind groups of the plan |
//! | `device/record.rs` | how is a step recorded? replays the program |
//! | `device/scaler.rs` | what has the device skipped? the loss scaler's read-back |
//! | `cpu_model/` | the same step on the host, following the same program |
//! | `rules/` | each rule's hyperparameters, scalars, element math and twin, beside its shader |
//!
//! The first [`Optimizer::step`] (or [`Optimizer::prepare`]) plans once: the registry's
//! tensors go through `plan/layout` into launch groups and windows, `plan/scalars` sizes
//! the uniform slot, `plan/program` lists the passes, `kernel/variant` names each
//! dispatch's kernel and `kernel/cache` compiles it, `device/state` allocates the state
//! and `device/bind` binds every dispatch. Every step after that: `device/scaler` takes in
//! the skip counts read back so far, `plan/scalars` writes this step's scalars into a ring
//! slot, and `device/record` copies them into place and replays the program into one
//! compute pass: no allocation, no bind group, no read-back.
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
pub use context::{list_adapters, BufferRange, Context, ContextOptions, Download, ReadBack};
pub use cpu_model::{CpuModel, HostLayout};
pub use error::{Error, Result};
pub use half::Dtype;
pub use kernel::{
    shader_source, shader_source_q8, shader_source_typed, FixedWords, KernelVariant, Q8Kernel,
};
pub use optimizer::Optimizer;
pub use plan::settings::MAX_STEPS_PER_SUBMISSION;
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
