//! The device side of a step: what the device holds ([`state`]), how dispatches are bound
//! ([`bind`]), how a step is recorded ([`record`]) and what the loss scaler skipped
//! ([`scaler`]). It reads decisions from the plan and the kernel variants.

pub(crate) mod bind;
pub(crate) mod record;
pub(crate) mod scaler;
pub(crate) mod state;
