// 16-bit params and grads (src/half.rs, the CPU twin, bit for bit): conversions with
// integer operations only, round to nearest even, identical on every adapter.

// The 4 halves of a vec4's worth of 16-bit elements (two u32), and back.
fn halves(w: vec2<u32>) -> vec4<u32> {
    return vec4<u32>(w.x & 0xffffu, w.x >> 16u, w.y & 0xffffu, w.y >> 16u);
}

fn pack_halves(k: vec4<u32>) -> vec2<u32> {
    return vec2<u32>(k.x | (k.y << 16u), k.z | (k.w << 16u));
}

fn bf16_from_f32(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// Stochastic rounding to bf16 with 16 random bits: up in magnitude with probability
// (dropped bits) / 2^16, so the rounding is unbiased; inf and NaN round to nearest.
fn bf16_from_f32_sr(x: f32, r: u32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7f800000u) == 0x7f800000u {
        return bf16_from_f32(x);
    }
    return (b + (r & 0xffffu)) >> 16u;
}

// A 32-bit hash (PCG's output permutation): stochastic rounding's random bits.
fn pcg_hash(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

fn bf16_to_f32(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}

// f16 conversions without branches: each case is computed and a select picks one (the
// CPU twin's branches, the same bits). A branch on per-element data runs on software
// devices under lane masks, every arm for every vector.
fn f16_from_f32(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    // Normal: rebias the exponent (127 -> 15), round away 13 bits (wraps below the range).
    let m = a - 0x38000000u;
    let normal = (m + 0xfffu + ((m >> 13u) & 1u)) >> 13u;
    // Subnormal: m * 2^-24. The shift is 14-24 in its range; clamped elsewhere, so that
    // no shift reaches 32.
    let full = (a & 0x7fffffu) | 0x800000u;
    let shift = clamp(126u - (a >> 23u), 1u, 24u);
    let sub = (full + (1u << (shift - 1u)) - 1u + ((full >> shift) & 1u)) >> shift;
    var h = select(0u, sub, a >= 0x33000000u);
    h = select(h, normal, a >= 0x38800000u);
    // >= 65520 rounds to inf; inf stays inf, NaN stays a quiet NaN.
    h = select(h, 0x7c00u, a >= 0x477ff000u);
    h = select(h, 0x7c00u | select(0u, 0x200u, a > 0x7f800000u), a >= 0x7f800000u);
    return sign | h;
}

fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    let v = f32(m) * 5.9604645e-8;
    let subnormal = select(v, -v, sign != 0u);
    let wide = select(sign | ((e + 112u) << 23u), sign | 0x7f800000u, e == 31u) | (m << 13u);
    return select(bitcast<f32>(wide), subnormal, e == 0u);
}
