//! The plan of a step, decided on the host before any buffer exists: where each element
//! goes ([`layout`]). Never names a wgpu device, queue or buffer.

pub(crate) mod layout;
