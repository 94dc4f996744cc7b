//! In which order do a step's passes run? The one place that states it: `device/record.rs`
//! replays a [`StepProgram`] into a compute pass and `cpu_model/step.rs` runs it on the
//! host. It says what runs, never how (no device, no buffer, no arithmetic).

/// One pass of a step over every registered tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The gradient's sum of squares per tile, reduced per tensor and over all tensors in a
    /// fixed order: the clip coefficient, the norm and the non-finite count (clipping, or
    /// loss scaling's found-inf check: torch's `clip_grad_norm_`, `_amp_foreach_non_finite_check_and_unscale_`).
    GradNorm,
    /// A two-phase rule's first pass (LAMB): updates the state, sums two quantities per
    /// tensor.
    Measure,
    /// The rule's update of every element (skipped as a whole, with a loss scaler, on a
    /// non-finite gradient).
    Update,
    /// The loss scale's growth or backoff (torch's `_amp_update_scale_`).
    ScalerUpdate,
}

/// The passes of one step, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StepProgram(pub Vec<Pass>);

impl StepProgram {
    /// `grad_norm`: clipping or loss scaling is on (the reduction runs); `two_phase`: the
    /// rule has a first pass; `scaler`: loss scaling is on.
    pub fn new(grad_norm: bool, two_phase: bool, scaler: bool) -> Self {
        let mut passes = Vec::with_capacity(4);
        if grad_norm || scaler {
            passes.push(Pass::GradNorm);
        }
        if two_phase {
            passes.push(Pass::Measure);
        }
        passes.push(Pass::Update);
        if scaler {
            passes.push(Pass::ScalerUpdate);
        }
        StepProgram(passes)
    }

    /// Whether `pass` runs.
    pub fn has(&self, pass: Pass) -> bool {
        self.0.contains(&pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order: the reduction before the update reads its coefficient, the first pass of
    /// a two-phase rule before its update, the scale update last (it reads the step's
    /// found-inf).
    #[test]
    fn passes_in_order() {
        use Pass::*;
        assert_eq!(StepProgram::new(false, false, false).0, [Update]);
        assert_eq!(StepProgram::new(true, false, false).0, [GradNorm, Update]);
        assert_eq!(
            StepProgram::new(true, true, true).0,
            [GradNorm, Measure, Update, ScalerUpdate]
        );
        assert_eq!(
            StepProgram::new(false, false, true).0,
            [GradNorm, Update, ScalerUpdate]
        );
    }
}
