//! Shared by the GPU tests: the device. A missing adapter fails the test with the
//! error's install hint; it never skips (a suite that skips proves nothing).
#![allow(dead_code)]

use gpu_optim::{Arena, Context, ContextOptions, Optimizer, TensorId, UpdateRule};

pub fn ctx() -> Context {
    Context::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

pub fn ctx_with(opts: &ContextOptions) -> Context {
    Context::with_options(opts).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// Every f32 param and state value of `arena`'s tensors, as bits: equal snapshots mean a
/// bit-identical optimizer.
pub fn snapshot<R: UpdateRule>(ctx: &Context, arena: &Arena, opt: &mut Optimizer<R>) -> Vec<u32> {
    let mut out = Vec::new();
    for i in 0..arena.len() {
        out.extend(ctx.download(&arena.param(i)).unwrap());
        for k in 0..opt.group(opt.default_group()).unwrap().state_slots().len() {
            out.extend(opt.read_state(TensorId(i), k).unwrap());
        }
    }
    out.iter().map(|x| x.to_bits()).collect()
}
