// Anchor: Adam at torch's defaults (no AMSGrad, no weight decay, no maximize), the fastest
// plain code for that one configuration: one vec4 per invocation, no tiles, groups, flags
// or features. The same f32 operations in the same order as shaders/adam.wgsl (with
// common.wgsl's moments and lerp) in that configuration:
//   m = m + (1 - beta1) * (g - m)          (torch's lerp; its weight 0.1 < 0.5)
//   v = v * beta2 + (1 - beta2) * g * g
//   p = p + (-lr * sqrt(bc2) / bc1) * m / (sqrt(v) + eps * sqrt(bc2))
// step.a = (-lr*sqrt(bc2)/bc1, eps*sqrt(bc2), -, -), step.b = (1 - beta1, beta2, 1 - beta2, -): the
// crate's Hyper words 0-7 for this step, computed on the host in f64, written per step.

struct Step { a: vec4<f32>, b: vec4<f32> }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;

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
    let g = grad[i];
    let m0 = exp_avg[i];
    let m = m0 + step.b.x * (g - m0);
    let v = exp_avg_sq[i] * step.b.y + step.b.z * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = param[i] + step.a.x * m / (sqrt(v) + step.a.y);
}
