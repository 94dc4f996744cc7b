//! Which features are on, and are they valid? The setters of the step's features and their
//! checks; they decide nothing about layout or kernels and touch no device buffer.

use crate::clip::GradClip;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use crate::quant::StateFormat;
use crate::registry;
use crate::rules::UpdateRule;
use crate::scaler::GradScaler;

/// The step's features, one value: what the setters below change and the plan reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StepSettings {
    /// Gradient clipping ([`GradClip`]), or none.
    pub clip: Option<GradClip>,
    /// Loss scaling ([`GradScaler`]), or none.
    pub scaler: Option<GradScaler>,
    /// f32 or 8-bit block-wise state.
    pub state_format: StateFormat,
    /// bf16 params without a master copy, rounded stochastically with this seed.
    pub stochastic: Option<u32>,
    /// Steps `step_many` records per command buffer: the first size of the ring of
    /// per-step scalar slots.
    pub steps_per_submission: u32,
    /// One dispatch per tensor piece (the bench's naive baseline).
    pub per_tensor: bool,
}

impl StepSettings {
    /// Gradients are clamped by value in this step ([`GradClip::value`] is set): the
    /// kernels take it as a constant ([`crate::KernelVariant::clip_value`]).
    pub(crate) fn clip_value(&self) -> bool {
        self.clip.is_some_and(|c| c.value.is_some())
    }

    /// The scalars of step `t` of `rules` under these settings (`skipped`, `reach`: loss
    /// scaling's candidates, 0 without it).
    pub(crate) fn scalars<'a, R>(
        &self,
        rules: &'a [R],
        t: u64,
        skipped: u64,
        reach: u64,
    ) -> crate::plan::scalars::StepScalars<'a, R> {
        crate::plan::scalars::StepScalars {
            rules,
            t,
            skipped,
            reach,
            sr_seed: self.stochastic,
            q8_seed: self.state_format.stochastic_seed(),
            clip: self.clip,
            scaler: self.scaler,
        }
    }
}

impl Default for StepSettings {
    fn default() -> Self {
        StepSettings {
            clip: None,
            scaler: None,
            state_format: StateFormat::F32,
            stochastic: None,
            steps_per_submission: 16,
            per_tensor: false,
        }
    }
}

impl<R: UpdateRule> Optimizer<R> {
    /// How many steps [`Optimizer::step_many`] records into one command buffer (default
    /// 16), and the ring of per-step scalar slots' first size. [`Optimizer::record_step`]
    /// may record any number of steps into one encoder, each with its own scalars; with
    /// loss scaling, at most as many as the scaler's candidates cover (see
    /// [`crate::scaler`]). Errors ([`Error::InvalidState`]): `k` outside 1..=1024 (the ring
    /// of scalar slots is allocated up front), or with loss scaling a `k` beyond what the
    /// uniform limit allows once the optimizer is prepared.
    pub fn set_steps_per_submission(&mut self, k: u32) -> Result<()> {
        check_steps_per_submission(k)?;
        if let Some(p) = self
            .plan
            .as_ref()
            .filter(|p| p.shape.lag > 0 && k >= p.shape.lag)
        {
            return Err(Error::InvalidState(format!(
                "loss scaling covers at most {} steps per submission here, not {k}",
                p.shape.lag - 1
            )));
        }
        self.settings.steps_per_submission = k;
        Ok(())
    }

    /// How many steps [`Optimizer::step_many`] records into one command buffer.
    pub fn steps_per_submission(&self) -> u32 {
        self.settings.steps_per_submission
    }

    /// One dispatch per tensor instead of batching: the naive baseline the bench compares
    /// against. Never faster; there for measurement.
    pub fn set_dispatch_per_tensor(&mut self, on: bool) -> Result<()> {
        self.frozen("set_dispatch_per_tensor")?;
        self.settings.per_tensor = on;
        Ok(())
    }

    /// Stores state slots as 8-bit block-wise codes ([`StateFormat::Blockwise8`], see
    /// [`crate::quant`]) for tensors of at least `min_len` elements; before the first step.
    /// Such tensors must start at multiples of 4 elements (an [`crate::Arena`]'s do), and each is
    /// one dispatch. Two-phase rules (LAMB) keep f32 state.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, Optimizer, StateFormat, TensorId};
    /// let ctx = Context::new()?;
    /// let arena = Arena::new(&ctx, &[1 << 16, 100])?; // the small one keeps f32 state
    /// let mut opt = Optimizer::new(&ctx, Adam::default())?;
    /// opt.set_state_format(StateFormat::blockwise8())?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// ctx.upload(&arena.grad(0), &vec![0.5; 1 << 16])?;
    /// opt.step()?;
    /// assert!(opt.is_quantized(TensorId(0)) && !opt.is_quantized(TensorId(1)));
    /// let (codes, absmax) = opt.read_state_q8(TensorId(0), 0)?; // exp_avg: 1 byte each
    /// assert_eq!((codes.len(), absmax.len()), (1 << 16, 256));
    /// assert_eq!(absmax[0], 0.05); // (1 - beta1) * 0.5, the block's largest |m|
    /// # Ok(()) }
    /// ```
    pub fn set_state_format(&mut self, format: StateFormat) -> Result<()> {
        self.frozen("set_state_format")?;
        if format != StateFormat::F32 && self.groups[0].kernel().two_phase {
            return Err(Error::InvalidState(format!(
                "{} is a two-phase rule; 8-bit state is not supported for it",
                self.groups[0].name()
            )));
        }
        // Tensors already added must suit it (8-bit state needs vector-aligned tensors).
        for (i, t) in self.tensors.iter().enumerate() {
            let (p, g) = (
                crate::optimizer::span(&t.param, t.dtypes.0),
                crate::optimizer::span(&t.grad, t.dtypes.1),
            );
            registry::check_vec4(i, &p, &g, format.quantizes(t.param.len))?;
        }
        self.settings.state_format = format;
        Ok(())
    }

    /// How this optimizer stores state.
    pub fn state_format(&self) -> StateFormat {
        self.settings.state_format
    }

    /// Clips gradients on the device in every step (see [`GradClip`]). Turning clipping on
    /// must happen before the first step (it adds a pass); its values may change later and
    /// apply from the next submission.
    pub fn set_grad_clip(&mut self, clip: GradClip) -> Result<()> {
        validate_clip(&clip)?;
        let on = clip != GradClip::default();
        // The reduction pass exists (or not) since the first step: clip or scaler were on.
        if self.started && self.settings.clip.is_none() && self.settings.scaler.is_none() {
            if on {
                return Err(Error::InvalidState(
                    "gradient clipping must be enabled before the first step".into(),
                ));
            }
        } else {
            self.settings.clip = Some(clip);
        }
        Ok(())
    }

    /// Loss scaling with the inf/NaN skip, on the device (see [`crate::scaler`]): every
    /// step unscales the gradients by the device's scale, skips itself if any gradient of
    /// any tensor is non-finite (params, state and the rule's step count untouched), and
    /// updates the scale as torch's `GradScaler.update`. Must be enabled before the first
    /// step (it adds passes); its factors may change later (the scale itself carries on;
    /// a different `init_scale` is then refused).
    /// Scale the loss by [`Optimizer::loss_scale_buffer`] in your backward pass.
    ///
    /// ```
    /// # fn main() -> gpu_optim::Result<()> {
    /// use gpu_optim::{Adam, Arena, Context, GradScaler, Optimizer};
    /// let ctx = Context::new()?;
    /// let arena = Arena::new(&ctx, &[1000])?;
    /// let mut opt = Optimizer::new(&ctx, Adam::default())?;
    /// opt.add_arena(&arena, opt.default_group())?;
    /// opt.set_grad_scaler(GradScaler::default())?;
    /// // A backward pass that overflowed: the step is skipped and the scale halves.
    /// ctx.upload(&arena.grad(0), &vec![f32::INFINITY; 1000])?;
    /// opt.step()?;
    /// assert_eq!(opt.applied_steps()?, 0);
    /// assert_eq!(opt.loss_scale()?, 32768.0);
    /// // A clean one (grads scaled by 32768, as the loss was) is applied, unscaled.
    /// ctx.upload(&arena.grad(0), &vec![32768.0; 1000])?;
    /// opt.step()?;
    /// assert_eq!(opt.applied_steps()?, 1);
    /// # Ok(()) }
    /// ```
    pub fn set_grad_scaler(&mut self, scaler: GradScaler) -> Result<()> {
        scaler.validate()?;
        if self.started {
            check_running_scaler(self.settings.scaler.as_ref(), &scaler)?;
        }
        self.settings.scaler = Some(scaler);
        Ok(())
    }

    /// bf16 params without an f32 master copy: each step widens them, updates in f32 and
    /// rounds back stochastically (up in magnitude with probability equal to the dropped
    /// fraction: unbiased, so updates smaller than half a bf16 ulp still move the params
    /// on average, where round-to-nearest would drop them every time). Saves the master's
    /// 4 bytes per param of memory and 8 of traffic. The random bits are a hash of the
    /// element's index in its buffer, the step and `seed`
    /// ([`crate::half::stochastic_bits`]): runs are reproducible. f16 params keep their
    /// master. Before the first step.
    pub fn set_stochastic_rounding(&mut self, seed: Option<u32>) -> Result<()> {
        self.frozen("set_stochastic_rounding")?;
        self.settings.stochastic = seed;
        Ok(())
    }
}

/// The most steps [`Optimizer::set_steps_per_submission`] accepts: the ring of per-step
/// scalar slots, a few hundred bytes each, is allocated up front, and more steps per
/// command buffer gain nothing measurable.
pub const MAX_STEPS_PER_SUBMISSION: u32 = 1024;

/// `steps_per_submission`: 1 to [`MAX_STEPS_PER_SUBMISSION`].
pub(crate) fn check_steps_per_submission(k: u32) -> Result<()> {
    match k {
        1..=MAX_STEPS_PER_SUBMISSION => Ok(()),
        _ => Err(Error::InvalidState(format!(
            "steps_per_submission must be in 1..={MAX_STEPS_PER_SUBMISSION}, not {k}"
        ))),
    }
}

/// A scaler setting once the optimizer runs: loss scaling must already be on, and the
/// scale is the device's own by then, so a different `init_scale` would be dropped: refused.
pub(crate) fn check_running_scaler(now: Option<&GradScaler>, new: &GradScaler) -> Result<()> {
    match now {
        None => Err(Error::InvalidState(
            "loss scaling must be enabled before the first step".into(),
        )),
        Some(now) if now.init_scale != new.init_scale => Err(Error::InvalidState(format!(
            "init_scale cannot change once loss scaling runs (the scale is the device's: \
             {} at the start); change growth_factor, backoff_factor or growth_interval only",
            now.init_scale
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks a clipping setting: each bound set must be finite and > 0.
pub(crate) fn validate_clip(clip: &GradClip) -> Result<()> {
    for (name, v) in [("max_norm", clip.max_norm), ("value", clip.value)] {
        if let Some(v) = v {
            crate::rules::check("grad_clip", name, v as f64, v > 0.0, "> 0")?;
        }
    }
    Ok(())
}
