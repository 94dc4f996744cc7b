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
// 1024 f32: signed map, unsigned map, signed midpoints, unsigned midpoints.
struct QMap { v: array<vec4<f32>, 256> }
@group(0) @binding(10) var<uniform> qmap: QMap;

// Bit k set: slot k may be negative (signed map); else the unsigned map.
override SIGNED: u32 = 7u;

// Vectors per block.
const QB: u32 = 64u;

var<workgroup> qred: array<f32, WG>;
var<workgroup> qmid: array<f32, WG / 8u>;
var<workgroup> qblk: array<f32, WG / QB>;

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

// The number of midpoints m with m * a < x: the nearest entry's code. No division, so
// the CPU twin (quant::Codebook::encode) gets the same byte.
fn encode1(x: f32, a: f32, mids: u32) -> u32 {
    var c = 0u;
    for (var step = 128u; step > 0u; step = step / 2u) {
        let k = c + step - 1u;
        if k < 255u && qget(mids + k) * a < x {
            c = c + step;
        }
    }
    return c;
}

fn encode(x: vec4<f32>, a: f32, mids: u32) -> u32 {
    return encode1(x.x, a, mids) | (encode1(x.y, a, mids) << 8u) | (encode1(x.z, a, mids) << 16u)
        | (encode1(x.w, a, mids) << 24u);
}

// The max of `m` over the 64 lanes of this lane's block. Uniform control flow only.
fn block_max(lid: u32, m: f32) -> f32 {
    workgroupBarrier();
    qred[lid] = m;
    workgroupBarrier();
    if lid % 8u == 0u {
        var s = 0.0;
        for (var k = lid; k < lid + 8u; k = k + 1u) {
            s = max(s, qred[k]);
        }
        qmid[lid / 8u] = s;
    }
    workgroupBarrier();
    if lid % QB == 0u {
        var s = 0.0;
        for (var k = lid / 8u; k < lid / 8u + 8u; k = k + 1u) {
            s = max(s, qmid[k]);
        }
        qblk[lid / QB] = s;
    }
    workgroupBarrier();
    return qblk[lid / QB];
}

fn live_absmax(x: vec4<f32>, live: vec4<bool>) -> f32 {
    let a = select(vec4<f32>(0.0), abs(x), live);
    return max(max(a.x, a.y), max(a.z, a.w));
}

// Requantizes slot k's new values: block max, then codes; lane 0 of a block stores it.
fn store_slot(k: u32, lid: u32, vi: u32, inside: bool, live: vec4<bool>, x: vec4<f32>) -> u32 {
    let a = block_max(lid, live_absmax(x, live));
    if lid % QB == 0u && inside {
        absmax[k * launch.q_blocks + launch.q_block0 + vi / QB] = a;
    }
    return encode(x, a, 512u + map_at(k));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = tile_index(wg);
    if t >= launch.n_tiles {
        return;
    }
    let vi = t * WG + lid;
    let e0 = vi * 4u;
    let inside = e0 < launch.end;
    let live = live_lanes(e0, launch.end) & vec4<bool>(inside);
    let si = vi + launch.s_shift;
    let blk = launch.q_block0 + vi / QB;
    var st: State;
    if inside {
        let h = hyper[launch.group];
        if SLOTS > 0u { st.s0 = decode(s0[si], absmax[blk], map_at(0u)); }
        if SLOTS > 1u { st.s1 = decode(s1[si], absmax[launch.q_blocks + blk], map_at(1u)); }
        if SLOTS > 2u { st.s2 = decode(s2[si], absmax[2u * launch.q_blocks + blk], map_at(2u)); }
        let pi = vi + launch.p_shift;
        let p = param[pi];
        let p_new = update(h, p, clipped(grad[vi + launch.g_shift]), &st);
        param[pi] = select(p, p_new, live);
    }
    // Every lane of the workgroup reaches the barriers, live or not.
    if SLOTS > 0u {
        let c = store_slot(0u, lid, vi, inside, live, st.s0);
        if inside { s0[si] = c; }
    }
    if SLOTS > 1u {
        let c = store_slot(1u, lid, vi, inside, live, st.s1);
        if inside { s1[si] = c; }
    }
    if SLOTS > 2u {
        let c = store_slot(2u, lid, vi, inside, live, st.s2);
        if inside { s2[si] = c; }
    }
}
