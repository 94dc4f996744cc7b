//! The plan of a step, decided on the host: which features are on ([`settings`]), where
//! each element goes ([`layout`]), what each device scratch word is ([`aux`]). The layout
//! and aux map never name a wgpu device, queue or buffer.

pub(crate) mod aux;
pub(crate) mod layout;
pub(crate) mod settings;
