// Anchor: plain SGD at torch's defaults (lr only), the fastest plain code for that one
// configuration: one vec4 per invocation, no tiles, groups, flags or features. The same f32
// operations in the same order as shaders/sgd.wgsl with momentum 0, weight_decay 0, no
// maximize: p + (-lr) * g. The bench times it against the crate (anchors.rs).
// step.a.x = lr (the crate's Hyper word 0, written per step).

struct Step { a: vec4<f32>, b: vec4<f32> }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;

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
    param[i] = param[i] + (-step.a.x) * grad[i];
}
