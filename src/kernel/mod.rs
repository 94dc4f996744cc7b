//! The kernels: which WGSL text runs for a configuration ([`variant`]) and the pipelines
//! compiled from it ([`cache`]). It reads no optimizer state and binds no buffer.

pub(crate) mod cache;
pub mod variant;

use crate::half::Dtype;
use crate::rules::Kernel;
pub use variant::{FixedWords, KernelVariant, Q8Kernel, MAX_LAG};

/// Number of bindings in bind group 0, the dispatch's (`shaders/common.wgsl`; 3 and 9 are
/// 8-bit state's quantization map and absmax, `shaders/state_q8.wgsl`).
pub(crate) const BINDINGS: u32 = 10;
/// Binding of 8-bit state's quantization map, a uniform.
pub(crate) const QMAP_BINDING: u32 = 3;
/// Binding of the f32 master copy of 16-bit params: only in the mixed-precision layout
/// (a ninth storage buffer, more than WebGPU's default limit of 8), the one after
/// [`BINDINGS`] (`shaders/parts/param_master_*.wgsl` declare it; a test holds them to it).
#[cfg(test)]
pub(crate) const MASTER_BINDING: u32 = BINDINGS;
/// Binding of the per-dispatch geometry, a uniform.
pub(crate) const LAUNCH_BINDING: u32 = 8;
/// The bind group of the per-step scalars: one uniform (binding 0) in the optimizer's
/// ring of step slots, the slot chosen by its dynamic offset. Set once per step; the
/// dispatches' own bindings are group 0.
pub(crate) const HYPER_GROUP: u32 = 1;

/// The f32-only variant (tiles, no features) of `kernel` at `width` with `groups` groups.
fn plain(kernel: &Kernel, width: u32, groups: u32) -> KernelVariant {
    KernelVariant {
        kernel: *kernel,
        width,
        slots: 0,
        workgroup: 256,
        clip: false,
        clip_value: false,
        dense: false,
        groups,
        q8: None,
        lag: 0,
        dtypes: (Dtype::F32, Dtype::F32),
        sr: false,
        fixed: FixedWords::NONE,
        shifted: true,
        tail: width == 4,
        exact: false,
    }
}

/// The full WGSL of a rule kernel with f32 state at vector width 4 or 1. Public so tools
/// (and the tests) can validate it with naga; [`KernelVariant::wgsl`] gives any variant.
///
/// `groups` sizes the uniform array of per-group scalars (`GROUPS` in common.wgsl).
pub fn shader_source(kernel: &Kernel, width: u32, groups: u32) -> String {
    plain(kernel, width, groups).source()
}

/// The kernel (vector width 4) for params and grads of the given element types; 16-bit
/// params are updated through an f32 master copy.
pub fn shader_source_typed(kernel: &Kernel, groups: u32, param: Dtype, grad: Dtype) -> String {
    KernelVariant {
        dtypes: (param, grad),
        ..plain(kernel, 4, groups)
    }
    .source()
}

/// The same kernel with 8-bit block-wise state (vector width 4), requantized
/// stochastically.
pub fn shader_source_q8(kernel: &Kernel, groups: u32) -> String {
    KernelVariant {
        q8: Some(Q8Kernel {
            signed: 0,
            stochastic: true,
        }),
        ..plain(kernel, 4, groups)
    }
    .source()
}

#[cfg(test)]
mod tests {
    use super::variant::tests::parse;
    use super::*;
    use crate::plan::layout::{LaunchInfo, Tile};
    use crate::rules::{AnyRule, Hyper, UpdateRule};

    /// The host's Pod structs have the WGSL structs' sizes (naga's layout rules).
    #[test]
    fn host_structs_match_wgsl_layout() {
        let module = parse(&shader_source(&AnyRule::catalog()[0].kernel(), 4, 1));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let size = |name: &str| {
            let (h, _) = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap();
            layouter[h].size as usize
        };
        assert_eq!(size("Hyper"), std::mem::size_of::<Hyper>());
        assert_eq!(size("Tile"), std::mem::size_of::<Tile>());
        assert_eq!(size("Launch"), std::mem::size_of::<LaunchInfo>());
    }
}
