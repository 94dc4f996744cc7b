//! WGSL assembly and the pipeline cache: prelude (vector width) + `shaders/common.wgsl`
//! + the rule's `update`, compiled once per (rule kernel, width, state slots, workgroup).

use std::collections::HashMap;

use crate::context::Context;
use crate::error::Result;
use crate::half::Dtype;
use crate::rules::Kernel;

const COMMON: &str = include_str!("../shaders/common.wgsl");
const TWO_PHASE: &str = include_str!("../shaders/two_phase.wgsl");
const STATE_F32: &str = include_str!("../shaders/state_f32.wgsl");
const STATE_Q8: &str = include_str!("../shaders/state_q8.wgsl");
const HALF: &str = include_str!("../shaders/half.wgsl");

const PRELUDE_VEC4: &str =
    "alias V = vec4<f32>;\nalias U = vec4<u32>;\nalias M = vec4<bool>;\nconst W: u32 = 4u;\n\
fn live_lanes(e0: u32, end: u32) -> vec4<bool> {\n\
    return vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end);\n}\n\
fn lane_sum(x: vec4<f32>) -> f32 {\n    return (x.x + x.y) + (x.z + x.w);\n}\n";

const PRELUDE_SCALAR: &str =
    "alias V = f32;\nalias U = u32;\nalias M = bool;\nconst W: u32 = 1u;\n\
fn live_lanes(e0: u32, end: u32) -> bool {\n    return e0 < end;\n}\n\
fn lane_sum(x: f32) -> f32 {\n    return x;\n}\n";

/// Number of bindings in the shared layout (`shaders/common.wgsl`; 9 and 10 are 8-bit
/// state's absmax and quantization map, `shaders/state_q8.wgsl`).
pub(crate) const BINDINGS: u32 = 11;
/// Binding of 8-bit state's quantization map, a uniform.
pub(crate) const QMAP_BINDING: u32 = 10;
/// Binding of the f32 master copy of 16-bit params: only in the mixed-precision layout
/// (a ninth storage buffer, more than WebGPU's default limit of 8).
pub(crate) const MASTER_BINDING: u32 = 11;
/// Binding of the per-dispatch geometry, a uniform.
pub(crate) const LAUNCH_BINDING: u32 = 8;
/// Binding of the per-step scalars (a uniform), the only one with a dynamic offset.
pub(crate) const HYPER_BINDING: u32 = 3;

/// The full WGSL of a rule kernel with f32 state at vector width 4 or 1. Public so tools
/// (and the tests) can validate it with naga.
///
/// `groups` sizes the uniform array of per-group scalars (`GROUPS` in common.wgsl).
pub fn shader_source(kernel: &Kernel, width: u32, groups: u32) -> String {
    assemble(
        kernel,
        width,
        groups,
        1,
        None,
        (Dtype::F32, Dtype::F32),
        false,
    )
}

/// The kernel (vector width 4) for params and grads of the given element types; 16-bit
/// params are updated through an f32 master copy.
pub fn shader_source_typed(kernel: &Kernel, groups: u32, param: Dtype, grad: Dtype) -> String {
    assemble(kernel, 4, groups, 1, None, (param, grad), false)
}

/// Bindings 0 and 1 and their accessors for the buffers' element types (16-bit: vec4
/// width only, 4 elements in a vec2<u32>).
fn accessors((param, grad): (Dtype, Dtype), sr: bool) -> String {
    let dec = |d: Dtype| match d {
        Dtype::F16 => "f16_to_f32",
        _ => "bf16_to_f32",
    };
    let enc = |d: Dtype| match d {
        Dtype::F16 => "f16_from_f32",
        _ => "bf16_from_f32",
    };
    let mut out = String::new();
    if param == Dtype::Bf16 && sr {
        out.push_str(
            "@group(0) @binding(0) var<storage, read_write> param: array<vec2<u32>>;\n\
             fn load_p(pi: u32, si: u32) -> V {\n\
                 let h = halves(param[pi]);\n\
                 return vec4<f32>(bf16_to_f32(h.x), bf16_to_f32(h.y), bf16_to_f32(h.z), bf16_to_f32(h.w));\n\
             }\n\
             // No master: the update rounds stochastically, by bits hashed from the element's\n\
             // index in its buffer and the step's key (the header's a.y; src/half.rs).\n\
             fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) {\n\
                 let key = bitcast<u32>(hyper[HEADER].a.y);\n\
                 let e = (launch.p_base + pi) * 4u;\n\
                 let h = vec4<u32>(bf16_from_f32_sr(nv.x, pcg_hash(e ^ key)), bf16_from_f32_sr(nv.y, pcg_hash((e + 1u) ^ key)),\n\
                     bf16_from_f32_sr(nv.z, pcg_hash((e + 2u) ^ key)), bf16_from_f32_sr(nv.w, pcg_hash((e + 3u) ^ key)));\n\
                 param[pi] = pack_halves(select(halves(param[pi]), h, live));\n\
             }\n",
        );
    } else if param == Dtype::F32 {
        out.push_str(
            "@group(0) @binding(0) var<storage, read_write> param: array<V>;\n\
             fn load_p(pi: u32, si: u32) -> V { return param[pi]; }\n\
             fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) { param[pi] = select(old, nv, live); }\n",
        );
    } else {
        let e = enc(param);
        out.push_str(&format!(
            "@group(0) @binding(0) var<storage, read_write> param: array<vec2<u32>>;\n\
             @group(0) @binding({MASTER_BINDING}) var<storage, read_write> master: array<V>;\n\
             fn load_p(pi: u32, si: u32) -> V {{ return master[si]; }}\n\
             // The master takes the update; the caller's 16-bit params its rounding. Lanes\n\
             // past the tensor keep their halves (they may be the caller's).\n\
             fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) {{\n\
                 master[si] = select(old, nv, live);\n\
                 var o = vec4<u32>(0u);\n\
                 if !all(live) {{ o = halves(param[pi]); }}\n\
                 let h = vec4<u32>({e}(nv.x), {e}(nv.y), {e}(nv.z), {e}(nv.w));\n\
                 param[pi] = pack_halves(select(o, h, live));\n\
             }}\n"
        ));
    }
    if grad == Dtype::F32 {
        out.push_str(
            "@group(0) @binding(1) var<storage, read_write> grad: array<V>;\n\
             fn load_g(i: u32) -> V { return grad[i]; }\n",
        );
    } else {
        let d = dec(grad);
        out.push_str(&format!(
            "@group(0) @binding(1) var<storage, read_write> grad: array<vec2<u32>>;\n\
             fn load_g(i: u32) -> V {{\n\
                 let h = halves(grad[i]);\n\
                 return vec4<f32>({d}(h.x), {d}(h.y), {d}(h.z), {d}(h.w));\n\
             }}\n"
        ));
    }
    out
}

/// The same kernel with 8-bit block-wise state (vector width 4).
pub fn shader_source_q8(kernel: &Kernel, groups: u32) -> String {
    assemble(
        kernel,
        4,
        groups,
        1,
        Some(Q8_SR),
        (Dtype::F32, Dtype::F32),
        false,
    )
}

/// In [`PipelineKey::q8`]: stochastic requantization.
pub(crate) const Q8_SR: u32 = 1 << 8;

/// `lag`: candidates of per-step scalars per slot (loss scaling; else 1). `q8`: 8-bit
/// state, its signed-slot mask and [`Q8_SR`].
fn assemble(
    kernel: &Kernel,
    width: u32,
    groups: u32,
    lag: u32,
    q8: Option<u32>,
    dtypes: (Dtype, Dtype),
    sr: bool,
) -> String {
    let prelude = if width == 4 {
        PRELUDE_VEC4
    } else {
        PRELUDE_SCALAR
    };
    let state = if q8.is_some() { STATE_Q8 } else { STATE_F32 };
    // Candidates, then a header when loss scaling (lag > 1) or stochastic rounding reads it.
    let q8_sr = q8.is_some_and(|m| m & Q8_SR != 0);
    let with_header = lag > 1 || (sr && dtypes.0 == Dtype::Bf16) || q8_sr;
    let hyper_len = groups * lag + with_header as u32;
    let header = if with_header { groups * lag } else { 0 };
    let two_phase = if kernel.two_phase { TWO_PHASE } else { "" };
    format!(
        "{prelude}const GROUPS: u32 = {groups}u;\nconst LAG: u32 = {lag}u;\n\
         const HYPER_LEN: u32 = {hyper_len}u;\nconst HEADER: u32 = {header}u;\n\
         {HALF}\n{}\n{COMMON}\n{state}\n{two_phase}\n{}",
        accessors(dtypes, sr),
        kernel.source
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub kernel: &'static str,
    /// `main` (the update), `grad_sumsq` (the clipping pre-pass) or `measure_pass`
    /// (a two-phase rule's first pass).
    pub entry: &'static str,
    pub width: u32,
    pub slots: u32,
    pub workgroup: u32,
    pub clip: bool,
    /// One piece of one tensor per dispatch: tiles computed, not read from the table.
    pub dense: bool,
    /// Length of the uniform array of per-group scalars (a power of two).
    pub groups: u32,
    /// 8-bit state, with bit k set where slot k uses the signed map.
    pub q8: Option<u32>,
    /// Loss scaling: candidates of per-step scalars per slot (0: no loss scaling).
    pub lag: u32,
    /// Element types of the params and grads.
    pub dtypes: (Dtype, Dtype),
    /// bf16 params without a master copy, rounded stochastically.
    pub sr: bool,
}

impl PipelineKey {
    /// The values of the kernel's pipeline-overridable constants (`override` in the WGSL).
    pub fn constants(&self, two_phase: bool) -> Vec<(&'static str, f64)> {
        let mut constants = vec![
            ("WG", self.workgroup as f64),
            ("SLOTS", self.slots as f64),
            ("CLIP", self.clip as u32 as f64),
            ("TWO_PHASE", two_phase as u32 as f64),
            ("DENSE", self.dense as u32 as f64),
            ("SCALER", (self.lag > 0) as u32 as f64),
        ];
        if let Some(mask) = self.q8 {
            constants.push(("SIGNED", (mask & 0xff) as f64));
            constants.push(("Q8_SR", (mask & Q8_SR != 0) as u32 as f64));
        }
        constants
    }

    /// Uses the layout with the master binding (16-bit params).
    pub fn mixed(&self) -> bool {
        self.dtypes.0 != Dtype::F32 && !(self.sr && self.dtypes.0 == Dtype::Bf16)
    }
}

/// Pipelines live as long as the context; optimizers share them.
#[derive(Default)]
pub(crate) struct PipelineCache {
    /// The layouts without and with the master binding.
    layout: [Option<(wgpu::BindGroupLayout, wgpu::PipelineLayout)>; 2],
    reduce: Option<ReducePipelines>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

fn storage(binding: u32, read_only: bool, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: dynamic,
            min_binding_size: None,
        },
        count: None,
    }
}

fn uniform(binding: u32, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: dynamic,
            min_binding_size: None,
        },
        count: None,
    }
}

/// The bind group layout every rule kernel uses; `mixed`: with the master binding.
pub(crate) fn bind_group_layout(ctx: &Context, mixed: bool) -> Result<wgpu::BindGroupLayout> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    layouts(ctx, &mut cache, mixed).map(|(b, _)| b)
}

fn layouts(
    ctx: &Context,
    cache: &mut PipelineCache,
    mixed: bool,
) -> Result<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
    if let Some(l) = &cache.layout[mixed as usize] {
        return Ok(l.clone());
    }
    let d = ctx.device();
    let l = ctx.scoped("creating the bind group layout", || {
        let entries: Vec<_> = (0..BINDINGS + mixed as u32)
            .map(|b| match b {
                2 => storage(b, true, false),
                HYPER_BINDING => uniform(b, true),
                LAUNCH_BINDING | QMAP_BINDING => uniform(b, false),
                _ => storage(b, false, false),
            })
            .collect();
        let bgl = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("gpu-optim rule"),
            entries: &entries,
        });
        let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("gpu-optim rule"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        (bgl, pl)
    })?;
    cache.layout[mixed as usize] = Some(l.clone());
    Ok(l)
}

/// The reduction kernels of a clipped step (`shaders/reduce.wgsl`).
#[derive(Clone)]
pub(crate) struct ReducePipelines {
    pub per_tensor: wgpu::ComputePipeline,
    pub total: wgpu::ComputePipeline,
    pub scaler_update: wgpu::ComputePipeline,
}

pub(crate) fn reduce_pipelines(ctx: &Context) -> Result<ReducePipelines> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    if let Some(p) = &cache.reduce {
        return Ok(p.clone());
    }
    let d = ctx.device();
    ctx.count("pipeline");
    let p = ctx.scoped("compiling the reduction kernels", || {
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("reduce"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../shaders/reduce.wgsl").into()),
        });
        let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("reduce"),
            entries: &[storage(0, true, false), storage(1, false, false)],
        });
        let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("reduce"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let make = |entry| {
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        ReducePipelines {
            per_tensor: make("per_tensor"),
            total: make("total"),
            scaler_update: make("scaler_update"),
        }
    })?;
    cache.reduce = Some(p.clone());
    Ok(p)
}

/// The workgroup size for this device: [`crate::ContextOptions::workgroup_size`], else 256
/// (the usual choice for memory-bound kernels on GPUs, and on lavapipe within noise of
/// 128 and 512), clamped to the device's limits.
pub(crate) fn workgroup_size(ctx: &Context) -> u32 {
    let l = ctx.limits();
    ctx.inner
        .workgroup_size
        .unwrap_or(256)
        .min(l.max_compute_invocations_per_workgroup)
        .min(l.max_compute_workgroup_size_x)
}

/// The compiled pipeline for `key`, built on first use.
pub(crate) fn pipeline(
    ctx: &Context,
    kernel: &Kernel,
    key: PipelineKey,
) -> Result<wgpu::ComputePipeline> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    if let Some(p) = cache.pipelines.get(&key) {
        return Ok(p.clone());
    }
    let (_, layout) = layouts(ctx, &mut cache, key.mixed())?;
    let src = assemble(
        kernel,
        key.width,
        key.groups,
        key.lag.max(1),
        key.q8,
        key.dtypes,
        key.sr,
    );
    let d = ctx.device();
    ctx.count("pipeline");
    let constants = key.constants(kernel.two_phase);
    let p = ctx.scoped("compiling a rule kernel", || {
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        })
    })?;
    cache.pipelines.insert(key, p.clone());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AnyRule, Hyper, UpdateRule};
    use crate::scheduler::{LaunchInfo, Tile, MAX_LAG};

    fn parse(src: &str) -> naga::Module {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        module
    }

    /// Every rule's kernel is valid WGSL at both widths, without needing a device.
    #[test]
    fn every_kernel_validates_with_naga() {
        for rule in AnyRule::catalog() {
            for width in [1, 4] {
                parse(&shader_source(&rule.kernel(), width, 4));
            }
            if !rule.kernel().two_phase {
                parse(&shader_source_q8(&rule.kernel(), 4));
            }
            for (p, g) in [(Dtype::Bf16, Dtype::F16), (Dtype::F16, Dtype::Bf16)] {
                parse(&shader_source_typed(&rule.kernel(), 4, p, g));
            }
            let k = rule.kernel();
            parse(&assemble(
                &k,
                4,
                4,
                1,
                None,
                (Dtype::Bf16, Dtype::F32),
                true,
            ));
        }
        parse(include_str!("../shaders/copy.wgsl"));
    }

    fn dtype_name(d: Dtype) -> &'static str {
        match d {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    /// A name for each key of the finite set, unique within it.
    fn variant_name(kernel: &Kernel, k: &PipelineKey) -> String {
        let state = match k.q8 {
            None => "f32".to_string(),
            Some(m) if m & Q8_SR != 0 => format!("q8sr-m{}", m & 0xff),
            Some(m) => format!("q8-m{m}"),
        };
        let features = match (k.clip, k.lag) {
            (false, 0) => "plain".to_string(),
            (true, 0) => "clip".to_string(),
            (_, lag) => format!("scaler-lag{lag}"),
        };
        format!(
            "{}.s{}.w{}.{}.{}-{}{}.{state}.{features}.g{}.wg{}",
            kernel.name,
            k.slots,
            k.width,
            if k.dense { "dense" } else { "tiles" },
            dtype_name(k.dtypes.0),
            dtype_name(k.dtypes.1),
            if k.sr { ".sr" } else { "" },
            k.groups,
            k.workgroup
        )
    }

    /// The finite set of kernel variants the WGSL identity test covers: every catalog rule
    /// × element types {f32, bf16/bf16, f16/f16, bf16/f32} (bf16 params also rounded
    /// stochastically without a master) × state {f32, 8-bit nearest, 8-bit stochastic} ×
    /// {plain, clip, clip + loss scaler} × groups {1, 2, 8} × width {1, 4} × {tiles, dense},
    /// where legal (width 1: f32 params, grads and state only; 8-bit state: not for
    /// two-phase rules), at the default workgroup size. The scaler's lag is the one the
    /// default limits give (32 candidates).
    fn finite_set() -> Vec<(Kernel, PipelineKey)> {
        let mut out: Vec<(Kernel, PipelineKey)> = Vec::new();
        let dtypes = [
            (Dtype::F32, Dtype::F32, false),
            (Dtype::Bf16, Dtype::Bf16, false),
            (Dtype::Bf16, Dtype::Bf16, true),
            (Dtype::F16, Dtype::F16, false),
            (Dtype::Bf16, Dtype::F32, false),
            (Dtype::Bf16, Dtype::F32, true),
        ];
        for rule in AnyRule::catalog() {
            let kernel = rule.kernel();
            let slots = rule.state_slots().len() as u32;
            let signed = crate::rules::signed_slots(&rule)
                .iter()
                .enumerate()
                .fold(0u32, |m, (k, &s)| m | ((s as u32) << k));
            for (p, g, sr) in dtypes {
                for q8 in [None, Some(signed), Some(signed | Q8_SR)] {
                    if q8.is_some() && kernel.two_phase {
                        continue;
                    }
                    for (clip, lag) in [(false, 0), (true, 0), (true, MAX_LAG)] {
                        for groups in [1, 2, 8] {
                            for width in [1, 4] {
                                let narrow = width == 1;
                                if narrow && (q8.is_some() || (p, g) != (Dtype::F32, Dtype::F32)) {
                                    continue;
                                }
                                for dense in [false, true] {
                                    let key = PipelineKey {
                                        kernel: kernel.name,
                                        entry: "main",
                                        width,
                                        slots,
                                        workgroup: 256,
                                        clip,
                                        dense,
                                        groups,
                                        q8,
                                        lag,
                                        dtypes: (p, g),
                                        sr,
                                    };
                                    if !out.iter().any(|(_, k)| *k == key) {
                                        out.push((kernel, key));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// One line per variant: name, text length, CRC-32 of the text, constants.
    fn identity_line(kernel: &Kernel, key: &PipelineKey, text: &str) -> String {
        let constants: Vec<String> = key
            .constants(kernel.two_phase)
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!(
            "{}\t{}\t{:08x}\t{}",
            variant_name(kernel, key),
            text.len(),
            crc32fast::hash(text.as_bytes()),
            constants.join(",")
        )
    }

    /// Kernel identity: every variant of the finite set has the WGSL text and the
    /// pipeline-overridable constants recorded in tests/fixtures/wgsl_variants.tsv, which
    /// was written from the run-time assembly of 4951a76 (the main before the scheduler
    /// redesign) with `GPU_OPTIM_BLESS_WGSL=1`. A text is recorded by its length and CRC-32
    /// (the full texts are ~100 MB); a change anywhere in it changes the CRC except with
    /// probability 2^-32. Re-bless only for a change meant to alter the kernels, and say so.
    #[test]
    fn wgsl_identity_with_the_recorded_variants() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wgsl_variants.tsv"
        );
        let lines: Vec<String> = finite_set()
            .iter()
            .map(|(kernel, key)| {
                let text = assemble(
                    kernel,
                    key.width,
                    key.groups,
                    key.lag.max(1),
                    key.q8,
                    key.dtypes,
                    key.sr,
                );
                identity_line(kernel, key, &text)
            })
            .collect();
        let names: std::collections::HashSet<&str> = lines
            .iter()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        assert_eq!(names.len(), lines.len(), "variant names collide");
        if std::env::var_os("GPU_OPTIM_BLESS_WGSL").is_some() {
            std::fs::write(path, lines.join("\n") + "\n").unwrap();
        }
        let recorded = std::fs::read_to_string(path).unwrap();
        let recorded: Vec<&str> = recorded.lines().collect();
        assert_eq!(recorded.len(), lines.len(), "number of variants");
        for (got, want) in lines.iter().zip(&recorded) {
            assert_eq!(got, want);
        }
    }

    /// The host's Pod structs have the WGSL structs' sizes (naga's layout rules).
    #[test]
    fn host_structs_match_wgsl_layout() {
        let module = parse(&shader_source(&AnyRule::catalog()[0].kernel(), 4, 1));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let size = |name: &str| {
            let (h, _) = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap();
            layouter[h].size as usize
        };
        assert_eq!(size("Hyper"), std::mem::size_of::<Hyper>());
        assert_eq!(size("Tile"), std::mem::size_of::<Tile>());
        assert_eq!(size("Launch"), std::mem::size_of::<LaunchInfo>());
    }
}
