// The reductions of a step's GradNorm and Measure passes (src/plan/program.rs): per-tile
// partial sums (written by `grad_sumsq` in common.wgsl) to per-tensor sums, then to the global
// gradient norm and the clip coefficient. Fixed summation order: deterministic.
//
// aux (binding 1), shared with common.wgsl (the map: src/plan/aux.rs):
//   [0] max_norm, [1] clip_value (host), [2] total norm, [3] clip coefficient,
//   [4] non-finite count; the loss scaler (src/scaler.rs): [5] scale, [6] growth
//   tracker, [7] found_inf this step, [8] steps executed, [9] steps skipped (counts in
//   f32: exact to 2^24), [10] scaler on, [11] growth_factor, [12] backoff_factor,
//   [13] growth_interval (host); [14] (1/scale)·clip coefficient, the update's gradient
//   factor; [15] the update's step word: -1 if this step is skipped, else the skip
//   count; then 2 f32 per tensor from SUMS_AT, then 2 f32 per tile from `partials_at`.

const SUMS_AT: u32 = 16u;
const WG: u32 = 256u;

struct Ranges {
    n_tensors: u32, partials_at: u32, grid_x: u32, pad: u32,
    // Per tensor: its first tile among the step's tiles, and how many.
    tiles: array<vec2<u32>>,
}

@group(0) @binding(0) var<storage, read> ranges: Ranges;
@group(0) @binding(1) var<storage, read_write> aux: array<f32>;

var<workgroup> acc: array<vec2<f32>, WG>;

fn tree(lid: u32) -> vec2<f32> {
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            acc[lid] = acc[lid] + acc[lid + stride];
        }
        workgroupBarrier();
    }
    return acc[0];
}

// One workgroup per tensor.
@compute @workgroup_size(WG)
fn per_tensor(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.y * ranges.grid_x + wg.x;
    if i >= ranges.n_tensors {
        return;
    }
    let r = ranges.tiles[i];
    var s = vec2<f32>(0.0);
    for (var k = lid; k < r.y; k = k + WG) {
        let at = ranges.partials_at + 2u * (r.x + k);
        s = s + vec2<f32>(aux[at], aux[at + 1u]);
    }
    acc[lid] = s;
    let total = tree(lid);
    if lid == 0u {
        aux[SUMS_AT + 2u * i] = total.x;
        aux[SUMS_AT + 2u * i + 1u] = total.y;
    }
}

// One workgroup: the global norm (torch's clip_grad_norm_: the 2-norm over all grads, NaN
// or inf if one is) and the coefficient min(1, max_norm / (norm + 1e-6)); 1 when max_norm
// is 0 (norm only). As torch's clamp, a NaN coefficient stays NaN (found from its bits:
// WGSL's min may drop it), and an infinite norm gives 0.
@compute @workgroup_size(WG)
fn total(@builtin(local_invocation_index) lid: u32) {
    var s = vec2<f32>(0.0);
    for (var i = lid; i < ranges.n_tensors; i = i + WG) {
        s = s + vec2<f32>(aux[SUMS_AT + 2u * i], aux[SUMS_AT + 2u * i + 1u]);
    }
    acc[lid] = s;
    let t = tree(lid);
    if lid == 0u {
        let norm = sqrt(t.x);
        aux[2] = norm;
        aux[4] = t.y;
        let max_norm = aux[0];
        var scale = 1.0;
        if max_norm > 0.0 {
            let c = max_norm / (norm + 1e-6);
            scale = select(min(1.0, c), c, (bitcast<u32>(c) & 0x7fffffffu) > 0x7f800000u);
        }
        aux[3] = scale;
        var inv = 1.0;
        if aux[10] != 0.0 {
            inv = 1.0 / aux[5];
            let found = t.y > 0.0;
            aux[7] = select(0.0, 1.0, found);
            aux[8] = aux[8] + 1.0;
            if found {
                aux[9] = aux[9] + 1.0;
            }
            aux[15] = select(aux[9], -1.0, found);
        }
        aux[14] = inv * scale;
    }
}

// After the update: GradScaler.update (torch's _amp_update_scale_) on the device.
@compute @workgroup_size(1)
fn scaler_update() {
    let s = aux[5];
    if aux[7] != 0.0 {
        aux[5] = s * aux[12];
        aux[6] = 0.0;
        return;
    }
    let n = aux[6] + 1.0;
    if n >= aux[13] {
        let grown = s * aux[11];
        if (bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u {
            aux[5] = grown;
        }
        aux[6] = 0.0;
    } else {
        aux[6] = n;
    }
}
