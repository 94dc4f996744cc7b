//! Shared by the GPU tests: the device. A missing adapter fails the test with the
//! error's install hint; it never skips (a suite that skips proves nothing).
#![allow(dead_code)]

use gpu_optim::verify::Rng;
use gpu_optim::{Arena, Context, ContextOptions, CpuOptimizer, Optimizer, TensorId, UpdateRule};

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

/// bitsandbytes' values (tests/bnb_reference.txt, written by tests/bnb_reference.py): its
/// dynamic maps, and for its 1024-element input vectors its blockwise absmax and codes.
pub fn bnb(name: &str) -> Vec<String> {
    let text = include_str!("../bnb_reference.txt");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from bnb_reference.txt"));
    line[name.len() + 1..]
        .split(',')
        .map(str::to_string)
        .collect()
}

/// [`bnb`]'s hex f32 bits as f32.
pub fn bnb_floats(name: &str) -> Vec<f32> {
    bnb(name)
        .iter()
        .map(|h| f32::from_bits(u32::from_str_radix(h, 16).unwrap()))
        .collect()
}

/// Random params and grads (scale 1) uploaded into each of `arena`'s tensors: what was
/// uploaded, per tensor.
pub fn upload_random(
    ctx: &Context,
    arena: &Arena,
    rng: &mut Rng,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (mut params, mut grads) = (Vec::new(), Vec::new());
    for i in 0..arena.len() {
        let n = arena.param(i).len;
        params.push(rng.vec(n, 1.0));
        grads.push(rng.vec(n, 1.0));
        ctx.upload(&arena.param(i), &params[i]).unwrap();
        ctx.upload(&arena.grad(i), &grads[i]).unwrap();
    }
    (params, grads)
}

/// Each of `arena`'s tensors equals, bit for bit, the CPU twin of `rule` after `steps`
/// steps from `params` with the constant `grads`.
pub fn assert_twin<R: UpdateRule>(
    ctx: &Context,
    arena: &Arena,
    rule: &R,
    steps: usize,
    mut params: Vec<Vec<f32>>,
    grads: &[Vec<f32>],
) {
    for (i, p) in params.iter_mut().enumerate() {
        let mut twin = CpuOptimizer::new(rule.clone(), p.len()).unwrap();
        for _ in 0..steps {
            twin.step(p, &grads[i]).unwrap();
        }
        let got = ctx.download(&arena.param(i)).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(p), "tensor {i} ({} elements)", p.len());
    }
}
