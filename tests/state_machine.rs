//! The model-based (state-machine) test of the whole public API: proptest generates random
//! sequences of calls — groups and tensors (sizes incl. 0 and non-multiples of 4, offsets
//! in shared buffers, element types), `set_group`, `set_schedule`, `clear_schedule`,
//! `set_grad_clip`, `set_grad_scaler`, `set_state_format`, `set_stochastic_rounding`,
//! `set_steps_per_submission`, `step`, `step_many`, k × `record_step` (or one
//! `record_steps(k)`) into one encoder
//! (settings changed in between), `save_bytes` + `load_bytes` into a fresh optimizer,
//! gradients with NaN / ±inf — and after every call compares the device optimizer with
//! [`CpuModel`]: the same refusals (an error on one is the same error kind on the other,
//! and nothing changed), the step counts, the lr and schedule of every group, the loss
//! scaler, and after steps every param, master copy, 16-bit value, state slot and 8-bit
//! code.
//!
//! Comparison: bit for bit (NaN equal to NaN) where the device's operations are the
//! model's (every one-phase rule, conversions, 8-bit codes, value clipping, loss scaling)
//! on lavapipe, which rounds them correctly. Clipping by norm and LAMB sum in a different
//! order (f32 tree on the device, f64 in the model): from the first such step on, the f32
//! params and state are held to the verifier's tolerance (`rounding_ops` scaled ulps per
//! step, src/verify.rs) and 16-bit values and 8-bit codes are not compared (a last-bit
//! difference may round either way); sequences never combine them with 8-bit state.
//!
//! `GPU_OPTIM_SM_CASES` sets the number of sequences (default 400), `GPU_OPTIM_SM_SEED` the
//! seed (printed). A failing sequence shrinks to a minimal one, printed as a list of ops.

mod common;

use gpu_optim::verify::{compare, Rng};
use gpu_optim::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// What the sequences exercised: (op name, accepted by both, refused by both) counts, and
/// steps compared.
static TALLY: std::sync::Mutex<Vec<(&'static str, u64, u64)>> = std::sync::Mutex::new(Vec::new());
static STEPS_COMPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn tally(name: &'static str, ok: bool) {
    let mut t = TALLY.lock().unwrap();
    let i = match t.iter().position(|e| e.0 == name) {
        Some(i) => i,
        None => {
            t.push((name, 0, 0));
            t.len() - 1
        }
    };
    if ok {
        t[i].1 += 1;
    } else {
        t[i].2 += 1;
    }
}

/// Elements per shared buffer (f32 words).
const SHARED_WORDS: u64 = 1024;

#[derive(Clone, Debug)]
enum Place {
    /// Own param and grad buffers.
    Own,
    /// In the shared pair, `gap` elements after the previous tensor there.
    Shared { gap: u64 },
}

#[derive(Clone, Debug)]
enum Op {
    AddGroup {
        lr: f64,
    },
    AddTensor {
        group: usize,
        len: usize,
        place: Place,
        dtypes: (Dtype, Dtype),
        seed: u64,
    },
    SetGroup {
        group: usize,
        lr: f64,
        other_rule: Option<usize>,
    },
    SetSchedule {
        group: usize,
        schedule: LrSchedule,
    },
    ClearSchedule {
        group: usize,
    },
    SetGradClip(GradClip),
    SetGradScaler(GradScaler),
    SetStateFormat(StateFormat),
    SetStochasticRounding(Option<u32>),
    SetStepsPerSubmission(u32),
    Step {
        seed: u64,
        bad: Option<(usize, f32)>,
    },
    StepMany {
        k: u32,
        seed: u64,
    },
    Record {
        k: u32,
        seed: u64,
        clip_between: Option<GradClip>,
    },
    SaveLoad,
}

/// The rules sequences use (catalog indices): every state layout, and a two-phase rule.
fn rule_of(i: usize) -> AnyRule {
    AnyRule::catalog()[i % AnyRule::catalog().len()].clone()
}

fn dtypes() -> impl Strategy<Value = (Dtype, Dtype)> {
    prop_oneof![
        6 => Just((Dtype::F32, Dtype::F32)),
        2 => Just((Dtype::Bf16, Dtype::Bf16)),
        1 => Just((Dtype::F16, Dtype::F32)),
        1 => Just((Dtype::Bf16, Dtype::F32)),
    ]
}

fn schedule() -> impl Strategy<Value = LrSchedule> {
    prop_oneof![
        Just(LrSchedule::Constant),
        (1u64..4, 0.3f64..0.9).prop_map(|(step_size, gamma)| LrSchedule::Step { step_size, gamma }),
        (1u64..8).prop_map(|t_max| LrSchedule::Cosine {
            t_max,
            eta_min: 1e-4
        }),
        (0u64..3, 3u64..8).prop_map(|(warmup, t_max)| LrSchedule::WarmupCosine {
            warmup,
            t_max,
            eta_min: 0.0
        }),
    ]
}

fn clip() -> impl Strategy<Value = GradClip> {
    let bound = prop_oneof![Just(None), (0.05f32..2.0).prop_map(Some), Just(Some(-1.0))];
    (bound.clone(), bound).prop_map(|(max_norm, value)| GradClip { max_norm, value })
}

fn add_tensor() -> impl Strategy<Value = Op> {
    let place = prop_oneof![
        Just(Place::Own),
        prop_oneof![4 => Just(0u64), 2 => Just(4), 1 => 1u64..6]
            .prop_map(|gap| Place::Shared { gap })
    ];
    let len = prop_oneof![1 => Just(0usize), 6 => 1usize..70, 1 => Just(300usize)];
    (0usize..2, len, place, dtypes(), any::<u64>()).prop_map(|(group, len, place, dtypes, seed)| {
        Op::AddTensor {
            group,
            len,
            place,
            dtypes,
            seed,
        }
    })
}

/// A sequence: registrations first (most sequences have tensors to step), then any calls.
fn sequence() -> impl Strategy<Value = (usize, Vec<Op>)> {
    let setup = prop_oneof![
        3 => (0.001f64..0.1).prop_map(|lr| Op::AddGroup { lr }),
        1 => clip().prop_map(Op::SetGradClip),
        1 => prop_oneof![
            Just(StateFormat::Blockwise8 { min_len: 0, stochastic: None }),
            Just(StateFormat::Blockwise8 { min_len: 40, stochastic: Some(7) }),
        ].prop_map(Op::SetStateFormat),
        1 => Just(Op::SetStochasticRounding(Some(3))),
        1 => Just(Op::SetGradScaler(GradScaler { init_scale: 256.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2 })),
    ];
    (
        0usize..15,
        proptest::collection::vec(setup, 0..3),
        proptest::collection::vec(add_tensor(), 1..4),
        proptest::collection::vec(op(), 1..16),
    )
        .prop_map(|(rule, mut a, b, c)| {
            a.extend(b);
            a.extend(c);
            (rule, a)
        })
}

fn op() -> impl Strategy<Value = Op> {
    let place = prop_oneof![
        Just(Place::Own),
        prop_oneof![4 => Just(0u64), 2 => Just(4), 1 => 1u64..6]
            .prop_map(|gap| Place::Shared { gap })
    ];
    let len = prop_oneof![1 => Just(0usize), 6 => 1usize..70, 1 => Just(300usize)];
    let bad = prop_oneof![
        6 => Just(None),
        1 => (0usize..64, prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]).prop_map(Some),
    ];
    prop_oneof![
        1 => (0.001f64..0.1).prop_map(|lr| Op::AddGroup { lr }),
        4 => (0usize..3, len, place, dtypes(), any::<u64>())
            .prop_map(|(group, len, place, dtypes, seed)| Op::AddTensor { group, len, place, dtypes, seed }),
        2 => (0usize..3, 0.0f64..0.1, prop_oneof![4 => Just(None), 1 => (0usize..15).prop_map(Some)])
            .prop_map(|(group, lr, other_rule)| Op::SetGroup { group, lr, other_rule }),
        1 => (0usize..3, schedule()).prop_map(|(group, schedule)| Op::SetSchedule { group, schedule }),
        1 => (0usize..3).prop_map(|group| Op::ClearSchedule { group }),
        1 => clip().prop_map(Op::SetGradClip),
        1 => (prop_oneof![Just(1.0f32), Just(256.0), Just(65536.0)], 1u32..4, prop_oneof![Just(2.0f32), Just(1.0)])
            .prop_map(|(init_scale, growth_interval, growth_factor)| Op::SetGradScaler(GradScaler {
                init_scale, growth_factor, backoff_factor: 0.5, growth_interval })),
        1 => prop_oneof![
            Just(StateFormat::F32),
            Just(StateFormat::Blockwise8 { min_len: 0, stochastic: None }),
            Just(StateFormat::Blockwise8 { min_len: 40, stochastic: Some(7) }),
        ].prop_map(Op::SetStateFormat),
        1 => prop_oneof![Just(None), Just(Some(11u32))].prop_map(Op::SetStochasticRounding),
        1 => (0u32..20).prop_map(Op::SetStepsPerSubmission),
        6 => (any::<u64>(), bad).prop_map(|(seed, bad)| Op::Step { seed, bad }),
        1 => (1u32..4, any::<u64>()).prop_map(|(k, seed)| Op::StepMany { k, seed }),
        2 => (1u32..5, any::<u64>(), prop_oneof![2 => Just(None), 1 => clip().prop_map(Some)])
            .prop_map(|(k, seed, clip_between)| Op::Record { k, seed, clip_between }),
        1 => Just(Op::SaveLoad),
    ]
}

/// A registered tensor's place on the device.
struct Placed {
    param: BufferRange,
    grad: BufferRange,
    dtypes: (Dtype, Dtype),
}

/// The device side: the optimizer, its buffers, and what is needed to build a fresh one
/// the same way (for save/load).
struct Device {
    ctx: Context,
    opt: Optimizer<AnyRule>,
    rule: AnyRule,
    shared: (wgpu::Buffer, wgpu::Buffer),
    /// Next free byte in the shared param and grad buffers.
    cursor: (u64, u64),
    tensors: Vec<Placed>,
    /// Registration log: groups added, tensors (group, index into `tensors`), settings that
    /// are structure (state format, stochastic rounding).
    groups: Vec<AnyRule>,
    registered: Vec<(usize, usize)>,
    format: StateFormat,
    stochastic: Option<u32>,
    /// From this step on, f32 values are compared with a tolerance (norm clipping, LAMB).
    inexact_since: Option<u64>,
}

fn kind(r: &Result<impl std::fmt::Debug>) -> Option<std::mem::Discriminant<Error>> {
    r.as_ref().err().map(std::mem::discriminant)
}

fn same_outcome<A: std::fmt::Debug, B: std::fmt::Debug>(
    what: &str,
    d: &Result<A>,
    m: &Result<B>,
) -> Result<(), TestCaseError> {
    if kind(d) != kind(m) {
        return Err(TestCaseError::fail(format!(
            "{what}: device {d:?}, model {m:?}"
        )));
    }
    let name: &'static str =
        Box::leak(what.split(' ').next().unwrap().to_string().into_boxed_str());
    tally(name, d.is_ok());
    Ok(())
}

/// Grads for every tensor from `seed`, with one bad value at element `at` of the first
/// tensor long enough.
fn grads(lens: &[usize], seed: u64, bad: Option<(usize, f32)>) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let mut g: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec(n, 1.0)).collect();
    if let Some((at, v)) = bad {
        if let Some(t) = g.iter_mut().find(|t| t.len() > at) {
            t[at] = v;
        }
    }
    g
}

struct Run {
    dev: Device,
    model: CpuModel<AnyRule>,
    /// The last clipping setting both accepted.
    last_clip: Option<GradClip>,
}

impl Run {
    fn lens(&self) -> Vec<usize> {
        self.dev
            .registered
            .iter()
            .map(|&(_, k)| self.dev.tensors[k].param.len)
            .collect()
    }

    fn upload_grads(&self, g: &[Vec<f32>]) {
        for (&(_, k), g) in self.dev.registered.iter().zip(g) {
            let t = &self.dev.tensors[k];
            self.dev.ctx.upload_as(&t.grad, t.dtypes.1, g).unwrap();
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let groups = self.model.num_groups();
        match op.clone() {
            Op::AddGroup { lr } => {
                let mut r = self.dev.rule.clone();
                r.set_lr(lr);
                let d = self.dev.opt.add_group(r.clone());
                let m = self.model.add_group(r.clone());
                same_outcome("add_group", &d, &m)?;
                if d.is_ok() {
                    self.dev.groups.push(r);
                }
            }
            Op::AddTensor {
                group,
                len,
                place,
                dtypes,
                seed,
            } => {
                let group = GroupId(group % (groups + 1)); // sometimes no such group
                let (pd, gd) = dtypes;
                let ctx = self.dev.ctx.clone();
                let (param, grad, layout) = match place {
                    Place::Own => {
                        let words = |d: Dtype| ((len as u64 * d.size()).div_ceil(16) * 4) as usize;
                        let p = ctx.create_zeroed("sm params", words(pd)).unwrap();
                        let g = ctx.create_zeroed("sm grads", words(gd)).unwrap();
                        let id = 2 + 2 * self.dev.tensors.len();
                        let layout = HostLayout {
                            param_buffer: id,
                            param_bytes: p.size(),
                            param_offset: 0,
                            grad_buffer: id + 1,
                            grad_bytes: g.size(),
                            grad_offset: 0,
                        };
                        (
                            BufferRange::new(&p, 0, len),
                            BufferRange::new(&g, 0, len),
                            layout,
                        )
                    }
                    Place::Shared { gap } => {
                        let (pb, gb) = self.dev.shared.clone();
                        let (cp, cg) = self.dev.cursor;
                        let po = cp.div_ceil(pd.size()) + gap;
                        let go = cg.div_ceil(gd.size()) + gap;
                        let layout = HostLayout {
                            param_buffer: 0,
                            param_bytes: pb.size(),
                            param_offset: po,
                            grad_buffer: 1,
                            grad_bytes: gb.size(),
                            grad_offset: go,
                        };
                        (
                            BufferRange::new(&pb, po, len),
                            BufferRange::new(&gb, go, len),
                            layout,
                        )
                    }
                };
                let params = Rng(seed).vec(len, 1.0);
                let d = self
                    .dev
                    .opt
                    .add_tensor_as(group, param.clone(), pd, grad.clone(), gd);
                let m = self.model.add_tensor_at(group, layout, &params, dtypes);
                same_outcome("add_tensor", &d, &m)?;
                if d.is_ok() {
                    ctx.upload_as(&param, pd, &params).unwrap();
                    if let Place::Shared { .. } = place {
                        self.dev.cursor = (
                            (param.offset + len as u64) * pd.size(),
                            (grad.offset + len as u64) * gd.size(),
                        );
                    }
                    self.dev.registered.push((group.0, self.dev.tensors.len()));
                    self.dev.tensors.push(Placed {
                        param,
                        grad,
                        dtypes,
                    });
                }
            }
            Op::SetGroup {
                group,
                lr,
                other_rule,
            } => {
                let g = GroupId(group % (groups + 1));
                let mut r = match other_rule {
                    Some(i) => rule_of(i),
                    None => self
                        .model
                        .group(g)
                        .cloned()
                        .unwrap_or_else(|_| self.dev.rule.clone()),
                };
                r.set_lr(lr);
                let d = self.dev.opt.set_group(g, r.clone());
                let m = self.model.set_group(g, r);
                same_outcome("set_group", &d, &m)?;
            }
            Op::SetSchedule { group, schedule } => {
                let g = GroupId(group % (groups + 1));
                let d = self.dev.opt.set_schedule(g, schedule.clone());
                let m = self.model.set_schedule(g, schedule);
                same_outcome("set_schedule", &d, &m)?;
            }
            Op::ClearSchedule { group } => {
                let g = GroupId(group % (groups + 1));
                let d = self.dev.opt.clear_schedule(g);
                let m = self.model.clear_schedule(g);
                same_outcome("clear_schedule", &d, &m)?;
                prop_assert_eq!(d.ok(), m.ok());
            }
            Op::SetGradClip(c) => {
                // Norm clipping and 8-bit state are not combined (see the module docs).
                if c.max_norm.is_some() && self.dev.format != StateFormat::F32 {
                    return Ok(());
                }
                let d = self.dev.opt.set_grad_clip(c);
                let m = self.model.set_grad_clip(c);
                same_outcome("set_grad_clip", &d, &m)?;
                if d.is_ok() {
                    self.last_clip = Some(c);
                }
            }
            Op::SetGradScaler(s) => {
                let d = self.dev.opt.set_grad_scaler(s);
                let m = self.model.set_grad_scaler(s);
                same_outcome("set_grad_scaler", &d, &m)?;
            }
            Op::SetStateFormat(f) => {
                if f != StateFormat::F32
                    && matches!(
                        self.last_clip,
                        Some(GradClip {
                            max_norm: Some(_),
                            ..
                        })
                    )
                {
                    return Ok(());
                }
                let d = self.dev.opt.set_state_format(f);
                let m = self.model.set_state_format(f);
                same_outcome("set_state_format", &d, &m)?;
                if d.is_ok() {
                    self.dev.format = f;
                }
            }
            Op::SetStochasticRounding(s) => {
                let d = self.dev.opt.set_stochastic_rounding(s);
                let m = self.model.set_stochastic_rounding(s);
                same_outcome("set_stochastic_rounding", &d, &m)?;
                if d.is_ok() {
                    self.dev.stochastic = s;
                }
            }
            Op::SetStepsPerSubmission(k) => {
                let d = self.dev.opt.set_steps_per_submission(k);
                let m = self.model.set_steps_per_submission(k);
                same_outcome("set_steps_per_submission", &d, &m)?;
            }
            Op::Step { seed, bad } => {
                let g = grads(&self.lens(), seed, bad);
                self.upload_grads(&g);
                self.note_inexact_before_step();
                let d = self.dev.opt.step();
                let m = self.model.step(&g);
                same_outcome("step", &d, &m)?;
            }
            Op::StepMany { k, seed } => {
                let g = grads(&self.lens(), seed, None);
                self.upload_grads(&g);
                self.note_inexact_before_step();
                let d = self.dev.opt.step_many(k);
                let m = self.model_steps(&g, k);
                same_outcome("step_many", &d, &m)?;
            }
            Op::Record {
                k,
                seed,
                clip_between,
            } => {
                let g = grads(&self.lens(), seed, None);
                self.upload_grads(&g);
                let ctx = self.dev.ctx.clone();
                let mut enc = ctx.device().create_command_encoder(&Default::default());
                // Nothing changed in between: half the time as one record_steps (one pass).
                if clip_between.is_none() && seed % 2 == 0 {
                    self.note_inexact_before_step();
                    let d = self.dev.opt.record_steps(&mut enc, k);
                    let m = self.model_steps(&g, k);
                    same_outcome("record_steps", &d, &m)?;
                    ctx.queue().submit([enc.finish()]);
                    return self.check();
                }
                for i in 0..k {
                    if i == 1 {
                        if let Some(c) = clip_between {
                            if c.max_norm.is_none() || self.dev.format == StateFormat::F32 {
                                let d = self.dev.opt.set_grad_clip(c);
                                let m = self.model.set_grad_clip(c);
                                same_outcome("set_grad_clip between records", &d, &m)?;
                                if d.is_ok() {
                                    self.last_clip = Some(c);
                                }
                            }
                        }
                    }
                    self.note_inexact_before_step();
                    let d = self.dev.opt.record_step(&mut enc);
                    let m = self.model.step(&g);
                    same_outcome("record_step", &d, &m)?;
                    if d.is_err() {
                        break;
                    }
                }
                ctx.queue().submit([enc.finish()]);
            }
            Op::SaveLoad => {
                let d = self.dev.opt.save_bytes(true);
                let m = self.model.prepare();
                same_outcome("save_bytes", &d, &m)?;
                if let Ok(bytes) = d {
                    let mut fresh = self.dev.rebuild();
                    fresh
                        .load_bytes(&bytes, LoadMode::Restore)
                        .map_err(|e| TestCaseError::fail(format!("load_bytes: {e}")))?;
                    self.dev.opt = fresh;
                }
            }
        }
        self.check()
    }

    /// `k` steps of the model, up to the first refused one (whose error it returns), as
    /// `step_many` and `record_steps` run on the device.
    fn model_steps(&mut self, g: &[Vec<f32>], k: u32) -> Result<()> {
        for _ in 0..k {
            self.model.step(g)?;
        }
        Ok(())
    }

    /// Marks the sequence inexact from the step about to run if it sums differently.
    fn note_inexact_before_step(&mut self) {
        let norm = matches!(
            self.last_clip,
            Some(GradClip {
                max_norm: Some(_),
                ..
            })
        );
        if (norm || self.dev.rule.kernel().two_phase) && self.dev.inexact_since.is_none() {
            self.dev.inexact_since = Some(self.model.step_count() + 1);
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let opt = &mut self.dev.opt;
        let model = &self.model;
        prop_assert_eq!(opt.step_count(), model.step_count(), "step_count");
        prop_assert_eq!(opt.num_groups(), model.num_groups());
        prop_assert_eq!(opt.num_tensors(), model.num_tensors());
        for g in 0..model.num_groups() {
            let g = GroupId(g);
            prop_assert_eq!(
                opt.lr(g).unwrap(),
                model.lr(g).unwrap(),
                "lr of group {}",
                g.0
            );
            prop_assert_eq!(opt.schedule(g).unwrap(), model.schedule(g).unwrap());
        }
        if !opt.is_prepared() {
            return Ok(());
        }
        if let Some(scale) = model.loss_scale() {
            prop_assert_eq!(opt.loss_scale().unwrap(), scale, "loss scale");
            prop_assert_eq!(
                opt.skipped_steps().unwrap(),
                model.skipped_steps(),
                "skipped"
            );
            prop_assert_eq!(
                opt.applied_steps().unwrap(),
                model.applied_steps(),
                "applied"
            );
        }
        let exact = self.dev.inexact_since.is_none();
        let applied = model.applied_steps().max(1);
        let tol = (self.dev.rule.rounding_ops() as u64 * applied) as f64;
        let same = |what: String, d: &[f32], m: &[f32]| -> Result<(), TestCaseError> {
            if exact {
                let bits = |v: &[f32]| -> Vec<u32> {
                    v.iter()
                        .map(|x| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() })
                        .collect()
                };
                if bits(d) != bits(m) {
                    let i = bits(d)
                        .iter()
                        .zip(bits(m))
                        .position(|(a, b)| *a != b)
                        .unwrap();
                    return Err(TestCaseError::fail(format!(
                        "{what}: element {i}: device {} model {}",
                        d[i], m[i]
                    )));
                }
            } else {
                let e = compare(&what, d, m).unwrap();
                if e.max_scaled > tol || e.nonfinite_mismatches > 0 {
                    return Err(TestCaseError::fail(format!(
                        "{what}: {e:?} (tolerance {tol})"
                    )));
                }
            }
            Ok(())
        };
        if model.step_count() > 0 {
            STEPS_COMPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let slots = self.dev.rule.state_slots().len();
        for (i, &(_, k)) in self.dev.registered.iter().enumerate() {
            let id = TensorId(i);
            let placed = &self.dev.tensors[k];
            same(
                format!("tensor {i} params"),
                &opt.read_params(id).unwrap(),
                model.params(id).unwrap(),
            )?;
            if exact {
                let stored = self
                    .dev
                    .ctx
                    .download_as(&placed.param, placed.dtypes.0)
                    .unwrap();
                same(
                    format!("tensor {i} stored params"),
                    &stored,
                    model.stored_params(id).unwrap(),
                )?;
            }
            prop_assert_eq!(
                opt.has_master(id),
                model.has_master(id),
                "tensor {} master",
                i
            );
            for s in 0..slots {
                same(
                    format!("tensor {i} slot {s}"),
                    &opt.read_state(id, s).unwrap(),
                    model.state(id, s).unwrap(),
                )?;
                if let Some((codes, absmax)) = model.state_q8(id, s).unwrap() {
                    prop_assert!(opt.is_quantized(id), "tensor {} should be 8-bit", i);
                    let (dc, da) = opt.read_state_q8(id, s).unwrap();
                    prop_assert!(dc == codes, "tensor {} slot {} codes", i, s);
                    prop_assert!(da
                        .iter()
                        .map(|x| x.to_bits())
                        .eq(absmax.iter().map(|x| x.to_bits())));
                } else {
                    prop_assert!(!opt.is_quantized(id), "tensor {} should be f32", i);
                }
            }
        }
        Ok(())
    }
}

impl Device {
    /// An optimizer registered as this one was (groups as first added, tensors, state
    /// format, stochastic rounding): what a resumed run builds before loading.
    fn rebuild(&self) -> Optimizer<AnyRule> {
        let mut o = Optimizer::new(&self.ctx, self.rule.clone()).unwrap();
        for g in &self.groups {
            o.add_group(g.clone()).unwrap();
        }
        o.set_state_format(self.format).unwrap();
        o.set_stochastic_rounding(self.stochastic).unwrap();
        for &(g, k) in &self.registered {
            let t = &self.tensors[k];
            o.add_tensor_as(
                GroupId(g),
                t.param.clone(),
                t.dtypes.0,
                t.grad.clone(),
                t.dtypes.1,
            )
            .unwrap();
        }
        o
    }
}

#[test]
fn device_optimizer_follows_the_cpu_model_under_any_sequence_of_calls() {
    let ctx = common::ctx();
    let cases: u32 = std::env::var("GPU_OPTIM_SM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("GPU_OPTIM_SM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_5eed);
    eprintln!("state machine: {cases} sequences, GPU_OPTIM_SM_SEED={seed}");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = sequence();
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |(rule, ops)| {
        let rule = rule_of(rule);
        let shared = (
            ctx.create_zeroed("sm shared params", SHARED_WORDS as usize)
                .unwrap(),
            ctx.create_zeroed("sm shared grads", SHARED_WORDS as usize)
                .unwrap(),
        );
        let limits = ctx.limits();
        let mut run = Run {
            dev: Device {
                ctx: ctx.clone(),
                opt: Optimizer::new(&ctx, rule.clone()).unwrap(),
                rule: rule.clone(),
                shared,
                cursor: (0, 0),
                tensors: Vec::new(),
                groups: Vec::new(),
                registered: Vec::new(),
                format: StateFormat::F32,
                stochastic: None,
                inexact_since: None,
            },
            model: CpuModel::with_limits(rule, limits).unwrap(),
            last_clip: None,
        };
        for (i, op) in ops.iter().enumerate() {
            run.apply(op)
                .map_err(|e| TestCaseError::fail(format!("after op {i} {op:?}: {e}")))?;
        }
        Ok(())
    });
    eprintln!("state machine: {:.1} s", started.elapsed().as_secs_f64());
    let mut t = TALLY.lock().unwrap().clone();
    t.sort();
    for (name, ok, refused) in t {
        eprintln!("  {name:<26} accepted {ok:>5}  refused by both {refused:>5}");
    }
    eprintln!(
        "  states compared after a step: {}",
        STEPS_COMPARED.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("GPU_OPTIM_SM_SEED={seed}: {e}");
    }
}
