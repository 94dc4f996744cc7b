// Shared by every rule: bindings, tiles, helpers and clipping's gradient-norm pre-pass.
// The entry point that loads an element, calls the rule's `update` and stores the result
// is the state format's: shaders/state_f32.wgsl (f32 slots) or shaders/state_q8.wgsl.
//
// The host prepends one of two preludes (src/kernel.rs):
//   vec4:   alias V = vec4<f32>; alias U = vec4<u32>; alias M = vec4<bool>; const W = 4u;
//   scalar: alias V = f32;       alias U = u32;       alias M = bool;       const W = 1u;
// each with live_lanes(e0, end) (which lanes hold elements before `end`) and lane_sum,
// and const GROUPS (param groups, rounded up to a power of two).
// and appends the rule's shaders/<rule>.wgsl, which defines
//   fn update(h: Hyper, p: V, g: V, s: ptr<function, State>) -> V
// in the same f32 operations, in the same order, as its CPU twin in src/rules/<rule>.rs.

// Per-step scalars of one param group (src/rules/mod.rs: Hyper). Flags are 0.0 / 1.0.
struct Hyper { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }

// The state slots of one element. Unused slots are never loaded or stored (SLOTS).
struct State { s0: V, s1: V, s2: V }

// One workgroup's work: vectors [first, first + WG) of the dispatch, of which the elements
// before `end` (an element index) belong to param group `group` and tensor `tensor`.
struct Tile { group: u32, first: u32, end: u32, tensor: u32 }

// One dispatch's geometry (a uniform: every invocation reads the same words, which
// software devices load far more cheaply than storage). Each binding starts at an aligned
// offset at or before the dispatch's first element; the shifts (in vectors) say by how
// much. `tile_base` numbers this dispatch's first tile among all of a step's tiles; the
// reduction passes write tile t's partial sums at aux[partials_at + 2 (tile_base + t)].
// A dense dispatch covers one piece of one tensor: its tiles follow from group, end and
// tensor here, and the tile table is not read.
// 8-bit state (shaders/state_q8.wgsl): this dispatch's first block among its tensor's,
// and the tensor's blocks per slot.
struct Launch {
    p_shift: u32, g_shift: u32, s_shift: u32, grid_x: u32,
    n_tiles: u32, tile_base: u32, partials_at: u32, q_block0: u32,
    group: u32, end: u32, tensor: u32, q_blocks: u32,
}

override WG: u32 = 256u;
override SLOTS: u32 = 0u;
override DENSE: bool = false;
// Gradient clipping on: grads are clamped to ±aux[1] (if > 0) and scaled by aux[3].
override CLIP: bool = false;
// Two-phase rule (shaders/two_phase.wgsl): `update` reads its tensor's sums.
override TWO_PHASE: bool = false;
// Loss scaling (src/scaler.rs; implies CLIP): grads are unscaled by 1/aux[AUX_SCALE], a
// step with a non-finite grad is skipped, and the scalars are the slot's candidate for
// the device's own step count.
override SCALER: bool = false;
// Offset of the per-tensor sums in `aux` (shaders/reduce.wgsl: SUMS_AT).
const SUMS_AT: u32 = 16u;
// aux words of the loss scaler (shaders/reduce.wgsl).
const AUX_SCALE: u32 = 5u;
const AUX_FOUND: u32 = 7u;
const AUX_SKIPS: u32 = 9u;

// The sums of the tensor being updated (two-phase rules; zero otherwise).
var<private> tensor_sums: vec2<f32>;

@group(0) @binding(0) var<storage, read_write> param: array<V>;
// read_write so that params and grads may live in one buffer (one usage per dispatch).
@group(0) @binding(1) var<storage, read_write> grad: array<V>;
@group(0) @binding(2) var<storage, read> tiles: array<Tile>;
// Per-group scalars of this step (a uniform: the ring slot is the dynamic offset): LAG
// candidates of GROUPS each (one unless loss scaling), then a header whose a.x is the
// skip count the host assumed for candidate 0.
@group(0) @binding(3) var<uniform> hyper: array<Hyper, GROUPS * LAG + 1u>;
// Bindings 4-6 (state slots s0..s2) are declared by the state format's file:
// shaders/state_f32.wgsl or shaders/state_q8.wgsl.
// Device-side scalars shared by the passes of a step (layout in shaders/reduce.wgsl):
// clipping's and the loss scaler's words, then 2 f32 per tensor (its sums) from SUMS_AT,
// then 2 f32 per tile (partial sums).
@group(0) @binding(7) var<storage, read_write> aux: array<f32>;
@group(0) @binding(8) var<uniform> launch: Launch;

// Workgroup `wg`'s tile index in this dispatch (2D grid past the per-dimension limit).
fn tile_index(wg: vec3<u32>) -> u32 {
    return wg.y * launch.grid_x + wg.x;
}

fn tile_at(t: u32) -> Tile {
    if DENSE {
        return Tile(launch.group, t * WG, launch.end, launch.tensor);
    }
    return tiles[t];
}

// Group `group`'s scalars for this step: with loss scaling, the candidate for the number
// of steps the device skipped since the host's last count.
fn hyper_of(group: u32) -> Hyper {
    if !SCALER {
        return hyper[group];
    }
    let j = u32(max(aux[AUX_SKIPS] - hyper[GROUPS * LAG].a.x, 0.0));
    return hyper[min(j, LAG - 1u) * GROUPS + group];
}

// Loss scaling found a non-finite gradient in this step: nothing may change.
fn skipped() -> bool {
    return SCALER && aux[AUX_FOUND] != 0.0;
}

// The gradient unscaled by the loss scale, for the norm and the update.
fn unscaled(g: V) -> V {
    if SCALER {
        return g * (1.0 / aux[AUX_SCALE]);
    }
    return g;
}

// The gradient as the rule sees it: unscaled, clamped by value, then scaled by the clip
// coefficient.
fn clipped(g: V) -> V {
    if !CLIP {
        return g;
    }
    var c = unscaled(g);
    let v = aux[1];
    if v > 0.0 {
        c = clamp(c, V(-v), V(v));
    }
    return c * aux[3];
}

// The gradient after `maximize` and coupled (L2) weight decay, as torch's loops form it.
fn grad_in(g: V, p: V, weight_decay: f32, maximize: f32) -> V {
    var d = g;
    if maximize != 0.0 {
        d = -g;
    }
    if weight_decay != 0.0 {
        d = d + weight_decay * p;
    }
    return d;
}

// Parameter and gradient after `maximize` and weight decay, coupled (L2) or decoupled
// (AdamW: p·factor before the moments). CPU twin: rules::decay.
struct Decayed { p: V, g: V }

fn decay(p: V, g: V, wd: f32, factor: f32, decoupled: f32, maximize: f32) -> Decayed {
    if decoupled != 0.0 {
        var q = p;
        if wd != 0.0 {
            q = p * factor;
        }
        return Decayed(q, grad_in(g, q, 0.0, maximize));
    }
    return Decayed(p, grad_in(g, p, wd, maximize));
}

// Adam's moments in s0 (m) and s1 (v). CPU twin: rules::moments.
fn moments(s: ptr<function, State>, g: V, one_minus_b1: f32, b2: f32, one_minus_b2: f32) {
    (*s).s0 = lerp((*s).s0, g, one_minus_b1);
    (*s).s1 = (*s).s1 * b2 + one_minus_b2 * g * g;
}

// torch's CPU lerp: two formulas split at weight 0.5 (ATen lerp).
fn lerp(a: V, b: V, w: f32) -> V {
    if abs(w) < 0.5 {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}

// Sums `acc` over the workgroup into partial[0]. Two barriers instead of a log2(WG)-level
// tree: software devices (lavapipe) pay dearly per barrier. Lanes below 32 each sum a
// fixed strided set, then lane 0 sums those 32 in order: one fixed order, deterministic.
// Must be called in uniform control flow.
fn tile_reduce(lid: u32, acc: vec2<f32>) {
    partial[lid] = acc;
    workgroupBarrier();
    if lid < 32u {
        var s = vec2<f32>(0.0);
        for (var k = lid; k < WG; k = k + 32u) {
            s = s + partial[k];
        }
        partial[lid] = s;
    }
    workgroupBarrier();
    if lid == 0u {
        var s = vec2<f32>(0.0);
        for (var k = 0u; k < min(32u, WG); k = k + 1u) {
            s = s + partial[k];
        }
        partial[0] = s;
    }
}

// Lane 0 stores the workgroup's sums as tile t's partials.
fn store_partial(lid: u32, t: u32) {
    if lid == 0u {
        let at = launch.partials_at + 2u * (launch.tile_base + t);
        aux[at] = partial[0].x;
        aux[at + 1u] = partial[0].y;
    }
}

// Pass 1 of a clipped step: each tile's sum of squares of its (value-clipped) grads and
// count of non-finite ones, by a fixed-order tree in workgroup memory (deterministic).
var<workgroup> partial: array<vec2<f32>, WG>;

// A dense dispatch's workgroup covers this many tiles in the pre-pass (lanes loop over
// them; its first tile's partial holds the sum, the others 0): far fewer workgroup
// reductions, whose barriers software devices pay dearly for.
const SUMSQ_TILES: u32 = 16u;

@compute @workgroup_size(WG)
fn grad_sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = select(1u, SUMSQ_TILES, DENSE);
    let t0 = tile_index(wg) * r;
    if t0 >= launch.n_tiles {
        return;
    }
    var acc = vec2<f32>(0.0);
    for (var t = t0; t < min(t0 + r, launch.n_tiles); t = t + 1u) {
        let tile = tile_at(t);
        let vi = tile.first + lid;
        let e0 = vi * W;
        if e0 < tile.end {
            let live = live_lanes(e0, tile.end);
            let raw = grad[vi + launch.g_shift];
            // Non-finite values are found from their bits (WGSL may assume x == x),
            // before unscaling, as torch's _amp_foreach_non_finite_check_and_unscale_.
            let bad = (bitcast<U>(raw) & U(0x7f800000u)) == U(0x7f800000u);
            var g = unscaled(raw);
            let v = aux[1];
            if v > 0.0 {
                g = clamp(g, V(-v), V(v));
            }
            g = select(V(0.0), g, live & !bad);
            acc = acc + vec2<f32>(lane_sum(g * g), lane_sum(select(V(0.0), V(1.0), live & bad)));
        }
    }
    tile_reduce(lid, acc);
    store_partial(lid, t0);
    if lid == 0u {
        for (var t = t0 + 1u; t < min(t0 + r, launch.n_tiles); t = t + 1u) {
            let at = launch.partials_at + 2u * (launch.tile_base + t);
            aux[at] = 0.0;
            aux[at + 1u] = 0.0;
        }
    }
}
