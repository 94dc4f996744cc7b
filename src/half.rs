//! 16-bit parameters and gradients (mixed precision): the element types, and the
//! conversions the kernels do with u32 bit operations (`shaders/half.wgsl`), mirrored here
//! bit for bit.
//!
//! WGSL has no bf16 type; f16 exists behind the `shader-f16` feature, and
//! `pack2x16float` leaves the rounding of in-range values to the implementation. Both
//! formats are therefore converted with integer operations on every device: round to
//! nearest, ties to even, overflow to ±inf, NaN kept NaN, f16 subnormals exact. The result
//! is the same on every adapter and equals the CPU twin's; in a memory-bound kernel the
//! few integer operations cost nothing measurable.

/// The element type of a parameter or gradient buffer.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Dtype {
    /// IEEE binary32.
    #[default]
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16: the top half of an f32.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The 16-bit pattern of `x` in this format (F32: not a 16-bit format; panics).
    pub fn encode(self, x: f32) -> u16 {
        match self {
            Dtype::F16 => f32_to_f16(x),
            Dtype::Bf16 => f32_to_bf16(x),
            Dtype::F32 => panic!("f32 is not a 16-bit format"),
        }
    }

    /// The value of a 16-bit pattern in this format (exact).
    pub fn decode(self, h: u16) -> f32 {
        match self {
            Dtype::F16 => f16_to_f32(h),
            Dtype::Bf16 => bf16_to_f32(h),
            Dtype::F32 => panic!("f32 is not a 16-bit format"),
        }
    }

    /// `xs` rounded to this format and back: the values a buffer of it holds.
    pub fn round(self, xs: &[f32]) -> Vec<f32> {
        match self {
            Dtype::F32 => xs.to_vec(),
            _ => self.from_bytes(&self.to_bytes(xs)),
        }
    }

    /// `xs` rounded to this format, as little-endian bytes (F32: as they are).
    pub fn to_bytes(self, xs: &[f32]) -> Vec<u8> {
        match self {
            Dtype::F32 => bytemuck::cast_slice(xs).to_vec(),
            _ => xs
                .iter()
                .flat_map(|&x| self.encode(x).to_le_bytes())
                .collect(),
        }
    }

    /// Values of little-endian bytes in this format.
    pub fn from_bytes(self, b: &[u8]) -> Vec<f32> {
        match self {
            Dtype::F32 => bytemuck::pod_collect_to_vec(b),
            _ => b
                .chunks_exact(2)
                .map(|c| self.decode(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        }
    }
}

/// f32 → bf16, round to nearest even; NaN stays a (quiet) NaN.
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// f32 → bf16 with stochastic rounding by 16 random bits `r`: up in magnitude with
/// probability (dropped bits)/2^16, unbiased; inf and NaN round to nearest.
pub fn f32_to_bf16_stochastic(x: f32, r: u32) -> u16 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0x7f80_0000 {
        return f32_to_bf16(x);
    }
    ((b + (r & 0xffff)) >> 16) as u16
}

/// PCG's output permutation as a 32-bit hash (`pcg_hash` in `shaders/half.wgsl`).
pub fn pcg_hash(v: u32) -> u32 {
    let s = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// The random bits stochastic rounding uses for element `index` of its param buffer (in
/// elements, from the buffer's start) at step `step` (steps called, from 1) with `seed`.
pub fn stochastic_bits(index: u64, step: u64, seed: u32) -> u32 {
    pcg_hash(index as u32 ^ step_key(step, seed))
}

/// The per-step part of [`stochastic_bits`] (what the host writes for the kernel).
pub(crate) fn step_key(step: u64, seed: u32) -> u32 {
    pcg_hash((step as u32).wrapping_add(pcg_hash(seed)))
}

/// bf16 → f32 (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → f16, round to nearest even, overflow to ±inf, subnormals exact.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let a = b & 0x7fff_ffff;
    let h = if a >= 0x7f80_0000 {
        // inf, or NaN (quiet)
        0x7c00 | if a > 0x7f80_0000 { 0x200 } else { 0 }
    } else if a >= 0x477f_f000 {
        // ≥ 65520 rounds to inf
        0x7c00
    } else if a >= 0x3880_0000 {
        // normal: rebias the exponent (127 → 15), round away 13 bits
        let m = a - 0x3800_0000;
        (m + 0xfff + ((m >> 13) & 1)) >> 13
    } else if a >= 0x3300_0000 {
        // subnormal: m · 2^-24
        let e = a >> 23;
        let full = (a & 0x7f_ffff) | 0x80_0000;
        let shift = 126 - e;
        let half = 1u32 << (shift - 1);
        (full + half - 1 + ((full >> shift) & 1)) >> shift
    } else {
        0
    };
    (sign | h) as u16
}

/// f16 → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let e = (h >> 10) & 0x1f;
    let m = h & 0x3ff;
    if e == 0 {
        let v = m as f32 * 5.960_464_5e-8;
        return if sign != 0 { -v } else { v };
    }
    if e == 31 {
        return f32::from_bits(sign | 0x7f80_0000 | (m << 13));
    }
    f32::from_bits(sign | ((e + 112) << 23) | (m << 13))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 arithmetic: the nearest representable value, ties to even.
    fn nearest_f16(x: f32) -> f32 {
        // All finite f16 values, sorted; pick the nearest (ties: even mantissa).
        let x = x as f64;
        let mut best = (f64::INFINITY, 0u16);
        for h in 0..0x7c00u16 {
            for s in [0u16, 0x8000] {
                let v = f16_to_f32(h | s) as f64;
                let d = (v - x).abs();
                if d < best.0 || (d == best.0 && (h | s) & 1 == 0 && best.1 & 1 == 1) {
                    best = (d, h | s);
                }
            }
        }
        f16_to_f32(best.1)
    }

    #[test]
    fn f16_round_trip_and_rounding() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan());
            } else {
                assert_eq!(f32_to_f16(x), h, "{h:#x} {x}");
            }
        }
        let mut rng = crate::verify::Rng(1);
        for _ in 0..300 {
            let x = rng.uniform() * 10f32.powi((rng.next_u64() % 12) as i32 - 9);
            let got = f16_to_f32(f32_to_f16(x));
            assert_eq!(got, nearest_f16(x), "{x:e}");
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0);
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.0001), 1);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        for h in 0..=u16::MAX {
            let x = bf16_to_f32(h);
            if !x.is_nan() {
                assert_eq!(f32_to_bf16(x), h);
            }
        }
        // Ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even (1).
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 2f32.powi(-8))), 1.0);
        assert_eq!(
            bf16_to_f32(f32_to_bf16(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(f32_to_bf16(f32::MAX)), f32::INFINITY);
    }
}
