// The bandwidth ceiling for the bench: dst = src, one vec4 per invocation, the same grid
// shape as the rule kernels (2D past the per-dimension workgroup limit).
override WG: u32 = 256u;

struct Grid { grid_x: u32, n: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> grid: Grid;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * grid.grid_x + wg.x) * WG + lid;
    if i < grid.n {
        dst[i] = src[i];
    }
}
