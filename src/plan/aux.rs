//! What is each device scratch word? The map of `aux`, the device buffer the reductions,
//! the loss scaler and the update share. Only this file names aux words on the host; the
//! shaders name the same words (a test below holds the three places to one map).
//!
//! Words, in f32: `[0]` max_norm and `[1]` clip value (host-written per step), `[2]` the
//! total norm, `[3]` the clip coefficient, `[4]` the non-finite count; the loss scaler
//! (src/scaler.rs): `[5]` scale, `[6]` growth tracker, `[7]` found_inf this step, `[8]`
//! steps executed, `[9]` steps skipped (counts exact to 2^24), `[10]` scaler on, `[11]`
//! growth_factor, `[12]` backoff_factor, `[13]` growth_interval (host); `[14]` (1/scale) ×
//! clip coefficient, the update's gradient factor; `[15]` the update's step word (-1 if
//! this step is skipped, else the skip count). Then 2 f32 per tensor from
//! [`AUX_SUMS_AT`], then 2 f32 per tile from the plan's `partials_at`.

/// Clipping's host-written words (max_norm, value): the start of a step's control words.
pub(crate) const AUX_CONTROL: u64 = 0;
/// The loss scaler's device words: scale, growth tracker, found_inf, steps executed,
/// steps skipped.
pub(crate) const AUX_SCALE: u64 = 5;
pub(crate) const AUX_EXECUTED: u64 = 8;
/// Host-written scaler settings: on, growth_factor, backoff_factor, growth_interval.
pub(crate) const AUX_SCALER_CONFIG: u64 = 10;
/// The update's gradient factor and step word (`AUX_FACTOR`, `AUX_STEP` in common.wgsl).
#[cfg(test)]
pub(crate) const AUX_FACTOR: u64 = 14;
#[cfg(test)]
pub(crate) const AUX_STEP: u64 = 15;
/// Per-tensor sums start here (`SUMS_AT` in the shaders).
pub(crate) const AUX_SUMS_AT: u64 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `const NAME: u32 = Nu;` in a shader.
    fn wgsl_const(src: &str, name: &str) -> u64 {
        let line = src
            .lines()
            .find(|l| l.starts_with(&format!("const {name}: u32 = ")))
            .unwrap_or_else(|| panic!("const {name} missing"));
        let v = line.rsplit("= ").next().unwrap().trim_end_matches("u;");
        v.parse().unwrap()
    }

    /// The shaders' named aux words are this map's.
    #[test]
    fn shaders_name_the_same_aux_words() {
        let common = include_str!("../../shaders/common.wgsl");
        let reduce = include_str!("../../shaders/reduce.wgsl");
        assert_eq!(wgsl_const(common, "SUMS_AT"), AUX_SUMS_AT);
        assert_eq!(wgsl_const(reduce, "SUMS_AT"), AUX_SUMS_AT);
        assert_eq!(wgsl_const(common, "AUX_SCALE"), AUX_SCALE);
        assert_eq!(wgsl_const(common, "AUX_FACTOR"), AUX_FACTOR);
        assert_eq!(wgsl_const(common, "AUX_STEP"), AUX_STEP);
        // reduce.wgsl reads and writes the words by number.
        for at in [
            AUX_CONTROL,
            AUX_SCALE,
            AUX_EXECUTED,
            AUX_SCALER_CONFIG,
            AUX_FACTOR,
            AUX_STEP,
        ] {
            let word = format!("aux[{at}]");
            assert!(reduce.contains(&word), "{word} in reduce.wgsl");
        }
    }
}
