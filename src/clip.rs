//! Gradient clipping and the gradient statistics the step's reduction produces, with the
//! CPU twin of what the device does.

/// Gradient clipping inside the step, on the device (torch's `clip_grad_value_` and
/// `clip_grad_norm_` with norm_type 2, applied to the raw gradients before the rule's
/// `maximize` / weight decay). `Default` is no clipping.
///
/// With either set, each step first reduces the gradients (one extra read of them) to
/// per-tensor and global sums of squares in a fixed order, then the update kernel clamps
/// each gradient to ±`value` and scales it by min(1, max_norm / (norm + 1e-6)).
///
/// Non-finite gradients do what they do in torch (with `error_if_nonfinite=False`): the
/// clamp keeps NaN and turns ±inf into ±`value`; the norm includes every gradient, so it
/// is NaN if one (value-clipped) gradient is NaN, else inf if one is infinite. An infinite
/// norm makes the coefficient 0 (finite gradients become 0, infinite ones NaN), a NaN norm
/// makes it NaN (every gradient NaN). Non-finite gradients are also counted
/// ([`crate::Optimizer::grad_stats`]). With loss scaling ([`crate::GradScaler`]) a step
/// with a non-finite gradient is skipped instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradClip {
    /// Clip the global 2-norm of all gradients to this (`None`: measure only).
    pub max_norm: Option<f32>,
    /// Clamp every gradient element to ±value first.
    pub value: Option<f32>,
}

/// What the last clipped step's reduction found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradStats {
    /// Global 2-norm of the (value-clipped) gradients, before norm clipping, as torch's
    /// `clip_grad_norm_` returns it: NaN if one of them is NaN, else inf if one is
    /// infinite (or the sum of squares overflows f32).
    pub norm: f32,
    /// Number of NaN or infinite gradient elements (before value clipping).
    pub nonfinite: u32,
}

/// The CPU twin of the device's clipping: clamps every gradient to ±value (NaN stays NaN),
/// then scales all of them by min(1, max_norm / (norm + 1e-6)) where norm is the 2-norm of
/// all of them, non-finite ones included (torch's semantics: see [`GradClip`]); a NaN
/// coefficient stays NaN. Returns what [`crate::Optimizer::grad_stats`] reports. The
/// device sums in f32 in a fixed tree order, this in f64, so a finite scale may differ in
/// its last bit.
pub fn cpu_grad_clip(grads: &mut [Vec<f32>], clip: &GradClip) -> GradStats {
    let value = clip.value.unwrap_or(0.0);
    let mut sum = 0f64;
    let mut nonfinite = 0u32;
    for g in grads.iter_mut().flat_map(|v| v.iter_mut()) {
        nonfinite += !g.is_finite() as u32;
        if value > 0.0 {
            *g = g.clamp(-value, value);
        }
        sum += (*g as f64) * (*g as f64);
    }
    let norm = (sum as f32).sqrt();
    let scale = match clip.max_norm {
        Some(m) => {
            let c = m / (norm + 1e-6);
            // torch's clamp(max=1) keeps NaN; f32::min would return 1.
            if c.is_nan() {
                c
            } else {
                c.min(1.0)
            }
        }
        None => 1.0,
    };
    for g in grads.iter_mut().flat_map(|v| v.iter_mut()) {
        *g *= scale;
    }
    GradStats { norm, nonfinite }
}
