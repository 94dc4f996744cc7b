//! The plan of a step, decided on the host: which features are on ([`settings`]), where
//! each element goes ([`layout`]), in which order the passes run ([`program`]), what goes
//! in a step's uniform slot ([`scalars`]) and what each device scratch word is ([`aux`]).
//! Nothing here but the settings' setters names a wgpu device, queue or buffer.

pub(crate) mod aux;
pub(crate) mod layout;
pub(crate) mod program;
pub(crate) mod scalars;
pub(crate) mod settings;
