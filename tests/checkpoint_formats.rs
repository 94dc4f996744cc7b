//! Checkpoints of every format version load with today's code and continue as the code
//! that wrote them continued them: a fixture per version, as users' files outlive releases.
//!
//! - Version 1 (settings as `Debug` strings, no checksums): written by the crate at
//!   c5fa710. Loaded strictly; the edited-file and refusal tests below are about it.
//! - Version 2 (settings as JSON, a CRC-32 per tensor): written by the crate at 4951a76,
//!   the main before the scheduler redesign, so the redesign is shown to load what the old
//!   scheduler saved and to continue it bit for bit.
//!
//! The fixtures in tests/fixtures/ (README.md there has the programs that wrote them) are,
//! per version, two checkpoints after 3 steps and, for each, every value the old code
//! computed after loading it into a fresh optimizer and running 2 more steps. Here the same
//! optimizers are built the same way with today's API, the files loaded, the same 2 steps
//! run, and every state slot, 8-bit codes and block absmaxes, lrs, clip norms, loss scales
//! and skip counts compared bit for bit on lavapipe, where the old code ran; params and
//! bf16 param bytes within the verifier's bound, as Adam's last line now rounds one
//! operation fewer (see `compare_all`). Otherwise the kernels compute the same for finite
//! values (the NaN/inf handling of
//! versions after c5fa710 differs only where a gradient is not finite, and those steps are
//! skipped by the loss scaler), and the clip norm is reduced on the device in the same
//! fixed order. On a hardware GPU what its arithmetic decides is compared within a bound
//! instead (see `compare_all`); the loaded state, lrs, step and skip counts and loss scales
//! stay exact.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gpu_optim::verify::Rng;
use gpu_optim::*;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

const LENS_A: [usize; 3] = [1000, 3, 2049];
const LENS_B: [usize; 2] = [1537, 63];
const Q8: StateFormat = StateFormat::Blockwise8 {
    min_len: 1024,
    stochastic: None,
};
const STEP: LrSchedule = LrSchedule::Step {
    step_size: 2,
    gamma: 0.5,
};
const CLIP: GradClip = GradClip {
    max_norm: Some(1.0),
    value: None,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpu-optim-v1-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Fixture A's optimizer: AdamW, group 1 (tensors 1 and 2) at half the lr under
/// `STEP` set before the first step, clipping; params from Rng(42).
fn build_a(ctx: &Context, rule: Adam, schedule: Option<LrSchedule>) -> (Arena, Optimizer<Adam>) {
    let arena = Arena::new(ctx, &LENS_A).unwrap();
    let mut rng = Rng(42);
    for (i, &n) in LENS_A.iter().enumerate() {
        ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
    }
    let mut opt = Optimizer::new(ctx, rule.clone()).unwrap();
    let mut half = rule.clone();
    half.set_lr(rule.lr() * 0.5);
    let g1 = opt.add_group(half).unwrap();
    for i in 0..LENS_A.len() {
        let g = if i == 0 { opt.default_group() } else { g1 };
        opt.add_tensor(g, arena.param(i), arena.grad(i)).unwrap();
    }
    if let Some(s) = schedule {
        opt.set_schedule(g1, s).unwrap();
    }
    opt.set_grad_clip(CLIP).unwrap();
    (arena, opt)
}

/// Step t (0-based) of A: grads from Rng(1000 + t).
fn step_a(ctx: &Context, arena: &Arena, opt: &mut Optimizer<Adam>, t: u64) {
    let mut rng = Rng(1000 + t);
    for (i, &n) in LENS_A.iter().enumerate() {
        ctx.upload(&arena.grad(i), &rng.vec(n, 1.0)).unwrap();
    }
    opt.step().unwrap();
}

/// Fixture B's optimizer: Adam (lr 1e-2), bf16 params and grads (f32 master), 8-bit state
/// for tensor 0 (`Q8`), loss scaling with torch's defaults; params from Rng(7).
fn build_b(ctx: &Context, format: StateFormat, scaler: bool) -> (Arena, Optimizer<Adam>) {
    let arena = Arena::with_dtypes(ctx, &LENS_B, Dtype::Bf16, Dtype::Bf16).unwrap();
    let mut rng = Rng(7);
    for (i, &n) in LENS_B.iter().enumerate() {
        ctx.upload_as(&arena.param(i), Dtype::Bf16, &rng.vec(n, 1.0))
            .unwrap();
    }
    let rule = Adam {
        lr: 1e-2,
        ..Adam::default()
    };
    let mut opt = Optimizer::new(ctx, rule).unwrap();
    opt.set_state_format(format).unwrap();
    opt.add_arena(&arena, opt.default_group()).unwrap();
    if scaler {
        opt.set_grad_scaler(GradScaler::default()).unwrap();
    }
    (arena, opt)
}

/// Step t (0-based) of B: grads from Rng(2000 + t) times 1e-2 and the loss scale; steps 1
/// and 3 have a non-finite gradient (skipped).
fn step_b(ctx: &Context, arena: &Arena, opt: &mut Optimizer<Adam>, t: u64) {
    let scale = opt.loss_scale().unwrap();
    let mut rng = Rng(2000 + t);
    for (i, &n) in LENS_B.iter().enumerate() {
        let mut g: Vec<f32> = rng.vec(n, 1.0).iter().map(|x| x * 1e-2 * scale).collect();
        match (t, i) {
            (1, 0) => g[100] = f32::INFINITY,
            (3, 1) => g[5] = f32::NAN,
            _ => {}
        }
        ctx.upload_as(&arena.grad(i), Dtype::Bf16, &g).unwrap();
    }
    opt.step().unwrap();
}

/// A safetensors file's metadata and tensors (dtype, bytes).
struct Dump {
    meta: HashMap<String, String>,
    tensors: HashMap<String, (StDtype, Vec<u8>)>,
}

impl Dump {
    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        Dump {
            meta: header.metadata().clone().unwrap_or_default(),
            tensors: st
                .tensors()
                .into_iter()
                .map(|(n, v)| (n, (v.dtype(), v.data().to_vec())))
                .collect(),
        }
    }

    fn bytes(&self, name: &str, dt: StDtype) -> &[u8] {
        let (d, b) = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(*d, dt, "{name}");
        b
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        bytemuck::pod_collect_to_vec(self.bytes(name, StDtype::F32))
    }

    fn meta<T: std::str::FromStr>(&self, key: &str) -> T {
        let v = self
            .meta
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing"));
        v.parse().unwrap_or_else(|_| panic!("{key}: {v}"))
    }

    fn meta_f32(&self, key: &str) -> f32 {
        f32::from_bits(self.meta(key))
    }

    fn meta_f64(&self, key: &str) -> f64 {
        f64::from_bits(self.meta(key))
    }

    /// Writes the metadata and tensors (as edited) to `out`.
    fn write(&self, out: &Path) {
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        let views: Vec<(String, TensorView)> = names
            .into_iter()
            .map(|n| {
                let (dt, b) = &self.tensors[n];
                let len = b.len() * 8 / dt.bitsize();
                (n.clone(), TensorView::new(*dt, vec![len], b).unwrap())
            })
            .collect();
        let bytes = safetensors::serialize(views, Some(self.meta.clone())).unwrap();
        std::fs::write(out, bytes).unwrap();
    }
}

/// Steps run on this device after the load: the tolerance's multiplier off lavapipe.
const DEVICE_STEPS: f64 = 2.0;

/// Values the device computed after the load against the old code's on lavapipe: bit for
/// bit on a software adapter (the old code ran there); on a hardware GPU, whose division
/// and sqrt WGSL lets be off by 2.5 ulp (and which may fuse multiply-adds), within Adam's
/// rounding operations per step, in scaled ulps (as tests/torch_options.rs).
fn assert_close(what: &str, got: &[f32], want: &[f32], exact: bool) {
    if exact {
        return assert_bits(what, got, want);
    }
    let e = verify::compare(what, got, want).unwrap();
    let bound = Adam::default().rounding_ops() as f64 * DEVICE_STEPS;
    assert!(
        e.max_scaled <= bound && e.nonfinite_mismatches == 0,
        "{what}: {e:?}, bound {bound}"
    );
}

/// Bit-for-bit equality, or a panic that says how many elements differ and where first.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} elements differ; first [{i}]: {:e} vs the old code's {:e} ({} ulp)",
            bad.len(),
            got.len(),
            got[i],
            want[i],
            verify::ulp_distance(got[i], want[i])
        );
    }
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every tensor's params (f32 or master), bf16 bytes, state slots and 8-bit codes and
/// absmaxes against the old code's dump: state, codes and absmaxes bit for bit on
/// lavapipe. On a hardware GPU (`exact` false) within [`assert_close`]'s bound, 8-bit
/// codes within one step of theirs (a value a few ulps away can round to the neighbour),
/// and the 8-bit slots' dequantized values not compared (they follow from codes and
/// absmaxes).
///
/// Params everywhere within [`assert_close`]'s bound and bf16 bytes within one step: since
/// the fixtures were written, Adam's last line takes one division instead of two
/// (`src/rules/adam.rs`, Kingma & Ba's order), which moves a param by the rounding of
/// an operation per step. In both fixtures the moments do not depend on the params (A
/// decays the weights decoupled, B has no weight decay), so they stay exact.
fn compare_all(opt: &mut Optimizer<Adam>, n: usize, want: &Dump, exact: bool) {
    let slots = opt.group(opt.default_group()).unwrap().state_slots().len();
    // At most `d` apart as integers (codes; bf16 bits of one sign).
    let near = |what: &str, got: &[i32], want: &[i32], exact: bool| {
        let d = if exact { 0 } else { 1 };
        let bad = got.iter().zip(want).filter(|(a, b)| (*a - *b).abs() > d);
        assert_eq!(bad.count(), 0, "{what}: values more than {d} apart");
    };
    for i in 0..n {
        let id = TensorId(i);
        let p = opt.read_params(id).unwrap();
        assert_close(
            &format!("params.{i}"),
            &p,
            &want.f32s(&format!("params.{i}")),
            false,
        );
        if opt.has_master(id) {
            let (b, dt) = opt.param_bytes(id).unwrap();
            assert_eq!(dt, Dtype::Bf16);
            let bf16 = |b: &[u8]| -> Vec<i32> {
                let h: Vec<u16> = bytemuck::pod_collect_to_vec(b);
                h.iter().map(|&x| x as i32).collect()
            };
            let w = want.bytes(&format!("param_bytes.{i}"), StDtype::BF16);
            near(&format!("param_bytes.{i}"), &bf16(&b), &bf16(w), false);
        }
        for k in 0..slots {
            let name = format!("state.{i}.{k}");
            if !opt.is_quantized(id) {
                assert_close(
                    &name,
                    &opt.read_state(id, k).unwrap(),
                    &want.f32s(&name),
                    exact,
                );
                continue;
            }
            if exact {
                assert_bits(&name, &opt.read_state(id, k).unwrap(), &want.f32s(&name));
            }
            let (codes, absmax) = opt.read_state_q8(id, k).unwrap();
            let want_codes = want.bytes(&format!("codes.{i}.{k}"), StDtype::U8);
            let ints = |c: &[u8]| -> Vec<i32> { c.iter().map(|&x| x as i32).collect() };
            near(
                &format!("codes.{i}.{k}"),
                &ints(&codes),
                &ints(want_codes),
                exact,
            );
            let name = format!("absmax.{i}.{k}");
            assert_close(&name, &absmax, &want.f32s(&name), exact);
        }
    }
}

/// The v1 file's own tensors are what the optimizer holds after loading it.
fn matches_file(opt: &mut Optimizer<Adam>, n: usize, file: &Dump) {
    let slots = opt.group(opt.default_group()).unwrap().state_slots();
    for i in 0..n {
        let id = TensorId(i);
        for (k, slot) in slots.iter().enumerate() {
            if opt.is_quantized(id) {
                let (codes, absmax) = opt.read_state_q8(id, k).unwrap();
                assert!(codes == file.bytes(&format!("state.{i}.{slot}.codes"), StDtype::U8));
                let a = file.f32s(&format!("state.{i}.{slot}.absmax"));
                assert_eq!(bits_of(&absmax), bits_of(&a), "state.{i}.{slot}.absmax");
            } else {
                let v = file.f32s(&format!("state.{i}.{slot}"));
                assert_eq!(bits_of(&opt.read_state(id, k).unwrap()), bits_of(&v));
            }
        }
        let (b, dt) = opt.param_bytes(id).unwrap();
        let st = if dt == Dtype::Bf16 {
            StDtype::BF16
        } else {
            StDtype::F32
        };
        assert!(b == file.bytes(&format!("param.{i}"), st), "param.{i}");
        if opt.has_master(id) {
            let m = file.f32s(&format!("master.{i}"));
            assert_eq!(bits_of(&opt.read_params(id).unwrap()), bits_of(&m));
        }
    }
}

/// A: AdamW, two groups, a Step schedule on group 1, clipping. The lr each group uses at
/// steps 4 and 5 is the old code's (and its closed form's), the clip norms and every state
/// value after step 5 are the old code's, bit for bit on lavapipe, and the params within
/// the verifier's bound (see [`compare_all`]).
#[test]
fn adamw_v1_checkpoint_continues_as_its_writer_did() {
    adamw_checkpoint_continues_as_its_writer_did(1);
}

#[test]
fn adamw_v2_checkpoint_continues_as_its_writer_did() {
    adamw_checkpoint_continues_as_its_writer_did(2);
}

/// The file's format: version 1 has no checksums, version 2 a CRC-32 per tensor.
fn check_version(file: &Dump, version: u32) {
    assert_eq!(file.meta["version"], version.to_string());
    assert_eq!(file.meta.contains_key("checksums"), version >= 2);
}

fn adamw_checkpoint_continues_as_its_writer_did(version: u32) {
    let ctx = common::ctx();
    let path = fixture(&format!("checkpoint_v{version}_adamw.safetensors"));
    let file = Dump::read(&path);
    check_version(&file, version);
    let want = Dump::read(&fixture(&format!(
        "checkpoint_v{version}_adamw.expected.safetensors"
    )));

    let exact = ctx.is_software();
    let (arena, mut opt) = build_a(&ctx, Adam::adamw(), Some(STEP));
    opt.load(&path).unwrap();
    assert_eq!(opt.step_count(), 3);
    assert_eq!(want.meta::<u64>("step_count.loaded"), 3);
    matches_file(&mut opt, LENS_A.len(), &file);
    // The schedule stands at the saved step: 3 steps taken, and the next lr is the one the
    // old code's closed form gives step 4 (its `lr(base, t)` with the global t).
    let g1 = GroupId(1);
    assert_eq!(opt.schedule(g1).unwrap(), Some((&STEP, 3)));
    assert_eq!(opt.schedule(GroupId(0)).unwrap(), None);
    let base = [1e-3, 0.5e-3];
    for t in 3..5u64 {
        for (g, &b) in base.iter().enumerate() {
            let lr = opt.lr(GroupId(g)).unwrap();
            let closed = if g == 1 { STEP.lr(b, t + 1) } else { b };
            assert_eq!(lr.to_bits(), closed.to_bits(), "group {g} step {}", t + 1);
            let old = want.meta_f64(&format!("lr.{}.{g}", t + 1));
            assert_eq!(lr.to_bits(), old.to_bits(), "group {g} step {}", t + 1);
        }
        step_a(&ctx, &arena, &mut opt, t);
        // Reduced in the same fixed order as the old code did; off lavapipe, the sqrt and
        // fused multiply-adds may round differently.
        let norm = opt.grad_stats().unwrap().norm;
        let old = want.meta_f32(&format!("grad_norm.{}", t + 1));
        let ulps = verify::ulp_distance(norm, old);
        let most = if exact { 0 } else { 64 };
        assert!(ulps <= most, "clip norm of step {}: {norm} vs {old}", t + 1);
    }
    assert_eq!(want.meta_f64("lr.4.1"), 0.25e-3);
    assert_eq!(opt.step_count(), want.meta::<u64>("step_count"));
    compare_all(&mut opt, LENS_A.len(), &want, exact);
}

/// B: bf16 params (f32 master), 8-bit state, loss scaling; a step skipped before the save
/// and one after the load. Scale, skip counts, codes, absmaxes, dequantized and f32 state:
/// the old code's, bit for bit on lavapipe; master and bf16 bytes within the bound of
/// [`compare_all`].
#[test]
fn q8_bf16_scaler_v1_checkpoint_continues_as_its_writer_did() {
    q8_bf16_scaler_checkpoint_continues_as_its_writer_did(1);
}

#[test]
fn q8_bf16_scaler_v2_checkpoint_continues_as_its_writer_did() {
    q8_bf16_scaler_checkpoint_continues_as_its_writer_did(2);
}

fn q8_bf16_scaler_checkpoint_continues_as_its_writer_did(version: u32) {
    let ctx = common::ctx();
    let path = fixture(&format!("checkpoint_v{version}_q8_bf16.safetensors"));
    let file = Dump::read(&path);
    check_version(&file, version);
    let want = Dump::read(&fixture(&format!(
        "checkpoint_v{version}_q8_bf16.expected.safetensors"
    )));

    let exact = ctx.is_software();
    let (arena, mut opt) = build_b(&ctx, Q8, true);
    opt.load(&path).unwrap();
    assert!(opt.is_quantized(TensorId(0)) && !opt.is_quantized(TensorId(1)));
    assert_eq!(opt.step_count(), 3);
    assert_eq!(want.meta::<u64>("step_count.loaded"), 3);
    matches_file(&mut opt, LENS_B.len(), &file);
    let scale = opt.loss_scale().unwrap();
    assert_eq!(
        scale.to_bits(),
        want.meta_f32("loss_scale.loaded").to_bits()
    );
    assert_eq!(scale, 32768.0, "the skipped step 2 halved torch's 65536");
    assert_eq!(opt.skipped_steps().unwrap(), 1);
    assert_eq!(
        opt.skipped_steps().unwrap(),
        want.meta::<u64>("skipped_steps.loaded")
    );
    assert_eq!(opt.applied_steps().unwrap(), 2);
    for t in 3..5u64 {
        step_b(&ctx, &arena, &mut opt, t);
        let s = opt.loss_scale().unwrap();
        let old = want.meta_f32(&format!("loss_scale.{}", t + 1));
        assert_eq!(
            s.to_bits(),
            old.to_bits(),
            "loss scale after step {}",
            t + 1
        );
        let skipped = want.meta::<u64>(&format!("skipped_steps.{}", t + 1));
        assert_eq!(opt.skipped_steps().unwrap(), skipped, "step {}", t + 1);
    }
    assert_eq!(opt.skipped_steps().unwrap(), 2, "step 4 (a NaN) skipped");
    assert_eq!(opt.step_count(), want.meta::<u64>("step_count"));
    assert_eq!(
        opt.applied_steps().unwrap(),
        want.meta::<u64>("applied_steps")
    );
    compare_all(&mut opt, LENS_B.len(), &want, exact);
}

fn refused(opt: &mut Optimizer<Adam>, path: &Path, needle: &str) {
    for mode in [LoadMode::Restore, LoadMode::Strict] {
        let e = opt.load_with(path, mode).expect_err(needle).to_string();
        assert!(e.contains(needle), "{mode:?}: {needle:?} not in {e}");
    }
    // Nothing changed.
    assert_eq!(opt.step_count(), 0);
}

/// A v1 file's settings must equal the optimizer's (v1 loaded strictly; its settings are
/// not restored, whatever the mode): a difference is refused, naming the field.
#[test]
fn v1_settings_that_differ_are_refused_by_name() {
    let ctx = common::ctx();
    let a = fixture("checkpoint_v1_adamw.safetensors");
    let b = fixture("checkpoint_v1_q8_bf16.safetensors");

    let lr2 = Adam {
        lr: 2e-3,
        ..Adam::adamw()
    };
    let (_x, mut opt) = build_a(&ctx, lr2, Some(STEP));
    refused(&mut opt, &a, "group.0");
    let wd = Adam {
        weight_decay: 0.5,
        ..Adam::adamw()
    };
    let (_x, mut opt) = build_a(&ctx, wd, Some(STEP));
    refused(&mut opt, &a, "group.0");
    let (_x, mut opt) = build_a(&ctx, Adam::adamw(), None);
    refused(&mut opt, &a, "schedule.1");
    let other = LrSchedule::Step {
        step_size: 3,
        gamma: 0.5,
    };
    let (_x, mut opt) = build_a(&ctx, Adam::adamw(), Some(other));
    refused(&mut opt, &a, "schedule.1");
    let (_x, mut opt) = build_a(&ctx, Adam::adamw(), Some(STEP));
    opt.set_grad_clip(GradClip {
        max_norm: Some(2.0),
        value: None,
    })
    .unwrap();
    refused(&mut opt, &a, "grad_clip");
    // A different rule or layout.
    let arena = Arena::new(&ctx, &LENS_A).unwrap();
    let mut flat = Optimizer::new(&ctx, Adam::adamw()).unwrap();
    flat.add_group(Adam::adamw()).unwrap();
    flat.add_arena(&arena, flat.default_group()).unwrap();
    flat.set_grad_clip(CLIP).unwrap();
    refused(&mut flat, &a, "tensors");

    let (_x, mut opt) = build_b(&ctx, Q8, false);
    refused(&mut opt, &b, "grad_scaler");
    let (_x, mut opt) = build_b(&ctx, StateFormat::F32, true);
    refused(&mut opt, &b, "state_format");
    let (_x, mut opt) = build_b(&ctx, StateFormat::blockwise8(), true);
    refused(&mut opt, &b, "state_format");
    let (_x, mut opt) = build_b(&ctx, Q8, true);
    opt.set_grad_scaler(GradScaler {
        growth_interval: 100,
        ..GradScaler::default()
    })
    .unwrap();
    refused(&mut opt, &b, "grad_scaler");

    // Element types: version 1's layout has none, but a file's param and master tensors
    // tell 16-bit params from f32 ones.
    let arena = Arena::new(&ctx, &LENS_B).unwrap();
    let mut f32_params = Optimizer::new(
        &ctx,
        Adam {
            lr: 1e-2,
            ..Adam::default()
        },
    )
    .unwrap();
    f32_params.set_state_format(Q8).unwrap();
    f32_params
        .add_arena(&arena, f32_params.default_group())
        .unwrap();
    f32_params.set_grad_scaler(GradScaler::default()).unwrap();
    refused(
        &mut f32_params,
        &b,
        "param.0 is BF16 [1537], expected F32 [1537]",
    );
    // Saved without params (`save(path, false)`): the f32 master copy says it.
    let mut d = Dump::read(&b);
    d.tensors.retain(|n, _| !n.starts_with("param."));
    let no_params = tmp("no-params.safetensors");
    d.write(&no_params);
    refused(&mut f32_params, &no_params, "master.0");
    let (_x, mut opt) = build_b(&ctx, Q8, true);
    opt.load(&no_params).unwrap();
    std::fs::remove_file(&no_params).unwrap();

    // After the refusals, the genuine files load.
    let (_x, mut opt) = build_a(&ctx, Adam::adamw(), Some(STEP));
    opt.load(&a).unwrap();
    let (_x, mut opt) = build_b(&ctx, Q8, true);
    opt.load(&b).unwrap();
}

/// An edited v1 file is still loaded strictly: edited settings, a missing step, a tensor
/// of the wrong shape or type are refused. Version 1 has no checksums, so an edited tensor
/// *value* cannot be detected and loads as it is (version 2 refuses it).
#[test]
fn edited_v1_files_are_checked_strictly() {
    let ctx = common::ctx();
    let path = fixture("checkpoint_v1_adamw.safetensors");
    let out = tmp("edited.safetensors");
    let edit = |f: &dyn Fn(&mut Dump)| {
        let mut d = Dump::read(&path);
        f(&mut d);
        d.write(&out);
    };
    let (_x, mut opt) = build_a(&ctx, Adam::adamw(), Some(STEP));
    let replace = |d: &mut Dump, key: &str, from: &str, to: &str| {
        let v = d.meta[key].replace(from, to);
        assert_ne!(v, d.meta[key], "{key}: {from} not in {}", d.meta[key]);
        d.meta.insert(key.into(), v);
    };

    edit(&|d| replace(d, "group.0", "lr: 0.001", "lr: 0.002"));
    refused(&mut opt, &out, "group.0");
    edit(&|d| replace(d, "group.1", "lr: 0.0005", "lr: 0.00025"));
    refused(&mut opt, &out, "group.1");
    edit(&|d| replace(d, "schedule.1", "gamma: 0.5", "gamma: 0.25"));
    refused(&mut opt, &out, "schedule.1");
    edit(&|d| replace(d, "schedule.1", "Some((0.0005,", "Some((0.001,"));
    refused(&mut opt, &out, "schedule.1");
    edit(&|d| replace(d, "grad_clip", "Some(1.0)", "Some(2.0)"));
    refused(&mut opt, &out, "grad_clip");
    edit(&|d| replace(d, "tensors", "0:1000", "1:1000"));
    refused(&mut opt, &out, "tensors");
    edit(&|d| {
        d.meta.remove("step");
    });
    refused(&mut opt, &out, "step");
    // Claiming version 2 does not skip the checks: v1's layout is not v2's.
    edit(&|d| {
        d.meta.insert("version".into(), "2".into());
    });
    refused(&mut opt, &out, "tensors");
    edit(&|d| {
        d.tensors.remove("state.2.exp_avg_sq");
    });
    refused(&mut opt, &out, "state.2.exp_avg_sq missing");
    edit(&|d| {
        let t = d.tensors.get_mut("state.0.exp_avg").unwrap();
        t.1.truncate(999 * 4);
    });
    refused(&mut opt, &out, "expected F32 [1000]");
    edit(&|d| {
        let t = d.tensors.get_mut("param.1").unwrap();
        *t = (StDtype::BF16, t.1[..6].to_vec());
    });
    refused(&mut opt, &out, "expected F32 [3]");

    // A huge step count (the metadata is not checksummed in either version) loads at once:
    // the schedule is evaluated at it, not replayed step by step to it.
    let huge: u64 = 1 << 50;
    edit(&|d| {
        d.meta.insert("step".into(), huge.to_string());
    });
    let (_y, mut fresh) = build_a(&ctx, Adam::adamw(), Some(STEP));
    fresh.load(&out).unwrap();
    assert_eq!(fresh.step_count(), huge);
    assert_eq!(fresh.schedule(GroupId(1)).unwrap(), Some((&STEP, huge)));
    assert_eq!(fresh.lr(GroupId(1)).unwrap(), STEP.lr(0.5e-3, huge + 1));

    // A flipped bit in a value: nothing in a v1 file can tell (no checksums).
    edit(&|d| {
        let t = d.tensors.get_mut("state.0.exp_avg").unwrap();
        t.1[3] ^= 0x01;
    });
    opt.load(&out).unwrap();
    let want = Dump::read(&path).f32s("state.0.exp_avg");
    let got = opt.read_state(TensorId(0), 0).unwrap();
    assert_ne!(got[0].to_bits(), want[0].to_bits());
    assert_eq!(got[0].to_bits(), want[0].to_bits() ^ (1 << 24));
    assert_eq!(bits_of(&got[1..]), bits_of(&want[1..]));
    std::fs::remove_file(&out).unwrap();
}

/// The replayed lr of the first resumed step is the one the v1 code would have used (its
/// closed form `LrSchedule::lr(base, step + 1)`) for every kind of schedule, not only the
/// fixture's exact Step: the fixture's schedule is rewritten (as the old code would have
/// written another schedule) and loaded into an optimizer with that schedule.
#[test]
fn v1_schedules_resume_at_the_old_lr() {
    let ctx = common::ctx();
    let path = fixture("checkpoint_v1_adamw.safetensors");
    let out = tmp("schedules.safetensors");
    let base = 0.5e-3;
    let schedules = [
        LrSchedule::Constant,
        LrSchedule::Step {
            step_size: 1,
            gamma: 0.1,
        },
        LrSchedule::Step {
            step_size: 2,
            gamma: 0.3,
        },
        LrSchedule::Cosine {
            t_max: 10,
            eta_min: 1e-5,
        },
        LrSchedule::Cosine {
            t_max: 3,
            eta_min: 0.0,
        },
        LrSchedule::WarmupCosine {
            warmup: 2,
            t_max: 10,
            eta_min: 0.0,
        },
        LrSchedule::WarmupCosine {
            warmup: 5,
            t_max: 10,
            eta_min: 1e-6,
        },
    ];
    let mut bad = Vec::new();
    for s in schedules {
        let mut d = Dump::read(&path);
        let old = Some((base, s.clone()));
        d.meta.insert("schedule.1".into(), format!("{old:?}"));
        d.write(&out);
        let (_x, mut opt) = build_a(&ctx, Adam::adamw(), Some(s.clone()));
        opt.load(&out).unwrap();
        let lr = opt.lr(GroupId(1)).unwrap();
        let closed = s.lr(base, 4);
        if lr.to_bits() != closed.to_bits() {
            bad.push(format!("{s:?}: {lr:e} vs {closed:e}"));
        }
        assert_eq!(opt.schedule(GroupId(1)).unwrap(), Some((&s, 3)));
    }
    std::fs::remove_file(&out).unwrap();
    assert!(bad.is_empty(), "{bad:#?}");
}
