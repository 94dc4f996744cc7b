//! `--dump-wgsl DIR`: the WGSL of every kernel variant the selected rules plan in the
//! configurations the bench measures, as it runs (each `override` written in as a `const`
//! of the variant's value, [`KernelVariant::wgsl`]), one file per variant named
//! `<KernelVariant::name()>.wgsl`. Times nothing.
//!
//! The variants are what the optimizer plans ([`Optimizer::kernel_variants`] after
//! `prepare`), not a list kept here: for each selected rule, small optimizers are built
//! on the bench's context the way each section builds its own. A variant does not depend
//! on a flat buffer's length (every window of one tensor is dense, and arena tensors are
//! 64-aligned and padded, so always vec4), so small lengths stand for the timed sizes; the
//! one length that matters is 8-bit state's threshold (`min_len`), which the flat lengths
//! here exceed as the timed sizes do.
//!
//! Not written: the reduction kernels (`shaders/reduce.wgsl`: clipping's, loss scaling's
//! and LAMB's per-tensor and global sums) and the roofline's copy kernel
//! (`shaders/copy.wgsl`). They have no variants and the library does not expose their
//! text.

use std::collections::BTreeMap;
use std::path::Path;

use gpu_optim::{
    Adam, AnyRule, Arena, Context, Dtype, Error, GradClip, GradScaler, KernelVariant, Optimizer,
    StateFormat,
};

use crate::model::{gpt2_optimizer, gpt2_small_scaled_lens, host_cost_optimizer};
use crate::rules::VERIFY_LEN;
use crate::{mlp, Args};

/// Length of the flat buffer standing for the timed sizes (at least 8-bit state's
/// default `min_len`, as the features and 8-bit rows' sizes are by default).
const FLAT_LEN: usize = 1 << 16;

/// One optimizer as a section of the bench builds it: one param group, the tensors of an
/// arena of `lens` with these element types, state format, clipping and loss scaling.
struct Config {
    lens: Vec<usize>,
    dtypes: (Dtype, Dtype),
    format: StateFormat,
    clip: Option<GradClip>,
    scaler: Option<GradScaler>,
}

impl Config {
    fn flat(len: usize) -> Config {
        Config {
            lens: vec![len],
            dtypes: (Dtype::F32, Dtype::F32),
            format: StateFormat::F32,
            clip: None,
            scaler: None,
        }
    }
}

/// The configurations the bench measures, each run here with every selected rule: the
/// rules table (flat f32) and the verifier (flat, odd length), the training-loop features
/// (clip_grad_norm, GradScaler, both, bf16 and f16 params and grads through an f32
/// master), the 8-bit state rows (flat, nearest and stochastic requantization) and the
/// MLP example's arena of three layers (f32 state, the multi-tensor case, and 8-bit
/// state for every tensor).
fn configs() -> Vec<Config> {
    let clip = Some(GradClip {
        max_norm: Some(1.0),
        value: None,
    });
    let scaler = Some(GradScaler {
        init_scale: 1.0,
        ..GradScaler::default()
    });
    let h = mlp::H;
    // train_mlp's layers (2 -> H -> H -> 2), weights and bias in one tensor each.
    let mlp_lens = vec![3 * h, (h + 1) * h, (h + 1) * 2];
    let on = |lens: &Vec<usize>, format| Config {
        lens: lens.clone(),
        format,
        ..Config::flat(0)
    };
    vec![
        Config::flat(FLAT_LEN),
        Config::flat(VERIFY_LEN),
        Config {
            clip,
            ..Config::flat(FLAT_LEN)
        },
        Config {
            scaler,
            ..Config::flat(FLAT_LEN)
        },
        Config {
            clip,
            scaler,
            ..Config::flat(FLAT_LEN)
        },
        Config {
            dtypes: (Dtype::Bf16, Dtype::Bf16),
            ..Config::flat(FLAT_LEN)
        },
        Config {
            dtypes: (Dtype::F16, Dtype::F16),
            ..Config::flat(FLAT_LEN)
        },
        on(&vec![FLAT_LEN], StateFormat::blockwise8()),
        on(
            &vec![FLAT_LEN],
            StateFormat::Blockwise8 {
                min_len: 4096,
                stochastic: Some(1),
            },
        ),
        on(&mlp_lens, StateFormat::F32),
        on(
            &mlp_lens,
            StateFormat::Blockwise8 {
                min_len: 0,
                stochastic: None,
            },
        ),
        on(
            &mlp_lens,
            StateFormat::Blockwise8 {
                min_len: 0,
                stochastic: Some(1),
            },
        ),
    ]
}

/// The variants of `cfg`'s dispatches with `rule`, in dispatch order; `None` where the
/// rule refuses the configuration (8-bit state for a two-phase rule such as LAMB).
fn plan(ctx: &Context, rule: &AnyRule, cfg: &Config) -> Result<Option<Vec<KernelVariant>>, Error> {
    let (pd, gd) = cfg.dtypes;
    let arena = Arena::with_dtypes(ctx, &cfg.lens, pd, gd)?;
    let mut opt = Optimizer::new(ctx, rule.clone())?;
    // The order of bench::optimizer_on: format, tensors, clipping, loss scaling.
    let refused = match opt.set_state_format(cfg.format) {
        Err(Error::InvalidState(_)) => true,
        r => {
            r?;
            false
        }
    };
    if refused {
        return Ok(None);
    }
    opt.add_arena(&arena, opt.default_group())?;
    if let Some(c) = cfg.clip {
        opt.set_grad_clip(c)?;
    }
    if let Some(s) = cfg.scaler {
        opt.set_grad_scaler(s)?;
    }
    opt.prepare()?;
    Ok(Some(opt.kernel_variants()))
}

/// Writes the variants into `dir`, one line each on stdout, then the count.
pub fn dump_wgsl(
    ctx: &Context,
    args: &Args,
    rules: &[AnyRule],
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut variants: BTreeMap<String, KernelVariant> = BTreeMap::new();
    let mut add = |vs: Vec<KernelVariant>| -> Result<(), String> {
        for v in vs {
            let name = v.name();
            match variants.insert(name.clone(), v) {
                Some(old) if old != v => {
                    return Err(format!("two kernel variants share the name {name}"));
                }
                _ => {}
            }
        }
        Ok(())
    };
    for rule in rules {
        for cfg in configs() {
            if let Some(vs) = plan(ctx, rule, &cfg)? {
                add(vs)?;
            }
        }
    }
    if !args.no_model {
        // The model's flat buffer; GPT-2 small's optimizers (AdamW, two groups), batched and one dispatch per
        // tensor, and the host-cost one (one group), on the tensors scaled down as the
        // host-cost measurement does: at full size some windows would hold part of the
        // embedding alone, which plans the same variants as the per-tensor dispatches.
        let adamw = AnyRule::Adam(Adam::adamw());
        add(plan(ctx, &adamw, &Config::flat(FLAT_LEN))?.unwrap_or_default())?;
        let arena = Arena::new(ctx, &gpt2_small_scaled_lens())?;
        for naive in [false, true] {
            add(gpt2_optimizer(ctx, &arena, naive)?.kernel_variants())?;
        }
        let mut opt = host_cost_optimizer(ctx, &arena)?;
        opt.prepare()?;
        add(opt.kernel_variants())?;
    }
    let at = |e: std::io::Error| format!("--dump-wgsl {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(at)?;
    for (name, v) in &variants {
        let path = dir.join(format!("{name}.wgsl"));
        std::fs::write(&path, v.wgsl()).map_err(at)?;
        println!("{}", path.display());
    }
    println!("{} variants written to {}", variants.len(), dir.display());
    Ok(())
}
