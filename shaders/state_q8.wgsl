// 8-bit block-wise state (src/quant.rs): appended after common.wgsl instead of
// state_f32.wgsl. Each slot holds one byte per element (4 per u32, one u32 per vec4) and
// one f32 absmax per block of 256 elements. A dispatch covers one piece of one tensor
// (dense), starting at a block boundary; WG is a multiple of 64, so a workgroup holds
// whole blocks and the block max is a workgroup reduction. Vector width 4 only.

@group(0) @binding(4) var<storage, read_write> s0: array<u32>;
@group(0) @binding(5) var<storage, read_write> s1: array<u32>;
@group(0) @binding(6) var<storage, read_write> s2: array<u32>;
// Slot k's block b of this tensor at absmax[k * launch.q_blocks + launch.q_block0 + b].
@group(0) @binding(9) var<storage, read_write> absmax: array<f32>;
// 1024 f32: signed map, unsigned map, signed midpoints, unsigned midpoints; then per map
// 3328 first guesses of a code, 4 per word (src/quant.rs: qmap_table).
struct QMap { v: array<vec4<f32>, 256>, g: array<vec4<u32>, 416> }
@group(0) @binding(3) var<uniform> qmap: QMap;

// Bit k set: slot k may be negative (signed map); else the unsigned map.
override SIGNED: u32 = 7u;
// Requantize stochastically (src/quant.rs: Codebook::encode_stochastic), with bits hashed
// from the element's index in its tensor, the slot and the step's key (header a.z).
override Q8_SR: bool = false;

// Vectors per block.
const QB: u32 = 64u;

// Per lane: the max |x| of its live elements, one component per slot; then per block.
var<workgroup> qred: array<vec3<f32>, WG>;
var<workgroup> qblk: array<vec3<f32>, WG / QB>;

fn qget(i: u32) -> f32 {
    return qmap.v[i / 4u][i % 4u];
}

// Where slot k's map starts in qmap (its midpoints are 512 further).
fn map_at(k: u32) -> u32 {
    return select(256u, 0u, ((SIGNED >> k) & 1u) == 1u);
}

fn decode(word: u32, a: f32, at: u32) -> vec4<f32> {
    return vec4<f32>(
        qget(at + (word & 255u)),
        qget(at + ((word >> 8u) & 255u)),
        qget(at + ((word >> 16u) & 255u)),
        qget(at + (word >> 24u)),
    ) * a;
}

fn is_nan1(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// The code of x: the number of midpoints m with m * a < x (the nearest entry), by exact
// comparisons and no division, so the CPU twin (quant::Codebook::encode, a binary search
// for the same count) gets the same byte. It starts from a guess read from the bits of
// x / a (inexact; it only picks where to look, and is right or one off almost always)
// and steps down, then up, to the exact count. On lavapipe this is 1.5x faster than the
// 8-step binary search, and faster than the guess with a binary-search fallback.
// NaN has no midpoint below it: code 0, as -inf (searched as -inf, so that no comparison
// sees a NaN: WGSL may assume x == x). a is never NaN (block_max leaves NaN out).
fn encode1(x_in: f32, a: f32, inv_a: f32, at: u32) -> u32 {
    let x = select(x_in, bitcast<f32>(0xff800000u), is_nan1(x_in));
    let b = bitcast<u32>(x * inv_a);
    let e = u32(clamp(i32((b >> 23u) & 255u) - 102, 0, 25));
    let gi = (at / 256u) * 3328u + (b >> 31u) * 1664u + e * 64u + ((b >> 17u) & 63u);
    let word = qmap.g[gi / 16u][(gi / 4u) % 4u];
    var c = (word >> (8u * (gi % 4u))) & 255u;
    let mids = 512u + at;
    loop {
        if c == 0u || qget(mids + c - 1u) * a < x {
            break;
        }
        c = c - 1u;
    }
    loop {
        if c >= 255u || !(qget(mids + c) * a < x) {
            break;
        }
        c = c + 1u;
    }
    return c;
}

// Between the two entries around x: the upper with probability (x - lower) / (upper -
// lower), from correctly rounded products and differences only, as the CPU twin. NaN, and
// any x in a block whose absmax is infinite (entries ±inf and 0·inf = NaN): the nearest.
fn encode_sr1(x: f32, a: f32, inv_a: f32, at: u32, r: u32) -> u32 {
    let c = encode1(x, a, inv_a, at);
    if is_nan1(x) || (bitcast<u32>(a) & 0x7f800000u) == 0x7f800000u {
        return c;
    }
    var lo = c;
    var hi = c;
    if qget(at + c) * a <= x {
        hi = min(c + 1u, 255u);
    } else if c > 0u {
        lo = c - 1u;
    }
    if lo == hi {
        return c;
    }
    let lv = qget(at + lo) * a;
    let hv = qget(at + hi) * a;
    let u = f32(r >> 8u) * 5.9604645e-8;
    return select(lo, hi, u * (hv - lv) < x - lv);
}

// Slot k's codes for the 4 elements from tensor element e.
fn encode_slot(x: vec4<f32>, a: f32, k: u32, e: u32) -> u32 {
    let at = map_at(k);
    if !Q8_SR {
        return encode(x, a, at);
    }
    let inv_a = 1.0 / a;
    let key = bitcast<u32>(hyper[HEADER].a.z);
    var out = 0u;
    for (var l = 0u; l < 4u; l = l + 1u) {
        let r = pcg_hash(((e + l) * 3u + k) ^ key);
        out = out | (encode_sr1(x[l], a, inv_a, at, r) << (8u * l));
    }
    return out;
}

fn encode(x: vec4<f32>, a: f32, at: u32) -> u32 {
    let inv_a = 1.0 / a;
    return encode1(x.x, a, inv_a, at) | (encode1(x.y, a, inv_a, at) << 8u)
        | (encode1(x.z, a, inv_a, at) << 16u) | (encode1(x.w, a, inv_a, at) << 24u);
}

// The max of `m` (one component per slot) over the 64 lanes of this lane's block, in one
// reduction for all slots: two barriers, which software devices pay dearly for. Uniform
// control flow only.
fn block_max(lid: u32, m: vec3<f32>) -> vec3<f32> {
    qred[lid] = m;
    workgroupBarrier();
    if lid % QB == 0u {
        var s = vec3<f32>(0.0);
        for (var k = lid; k < lid + QB; k = k + 1u) {
            s = max(s, qred[k]);
        }
        qblk[lid / QB] = s;
    }
    workgroupBarrier();
    return qblk[lid / QB];
}

// The largest |x| of the live lanes; NaN is left out (as the CPU twin's f32::max and
// bitsandbytes' fmaxf), from its bits: WGSL's max may return it. ±inf is kept.
fn live_absmax(x: vec4<f32>, live: vec4<bool>) -> f32 {
    let a = select(vec4<f32>(0.0), abs(x), live & !is_nan(x));
    return max(max(a.x, a.y), max(a.z, a.w));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = tile_index(wg);
    if t >= launch.n_tiles {
        return;
    }
    let vi = t * WG + lid;
    let e0 = vi * 4u;
    let inside = e0 < launch.end && !skipped();
    let live = live_lanes(e0, launch.end) & vec4<bool>(inside);
    let si = vi + shifts().z;
    let blk = launch.q_block0 + vi / QB;
    var st: State;
    if inside {
        let h = hyper_of(launch.group);
        if SLOTS > 0u { st.s0 = decode(s0[si], absmax[blk], map_at(0u)); }
        if SLOTS > 1u { st.s1 = decode(s1[si], absmax[launch.q_blocks + blk], map_at(1u)); }
        if SLOTS > 2u { st.s2 = decode(s2[si], absmax[2u * launch.q_blocks + blk], map_at(2u)); }
        let pi = vi + shifts().x;
        let p = load_p(pi, si);
        let p_new = update(h, p, clipped(load_g(vi + shifts().y)), &st);
        store_p(pi, si, p, p_new, live);
    }
    // Every lane of the workgroup reaches the barriers, live or not.
    let a = block_max(lid, vec3<f32>(live_absmax(st.s0, live), live_absmax(st.s1, live), live_absmax(st.s2, live)));
    if lid % QB == 0u && inside {
        for (var k = 0u; k < SLOTS; k = k + 1u) {
            absmax[k * launch.q_blocks + blk] = a[k];
        }
    }
    if !inside {
        return;
    }
    let e = launch.q_block0 * 256u + vi * 4u;
    if SLOTS > 0u { s0[si] = encode_slot(st.s0, a.x, 0u, e); }
    if SLOTS > 1u { s1[si] = encode_slot(st.s1, a.y, 1u, e); }
    if SLOTS > 2u { s2[si] = encode_slot(st.s2, a.z, 2u, e); }
}
