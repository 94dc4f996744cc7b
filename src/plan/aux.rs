//! What is each device scratch word? The layout of `aux`, the device buffer the reductions,
//! the loss scaler and the update share (shaders/reduce.wgsl names the same words).

/// Layout of `aux` (see shaders/reduce.wgsl): control words, then per-tensor sums.
pub(crate) const AUX_SUMS_AT: u64 = 16;
/// The loss scaler's words in `aux`: scale, growth tracker, found_inf, steps executed,
/// steps skipped.
pub(crate) const AUX_SCALE: u64 = 5;
pub(crate) const AUX_EXECUTED: u64 = 8;
/// Host-written scaler settings: on, growth_factor, backoff_factor, growth_interval.
pub(crate) const AUX_SCALER_CONFIG: u64 = 10;
