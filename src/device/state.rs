//! What does the device hold? Each tensor's state slots, master copy, 8-bit codes and
//! absmaxes: allocated, initialised, read and written here; nothing here records a step.

use crate::context::BufferRange;
use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::optimizer::Optimizer;
use crate::plan::layout::{Layout, Placement};
use crate::quant::{self, Q8State, BLOCK};
use crate::registry::TensorId;
use crate::rules::{signed_slots, UpdateRule};

/// Where each tensor's state lives: a buffer per slot, shared by a launch group (f32), or
/// one tensor's codes per slot and its absmax (8-bit, [`StateFormat`]).
pub(crate) struct StateSet {
    pub(crate) buffers: Vec<wgpu::Buffer>,
    pub(crate) absmax: Option<wgpu::Buffer>,
    /// The f32 master copy of 16-bit params, laid out as the state.
    pub(crate) master: Option<wgpu::Buffer>,
}

/// Every tensor's state slots and master copy, and the scaler's words, on the host while
/// the optimizer plans again (groups or tensors added after steps).
pub(crate) struct Snapshot {
    pub(crate) tensors: Vec<(Vec<SlotSnapshot>, Option<Vec<f32>>)>,
    pub(crate) scaler: Option<[f32; 5]>,
}

pub(crate) enum SlotSnapshot {
    F32(Vec<f32>),
    Q8(Vec<u8>, Vec<f32>),
}

impl<R: UpdateRule> Optimizer<R> {
    /// Whether tensor `t` has 8-bit state.
    pub fn is_quantized(&self, t: TensorId) -> bool {
        self.tensors
            .get(t.0)
            .is_some_and(|x| self.settings.state_format.quantizes(x.param.len))
    }

    /// Whether tensor `t`'s params have an f32 master copy.
    pub fn has_master(&self, t: TensorId) -> bool {
        self.tensors
            .get(t.0)
            .is_some_and(|x| self.needs_master(x.dtypes.0))
    }

    pub(crate) fn needs_master(&self, d: Dtype) -> bool {
        crate::cpu_model::needs_master(d, self.settings.stochastic)
    }

    /// The f32 master copy of tensor `t`'s 16-bit params.
    pub fn master(&mut self, t: TensorId) -> Result<BufferRange> {
        self.prepare()?;
        let plan = self.plan.as_ref().expect("prepared");
        let (set, offset) = *plan
            .tensor_state
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let m = plan.states[set].master.as_ref().ok_or_else(|| {
            Error::InvalidState(format!("tensor {} has f32 params: no master copy", t.0))
        })?;
        Ok(BufferRange::new(m, offset, self.tensors[t.0].param.len))
    }

    /// Tensor `t`'s params as stored (little-endian bytes) and their element type.
    pub fn param_bytes(&mut self, t: TensorId) -> Result<(Vec<u8>, Dtype)> {
        let x = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let e = x.dtypes.0.size();
        let b = self
            .ctx
            .read_bytes(&x.param.buffer, x.param.offset * e, x.param.len as u64 * e)?;
        Ok((b, x.dtypes.0))
    }

    /// Overwrites tensor `t`'s params with little-endian bytes of its element type (its
    /// neighbours' bytes in a shared word are kept).
    pub(crate) fn write_param_bytes(&mut self, t: TensorId, data: &[u8]) -> Result<()> {
        let x = &self.tensors[t.0];
        let e = x.dtypes.0.size();
        let n = x.param.len as u64 * e;
        if data.len() as u64 != n {
            return Err(Error::LengthMismatch {
                what: format!("tensor {} params (bytes)", t.0),
                got: data.len(),
                expected: n as usize,
            });
        }
        self.ctx
            .write_bytes(&x.param.buffer, x.param.offset * e, data)
    }

    /// Reads tensor `t`'s params as f32: the master copy for 16-bit params (what the rule
    /// updates), else the params themselves.
    pub fn read_params(&mut self, t: TensorId) -> Result<Vec<f32>> {
        let tensor = self
            .tensors
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?
            .clone();
        match tensor.dtypes.0 {
            Dtype::F32 => self.ctx.download(&tensor.param),
            d if !self.needs_master(d) => self.ctx.download_as(&tensor.param, d),
            _ => {
                let r = self.master(t)?;
                self.ctx.download(&r)
            }
        }
    }

    /// Bytes of device memory the state takes (0 before planning).
    pub fn state_bytes(&self) -> u64 {
        self.plan.as_ref().map_or(0, |p| {
            p.states
                .iter()
                .flat_map(|s| s.buffers.iter().chain(&s.absmax))
                .map(|b| b.size())
                .sum()
        })
    }

    /// The registered tensors' state slot `slot` of tensor `t`.
    /// Tensors with 8-bit state have no f32 buffer: see [`Optimizer::read_state_q8`].
    pub fn state(&mut self, t: TensorId, slot: usize) -> Result<BufferRange> {
        self.prepare()?;
        if self.is_quantized(t) {
            return Err(Error::InvalidState(format!(
                "tensor {} has 8-bit state: read_state dequantizes it, read_state_q8 reads the codes",
                t.0
            )));
        }
        let plan = self.plan.as_ref().expect("prepared");
        let &(set, offset) = plan
            .tensor_state
            .get(t.0)
            .ok_or_else(|| Error::InvalidState(format!("no tensor {}", t.0)))?;
        let buf = plan.states[set].buffers.get(slot).ok_or_else(|| {
            Error::InvalidState(format!(
                "rule has {} state slots, asked for {slot}",
                self.groups[0].state_slots().len()
            ))
        })?;
        Ok(BufferRange::new(buf, offset, self.tensors[t.0].param.len))
    }

    /// Reads tensor `t`'s state slot back to the host (dequantized if 8-bit).
    pub fn read_state(&mut self, t: TensorId, slot: usize) -> Result<Vec<f32>> {
        if self.is_quantized(t) {
            let (codes, absmax) = self.read_state_q8(t, slot)?;
            let signed = signed_slots(&self.groups[0])[slot];
            return Ok(quant::Codebook::new(signed).dequantize(&codes, &absmax));
        }
        let r = self.state(t, slot)?;
        self.ctx.download(&r)
    }

    /// Tensor `t`'s 8-bit state slot: one code per element, one absmax per block.
    pub fn read_state_q8(&mut self, t: TensorId, slot: usize) -> Result<(Vec<u8>, Vec<f32>)> {
        let (codes, absmax) = self.q8_buffers(t, slot)?;
        let len = self.tensors[t.0].param.len;
        let blocks = len.div_ceil(BLOCK);
        let mut c = self
            .ctx
            .download_bytes(&codes, 0, len.div_ceil(4) as u64 * 4)?;
        c.truncate(len);
        let a =
            self.ctx
                .download_bytes(&absmax, (slot * blocks * 4) as u64, (blocks * 4) as u64)?;
        Ok((c, bytemuck::pod_collect_to_vec(&a)))
    }

    /// Overwrites tensor `t`'s 8-bit state slot (checkpoint loading).
    pub(crate) fn write_state_q8(
        &mut self,
        t: TensorId,
        slot: usize,
        codes: &[u8],
        absmax: &[f32],
    ) -> Result<()> {
        let (cbuf, abuf) = self.q8_buffers(t, slot)?;
        let len = self.tensors[t.0].param.len;
        let blocks = len.div_ceil(BLOCK);
        if codes.len() != len || absmax.len() != blocks {
            return Err(Error::LengthMismatch {
                what: format!("tensor {} 8-bit state", t.0),
                got: codes.len(),
                expected: len,
            });
        }
        let mut c = codes.to_vec();
        c.resize(len.div_ceil(4) * 4, 0);
        let q = self.ctx.queue();
        q.write_buffer(&cbuf, 0, &c);
        q.write_buffer(
            &abuf,
            (slot * blocks * 4) as u64,
            bytemuck::cast_slice(absmax),
        );
        Ok(())
    }

    pub(crate) fn q8_buffers(
        &mut self,
        t: TensorId,
        slot: usize,
    ) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        self.prepare()?;
        if !self.is_quantized(t) {
            return Err(Error::InvalidState(format!(
                "tensor {} does not have 8-bit state",
                t.0
            )));
        }
        let plan = self.plan.as_ref().expect("prepared");
        let set = &plan.states[plan.tensor_state[t.0].0];
        let codes = set.buffers.get(slot).ok_or_else(|| {
            Error::InvalidState(format!(
                "rule has {} state slots, asked for {slot}",
                self.groups[0].state_slots().len()
            ))
        })?;
        Ok((codes.clone(), set.absmax.clone().expect("8-bit set")))
    }

    /// Before registering a group or tensor after steps (torch's `add_param_group`): takes
    /// every tensor's state, master copy and the scaler's words to the host and drops the
    /// plan; the next [`Optimizer::prepare`] plans the new set and puts them back. Refused
    /// while steps recorded into a caller's encoder have not finished on the device (they
    /// would write into the old buffers): submit it and wait ([`Context::wait`]).
    pub(crate) fn unplan(&mut self) -> Result<()> {
        if self.plan.is_none() {
            return Ok(());
        }
        self.settle_ack(true)?;
        self.ctx.wait()?;
        let busy = {
            let st = &self.plan.as_ref().expect("planned").staging;
            (0..st.tokens.len()).any(|i| !st.free(i))
        };
        if busy {
            return Err(Error::InvalidState(
                "steps recorded into an encoder have not run: submit it (or drop it) and wait \
                 before adding groups or tensors"
                    .into(),
            ));
        }
        let slots = self.groups[0].state_slots().len();
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for i in 0..self.tensors.len() {
            let id = TensorId(i);
            let mut state = Vec::with_capacity(slots);
            for k in 0..slots {
                state.push(match self.is_quantized(id) {
                    true => {
                        let (c, a) = self.read_state_q8(id, k)?;
                        SlotSnapshot::Q8(c, a)
                    }
                    false => SlotSnapshot::F32(self.read_state(id, k)?),
                });
            }
            let master = match self.has_master(id) {
                true => Some(self.read_params(id)?),
                false => None,
            };
            tensors.push((state, master));
        }
        let scaler = match self.settings.scaler {
            Some(_) => Some(self.scaler_words()?),
            None => None,
        };
        self.snapshot = Some(Snapshot { tensors, scaler });
        self.plan = None;
        Ok(())
    }

    pub(crate) fn restore_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        for (i, (state, master)) in snap.tensors.iter().enumerate() {
            let id = TensorId(i);
            for (k, s) in state.iter().enumerate() {
                match s {
                    SlotSnapshot::F32(v) => {
                        let r = self.state(id, k)?;
                        self.ctx.upload(&r, v)?;
                    }
                    SlotSnapshot::Q8(c, a) => self.write_state_q8(id, k, c, a)?,
                }
            }
            if let Some(m) = master {
                let r = self.master(id)?;
                self.ctx.upload(&r, m)?;
            }
        }
        if let Some(w) = snap.scaler {
            self.set_scaler_words(w)?;
        }
        Ok(())
    }

    /// Allocates and initialises the state of `lay`'s launch groups: a buffer per slot
    /// laid out like the param buffer from the group's base (f32), or one tensor's codes
    /// and absmaxes (8-bit); 16-bit params get an f32 master copy laid out as the state,
    /// initialised from the caller's params.
    pub(crate) fn allocate_states(
        &self,
        lay: &Layout,
        placements: &[Placement],
    ) -> Result<Vec<StateSet>> {
        let ctx = &self.ctx;
        let t = |i: usize| &self.tensors[i];
        let mut states = Vec::with_capacity(lay.sets.len());
        for set in &lay.sets {
            // The launch group's rule (its tensors share one kernel and its state slots).
            let rule = &self.groups[t(set.members[0]).group];
            let slots = rule.state_slots().len();
            let mut state = StateSet {
                buffers: Vec::with_capacity(slots),
                absmax: None,
                master: None,
            };
            if set.q8 {
                let i = set.members[0];
                let len = t(i).param.len;
                let rule = &self.groups[t(i).group];
                let init: Vec<Vec<f32>> = (0..slots)
                    .map(|k| vec![rule.initial_state(k); len])
                    .collect();
                let q = Q8State::quantize(&init, &signed_slots(rule));
                for (k, codes) in q.codes.iter().enumerate() {
                    let b = ctx.create_zeroed(rule.state_slots()[k], len.div_ceil(BLOCK) * 64)?;
                    if codes.iter().any(|&c| c != 0) {
                        ctx.queue().write_buffer(&b, 0, codes);
                    }
                    state.buffers.push(b);
                }
                let a = ctx.create_zeroed("8-bit state absmax", slots * len.div_ceil(BLOCK))?;
                ctx.queue()
                    .write_buffer(&a, 0, bytemuck::cast_slice(&q.absmax.concat()));
                state.absmax = Some(a);
            } else {
                for k in 0..slots {
                    let b = ctx.create_zeroed(rule.state_slots()[k], set.span as usize)?;
                    for &i in &set.members {
                        let init = self.groups[t(i).group].initial_state(k);
                        if init != 0.0 {
                            let r =
                                BufferRange::new(&b, t(i).param.offset - set.base, t(i).param.len);
                            ctx.upload(&r, &vec![init; r.len])?;
                        }
                    }
                    state.buffers.push(b);
                }
            }
            if self.needs_master(set.dtypes.0) {
                let m = ctx.create_zeroed(
                    "gpu-optim f32 master params",
                    set.master_len(placements) as usize,
                )?;
                for &i in &set.members {
                    let v = ctx.download_as(&t(i).param, set.dtypes.0)?;
                    let r = BufferRange::new(&m, set.master_at(&placements[i]), v.len());
                    ctx.upload(&r, &v)?;
                }
                state.master = Some(m);
            }
            states.push(state);
        }
        Ok(states)
    }
}
