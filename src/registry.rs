//! What the caller registers, and the rules it must satisfy: a tensor's ranges (inside
//! their buffers, equal lengths, vector alignment where 16-bit data or 8-bit state needs
//! it, no overlap with themselves or other tensors) and the param groups' rules and lr
//! schedules. Pure functions over buffer identities, offsets and groups, shared by the
//! device [`crate::Optimizer`] and the host [`crate::CpuModel`] so that both accept and
//! refuse the same calls; it makes no wgpu call.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::rules::UpdateRule;
use crate::schedule::LrSchedule;

/// Index of a param group in its optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub usize);

/// Index of a registered tensor in its optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

/// One range of a tensor: which buffer (any identity: a `wgpu::Buffer`, a host id), the
/// buffer's size in bytes, and the range in elements of `dtype`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span<'a, B> {
    pub buffer: &'a B,
    pub bytes: u64,
    pub offset: u64,
    pub len: usize,
    pub dtype: Dtype,
}

impl<B: PartialEq> Span<'_, B> {
    /// Refuses a range that ends past its buffer.
    pub fn check_inside(&self, what: &dyn std::fmt::Display) -> Result<()> {
        let end = self
            .offset
            .checked_add(self.len as u64)
            .and_then(|e| e.checked_mul(self.dtype.size()))
            .unwrap_or(u64::MAX);
        if end > self.bytes {
            return Err(Error::BadRange {
                what: what.to_string(),
                why: format!(
                    "elements {}..{} end at byte {end}, past the buffer's {} bytes",
                    self.offset,
                    self.offset.saturating_add(self.len as u64),
                    self.bytes
                ),
            });
        }
        Ok(())
    }

    /// Whether two ranges share a byte.
    fn overlaps(&self, b: &Span<'_, B>) -> bool {
        let (ea, eb) = (self.dtype.size(), b.dtype.size());
        let (a0, b0) = (self.offset * ea, b.offset * eb);
        self.buffer == b.buffer
            && self.len > 0
            && b.len > 0
            && a0 < b0 + b.len as u64 * eb
            && b0 < a0 + self.len as u64 * ea
    }

    /// Whether the range starts at a multiple of 4 elements and its last vector of 4 fits
    /// in the buffer.
    fn vec4_ok(&self) -> bool {
        let end = (self.offset + self.len as u64).div_ceil(4) * 4;
        self.offset % 4 == 0
            && end
                .checked_mul(self.dtype.size())
                .is_some_and(|b| b <= self.bytes)
    }
}

/// Tensor `i`'s params and grads on their own (both already inside their buffers): equal
/// lengths, below 2^31 elements, vector-aligned where `q8` (8-bit state) or 16-bit data
/// needs it, grads not overlapping params.
pub(crate) fn check_pair<B: PartialEq>(
    i: usize,
    param: &Span<'_, B>,
    grad: &Span<'_, B>,
    q8: bool,
) -> Result<()> {
    if grad.len != param.len {
        return Err(Error::LengthMismatch {
            what: format!("tensor {i} grads"),
            got: grad.len,
            expected: param.len,
        });
    }
    if param.len as u64 >= u32::MAX as u64 / 2 {
        return Err(Error::BadRange {
            what: format!("tensor {i}"),
            why: "more than 2^31 elements".into(),
        });
    }
    check_vec4(i, param, grad, q8)?;
    if param.overlaps(grad) {
        return Err(Error::BadRange {
            what: format!("tensor {i}"),
            why: "its grads overlap its own params".into(),
        });
    }
    Ok(())
}

/// 16-bit params or grads and 8-bit state run in vectors of 4: the tensor must start at a
/// multiple of 4 elements in both buffers and its last vector fit in them (as in an
/// [`crate::Arena`]). Checked when the tensor is added and when the state format changes,
/// so a refused tensor never reaches the first step.
pub(crate) fn check_vec4<B: PartialEq>(
    i: usize,
    param: &Span<'_, B>,
    grad: &Span<'_, B>,
    q8: bool,
) -> Result<()> {
    if !q8 && (param.dtype, grad.dtype) == (Dtype::F32, Dtype::F32) {
        return Ok(());
    }
    if param.vec4_ok() && grad.vec4_ok() {
        return Ok(());
    }
    Err(Error::BadRange {
        what: format!("tensor {i}"),
        why: format!(
            "{} needs tensors at offsets that are multiples of 4 elements in both buffers, \
             with room for their last vector of 4 (as in an Arena); params at {}, grads at {}",
            if q8 {
                "8-bit state"
            } else {
                "16-bit params or grads"
            },
            param.offset,
            grad.offset
        ),
    })
}

/// Every registered tensor's byte ranges, by buffer, so that a new tensor's overlap with
/// any of them is found in O(log n) (registering n tensors is O(n log n), not all pairs).
/// The ranges held are pairwise disjoint: each tensor is checked before it is inserted.
#[derive(Clone, Debug)]
pub(crate) struct RangeIndex<B> {
    /// Per buffer: start byte -> (end byte, tensor, is the grad range).
    by_buffer: BTreeMap<B, BTreeMap<u64, (u64, usize, bool)>>,
}

impl<B: Ord + Clone> Default for RangeIndex<B> {
    fn default() -> Self {
        RangeIndex {
            by_buffer: BTreeMap::new(),
        }
    }
}

impl<B: Ord + Clone> RangeIndex<B> {
    /// The registered ranges sharing a byte with `s`: (tensor, is the grad range).
    fn overlapping(&self, s: &Span<'_, B>) -> Vec<(usize, bool)> {
        let e = s.dtype.size();
        let (a, b) = (s.offset * e, (s.offset + s.len as u64) * e);
        let Some(m) = self.by_buffer.get(s.buffer).filter(|_| s.len > 0) else {
            return Vec::new();
        };
        // Registered in address order (an arena's tensors): the new range starts past the
        // last one, whose end is the highest (the ranges are disjoint); no range search.
        if m.last_key_value()
            .is_some_and(|(&start, &(end, _, _))| start < a && end <= a)
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        // The range starting at or before `a` (the only earlier one that can reach it),
        // then every range starting inside.
        if let Some((_, &(end, j, g))) = m.range(..=a).next_back() {
            if end > a {
                out.push((j, g));
            }
        }
        out.extend(m.range(a + 1..b).map(|(_, &(_, j, g))| (j, g)));
        out
    }

    /// New tensor `i`: no range of it overlaps a registered tensor's range. Refuses, as
    /// all pairs in order would, naming the lowest tensor it overlaps and, for it, the
    /// first of params/params, grads/grads, params/grads, grads/params that overlap.
    pub fn check(&self, i: usize, param: &Span<'_, B>, grad: &Span<'_, B>) -> Result<()> {
        let on_param = self.overlapping(param);
        let on_grad = self.overlapping(grad);
        let Some(j) = on_param.iter().chain(&on_grad).map(|&(j, _)| j).min() else {
            return Ok(());
        };
        let what = if on_param.contains(&(j, false)) {
            "params"
        } else if on_grad.contains(&(j, true)) {
            "grads"
        } else if on_grad.contains(&(j, false)) {
            "params of one / grads of the other"
        } else {
            "grads of one / params of the other"
        };
        Err(Error::BadRange {
            what: format!("tensor {i}"),
            why: format!("its {what} overlap tensor {j}'s"),
        })
    }

    /// Adds tensor `i`'s ranges (after [`RangeIndex::check`]); empty ones overlap nothing.
    pub fn insert(&mut self, i: usize, param: &Span<'_, B>, grad: &Span<'_, B>) {
        for (s, is_grad) in [(param, false), (grad, true)] {
            if s.len == 0 {
                continue;
            }
            let e = s.dtype.size();
            let (a, b) = (s.offset * e, (s.offset + s.len as u64) * e);
            self.by_buffer
                .entry(s.buffer.clone())
                .or_default()
                .insert(a, (b, i, is_grad));
        }
    }
}

/// A param group's lr schedule and where it stands (torch's scheduler object, and the
/// group's `initial_lr`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct GroupSchedule {
    /// The schedule and its number of steps taken.
    pub(crate) running: Option<(LrSchedule, u64)>,
    /// The group's lr when its first schedule was set (torch's `initial_lr`).
    pub(crate) initial_lr: Option<f64>,
}

/// Refuses a group index past the last group.
pub(crate) fn check_group(groups: usize, g: GroupId) -> Result<()> {
    match g.0 < groups {
        true => Ok(()),
        false => Err(Error::InvalidState(format!(
            "no param group {} (there are {groups})",
            g.0
        ))),
    }
}

/// `set_group`'s checks: a valid rule for an existing group that runs group 0's kernel.
pub(crate) fn check_set_group<R: UpdateRule>(rules: &[R], g: GroupId, rule: &R) -> Result<()> {
    rule.validate()?;
    check_group(rules.len(), g)?;
    check_compatible(g.0, rule, &rules[0])
}

/// `set_schedule`: group `g`'s lr is driven by `schedule` from its next step on, starting
/// from its current lr as a torch scheduler created now would ([`LrSchedule::initial`]).
pub(crate) fn set_schedule<R: UpdateRule>(
    rules: &mut [R],
    schedules: &mut [GroupSchedule],
    g: GroupId,
    schedule: LrSchedule,
) -> Result<()> {
    schedule.validate()?;
    check_group(rules.len(), g)?;
    let rule = &mut rules[g.0];
    // The new lr must be one the rule accepts (a warm-up divides it).
    let mut probe = rule.clone();
    probe.set_lr(schedule.initial(rule.lr()));
    probe.validate()?;
    let sched = &mut schedules[g.0];
    sched.initial_lr.get_or_insert(rule.lr());
    *rule = probe;
    sched.running = Some((schedule, 0));
    Ok(())
}

/// Group `g`'s running schedule and the number of steps it has taken.
pub(crate) fn schedule(
    schedules: &[GroupSchedule],
    g: GroupId,
) -> Result<Option<(&LrSchedule, u64)>> {
    check_group(schedules.len(), g)?;
    Ok(schedules[g.0].running.as_ref().map(|(s, e)| (s, *e)))
}

/// Stops group `g`'s schedule (its lr stays); returns the schedule it had.
pub(crate) fn clear_schedule(
    schedules: &mut [GroupSchedule],
    g: GroupId,
) -> Result<Option<LrSchedule>> {
    check_group(schedules.len(), g)?;
    Ok(schedules[g.0].running.take().map(|(s, _)| s))
}

/// After a recorded step: each running schedule moves its group's lr on to the next
/// step's (torch's `scheduler.step()`).
pub(crate) fn advance_schedules<R: UpdateRule>(rules: &mut [R], schedules: &mut [GroupSchedule]) {
    for (rule, sched) in rules.iter_mut().zip(schedules) {
        if let Some((s, epoch)) = sched.running.as_mut() {
            *epoch += 1;
            rule.set_lr(s.next(rule.lr(), *epoch));
        }
    }
}

/// A group's rule must run in group 0's kernel: the same kernel (rule family, e.g. Adam
/// and AdamW) and the same state slots (e.g. `amsgrad` on both or neither). A rule of
/// another family with the same slots (NAdam in an Adam optimizer) would be stepped by
/// the wrong kernel: refused.
pub(crate) fn check_compatible<R: UpdateRule>(group: usize, rule: &R, first: &R) -> Result<()> {
    // Group 0's own rule is checked against its current one (`set_group(0, ..)`).
    let other = match group {
        0 => "group 0's current rule",
        _ => "group 0's",
    };
    if rule.kernel() != first.kernel() {
        return Err(Error::IncompatibleGroup {
            group,
            why: format!(
                "its rule {} runs another kernel than {other} {}",
                rule.name(),
                first.name()
            ),
        });
    }
    if rule.state_slots() != first.state_slots() {
        return Err(Error::IncompatibleGroup {
            group,
            why: format!(
                "its state slots {:?} differ from {other} {:?} (the optimizer's state \
                 layout is fixed)",
                rule.state_slots(),
                first.state_slots()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The all-pairs check the index replaced: tensor `i` against registered tensor `j`.
    fn check_disjoint(
        (i, param, grad): (usize, &Span<'_, usize>, &Span<'_, usize>),
        (j, tp, tg): (usize, &Span<'_, usize>, &Span<'_, usize>),
    ) -> Result<()> {
        for (a, b, what) in [
            (tp, param, "params"),
            (tg, grad, "grads"),
            (tp, grad, "params of one / grads of the other"),
            (tg, param, "grads of one / params of the other"),
        ] {
            if a.overlaps(b) {
                return Err(Error::BadRange {
                    what: format!("tensor {i}"),
                    why: format!("its {what} overlap tensor {j}'s"),
                });
            }
        }
        Ok(())
    }

    type Range = (usize, u64, usize, bool); // buffer, offset, len, f32 (else bf16)

    fn span(buffers: &[usize], (b, offset, len, f32): Range) -> Span<'_, usize> {
        Span {
            buffer: &buffers[b],
            bytes: u64::MAX,
            offset,
            len,
            dtype: if f32 { Dtype::F32 } else { Dtype::Bf16 },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Registering tensors one by one, the index accepts and refuses exactly as the
        /// all-pairs check against every registered tensor did, with the same message.
        #[test]
        fn range_index_decides_as_all_pairs(
            tensors in proptest::collection::vec(
                ((0usize..3, 0u64..200, 0usize..40, any::<bool>()),
                 (0usize..3, 0u64..200, 0usize..40, any::<bool>())),
                1..40,
            )
        ) {
            let buffers = [0usize, 1, 2];
            let mut index = RangeIndex::default();
            let mut registered: Vec<(Span<'_, usize>, Span<'_, usize>)> = Vec::new();
            for &(p, g) in &tensors {
                let (p, g) = (span(&buffers, p), span(&buffers, g));
                if p.overlaps(&g) {
                    continue; // check_pair refuses these before the index is asked
                }
                let i = registered.len();
                let want = registered
                    .iter()
                    .enumerate()
                    .try_for_each(|(j, (tp, tg))| check_disjoint((i, &p, &g), (j, tp, tg)))
                    .map_err(|e| e.to_string());
                let got = index.check(i, &p, &g).map_err(|e| e.to_string());
                prop_assert_eq!(&got, &want);
                if got.is_ok() {
                    index.insert(i, &p, &g);
                    registered.push((p, g));
                }
            }
        }
    }
}
