//! Checkpoint and resume: bit-identical continuation (also in a fresh process), refusal of
//! any mismatch, and corrupt or hostile files that must give errors, never panics.

mod common;

use std::path::{Path, PathBuf};

use gpu_optim::verify::Rng;
use gpu_optim::*;
use proptest::prelude::*;

const LENS: [usize; 3] = [1000, 3, 4097];

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpu-optim-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A two-group optimizer over an arena with deterministic params; grads are uploaded per
/// step from `grads(t)`.
fn build(ctx: &Context, rule: &AnyRule) -> (Arena, Optimizer<AnyRule>) {
    let arena = Arena::new(ctx, &LENS).unwrap();
    let mut rng = Rng(42);
    for (i, &n) in LENS.iter().enumerate() {
        ctx.upload(&arena.param(i), &rng.vec(n, 1.0)).unwrap();
    }
    let mut opt = Optimizer::new(ctx, rule.clone()).unwrap();
    let mut second = rule.clone();
    second.set_lr(rule.lr() * 0.5);
    let g1 = opt.add_group(second).unwrap();
    for i in 0..LENS.len() {
        let g = if i == 1 { g1 } else { opt.default_group() };
        opt.add_tensor(g, arena.param(i), arena.grad(i)).unwrap();
    }
    opt.set_schedule(
        g1,
        LrSchedule::Step {
            step_size: 2,
            gamma: 0.5,
        },
    )
    .unwrap();
    (arena, opt)
}

fn run_steps(ctx: &Context, arena: &Arena, opt: &mut Optimizer<AnyRule>, from: u64, to: u64) {
    for t in from..to {
        let mut rng = Rng(1000 + t);
        for (i, &n) in LENS.iter().enumerate() {
            ctx.upload(&arena.grad(i), &rng.vec(n, 1.0)).unwrap();
        }
        opt.step().unwrap();
    }
}

#[test]
fn resume_is_bit_identical_for_every_rule() {
    let ctx = common::ctx();
    for rule in AnyRule::catalog() {
        let (a, mut straight) = build(&ctx, &rule);
        run_steps(&ctx, &a, &mut straight, 0, 6);
        let want = common::snapshot(&ctx, &a, &mut straight);

        let (b, mut first) = build(&ctx, &rule);
        run_steps(&ctx, &b, &mut first, 0, 3);
        let path = tmp(&format!("{}.safetensors", rule.name()));
        first.save(&path, true).unwrap();
        drop(first);
        drop(b);

        let (c, mut resumed) = build(&ctx, &rule);
        resumed.load(&path).unwrap();
        assert_eq!(resumed.step_count(), 3);
        run_steps(&ctx, &c, &mut resumed, 3, 6);
        assert!(
            common::snapshot(&ctx, &c, &mut resumed) == want,
            "{}: resume differs",
            rule.name()
        );
    }
}

/// The second half of `resume_in_a_fresh_process`, run by that test in a child process.
#[test]
#[ignore = "run as a child process by resume_in_a_fresh_process"]
fn resume_child() {
    let Ok(dir) = std::env::var("GPU_OPTIM_RESUME_DIR") else {
        panic!("only meaningful as resume_in_a_fresh_process's child");
    };
    let ctx = common::ctx();
    let rule = AnyRule::by_name("adamw").unwrap();
    let (c, mut opt) = build(&ctx, &rule);
    opt.load(Path::new(&dir).join("ckpt.safetensors")).unwrap();
    run_steps(&ctx, &c, &mut opt, 3, 6);
    let bits = common::snapshot(&ctx, &c, &mut opt);
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    std::fs::write(Path::new(&dir).join("resumed.bin"), bytes).unwrap();
}

#[test]
fn resume_in_a_fresh_process() {
    let ctx = common::ctx();
    let rule = AnyRule::by_name("adamw").unwrap();
    let (a, mut straight) = build(&ctx, &rule);
    run_steps(&ctx, &a, &mut straight, 0, 6);
    let want = common::snapshot(&ctx, &a, &mut straight);
    let (b, mut first) = build(&ctx, &rule);
    run_steps(&ctx, &b, &mut first, 0, 3);
    let dir = tmp("fresh");
    std::fs::create_dir_all(&dir).unwrap();
    first.save(dir.join("ckpt.safetensors"), true).unwrap();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "resume_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("GPU_OPTIM_RESUME_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success());
    let got = std::fs::read(dir.join("resumed.bin")).unwrap();
    let got: Vec<u32> = got
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(got == want, "fresh-process resume differs");
}

fn saved(ctx: &Context, rule: &AnyRule, name: &str) -> PathBuf {
    let (a, mut opt) = build(ctx, rule);
    run_steps(ctx, &a, &mut opt, 0, 2);
    let path = tmp(name);
    opt.save(&path, false).unwrap();
    path
}

fn refuses(opt: &mut Optimizer<AnyRule>, path: &Path, needle: &str) {
    refuses_with(opt, path, needle, LoadMode::Restore)
}

fn refuses_with(opt: &mut Optimizer<AnyRule>, path: &Path, needle: &str, mode: LoadMode) {
    let before = opt.step_count();
    let lr = opt.lr(opt.default_group()).unwrap();
    match opt.load_with(path, mode) {
        Err(Error::Checkpoint { why, .. }) => assert!(why.contains(needle), "{why}"),
        other => panic!("expected a checkpoint error about {needle}, got {other:?}"),
    }
    assert_eq!(opt.step_count(), before);
    assert_eq!(opt.lr(opt.default_group()).unwrap(), lr);
}

#[test]
fn mismatches_are_refused_by_name() {
    let ctx = common::ctx();
    let adam = AnyRule::by_name("adam").unwrap();
    let path = saved(&ctx, &adam, "adam.safetensors");

    let (_a, mut sgd) = build(&ctx, &AnyRule::by_name("sgd-momentum").unwrap());
    refuses(&mut sgd, &path, "rule");
    let (_b, mut amsgrad) = build(&ctx, &AnyRule::by_name("adam-amsgrad").unwrap());
    refuses(&mut amsgrad, &path, "slots");
    // Hyperparameters are settings: refused only in strict mode, else restored.
    let other = AnyRule::Adam(Adam {
        lr: 2e-3,
        ..Adam::default()
    });
    let (_c, mut other_lr) = build(&ctx, &other);
    refuses_with(&mut other_lr, &path, "group.0", LoadMode::Strict);
    other_lr.load(&path).unwrap();
    assert_eq!(other_lr.group(GroupId(0)).unwrap().lr(), 1e-3);
    // Element types are structure.
    let arena = Arena::with_dtypes(&ctx, &LENS, Dtype::Bf16, Dtype::Bf16).unwrap();
    let mut bf16 = Optimizer::new(&ctx, adam.clone()).unwrap();
    let g1 = bf16.add_group(adam.clone()).unwrap();
    for i in 0..LENS.len() {
        let g = if i == 1 { g1 } else { bf16.default_group() };
        bf16.add_tensor_as(g, arena.param(i), Dtype::Bf16, arena.grad(i), Dtype::Bf16)
            .unwrap();
    }
    refuses(&mut bf16, &path, "tensors");

    // A different layout: one tensor fewer.
    let arena = Arena::new(&ctx, &LENS[..2]).unwrap();
    let mut short = Optimizer::new(&ctx, adam.clone()).unwrap();
    short.add_arena(&arena, short.default_group()).unwrap();
    refuses(&mut short, &path, "groups");
}

/// Rewrites a checkpoint's metadata or tensors through safetensors itself.
fn rewrite(
    path: &Path,
    out: &Path,
    edit: impl Fn(
        &mut std::collections::HashMap<String, String>,
        &mut Vec<(String, Vec<usize>, Vec<u8>)>,
    ),
) {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut meta, &mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let dtype = if d.len() == s.iter().product::<usize>() * 4 {
                Dtype::F32
            } else {
                Dtype::F16
            };
            (n.clone(), TensorView::new(dtype, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(out, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn edited_checkpoints_are_refused() {
    let ctx = common::ctx();
    let rule = AnyRule::by_name("adam").unwrap();
    let path = saved(&ctx, &rule, "edit-src.safetensors");
    let (_a, mut opt) = build(&ctx, &rule);
    let out = tmp("edited.safetensors");

    rewrite(&path, &out, |m, _| {
        m.insert("version".into(), "99".into());
    });
    refuses(&mut opt, &out, "version");
    rewrite(&path, &out, |m, _| {
        let g = m["group.0"].replace("\"lr\":0.001", "\"lr\":-1.0");
        assert_ne!(g, m["group.0"]);
        m.insert("group.0".into(), g);
    });
    refuses(&mut opt, &out, "group.0");
    rewrite(&path, &out, |m, _| {
        m.insert("group.0".into(), "{\"Adam\":{\"lr\":".into());
    });
    refuses(&mut opt, &out, "group.0");
    rewrite(&path, &out, |m, _| {
        m.remove("step");
    });
    refuses(&mut opt, &out, "step");
    rewrite(&path, &out, |_, t| {
        t.retain(|(n, _, _)| n != "state.2.exp_avg")
    });
    refuses(&mut opt, &out, "state.2.exp_avg missing");
    rewrite(&path, &out, |_, t| {
        let e = t
            .iter_mut()
            .find(|(n, _, _)| n == "state.0.exp_avg")
            .unwrap();
        e.1 = vec![999];
        e.2.truncate(999 * 4);
    });
    refuses(&mut opt, &out, "expected F32 [1000]");
    rewrite(&path, &out, |_, t| {
        let e = t
            .iter_mut()
            .find(|(n, _, _)| n == "state.0.exp_avg")
            .unwrap();
        e.2.truncate(1000 * 2); // F16 [1000]
    });
    refuses(&mut opt, &out, "expected F32 [1000]");
    // After all refusals the optimizer still loads the genuine file and steps.
    opt.load(&path).unwrap();
    opt.step().unwrap();
}

#[test]
fn corrupt_files_are_errors() {
    let ctx = common::ctx();
    let rule = AnyRule::by_name("sgd-momentum").unwrap();
    let path = saved(&ctx, &rule, "corrupt-src.safetensors");
    let good = std::fs::read(&path).unwrap();
    let (_a, mut opt) = build(&ctx, &rule);
    let out = tmp("corrupt.safetensors");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("header length only", good[..8].to_vec()),
        ("truncated header", good[..40].to_vec()),
        ("truncated data", good[..good.len() - 10].to_vec()),
        ("huge header length", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
            b
        }),
        ("header length past the end", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
            b
        }),
        ("not json", {
            let mut b = good.clone();
            b[8] = b'#';
            b
        }),
    ];
    // Overlapping offsets: point the second tensor's data_offsets at the first's.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let pos = header
        .find("\"data_offsets\":[4000,")
        .expect("layout of the fixture");
    {
        let mut h = header.clone();
        h.replace_range(pos..pos + 21, "\"data_offsets\":[   0,");
        let mut b = good[..8].to_vec();
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&good[8 + n..]);
        cases.push(("overlapping offsets", b));
    }
    for (what, bytes) in cases {
        std::fs::write(&out, bytes).unwrap();
        assert!(
            matches!(opt.load(&out), Err(Error::Checkpoint { .. })),
            "{what} was accepted"
        );
        assert_eq!(opt.step_count(), 0, "{what}");
    }
    // Too large to be this optimizer's: refused before reading.
    let f = std::fs::File::create(&out).unwrap();
    f.set_len(1 << 40).unwrap();
    match opt.load(&out) {
        Err(Error::Checkpoint { why, .. }) => assert!(why.contains("more than"), "{why}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let ctx = common::ctx();
    let rule = AnyRule::by_name("adam").unwrap();
    let path = saved(&ctx, &rule, "keep.safetensors");
    let before = std::fs::read(&path).unwrap();
    let (_a, mut opt) = build(&ctx, &rule);
    // A directory where the temporary file would go cannot be written.
    assert!(opt
        .save(tmp("no-such-dir").join("x").join("y.safetensors"), false)
        .is_err());
    // Saving over the file replaces it whole; no temporary files are left behind.
    opt.save(&path, false).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), before);
    let leftovers = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    /// Random byte edits and truncations of a valid checkpoint: an error or a clean load,
    /// never a panic. (Edits inside the data section are legitimately loadable floats.)
    #[test]
    fn fuzzed_checkpoints_never_panic(
        edits in proptest::collection::vec((0usize..200, any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..300),
    ) {
        thread_local! {
            static FIXTURE: (Context, PathBuf) = {
                let ctx = common::ctx();
                let path = saved(&ctx, &AnyRule::by_name("adam").unwrap(), "fuzz-src.safetensors");
                (ctx, path)
            };
        }
        FIXTURE.with(|(ctx, path)| {
            let mut bytes = std::fs::read(path).unwrap();
            for (at, b) in &edits {
                let i = at % bytes.len().min(400);
                bytes[i] = *b;
            }
            if let Some(c) = cut {
                bytes.truncate(c.min(bytes.len()));
            }
            let out = tmp(&format!("fuzz-{:?}.safetensors", std::thread::current().id()));
            std::fs::write(&out, &bytes).unwrap();
            let (_a, mut opt) = build(ctx, &AnyRule::by_name("adam").unwrap());
            let r = opt.load(&out);
            prop_assert!(r.is_ok() || matches!(r, Err(Error::Checkpoint { .. })), "{:?}", r);
            Ok(())
        })?;
    }
}
