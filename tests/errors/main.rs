//! Every bad input is refused with its typed `gpu_optim::Error` variant, never a panic, and
//! a refused call leaves the optimizer as it was (same step count, still steps).
//!
//! One test binary, one module per room: `hyperparameters`, `cpu` (the CPU reference),
//! `registry` (registering tensors and groups), `context` (buffers, adapters, device loss),
//! `verify` (the verifier). The helpers they share are here.

#[path = "../common/mod.rs"]
mod common;

mod context;
mod cpu;
mod hyperparameters;
mod registry;
mod verify;

use gpu_optim::*;

/// A buffer of `len` f32 with exactly the given usages (not through `Context`, which
/// always adds STORAGE | COPY_SRC | COPY_DST).
fn raw_buffer(ctx: &Context, len: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test raw buffer"),
        size: (len * 4) as u64,
        usage,
        mapped_at_creation: false,
    })
}

/// Steps once more and checks the count went up by exactly one: the optimizer survived.
fn still_steps<R: UpdateRule>(ctx: &Context, opt: &mut Optimizer<R>, before: u64) {
    assert_eq!(
        opt.step_count(),
        before,
        "a refused call changed the step count"
    );
    opt.step()
        .unwrap_or_else(|e| panic!("valid step after a refusal failed: {e}"));
    ctx.wait().unwrap();
    assert_eq!(opt.step_count(), before + 1);
}

/// An optimizer over one 8-element tensor whose params and grads are non-zero.
fn one_tensor<R: UpdateRule>(ctx: &Context, rule: R) -> (Arena, Optimizer<R>) {
    let arena = Arena::new(ctx, &[8]).unwrap();
    ctx.upload(&arena.param(0), &[0.5; 8]).unwrap();
    ctx.upload(&arena.grad(0), &[0.25; 8]).unwrap();
    let mut opt = Optimizer::new(ctx, rule).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    (arena, opt)
}
