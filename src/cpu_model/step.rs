//! The same step on the host: [`CpuModel::step`] runs the device's step program
//! (`plan/program.rs`) pass by pass, each pass the f32 operations of its kernel through
//! each rule's twin. It registers nothing and decides no order of its own.

use super::CpuModel;
use crate::clip::GradStats;
use crate::error::{Error, Result};
use crate::half::{self, Dtype};
use crate::plan::program::{Pass, StepProgram};
use crate::quant::Q8State;
use crate::registry;
use crate::rules::{signed_slots, UpdateRule, MAX_SLOTS};

/// What the reduction pass leaves for the update: the factors it applies to a gradient.
#[derive(Clone, Copy)]
struct GradFactors {
    /// 1/scale (loss scaling).
    inv: f32,
    /// The clip coefficient, and inv × coef.
    coef: f32,
    both: f32,
    /// Clipping's value bound (0: none).
    value: f32,
}

impl<R: UpdateRule> CpuModel<R> {
    /// One step with `grads[i]` for tensor `i` (as the grad buffers hold them: 16-bit
    /// grads are rounded to their type here). [`crate::Optimizer::step`]'s passes in its
    /// order: the gradient reduction (clipping, loss scaling's non-finite check), a
    /// two-phase rule's first pass, the update (both skipped as a whole on a non-finite
    /// gradient with a loss scaler), the scale update; then the schedules move on.
    /// Errors: the device's refusals at its first step, or grads of the wrong number or
    /// lengths (nothing changes then).
    pub fn step(&mut self, grads: &[Vec<f32>]) -> Result<()> {
        if grads.len() != self.tensors.len() {
            return Err(Error::LengthMismatch {
                what: "grads (tensors)".into(),
                got: grads.len(),
                expected: self.tensors.len(),
            });
        }
        for (i, (g, t)) in grads.iter().zip(&self.tensors).enumerate() {
            if g.len() != t.len {
                return Err(Error::LengthMismatch {
                    what: format!("tensor {i} grads"),
                    got: g.len(),
                    expected: t.len,
                });
            }
        }
        self.prepare()?;
        // A checkpoint may carry any step count: its last step is refused, not wrapped.
        let t = self.t.checked_add(1).ok_or_else(|| {
            Error::InvalidState("the step count is at its maximum (u64::MAX)".into())
        })?;
        let g: Vec<Vec<f32>> = grads
            .iter()
            .zip(&self.tensors)
            .map(|(g, x)| x.dtypes.1.round(g))
            .collect();
        let program = StepProgram::new(
            self.reduction,
            self.groups[0].kernel().two_phase,
            self.scaler.is_some(),
        );
        let mut skip = false;
        let mut factors = GradFactors {
            inv: 1.0,
            coef: 1.0,
            both: 1.0,
            value: 0.0,
        };
        // The gradients as the update kernel sees them, once per step (after the
        // reduction, which gives their factors).
        let mut clipped: Option<Vec<Vec<f32>>> = None;
        // A two-phase rule's per-tensor sums, from its first pass.
        let mut sums = vec![[0f32; 2]; self.tensors.len()];
        for pass in &program.0 {
            match pass {
                Pass::GradNorm => {
                    let (f, stats) = self.grad_norm(&g);
                    factors = f;
                    self.stats = Some(stats);
                    if self.scaler.is_some() {
                        self.executed += 1;
                        if stats.nonfinite > 0 {
                            self.skipped += 1;
                            skip = true;
                        }
                    }
                }
                Pass::Measure if !skip => {
                    let c = clipped.get_or_insert_with(|| self.clip_all(&g, factors));
                    for (i, ci) in c.iter().enumerate() {
                        sums[i] = self.measure(i, ci, t);
                    }
                }
                Pass::Update if !skip => {
                    let c = clipped.get_or_insert_with(|| self.clip_all(&g, factors));
                    for (i, ci) in c.iter().enumerate() {
                        self.update(i, ci, t, sums[i]);
                    }
                }
                Pass::ScalerUpdate => {
                    if let Some(s) = &mut self.scaler {
                        s.update(skip);
                    }
                }
                Pass::Measure | Pass::Update => {}
            }
        }
        registry::advance_schedules(&mut self.groups, &mut self.schedules);
        self.t = t;
        Ok(())
    }

    /// The reduction pass: non-finite count and norm of the unscaled, value-clipped grads
    /// (shaders/common.wgsl `grad_sumsq`, shaders/reduce.wgsl `total`), and the factors
    /// the update applies.
    fn grad_norm(&self, g: &[Vec<f32>]) -> (GradFactors, GradStats) {
        let clip = self.clip.unwrap_or_default();
        let value = clip.value.unwrap_or(0.0);
        let inv = self.scaler.as_ref().map_or(1.0, |s| 1.0 / s.scale);
        let mut sum = 0f64;
        let mut nonfinite = 0u32;
        for &x in g.iter().flatten() {
            if !x.is_finite() {
                nonfinite += 1;
            }
            let mut y = x * inv;
            if value > 0.0 {
                y = clamp_keep_nan(y, value);
            }
            sum += (y as f64) * (y as f64);
        }
        let norm = (sum as f32).sqrt();
        let coef = match clip.max_norm {
            Some(m) => min_keep_nan(1.0, m / (norm + 1e-6)),
            None => 1.0,
        };
        let factors = GradFactors {
            inv,
            coef,
            both: inv * coef,
            value,
        };
        (factors, GradStats { norm, nonfinite })
    }

    /// Every gradient as the update kernel sees it (`clipped` in common.wgsl): unscaled,
    /// clamped by value, scaled by the clip coefficient, when the reduction runs.
    fn clip_all(&self, g: &[Vec<f32>], f: GradFactors) -> Vec<Vec<f32>> {
        let clip = |gi: f32| {
            if !self.reduction {
                gi
            } else if f.value > 0.0 {
                clamp_keep_nan(gi * f.inv, f.value) * f.coef
            } else {
                gi * f.both
            }
        };
        g.iter()
            .map(|t| t.iter().map(|&gi| clip(gi)).collect())
            .collect()
    }

    /// The rule's step number: steps applied so far, this one included.
    fn applied(&self, t: u64) -> u64 {
        t - self.skipped
    }

    /// A two-phase rule's first pass over tensor `i` with its clipped gradient: updates
    /// its state, returns its two sums (the device sums in f32 in a fixed tree order; f64
    /// here, rounded once).
    fn measure(&mut self, i: usize, clipped: &[f32], t: u64) -> [f32; 2] {
        let h = self.groups[self.tensors[i].group].hyper(self.applied(t));
        let x = &mut self.tensors[i];
        let rule = &self.groups[x.group];
        let slots = x.state.len();
        let p = x.master.as_ref().unwrap_or(&x.values);
        let mut s = [0f32; MAX_SLOTS];
        let mut acc = [0f64; 2];
        for e in 0..x.len {
            load(&mut s, &x.state, e);
            let c = rule.measure(&h, p[e], clipped[e], &mut s[..slots]);
            store(&s, &mut x.state, e);
            acc[0] += c[0] as f64;
            acc[1] += c[1] as f64;
        }
        [acc[0] as f32, acc[1] as f32]
    }

    /// The update pass over tensor `i` with its clipped gradient: every element through
    /// the rule's twin, 8-bit state requantized, 16-bit params rounded (to nearest from
    /// the master, or stochastically).
    fn update(&mut self, i: usize, clipped: &[f32], t: u64, sums: [f32; 2]) {
        let h = self.groups[self.tensors[i].group].hyper(self.applied(t));
        let sr_key = self.stochastic;
        let q8_seed = self.state_format.stochastic_seed();
        let x = &mut self.tensors[i];
        let rule = &self.groups[x.group];
        let slots = x.state.len();
        let mut p: Vec<f32> = match &x.master {
            Some(m) => m.clone(),
            None => x.values.clone(),
        };
        // Element e's state in registers, as the kernel holds it.
        let mut s = [0f32; MAX_SLOTS];
        for e in 0..x.len {
            load(&mut s, &x.state, e);
            p[e] = rule.apply(&h, p[e], clipped[e], &mut s[..slots], sums);
            store(&s, &mut x.state, e);
        }
        if x.q8.is_some() {
            let signed = signed_slots(rule);
            let q = Q8State::quantize_at(&x.state, &signed, q8_seed.map(|sd| (t, sd)));
            x.state = q.dequantize(&signed);
            x.q8 = Some(q);
        }
        let pd = x.dtypes.0;
        match (&mut x.master, pd, sr_key) {
            (Some(m), _, _) => {
                x.values = pd.round(&p);
                *m = p;
            }
            (None, Dtype::Bf16, Some(seed)) => {
                let at = x.layout.param_offset;
                x.values = p
                    .iter()
                    .enumerate()
                    .map(|(e, &v)| {
                        let r = half::stochastic_bits(at + e as u64, t, seed);
                        Dtype::Bf16.decode(half::f32_to_bf16_stochastic(v, r))
                    })
                    .collect();
            }
            _ => x.values = p,
        }
    }
}

fn load(s: &mut [f32; MAX_SLOTS], st: &[Vec<f32>], e: usize) {
    for (r, v) in s.iter_mut().zip(st) {
        *r = v[e];
    }
}

fn store(s: &[f32; MAX_SLOTS], st: &mut [Vec<f32>], e: usize) {
    for (r, v) in s.iter().zip(st) {
        v[e] = *r;
    }
}

/// torch's `clamp(x, -v, v)`: NaN stays NaN.
fn clamp_keep_nan(x: f32, v: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.clamp(-v, v)
    }
}

/// `min(a, b)` where a NaN operand gives NaN (torch's `clamp(max=1)` of a NaN coefficient).
fn min_keep_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}
