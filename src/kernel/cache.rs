//! Compiled once? The pipeline cache of a context: bind group layouts, the rule kernels'
//! pipelines per [`KernelVariant`] and entry point, and the reduction kernels. It decides
//! no variant itself (the plan does) and holds no optimizer's buffers.

use std::collections::HashMap;

use super::variant::KernelVariant;
use super::{BINDINGS, HYPER_GROUP, LAUNCH_BINDING, QMAP_BINDING};
use crate::context::Context;
use crate::error::Result;

/// Pipelines live as long as the context; optimizers share them.
#[derive(Default)]
pub(crate) struct PipelineCache {
    /// The layouts without and with the master binding.
    layout: [Option<(wgpu::BindGroupLayout, wgpu::PipelineLayout)>; 2],
    /// Bind group [`HYPER_GROUP`]'s layout: the step scalars' uniform.
    hyper: Option<wgpu::BindGroupLayout>,
    reduce: Option<ReducePipelines>,
    pipelines: HashMap<(KernelVariant, &'static str), wgpu::ComputePipeline>,
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

/// The bind group layout every rule kernel uses for group 0; `mixed`: with the master
/// binding.
pub(crate) fn bind_group_layout(ctx: &Context, mixed: bool) -> Result<wgpu::BindGroupLayout> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    layouts(ctx, &mut cache, mixed).map(|(b, _)| b)
}

/// The layout of bind group [`HYPER_GROUP`]: binding 0, the step scalars' uniform, with a
/// dynamic offset (the ring slot).
pub(crate) fn hyper_layout(ctx: &Context) -> Result<wgpu::BindGroupLayout> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    hyper_layout_in(ctx, &mut cache)
}

fn hyper_layout_in(ctx: &Context, cache: &mut PipelineCache) -> Result<wgpu::BindGroupLayout> {
    if let Some(l) = &cache.hyper {
        return Ok(l.clone());
    }
    let l = ctx.scoped("creating the bind group layout", || {
        ctx.device()
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("gpu-optim step scalars"),
                entries: &[uniform(0, true)],
            })
    })?;
    cache.hyper = Some(l.clone());
    Ok(l)
}

fn layouts(
    ctx: &Context,
    cache: &mut PipelineCache,
    mixed: bool,
) -> Result<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
    if let Some(l) = &cache.layout[mixed as usize] {
        return Ok(l.clone());
    }
    let hyper = hyper_layout_in(ctx, cache)?;
    let d = ctx.device();
    let l = ctx.scoped("creating the bind group layout", || {
        let entries: Vec<_> = (0..BINDINGS + mixed as u32)
            .map(|b| match b {
                2 => storage(b, true, false),
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
            bind_group_layouts: &[Some(&bgl), Some(&hyper)],
            immediate_size: 0,
        });
        debug_assert_eq!(HYPER_GROUP, 1);
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
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/reduce.wgsl").into()),
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

/// The compiled pipeline of `variant` with entry point `entry` (`main`, `grad_sumsq` or
/// `measure_pass`), built on first use.
pub(crate) fn pipeline(
    ctx: &Context,
    variant: &KernelVariant,
    entry: &'static str,
) -> Result<wgpu::ComputePipeline> {
    let mut cache = ctx.inner.pipelines.lock().unwrap();
    if let Some(p) = cache.pipelines.get(&(*variant, entry)) {
        return Ok(p.clone());
    }
    let (_, layout) = layouts(ctx, &mut cache, variant.mixed())?;
    let src = variant.source();
    let d = ctx.device();
    ctx.count("pipeline");
    let constants = variant.constants();
    let name = variant.kernel.name;
    let p = ctx.scoped("compiling a rule kernel", || {
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        })
    })?;
    cache.pipelines.insert((*variant, entry), p.clone());
    Ok(p)
}
