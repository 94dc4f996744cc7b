// Anchor: SGD with momentum (dampening 0, no Nesterov, no weight decay), the fastest plain
// code for that one configuration: one vec4 per invocation, no tiles, groups, flags or
// features. The same f32 operations in the same order as shaders/sgd.wgsl in that
// configuration: b = buf * momentum + g (the crate's (1 - dampening) * g is 1 * g, exact),
// buf = b, p + (-lr) * b. The crate's first step takes b = g; here the buffer starts at
// zero, so 0 * momentum + g is g, exactly (as long as g is not -0).
// step.a = (lr, momentum, -, -) (the crate's Hyper words 0 and 1, written per step).

struct Step { a: vec4<f32>, b: vec4<f32> }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> momentum_buffer: array<vec4<f32>>;

// Workgroups per row of the 2D grid (the device's per-dimension limit).
override GX: u32 = 65535u;
// Every invocation has a vec4 inside the window (whole workgroups, a 1D grid): no range
// test, so nothing runs under a lane mask (as the crate's `exact` dispatches).
override EXACT: bool = false;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * GX + wg.x) * 256u + lid;
    if !EXACT && i >= arrayLength(&param) {
        return;
    }
    let b = momentum_buffer[i] * step.a.y + grad[i];
    momentum_buffer[i] = b;
    param[i] = param[i] + (-step.a.x) * b;
}
