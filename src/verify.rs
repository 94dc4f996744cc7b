//! The verifier: the same steps on the GPU and on the CPU reference, from the same inputs,
//! compared buffer by buffer (params and every state slot).
//!
//! ## Error measures and the tolerance
//! Per buffer it reports the max absolute error, the max relative error `|Δ|/|ref|`, the
//! max ulp distance, and the max *scaled* error `|Δ| / (ε₃₂ · max(|ref|, rms(ref)))`, with
//! ε₃₂ = 2⁻²³. Raw ulps and relative error explode where a value cancels to near zero
//! (a parameter crossing 0, a momentum changing sign), although the absolute error there is
//! as small as anywhere; the scaled error measures such elements against the buffer's RMS
//! magnitude instead.
//!
//! ## The CPU reference
//! The CPU side is [`CpuModel`], the whole-step model of an [`Optimizer`]: the plan's param
//! groups, clipping, state format and element types go through the same calls on both.
//! On a device that rounds WGSL's f32 operations correctly (lavapipe) the two agree bit
//! for bit, every error measure 0, except where they sum in a different order: clipping
//! by norm (the norm) and two-phase rules (LAMB's per-tensor norms).
//!
//! WGSL does not promise correctly rounded results: division may be off by 2.5 ulp, sqrt
//! may go through inverseSqrt, and `a*b + c` may be fused. The CPU model rounds each
//! operation correctly. So each step may differ by about one ulp per rounded operation on
//! the longest dependency chain ([`UpdateRule::rounding_ops`], division and sqrt counted
//! as 3), and the differences accumulate at most linearly through the state over steps:
//! the default tolerance is `rounding_ops × steps` scaled ulps. It is a bound derived from
//! the operation count, not fitted to a run; the measured figures are far below it.

use crate::arena::Arena;
use crate::clip::GradClip;
use crate::context::Context;
use crate::cpu_model::{CpuModel, HostLayout};
use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::optimizer::Optimizer;
use crate::quant::StateFormat;
use crate::rules::UpdateRule;

/// A small deterministic generator (SplitMix64): the same inputs on every machine.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

/// How far one buffer's GPU result is from the CPU reference.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BufferError {
    /// `params` or the state slot's name.
    pub name: String,
    /// Elements compared.
    pub len: usize,
    /// max |gpu − cpu|.
    pub max_abs: f64,
    /// max |gpu − cpu| / |cpu| over elements with cpu ≠ 0.
    pub max_rel: f64,
    /// max distance in units in the last place.
    pub max_ulps: u64,
    /// max |gpu − cpu| / (ε₃₂ · max(|cpu|, rms(cpu))): see the module docs.
    pub max_scaled: f64,
    /// Elements where exactly one side is NaN/inf, or both are but differently.
    pub nonfinite_mismatches: usize,
}

/// Distance in ulps between two finite f32 (0 for equal values, +0 and −0 included).
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Compares a GPU buffer with its CPU reference (of the same length).
pub fn compare(name: &str, gpu: &[f32], cpu: &[f32]) -> Result<BufferError> {
    if gpu.len() != cpu.len() {
        return Err(Error::LengthMismatch {
            what: format!("{name} (GPU result)"),
            got: gpu.len(),
            expected: cpu.len(),
        });
    }
    // The RMS of the finite reference values: a NaN or inf elsewhere in the buffer must not
    // turn every element's floor into its own magnitude.
    let finite = || cpu.iter().filter(|x| x.is_finite());
    let n = finite().count().max(1) as f64;
    let rms = (finite().map(|&x| (x as f64).powi(2)).sum::<f64>() / n).sqrt();
    let mut e = BufferError {
        name: name.into(),
        len: cpu.len(),
        ..Default::default()
    };
    for (&g, &c) in gpu.iter().zip(cpu) {
        if !g.is_finite() || !c.is_finite() {
            if g.to_bits() != c.to_bits() && !(g.is_nan() && c.is_nan()) {
                e.nonfinite_mismatches += 1;
            }
            continue;
        }
        let d = (g as f64 - c as f64).abs();
        e.max_abs = e.max_abs.max(d);
        if c != 0.0 {
            e.max_rel = e.max_rel.max(d / (c as f64).abs());
        }
        e.max_ulps = e.max_ulps.max(ulp_distance(g, c));
        let floor = (c as f64).abs().max(rms);
        if d > 0.0 {
            let scaled = if floor > 0.0 {
                d / (f32::EPSILON as f64 * floor)
            } else {
                f64::INFINITY
            };
            e.max_scaled = e.max_scaled.max(scaled);
        }
    }
    Ok(e)
}

/// The verifier's findings for one rule.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The rule's name.
    pub rule: String,
    /// Steps run.
    pub steps: u32,
    /// The allowed max scaled error: `rounding_ops × steps`.
    pub tolerance: f64,
    /// Params first, then each state slot.
    pub buffers: Vec<BufferError>,
}

impl VerifyReport {
    /// True when every buffer is within tolerance and no non-finite value differs.
    pub fn passed(&self) -> bool {
        self.buffers
            .iter()
            .all(|b| b.max_scaled <= self.tolerance && b.nonfinite_mismatches == 0)
    }

    /// The buffer with the largest scaled error.
    pub fn worst(&self) -> &BufferError {
        self.buffers
            .iter()
            .max_by(|a, b| a.max_scaled.total_cmp(&b.max_scaled))
            .expect("a report has at least the params buffer")
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} after {} steps: {} (tolerance {} scaled ulps)",
            self.rule,
            self.steps,
            if self.passed() { "PASS" } else { "FAIL" },
            self.tolerance
        )?;
        for b in &self.buffers {
            writeln!(
                f,
                "  {:<16} max_abs {:.3e}  max_rel {:.3e}  max_ulps {:>6}  scaled {:.2}{}",
                b.name,
                b.max_abs,
                b.max_rel,
                b.max_ulps,
                b.max_scaled,
                if b.nonfinite_mismatches > 0 {
                    format!("  NONFINITE MISMATCH x{}", b.nonfinite_mismatches)
                } else {
                    String::new()
                }
            )?;
        }
        Ok(())
    }
}

/// What to verify: param groups (each a rule configuration), the tensors (group index and
/// length, laid out in one [`Arena`]), the number of steps and the random seed.
#[derive(Clone, Debug)]
pub struct VerifyPlan<R: UpdateRule> {
    /// Param groups; all share the rule type and its state slots.
    pub groups: Vec<R>,
    /// (group index, length) per tensor.
    pub tensors: Vec<(usize, usize)>,
    /// Steps to run, each with fresh random gradients.
    pub steps: u32,
    /// Seed for params (uniform in [-1, 1)) and grads (uniform in [-1, 1)).
    pub seed: u64,
    /// Gradient clipping, set on the optimizer and on the model before the first step.
    pub clip: Option<GradClip>,
    /// How the optimizer stores state; with 8-bit state the model requantizes after each
    /// step as the device does, and the slots compared are what the codes stand for.
    pub state_format: StateFormat,
    /// Element types of the params and grads (mixed precision): random values are
    /// rounded to them; "params" compares the f32 master, and a second buffer checks that
    /// the 16-bit params are exactly the device's master rounded to nearest.
    pub dtypes: (Dtype, Dtype),
}

impl<R: UpdateRule> VerifyPlan<R> {
    /// One group, one flat tensor of `len` parameters.
    pub fn flat(rule: R, len: usize, steps: u32) -> Self {
        Self {
            groups: vec![rule],
            tensors: vec![(0, len)],
            steps,
            seed: 0x5eed,
            clip: None,
            state_format: StateFormat::F32,
            dtypes: (Dtype::F32, Dtype::F32),
        }
    }
}

/// Where tensor `i` of `arena` lives, for [`CpuModel`]: buffer 0 holds the params, buffer 1
/// the grads (the model refuses and rounds as the device does for that layout).
fn arena_layout(arena: &Arena, i: usize) -> HostLayout {
    let (p, g) = (arena.param(i), arena.grad(i));
    HostLayout {
        param_buffer: 0,
        param_bytes: p.buffer.size(),
        param_offset: p.offset,
        grad_buffer: 1,
        grad_bytes: g.buffer.size(),
        grad_offset: g.offset,
    }
}

/// Runs `plan` on the GPU (through [`Optimizer`], as a user would) and on the CPU reference
/// ([`CpuModel`], the same public calls on host vectors) and compares params and every state
/// slot.
pub fn verify<R: UpdateRule>(ctx: &Context, plan: &VerifyPlan<R>) -> Result<VerifyReport> {
    if plan.groups.is_empty() {
        return Err(Error::InvalidState(
            "verify: the plan has no param group".into(),
        ));
    }
    if let Some(&(g, _)) = plan.tensors.iter().find(|&&(g, _)| g >= plan.groups.len()) {
        return Err(Error::InvalidState(format!("verify: no param group {g}")));
    }
    let lens: Vec<usize> = plan.tensors.iter().map(|&(_, n)| n).collect();
    let (pd, gd) = plan.dtypes;
    let arena = Arena::with_dtypes(ctx, &lens, pd, gd)?;
    let mut opt = Optimizer::new(ctx, plan.groups[0].clone())?;
    let mut model = CpuModel::with_limits(plan.groups[0].clone(), ctx.limits())?;
    opt.set_state_format(plan.state_format)?;
    model.set_state_format(plan.state_format)?;
    // (device id, model id) per group and per tensor.
    let mut gids = vec![(opt.default_group(), model.default_group())];
    for g in &plan.groups[1..] {
        gids.push((opt.add_group(g.clone())?, model.add_group(g.clone())?));
    }
    let mut rng = Rng(plan.seed);
    let mut ids = Vec::new();
    for (i, &(g, n)) in plan.tensors.iter().enumerate() {
        let (dg, mg) = gids[g];
        let d = opt.add_tensor_as(dg, arena.param(i), pd, arena.grad(i), gd)?;
        let m = model.add_tensor_at(mg, arena_layout(&arena, i), &rng.vec(n, 1.0), (pd, gd))?;
        // The params as the model holds them (rounded to the param type).
        ctx.upload_as(&arena.param(i), pd, model.stored_params(m)?)?;
        ids.push((d, m));
    }
    if let Some(c) = plan.clip {
        opt.set_grad_clip(c)?;
        model.set_grad_clip(c)?;
    }
    opt.prepare()?;
    model.prepare()?;
    for _ in 0..plan.steps {
        let grads: Vec<Vec<f32>> = lens.iter().map(|&n| gd.round(&rng.vec(n, 1.0))).collect();
        for (i, g) in grads.iter().enumerate() {
            ctx.upload_as(&arena.grad(i), gd, g)?;
        }
        opt.step()?;
        model.step(&grads)?;
    }

    let mut gpu_all = Vec::new();
    let mut cpu_all = Vec::new();
    let (mut bits, mut rounded) = (Vec::new(), Vec::new());
    for (i, &(d, m)) in ids.iter().enumerate() {
        let master = opt.read_params(d)?;
        if pd != Dtype::F32 {
            bits.extend(ctx.download_as(&arena.param(i), pd)?);
            rounded.extend(pd.round(&master));
        }
        gpu_all.extend(master);
        cpu_all.extend_from_slice(model.params(m)?);
    }
    let mut buffers = vec![compare("params", &gpu_all, &cpu_all)?];
    if pd != Dtype::F32 {
        buffers.push(compare(&format!("params as {pd:?}"), &bits, &rounded)?);
    }
    for (k, name) in plan.groups[0].state_slots().iter().enumerate() {
        let (mut g, mut c) = (Vec::new(), Vec::new());
        for &(d, m) in &ids {
            g.extend(opt.read_state(d, k)?);
            c.extend_from_slice(model.state(m, k)?);
        }
        buffers.push(compare(name, &g, &c)?);
    }
    let ops = plan
        .groups
        .iter()
        .map(|g| g.rounding_ops())
        .max()
        .unwrap_or(1);
    Ok(VerifyReport {
        rule: plan.groups[0].name(),
        steps: plan.steps,
        tolerance: ops as f64 * plan.steps.max(1) as f64,
        buffers,
    })
}

/// Where `got` differs from `want` bit for bit (any NaN equals any NaN; +0 and −0 differ):
/// `None` when they are identical, else the number of differing elements and the first of
/// them with both values (or the lengths, when they differ).
pub fn bit_difference(got: &[f32], want: &[f32]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("lengths {} vs {}", got.len(), want.len()));
    }
    let same = |a: f32, b: f32| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    let mut bad = (0..got.len()).filter(|&i| !same(got[i], want[i]));
    let first = bad.next()?;
    let (a, b) = (got[first], want[first]);
    Some(format!(
        "{} elements differ, the first [{first}]: {a:e} ({:#010x}) vs {b:e} ({:#010x})",
        1 + bad.count(),
        a.to_bits(),
        b.to_bits()
    ))
}

#[cfg(test)]
mod tests {
    use super::bit_difference;

    #[test]
    fn bit_difference_counts_bits_not_values() {
        assert_eq!(bit_difference(&[1.0, f32::NAN], &[1.0, -f32::NAN]), None);
        assert_eq!(
            bit_difference(&[0.0, 2.0, 3.0], &[-0.0, 2.0, 3.5]).as_deref(),
            Some("2 elements differ, the first [0]: 0e0 (0x00000000) vs -0e0 (0x80000000)")
        );
        assert_eq!(
            bit_difference(&[1.0], &[1.0, 2.0]).as_deref(),
            Some("lengths 1 vs 2")
        );
        assert!(bit_difference(&[f32::NAN], &[1.0]).is_some());
        assert!(bit_difference(&[1.0], &[1.0 + f32::EPSILON]).is_some());
    }
}
