//! 8-bit block-wise optimizer state (bitsandbytes' `optimizer_update_8bit_blockwise`).
//!
//! Each state slot of a large tensor is stored as one byte per element plus one f32 per
//! block of [`BLOCK`] elements: the block's largest magnitude (absmax). A byte is an index
//! into a 256-entry *dynamic* map (Dettmers 2015/2021: a sign, a run of zero bits that
//! acts as a decimal exponent 10⁻⁶…10⁰, then a linear fraction), so small values keep
//! relative precision. Each step dequantizes in registers (`map[code] · absmax`), updates
//! in f32 with the rule's own `update`, takes the block's new absmax, and requantizes to
//! the nearest map entry. State memory: 2 slots × (1 + 4/256) ≈ 2.03 bytes/param instead
//! of 8 for Adam.
//!
//! Slots that are never negative (Adam's `exp_avg_sq`, Adagrad's `sum`...) use the
//! unsigned map, which spends the sign bit on resolution, as bitsandbytes does for Adam's
//! second moment ([`crate::UpdateRule::slot_nonnegative`]).
//!
//! ## Bit-exact CPU twin
//! WGSL rounds `*` correctly but allows 2.5 ulp for `/`, so nothing here divides: a value
//! `x` gets the code `c` = the number of midpoints `mid[j]` (between map entries j and
//! j+1) with `mid[j] · absmax < x`, found by an 8-step binary search; decoding is one
//! multiplication; absmax is a max (exact). The device and [`Q8State`] therefore produce the
//! same bytes and the same absmax from the same f32 state.
//!
//! The map equals bitsandbytes' bit for bit. Deviation: codes are the exact nearest
//! entry (a value exactly on a midpoint rounds down). bitsandbytes' CPU quantizer
//! (0.50) finds the bin with an approximate search: its codes equal ours for every value
//! of at least 1% of the block's absmax, and below that it often picks a farther entry
//! (tests/bnb_reference.rs).

/// Elements per quantization block (bitsandbytes' blocksize for 8-bit optimizers).
pub const BLOCK: usize = 256;

/// Tensors shorter than this keep f32 state (bitsandbytes' `min_8bit_size`).
pub const MIN_8BIT_LEN: usize = 4096;

/// How an optimizer stores its state slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateFormat {
    /// f32, 4 bytes per element per slot.
    #[default]
    F32,
    /// 8-bit block-wise codes for tensors of at least `min_len` elements; f32 below.
    Blockwise8 {
        /// Smaller tensors keep f32 state ([`MIN_8BIT_LEN`] as bitsandbytes).
        min_len: usize,
        /// Requantize stochastically with this seed instead of to the nearest entry
        /// ([`Codebook::encode_stochastic`]): unbiased, so a slot moving by less than half
        /// a code step per update (Lion's momentum) still moves on average.
        stochastic: Option<u32>,
    },
}

impl StateFormat {
    /// 8-bit state with bitsandbytes' threshold.
    pub fn blockwise8() -> Self {
        StateFormat::Blockwise8 {
            min_len: MIN_8BIT_LEN,
            stochastic: None,
        }
    }

    /// The seed of stochastic requantization, if any.
    pub fn stochastic_seed(&self) -> Option<u32> {
        match *self {
            StateFormat::Blockwise8 { stochastic, .. } => stochastic,
            StateFormat::F32 => None,
        }
    }

    /// Whether a tensor of `len` elements gets 8-bit state.
    pub fn quantizes(&self, len: usize) -> bool {
        matches!(*self, StateFormat::Blockwise8 { min_len, .. } if len >= min_len.max(1))
    }
}

/// bitsandbytes' `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`, sorted,
/// bit for bit: the same f32 arithmetic as its torch code (`linspace` with a fused
/// multiply-add from each end, means in f32, times the decade as an f32;
/// tests/bnb_reference.rs checks every entry against bitsandbytes 0.50).
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    // torch.linspace(0.1, 1, n) in f32, as its CPU kernel computes it.
    let linspace = |n: usize| -> Vec<f32> {
        let (s, e) = (0.1f32, 1.0f32);
        let step = (e - s) / (n - 1) as f32;
        (0..n)
            .map(|i| {
                if i < n / 2 {
                    step.mul_add(i as f32, s)
                } else {
                    (-step).mul_add((n - 1 - i) as f32, e)
                }
            })
            .collect()
    };
    const DECADES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for (i, &decade) in DECADES.iter().enumerate() {
        // Signed: 2^i intervals per decade (a sign bit spent); unsigned: 2^(i+1).
        let items = if signed {
            (1 << i) + 1
        } else {
            (1 << (i + 1)) + 1
        };
        let b = linspace(items);
        for k in 0..items - 1 {
            let m = (b[k] + b[k + 1]) / 2.0;
            let v = decade as f32 * m;
            data.push(v);
            if signed {
                data.push(-v);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.resize(256, 0.0);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("256 entries")
}

/// Guess table buckets per sign: 26 binades [2^-25, 2), 64 buckets each.
const GUESS_PER_SIGN: usize = 26 * 64;

/// What the kernels read (`qmap` in `shaders/state_q8.wgsl`), as u32 words: the signed
/// map, the unsigned map, their midpoints (f32 bits, 256 each; the last midpoint is +∞,
/// never reached), then per map a table of first guesses, 4 codes per word: for
/// x/absmax's sign, binade and top 6 mantissa bits, the code of the bucket's low end. The kernel starts its search
/// there and steps with the same exact comparisons as [`Codebook::encode`], so the guess
/// only saves work (an 8-step binary search cost 3x the rest of the update on lavapipe).
pub(crate) fn qmap_table() -> Vec<u32> {
    let mut out = Vec::with_capacity(1024 + GUESS_PER_SIGN);
    let books = [Codebook::new(true), Codebook::new(false)];
    for b in &books {
        out.extend(b.map.iter().map(|x| x.to_bits()));
    }
    for b in &books {
        out.extend(b.mids.iter().map(|x| x.to_bits()));
    }
    let mut guesses: Vec<u8> = Vec::with_capacity(4 * GUESS_PER_SIGN);
    for b in &books {
        for sign in [1.0f64, -1.0] {
            for e in 0..26 {
                for m in 0..64 {
                    let v = sign * 2f64.powi(e - 25) * (1.0 + m as f64 / 64.0);
                    guesses.push(b.mids[..255].iter().filter(|&&x| (x as f64) < v).count() as u8);
                }
            }
        }
    }
    out.extend(
        guesses
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
    out
}

fn midpoints(map: &[f32; 256]) -> [f32; 256] {
    let mut mids = [f32::INFINITY; 256];
    for j in 0..255 {
        mids[j] = (map[j] + map[j + 1]) * 0.5;
    }
    mids
}

/// One map with its midpoints: encodes and decodes single values exactly as the kernel.
#[derive(Clone, Debug)]
pub struct Codebook {
    map: [f32; 256],
    mids: [f32; 256],
}

impl Codebook {
    /// The signed or unsigned dynamic map.
    pub fn new(signed: bool) -> Self {
        let map = dynamic_map(signed);
        Self {
            mids: midpoints(&map),
            map,
        }
    }

    /// The code of `x` in a block whose absmax is `absmax`: the nearest map entry (the
    /// number of midpoints below x). NaN gets code 0, as −inf (no midpoint is below it).
    pub fn encode(&self, x: f32, absmax: f32) -> u8 {
        let mut c = 0usize;
        let mut step = 128;
        while step > 0 {
            let k = c + step - 1;
            if k < 255 && self.mids[k] * absmax < x {
                c += step;
            }
            step /= 2;
        }
        c as u8
    }

    /// The code of `x` rounded stochastically between its two neighbouring entries with
    /// 32 random bits `r`: the upper with probability (x − lower) / (upper − lower), from
    /// correctly rounded products and differences only (`encode_sr` in
    /// shaders/state_q8.wgsl does the same operations). Outside the map's range, for NaN,
    /// and in a block whose absmax is infinite (its entries are ±inf, and 0·inf = NaN),
    /// the nearest code.
    pub fn encode_stochastic(&self, x: f32, absmax: f32, r: u32) -> u8 {
        let c = self.encode(x, absmax) as usize;
        if x.is_nan() || absmax.is_infinite() {
            return c as u8;
        }
        let (mut lo, mut hi) = (c, c);
        if self.map[c] * absmax <= x {
            hi = (c + 1).min(255);
        } else {
            lo = c.saturating_sub(1);
        }
        if lo == hi {
            return c as u8;
        }
        let (lv, hv) = (self.map[lo] * absmax, self.map[hi] * absmax);
        let u = (r >> 8) as f32 * 5.960_464_5e-8;
        if u * (hv - lv) < x - lv {
            hi as u8
        } else {
            lo as u8
        }
    }

    /// The value of `code` in a block whose absmax is `absmax`.
    pub fn decode(&self, code: u8, absmax: f32) -> f32 {
        self.map[code as usize] * absmax
    }

    /// The map entries (sorted).
    pub fn map(&self) -> &[f32; 256] {
        &self.map
    }

    /// Quantizes `x` block by block: codes and one absmax per [`BLOCK`] elements.
    pub fn quantize(&self, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let absmax: Vec<f32> = x.chunks(BLOCK).map(block_absmax).collect();
        let codes = x
            .iter()
            .enumerate()
            .map(|(i, &v)| self.encode(v, absmax[i / BLOCK]))
            .collect();
        (codes, absmax)
    }

    /// The values `codes` stand for, given their blocks' absmax.
    pub fn dequantize(&self, codes: &[u8], absmax: &[f32]) -> Vec<f32> {
        codes
            .iter()
            .enumerate()
            .map(|(i, &c)| self.decode(c, absmax[i / BLOCK]))
            .collect()
    }
}

/// Largest magnitude in a block (what the kernel's workgroup max computes). NaN is left out
/// (as bitsandbytes' `fmaxf`), so that one NaN element does not make its whole block NaN;
/// the element itself gets code 0, the map's lowest entry (8 bits cannot hold NaN; its
/// param, updated in f32 before requantization, keeps the NaN). ±inf is kept: the
/// block's other elements then decode to ±inf or NaN, as in bitsandbytes.
pub fn block_absmax(block: &[f32]) -> f32 {
    block.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// One tensor's 8-bit state on the host (the CPU twin of the device's): per slot, one
/// code per element and one absmax per block.
#[derive(Clone, Debug, PartialEq)]
pub struct Q8State {
    /// Per slot: codes.
    pub codes: Vec<Vec<u8>>,
    /// Per slot: absmax per block.
    pub absmax: Vec<Vec<f32>>,
}

/// The random bits stochastic requantization uses for element `index` of its tensor's
/// slot `slot` at step `step` (steps called, from 1) with `seed`.
pub fn stochastic_bits(index: u64, slot: usize, step: u64, seed: u32) -> u32 {
    let key = crate::half::step_key(step, seed);
    crate::half::pcg_hash((index as u32).wrapping_mul(3).wrapping_add(slot as u32) ^ key)
}

impl Q8State {
    /// Quantizes f32 state slots (`signed[k]`: slot k may be negative) to the nearest
    /// entries.
    pub fn quantize(state: &[Vec<f32>], signed: &[bool]) -> Self {
        Self::quantize_at(state, signed, None)
    }

    /// Quantizes as the device does after step `step`: to the nearest entries, or
    /// stochastically with the bits of [`stochastic_bits`] when `seed` is set.
    pub fn quantize_at(state: &[Vec<f32>], signed: &[bool], sr: Option<(u64, u32)>) -> Self {
        let (codes, absmax) = state
            .iter()
            .zip(signed)
            .enumerate()
            .map(|(k, (s, &sg))| {
                let cb = Codebook::new(sg);
                let Some((step, seed)) = sr else {
                    return cb.quantize(s);
                };
                let absmax: Vec<f32> = s.chunks(BLOCK).map(block_absmax).collect();
                let codes = s
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let r = stochastic_bits(i as u64, k, step, seed);
                        cb.encode_stochastic(v, absmax[i / BLOCK], r)
                    })
                    .collect();
                (codes, absmax)
            })
            .unzip();
        Self { codes, absmax }
    }

    /// The f32 state the codes stand for.
    pub fn dequantize(&self, signed: &[bool]) -> Vec<Vec<f32>> {
        self.codes
            .iter()
            .zip(&self.absmax)
            .zip(signed)
            .map(|((c, a), &sg)| Codebook::new(sg).dequantize(c, a))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_have_bitsandbytes_shape() {
        let s = dynamic_map(true);
        let u = dynamic_map(false);
        // Signed: 127 negative, 0, 127 positive, 1.0; unsigned: 0, 254 positive, 1.0.
        assert_eq!(s.iter().filter(|&&x| x < 0.0).count(), 127);
        assert_eq!(s.iter().filter(|&&x| x == 0.0).count(), 1);
        assert_eq!(u.iter().filter(|&&x| x == 0.0).count(), 1);
        assert_eq!(s[255], 1.0);
        assert_eq!(u[255], 1.0);
        // Smallest positive entries: 10^-6 · 0.55 (signed), 10^-6 · 0.325 (unsigned).
        let min_pos = |m: &[f32; 256]| m.iter().copied().filter(|&x| x > 0.0).fold(1.0, f32::min);
        assert!((min_pos(&s) - 0.55e-6).abs() < 1e-12);
        assert!((min_pos(&u) - 0.325e-6).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(u.windows(2).all(|w| w[0] < w[1]));
    }

    /// Encoding picks the nearest entry: the round-trip error of each value is at most half
    /// the gap between the two map entries around x/absmax, times absmax (plus rounding).
    #[test]
    fn round_trip_error_is_within_half_a_gap() {
        let mut rng = crate::verify::Rng(7);
        for signed in [true, false] {
            let cb = Codebook::new(signed);
            let m = cb.map();
            for scale in [1e-8f32, 1e-3, 1.0, 1e4] {
                let mut x: Vec<f32> = (0..4 * BLOCK)
                    .map(|_| {
                        let v = rng.uniform() * scale;
                        if signed {
                            v
                        } else {
                            v.abs()
                        }
                    })
                    .collect();
                // One planted value per block, larger in magnitude than any uniform one
                // (< scale): the block's absmax by construction (negative in odd blocks of
                // the signed case).
                let planted = 1.5 * scale;
                for blk in 0..4 {
                    let neg = signed && blk % 2 == 1;
                    x[blk * BLOCK + (blk * 37) % BLOCK] = if neg { -planted } else { planted };
                }
                let (codes, absmax) = cb.quantize(&x);
                let y = cb.dequantize(&codes, &absmax);
                for (i, (&a, &b)) in x.iter().zip(&y).enumerate() {
                    let am = absmax[i / BLOCK];
                    let r = a / am;
                    let hi = m.iter().position(|&e| e >= r).unwrap_or(255);
                    let lo = hi.saturating_sub(1);
                    // Below the signed map's lowest entry (-0.993) the error is the distance to it.
                    let gap = if r < m[0] {
                        2.0 * (m[0] - r) * am
                    } else {
                        (m[hi] - m[lo]) * am
                    };
                    let bound = gap / 2.0 + 4.0 * f32::EPSILON * am;
                    assert!(
                        (a - b).abs() <= bound,
                        "signed {signed} x {a} -> {b}, bound {bound}"
                    );
                }
                // Each block's absmax is its planted value's magnitude.
                assert_eq!(absmax, vec![planted; 4], "signed {signed} scale {scale}");
            }
        }
    }

    #[test]
    fn zero_block_decodes_to_zero() {
        let cb = Codebook::new(true);
        let (c, a) = cb.quantize(&[0.0; 300]);
        assert_eq!(a, vec![0.0, 0.0]);
        assert!(cb.dequantize(&c, &a).iter().all(|&v| v == 0.0));
    }

    /// NaN is left out of the block's absmax and gets code 0, as −inf; ±inf is kept; with
    /// an infinite absmax, stochastic requantization takes the nearest code.
    #[test]
    fn non_finite_values() {
        assert_eq!(block_absmax(&[1.0, f32::NAN, -2.0]), 2.0);
        assert_eq!(block_absmax(&[1.0, f32::NEG_INFINITY]), f32::INFINITY);
        for signed in [true, false] {
            let cb = Codebook::new(signed);
            assert_eq!(cb.encode(f32::NAN, 2.0), 0);
            assert_eq!(cb.encode(f32::NAN, 2.0), cb.encode(f32::NEG_INFINITY, 2.0));
            assert_eq!(cb.encode(f32::INFINITY, 2.0), 255);
            for r in [0, u32::MAX] {
                assert_eq!(cb.encode_stochastic(f32::NAN, 2.0, r), 0);
                for x in [0.5, -0.5, f32::INFINITY] {
                    let near = cb.encode(x, f32::INFINITY);
                    assert_eq!(cb.encode_stochastic(x, f32::INFINITY, r), near);
                }
            }
        }
    }

    #[test]
    fn format_threshold() {
        let f = StateFormat::blockwise8();
        assert!(!f.quantizes(4095));
        assert!(f.quantizes(4096));
        assert!(!StateFormat::F32.quantizes(1 << 20));
    }
}
