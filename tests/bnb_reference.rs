//! The 8-bit state's quantization against bitsandbytes itself: its dynamic maps and its
//! CPU `quantize_blockwise` (blocksize 256) of a vector spanning seven decades, produced by
//! `python3 tests/bnb_reference.py` (bitsandbytes 0.50.2, torch 2.15) into
//! tests/bnb_reference.txt.
//!
//! The maps must be identical bit for bit, and so must each block's absmax. Codes: ours
//! are the exact nearest entry; bitsandbytes' CPU quantizer finds the bin with an
//! approximate search. Measured: identical codes for every value of at least 1% of its
//! block's absmax; below that, ~40% of this vector's codes differ, and ours must be the
//! nearer (or as near) every time.

mod common;

use common::{bnb, bnb_floats};
use gpu_optim::quant::{dynamic_map, Codebook};

#[test]
fn maps_equal_bitsandbytes_bit_for_bit() {
    for (signed, name) in [(true, "map_signed"), (false, "map_unsigned")] {
        let theirs = bnb_floats(name);
        let ours = dynamic_map(signed);
        assert_eq!(theirs.len(), 256);
        for (k, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{name}[{k}]: ours {a:e}, bitsandbytes {b:e}"
            );
        }
    }
}

#[test]
fn blockwise_quantization_matches_bitsandbytes() {
    for (signed, tag) in [(true, "signed"), (false, "unsigned")] {
        let x = bnb_floats(&format!("input_{tag}"));
        let codes: Vec<u8> = bnb(&format!("codes_{tag}"))
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let absmax = bnb_floats(&format!("absmax_{tag}"));
        let cb = Codebook::new(signed);
        let map = cb.map();
        let (ours, our_absmax) = cb.quantize(&x);
        assert_eq!(our_absmax, absmax, "{tag}: absmax");
        let (mut differ, mut differ_large) = (0, 0);
        for (i, (&a, &b)) in ours.iter().zip(&codes).enumerate() {
            if a == b {
                continue;
            }
            let r = (x[i] / absmax[i / 256]).abs();
            if r >= 1e-2 {
                eprintln!("{tag} element {i}: r {r:e} ours {a} theirs {b}");
                differ_large += 1;
            }
            // Distances in f64 to the two entries, both scaled back by the block's absmax.
            let am = absmax[i / 256] as f64;
            let d = |c: u8| (x[i] as f64 - map[c as usize] as f64 * am).abs();
            assert!(
                d(a) <= d(b),
                "{tag} element {i} (x {:e}): ours {a} at {:e}, bitsandbytes {b} at {:e}",
                x[i],
                d(a),
                d(b)
            );
            differ += 1;
        }
        eprintln!(
            "{tag}: {differ} of {} codes differ ({differ_large} with |x|/absmax >= 0.01), ours nearer",
            x.len()
        );
        assert_eq!(differ_large, 0);
    }
}
