//! Mixed precision (issue 5): 16-bit params updated through the optimizer's f32 master
//! copy, 16-bit or f32 grads, against the whole-step CPU model (`CpuModel`: the rule on the
//! master, grads widened exactly, the master rounded to nearest even: gpu_optim::half).
//!
//! Comparison: bit for bit (NaN equal to NaN) — the master, every state slot, and the
//! caller's 16-bit params (which are also exactly the device's own master rounded): the
//! rules here are one-phase and the conversions integer code, so on lavapipe the device
//! computes what the model computes.

mod common;

use gpu_optim::verify::{bit_difference, Rng};
use gpu_optim::{
    Adam, AnyRule, Arena, BufferRange, Context, CpuModel, CpuOptimizer, Dtype, GradScaler,
    Optimizer, StateFormat, TensorId, UpdateRule,
};

/// Panics with the first difference if `got` and `want` differ bit for bit.
fn same(what: &str, got: &[f32], want: &[f32]) {
    if let Some(d) = bit_difference(got, want) {
        panic!("{what}: {d}");
    }
}

fn run<R: UpdateRule>(ctx: &Context, rule: R, pd: Dtype, gd: Dtype, lens: &[usize], steps: u32) {
    let arena = Arena::with_dtypes(ctx, lens, pd, gd).unwrap();
    let mut opt = Optimizer::new(ctx, rule.clone()).unwrap();
    let ids = opt.add_arena(&arena, opt.default_group()).unwrap();
    let mut model = CpuModel::with_limits(rule.clone(), ctx.limits()).unwrap();
    let mut rng = Rng(31);
    for (i, &n) in lens.iter().enumerate() {
        // The caller's params: values representable in its format (what its model holds).
        let at = arena.param(i).offset;
        let m = model
            .add_tensor(model.default_group(), at, &rng.vec(n, 1.0), (pd, gd))
            .unwrap();
        ctx.upload_as(&arena.param(i), pd, model.stored_params(m).unwrap())
            .unwrap();
    }
    for s in 1..=steps {
        // The grads as the device reads them.
        let g: Vec<Vec<f32>> = lens.iter().map(|&n| gd.round(&rng.vec(n, 1.0))).collect();
        for (i, g) in g.iter().enumerate() {
            ctx.upload_as(&arena.grad(i), gd, g).unwrap();
        }
        opt.step().unwrap();
        model.step(&g).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let what = format!("{} {pd:?}/{gd:?} tensor {i} step {s}", rule.name());
            let m = TensorId(i);
            let got = opt.read_params(*id).unwrap();
            same(&format!("{what} master"), &got, model.params(m).unwrap());
            for k in 0..rule.state_slots().len() {
                let st = opt.read_state(*id, k).unwrap();
                same(&format!("{what} slot {k}"), &st, model.state(m, k).unwrap());
            }
            if pd == Dtype::F32 {
                continue;
            }
            let (bytes, dt) = opt.param_bytes(*id).unwrap();
            assert_eq!(dt, pd);
            let (h, stored) = (pd.from_bytes(&bytes), model.stored_params(m).unwrap());
            same(&format!("{what} {pd:?} params"), &h, stored);
            same(
                &format!("{what}: not its own master rounded"),
                &h,
                &pd.round(&got),
            );
        }
    }
}

const LENS: &[usize] = &[1000, 37, 70_001, 5];

#[test]
fn bf16_params_and_grads() {
    let ctx = common::ctx();
    for rule in ["adamw", "sgd-momentum", "lion"] {
        let rule = AnyRule::by_name(rule).unwrap();
        run(&ctx, rule, Dtype::Bf16, Dtype::Bf16, LENS, 3);
    }
}

#[test]
fn f16_params_and_grads() {
    let ctx = common::ctx();
    run(&ctx, Adam::default(), Dtype::F16, Dtype::F16, LENS, 3);
}

/// SGD at lr 1 over one tensor of `n` params of 0 (`pd`) with `pd`/`gd` grads, on the
/// device and in the CPU model: the arena, the optimizer and its tensor, the model and its.
fn sgd_from_zero(
    ctx: &Context,
    n: usize,
    pd: Dtype,
    gd: Dtype,
) -> (
    Arena,
    Optimizer<gpu_optim::Sgd>,
    TensorId,
    CpuModel<gpu_optim::Sgd>,
    TensorId,
) {
    let sgd = gpu_optim::Sgd {
        lr: 1.0,
        ..gpu_optim::Sgd::default()
    };
    let arena = Arena::with_dtypes(ctx, &[n], pd, gd).unwrap();
    let mut opt = Optimizer::new(ctx, sgd.clone()).unwrap();
    let id = opt.add_arena(&arena, opt.default_group()).unwrap()[0];
    let mut model = CpuModel::with_limits(sgd, ctx.limits()).unwrap();
    let at = arena.param(0).offset;
    let m = model
        .add_tensor(model.default_group(), at, &vec![0.0; n], (pd, gd))
        .unwrap();
    ctx.upload_as(&arena.param(0), pd, &vec![0.0; n]).unwrap();
    (arena, opt, id, model, m)
}

/// The device's f16 conversions (shaders/half.wgsl) give the twin's bits (gpu_optim::half)
/// on every half and at every rounding edge. SGD at lr 1 from params of 0 moves them to
/// -grad, so (1) f16 grads of every bit pattern, NaN payloads included, read back widened
/// in the f32 params, and (2) f32 grads of -x leave x in the f32 master, whose rounding
/// lands in f16 params: x around every midpoint between neighbouring halves (the tie and
/// one f32 ulp either side), at the overflow and underflow thresholds, f32 subnormals,
/// infinities, NaNs and random bit patterns. Random values in [-1, 1), as the other tests
/// here use, never reach the subnormal, overflow or NaN arms.
#[test]
fn f16_conversions_match_the_twin_on_every_half_and_rounding_edge() {
    let ctx = common::ctx();
    // (1) Widening: every f16 bit pattern as a grad, written as raw bytes (an f32 upload
    // would requantize NaN payloads).
    let (arena, mut opt, id, mut model, m) = sgd_from_zero(&ctx, 1 << 16, Dtype::F32, Dtype::F16);
    let bits: Vec<u16> = (0..=u16::MAX).collect();
    let g = arena.grad(0);
    ctx.queue()
        .write_buffer(&g.buffer, g.offset * 2, bytemuck::cast_slice(&bits));
    opt.step().unwrap();
    let widened: Vec<f32> = bits.iter().map(|&h| Dtype::F16.decode(h)).collect();
    model.step(&[widened]).unwrap();
    same(
        "every f16 grad, widened",
        &opt.read_params(id).unwrap(),
        model.params(m).unwrap(),
    );

    // (2) Narrowing: f32 values at every rounding edge of f16.
    let mut xs: Vec<f32> = Vec::new();
    let finite: Vec<f32> = (0..0x7c00u16).map(|h| Dtype::F16.decode(h)).collect();
    for w in finite.windows(2) {
        let mid = ((w[0] as f64 + w[1] as f64) / 2.0) as f32; // exact: 12 significant bits
        let b = mid.to_bits();
        xs.extend([b - 1, b, b + 1].map(f32::from_bits));
    }
    let edges = [
        0x477f_f000u32,
        0x3300_0000,
        0x3880_0000,
        0x3800_0000,
        0x7f80_0000,
    ];
    for e in edges {
        xs.extend((e - 4..=e + 4).map(f32::from_bits));
    }
    xs.extend(
        [
            0x7fc0_0000u32,
            0x7f80_0001,
            0x7fff_ffff,
            1,
            0x7f_ffff,
            0x0080_0000,
        ]
        .map(f32::from_bits),
    );
    xs.extend([f32::MAX, f32::MIN_POSITIVE, 65504.0, 65519.99, 65520.0, 0.0]);
    let mut rng = Rng(77);
    xs.extend((0..1 << 16).map(|_| f32::from_bits(rng.next_u64() as u32)));
    let signed: Vec<f32> = xs.iter().flat_map(|&x| [x, -x]).collect();
    let (arena, mut opt, id, mut model, m) =
        sgd_from_zero(&ctx, signed.len(), Dtype::F16, Dtype::F32);
    let grads: Vec<f32> = signed.iter().map(|&x| -x).collect();
    ctx.upload(&arena.grad(0), &grads).unwrap();
    opt.step().unwrap();
    model.step(&[grads]).unwrap();
    same(
        "the master",
        &opt.read_params(id).unwrap(),
        model.params(m).unwrap(),
    );
    let (bytes, dt) = opt.param_bytes(id).unwrap();
    assert_eq!(dt, Dtype::F16);
    let got: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
    let want: Vec<u16> = model
        .params(m)
        .unwrap()
        .iter()
        .map(|&x| Dtype::F16.encode(x))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "f16 of {:e} ({:#010x}): device {g:#06x}, twin {w:#06x}",
            model.params(m).unwrap()[i],
            model.params(m).unwrap()[i].to_bits()
        );
    }
}

#[test]
fn mixed_dtypes_of_params_and_grads() {
    let ctx = common::ctx();
    for (pd, gd) in [
        (Dtype::Bf16, Dtype::F32),
        (Dtype::F16, Dtype::F32),
        (Dtype::F32, Dtype::Bf16),
        (Dtype::F32, Dtype::F16),
    ] {
        run(&ctx, Adam::default(), pd, gd, LENS, 2);
    }
}

/// Tensors packed at multiples of 4 elements in one caller's buffer, lengths that are not:
/// the halves between them (the caller's) are never written.
#[test]
fn neighbours_in_a_shared_buffer_are_untouched() {
    let ctx = common::ctx();
    let n_elems = 64;
    let sentinel = vec![0xABCDu16; n_elems];
    let words: Vec<f32> = bytemuck::cast_slice(&sentinel).to_vec();
    let pbuf = ctx.create_buffer("p16", &words).unwrap();
    let gbuf = ctx.create_buffer("g16", &vec![0.0; n_elems / 2]).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    // Tensors at 4..9 and 12..25: halves 0..4, 9..12 and 25.. belong to nobody here.
    for (o, n) in [(4u64, 5usize), (12, 13)] {
        opt.add_tensor_as(
            opt.default_group(),
            BufferRange::new(&pbuf, o, n),
            Dtype::Bf16,
            BufferRange::new(&gbuf, o, n),
            Dtype::Bf16,
        )
        .unwrap();
    }
    opt.step().unwrap();
    let b = ctx.download_bytes(&pbuf, 0, (n_elems * 2) as u64).unwrap();
    let h: Vec<u16> = bytemuck::pod_collect_to_vec(&b);
    for (j, &x) in h.iter().enumerate() {
        let owned = (4..9).contains(&j) || (12..25).contains(&j);
        if !owned {
            assert_eq!(x, 0xABCD, "half {j} changed");
        }
    }
    // Zero grads with Adam: the params (the sentinel's value) stay as they were.
    assert!(h.iter().all(|&x| x == 0xABCD));
}

#[test]
fn misaligned_16bit_tensor_is_refused() {
    let ctx = common::ctx();
    let pbuf = ctx.create_zeroed("p16", 64).unwrap();
    let gbuf = ctx.create_zeroed("g16", 64).unwrap();
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    // Refused when registered (it used to be refused at every step, from the first on).
    let r = opt.add_tensor_as(
        opt.default_group(),
        BufferRange::new(&pbuf, 2, 10),
        Dtype::Bf16,
        BufferRange::new(&gbuf, 2, 10),
        Dtype::Bf16,
    );
    assert!(matches!(r, Err(gpu_optim::Error::BadRange { .. })), "{r:?}");
    // A 16-bit range past its buffer's end is refused when registered.
    let mut opt = Optimizer::new(&ctx, Adam::default()).unwrap();
    let e = opt.add_tensor_as(
        opt.default_group(),
        BufferRange::new(&pbuf, 0, 129),
        Dtype::Bf16,
        BufferRange::new(&gbuf, 0, 129),
        Dtype::F16,
    );
    assert!(matches!(e, Err(gpu_optim::Error::BadRange { .. })), "{e:?}");
}

/// bf16 params with 8-bit state and loss scaling together; a checkpoint (with the master)
/// resumes bit-identically, params included.
#[test]
fn with_8bit_state_scaler_and_checkpoint() {
    let ctx = common::ctx();
    let lens = [6000usize, 300];
    let build = || {
        let arena = Arena::with_dtypes(&ctx, &lens, Dtype::Bf16, Dtype::Bf16).unwrap();
        for (i, &n) in lens.iter().enumerate() {
            ctx.upload_as(&arena.param(i), Dtype::Bf16, &Rng(i as u64).vec(n, 1.0))
                .unwrap();
        }
        let mut opt = Optimizer::new(&ctx, Adam::adamw()).unwrap();
        opt.set_state_format(StateFormat::blockwise8()).unwrap();
        opt.add_arena(&arena, opt.default_group()).unwrap();
        opt.set_grad_scaler(GradScaler::default()).unwrap();
        (arena, opt)
    };
    let steps = |arena: &Arena, opt: &mut Optimizer<Adam>, from: u64, to: u64| {
        for t in from..to {
            let scale = opt.loss_scale().unwrap();
            for (i, &n) in lens.iter().enumerate() {
                let mut g: Vec<f32> = Rng(100 + t)
                    .vec(n, 1e-2)
                    .iter()
                    .map(|x| x * scale)
                    .collect();
                if t == 2 {
                    g[n / 2] = f32::INFINITY;
                }
                ctx.upload_as(&arena.grad(i), Dtype::Bf16, &g).unwrap();
            }
            opt.step().unwrap();
        }
    };
    let snap = |opt: &mut Optimizer<Adam>| {
        let mut out: Vec<u8> = Vec::new();
        for i in 0..lens.len() {
            let id = TensorId(i);
            out.extend(opt.param_bytes(id).unwrap().0);
            out.extend(bytemuck::cast_slice(&opt.read_params(id).unwrap()));
            for k in 0..2 {
                out.extend(bytemuck::cast_slice(&opt.read_state(id, k).unwrap()));
            }
        }
        out
    };
    let (a, mut straight) = build();
    steps(&a, &mut straight, 0, 6);
    assert_eq!(straight.skipped_steps().unwrap(), 1);
    let want = snap(&mut straight);

    let (b, mut first) = build();
    steps(&b, &mut first, 0, 3);
    let path = std::env::temp_dir().join(format!("gpu-optim-mixed-{}.st", std::process::id()));
    first.save(&path, true).unwrap();
    let (c, mut resumed) = build();
    resumed.load(&path).unwrap();
    steps(&c, &mut resumed, 3, 6);
    assert!(snap(&mut resumed) == want, "resume differs");
    std::fs::remove_file(&path).unwrap();
}

/// bf16 params without a master, rounded stochastically: the device's bits equal the CPU
/// model's (SGD: only correctly rounded operations, so the f32 values agree exactly), and
/// updates far below half a bf16 ulp still move the params by the right amount on
/// average, where round-to-nearest never moves them.
#[test]
fn stochastic_rounding_matches_twin_and_is_unbiased() {
    use gpu_optim::half::f32_to_bf16;
    let ctx = common::ctx();
    let n = 4096;
    let seed = 7;
    // Updates up to 1e-3: below half a bf16 ulp just under 1.0 (2^-9).
    let rule = gpu_optim::Sgd {
        lr: 5e-4,
        momentum: 0.5,
        ..gpu_optim::Sgd::default()
    };
    let arena = Arena::with_dtypes(&ctx, &[n], Dtype::Bf16, Dtype::F32).unwrap();
    let p0 = vec![1.0f32; n];
    let ones = vec![1.0f32; n];
    ctx.upload_as(&arena.param(0), Dtype::Bf16, &p0).unwrap();
    ctx.upload(&arena.grad(0), &ones).unwrap();
    let mut opt = Optimizer::new(&ctx, rule.clone()).unwrap();
    opt.set_stochastic_rounding(Some(seed)).unwrap();
    let id = opt.add_arena(&arena, opt.default_group()).unwrap()[0];
    assert!(!opt.has_master(id));
    let mut model = CpuModel::with_limits(rule.clone(), ctx.limits()).unwrap();
    model.set_stochastic_rounding(Some(seed)).unwrap();
    let at = arena.param(0).offset;
    let m = model
        .add_tensor(model.default_group(), at, &p0, (Dtype::Bf16, Dtype::F32))
        .unwrap();
    // Round to nearest without a master, for contrast (no optimizer setting does this).
    let mut cpu_near = CpuOptimizer::new(rule, n).unwrap();
    let mut nearest = p0.clone();
    let steps = 100;
    for _ in 0..steps {
        opt.step().unwrap();
        model.step(std::slice::from_ref(&ones)).unwrap();
        cpu_near.step(&mut nearest, &ones).unwrap();
        for x in nearest.iter_mut() {
            *x = Dtype::Bf16.decode(f32_to_bf16(*x));
        }
    }
    assert!(!model.has_master(m));
    let got = opt.read_params(id).unwrap();
    same("device vs CPU model", &got, model.params(m).unwrap());
    // The exact trajectory in f32: momentum 0.5 with a constant gradient.
    let mut want = 1.0f64;
    let mut buf = 0.0f64;
    for t in 0..steps {
        buf = if t == 0 { 1.0 } else { 0.5 * buf + 1.0 };
        want -= 5e-4 * buf;
    }
    let mean = got.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    assert!(
        (mean - want).abs() < 0.01 * (1.0 - want),
        "mean {mean}, f32 {want}"
    );
    // Round to nearest drops every update (each is below half an ulp at 1.0).
    assert!(nearest.iter().all(|&x| x == 1.0));
}

/// The verifier runs mixed precision too: the master against the CPU twin, and the
/// 16-bit params against the device's own master rounded.
#[test]
fn verifier_handles_16bit_params() {
    let ctx = common::ctx();
    for (pd, gd) in [(Dtype::Bf16, Dtype::Bf16), (Dtype::F16, Dtype::F32)] {
        let mut plan = gpu_optim::VerifyPlan::flat(Adam::adamw(), 0, 4);
        plan.tensors = vec![(0, 70_001), (0, 7)];
        plan.dtypes = (pd, gd);
        let r = gpu_optim::verify(&ctx, &plan).unwrap();
        assert!(r.passed(), "{r}");
        assert_eq!(r.buffers[1].max_abs, 0.0, "{r}");
    }
}

/// Typed uploads and downloads at 16-bit ranges that start and end inside 4-byte words:
/// the neighbours' halves of those words are kept.
#[test]
fn typed_upload_keeps_neighbouring_halves() {
    let ctx = common::ctx();
    let sentinel = vec![0xABCDu16; 16];
    let words: Vec<f32> = bytemuck::cast_slice(&sentinel).to_vec();
    let buf = ctx.create_buffer("p16", &words).unwrap();
    let r = BufferRange::new(&buf, 3, 5);
    let v = [0.5, -1.0, 2.0, 3.0, -0.25];
    ctx.upload_as(&r, Dtype::F16, &v).unwrap();
    assert_eq!(ctx.download_as(&r, Dtype::F16).unwrap(), v);
    let b = ctx.download_bytes(&buf, 0, 32).unwrap();
    let h: Vec<u16> = bytemuck::pod_collect_to_vec(&b);
    for (j, &x) in h.iter().enumerate() {
        if !(3..8).contains(&j) {
            assert_eq!(x, 0xABCD, "half {j} changed");
        }
    }
}
