//! Shared by the GPU tests: the device. A missing adapter fails the test with the
//! error's install hint; it never skips (a suite that skips proves nothing).
#![allow(dead_code)]

use gpu_optim::{Context, ContextOptions};

pub fn ctx() -> Context {
    Context::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

pub fn ctx_with(opts: &ContextOptions) -> Context {
    Context::with_options(opts).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}
