//! How is a dispatch bound? Builds the plan on the device: the layout's buffers, pipelines
//! and one bind group per dispatch; it runs nothing.

use crate::context::Context;
use crate::device::record::{Staging, WRITE_AHEAD};
use crate::device::state::StateSet;
use crate::error::{Error, Result};
use crate::kernel::cache as kernel;
use crate::kernel::{FixedWords, KernelVariant, Q8Kernel, BINDINGS};
use crate::optimizer::Optimizer;
use crate::plan::aux::{AUX_SCALE, AUX_SUMS_AT};
use crate::plan::layout::{self, LaunchInfo, LayoutLimits, Placement};
use crate::plan::program::StepProgram;
use crate::plan::scalars::SlotShape;
use crate::quant::{self};
use crate::rules::{Hyper, UpdateRule, MAX_SLOTS};
use std::collections::BTreeMap;

/// One dispatch.
pub(crate) struct Launch {
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) grid: (u32, u32),
    /// The clipping pre-pass's grid: a dense dispatch's workgroups cover `sumsq_tiles` tiles.
    pub(crate) sumsq_grid: (u32, u32),
    /// The update kernel for this dispatch's width and density, and the pre-passes'.
    pub(crate) main: wgpu::ComputePipeline,
    pub(crate) sumsq: Option<wgpu::ComputePipeline>,
    pub(crate) measure: Option<wgpu::ComputePipeline>,
    /// Which kernel text and constants its pipelines run.
    pub(crate) variant: KernelVariant,
    /// The param groups of its tiles (indices into the step's scalars), each once.
    pub(crate) groups: Vec<u32>,
}

impl Launch {
    /// The words of this step's scalars that the pipelines take as constants: the kernel's
    /// branch and zero words ([`FixedWords::agreed`]) on which every group of the dispatch
    /// agrees in every candidate of the slot (`scratch` as `StepScalars::write` leaves it: candidate j of group g at
    /// `j * groups_p2 + g`, for j in 0..=reach).
    pub(crate) fn agreed(&self, scratch: &[Hyper], groups_p2: usize, reach: usize) -> FixedWords {
        let candidates = (0..=reach).flat_map(|j| {
            self.groups
                .iter()
                .map(move |&g| &scratch[j * groups_p2 + g as usize])
        });
        FixedWords::agreed(&self.variant.kernel, candidates)
    }

    /// Switches the pipelines to the ones for `fixed` and `clip_value` (compiled once per
    /// context).
    pub(crate) fn refix(
        &mut self,
        ctx: &Context,
        fixed: FixedWords,
        clip_value: bool,
    ) -> Result<()> {
        let key = KernelVariant {
            fixed,
            clip_value: self.variant.clip && clip_value,
            ..self.variant
        };
        let entry = |on: bool, name| on.then(|| kernel::pipeline(ctx, &key, name)).transpose();
        let main = kernel::pipeline(ctx, &key, "main")?;
        let sumsq = entry(self.sumsq.is_some(), "grad_sumsq")?;
        let measure = entry(self.measure.is_some(), "measure_pass")?;
        (self.main, self.sumsq, self.measure) = (main, sumsq, measure);
        self.variant = key;
        Ok(())
    }
}

pub(crate) struct Plan {
    pub(crate) launches: Vec<Launch>,
    pub(crate) states: Vec<StateSet>,
    /// Per tensor: (state set, element offset in its buffers).
    pub(crate) tensor_state: Vec<(usize, u64)>,
    /// Bytes of a slot's scalars, the uniform the kernels read.
    pub(crate) hyper_size: u64,
    /// The slot's shape: padded group count, loss scaling's candidates (0: none).
    pub(crate) shape: SlotShape,
    /// The ring of step slots the kernels read their scalars from (bind group 1).
    pub(crate) staging: Staging,
    /// Device-side step scalars (`aux` in the shaders).
    pub(crate) aux: wgpu::Buffer,
    /// The reduction passes: gradient clipping (when set before planning) and a two-phase
    /// rule's first pass.
    pub(crate) reductions: Option<Reductions>,
    /// The passes of a step, in order (plan/program.rs).
    pub(crate) program: StepProgram,
    /// Loss scaling: where the device's step counters are read back.
    pub(crate) ack_buf: Option<wgpu::Buffer>,
}

/// The reduction kernels' bindings (the per-tile pre-passes are the launches' pipelines).
pub(crate) struct Reductions {
    pub(crate) pipelines: kernel::ReducePipelines,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) grid: (u32, u32),
}

impl<R: UpdateRule> Optimizer<R> {
    /// The registered tensors as the layout sees them: buffers ranked in their order.
    #[allow(clippy::mutable_key_type)] // buffers order by identity, which never changes
    pub(crate) fn placements(&self) -> Vec<Placement> {
        let mut rank: BTreeMap<wgpu::Buffer, usize> = BTreeMap::new();
        for t in &self.tensors {
            rank.insert(t.param.buffer.clone(), 0);
            rank.insert(t.grad.buffer.clone(), 0);
        }
        for (k, v) in rank.values_mut().enumerate() {
            *v = k;
        }
        // The distinct kernels of the groups' rules, in group order.
        let mut kernels = Vec::new();
        for g in &self.groups {
            if !kernels.contains(&g.kernel()) {
                kernels.push(g.kernel());
            }
        }
        self.tensors
            .iter()
            .map(|t| Placement {
                param_buf: rank[&t.param.buffer],
                grad_buf: rank[&t.grad.buffer],
                param_bytes: t.param.buffer.size(),
                grad_bytes: t.grad.buffer.size(),
                param_offset: t.param.offset,
                grad_offset: t.grad.offset,
                len: t.param.len as u64,
                dtypes: t.dtypes,
                group: t.group as u32,
                kernel: kernels
                    .iter()
                    .position(|k| *k == self.groups[t.group].kernel())
                    .expect("every group's kernel listed"),
                q8: self.settings.state_format.quantizes(t.param.len),
                pad_free: t.pad_free,
            })
            .collect()
    }

    pub(crate) fn build_plan(&self) -> Result<Plan> {
        let ctx = &self.ctx;
        let limits = ctx.limits();
        let wg = kernel::workgroup_size(ctx);
        let layout_limits = LayoutLimits {
            storage_align: limits.min_storage_buffer_offset_alignment as u64,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            max_groups: limits.max_compute_workgroups_per_dimension as u64,
            workgroup: wg,
            per_tensor: self.settings.per_tensor,
            // Packed tiles hold two tensors: no per-tile or per-tensor sums may be taken.
            pack: self.settings.clip.is_none()
                && self.settings.scaler.is_none()
                && self.groups.iter().all(|g| !g.kernel().two_phase),
            // A software device runs workgroups on the host's threads (lavapipe: one per
            // core): 8 pre-pass workgroups per thread keep them busy.
            sumsq_spread: ctx
                .is_software()
                .then(|| 8 * std::thread::available_parallelism().map_or(1, |n| n.get()) as u64),
        };
        layout::check_window(&layout_limits)?;
        if limits.max_storage_buffers_per_shader_stage < 8 {
            return Err(Error::InvalidState(format!(
                "the rule kernels bind 8 storage buffers; this device allows {} per shader \
                 stage (wgpu's downlevel limits?). Request at least Limits::default()",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        let max_groups = layout_limits.max_groups;
        let placements = self.placements();
        let n_tensors = self.tensors.len();
        let partials_at = AUX_SUMS_AT + 2 * n_tensors as u64;
        let lay = layout::layout(&placements, &layout_limits, partials_at)?;
        let any_q8 = lay.sets.iter().any(|s| s.q8);
        let mixed = lay.sets.iter().any(|s| self.needs_master(s.dtypes.0));
        if mixed && limits.max_storage_buffers_per_shader_stage < 9 {
            return Err(Error::InvalidState(format!(
                "16-bit params need 9 storage buffers per shader stage (the f32 master copy); \
                 this device allows {}: request more in its limits",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        if any_q8 && wg % 64 != 0 {
            return Err(Error::InvalidState(format!(
                "8-bit state needs a workgroup size that is a multiple of 64, not {wg}"
            )));
        }

        // Stand-ins for bindings a dispatch does not use; one per access mode, as a buffer
        // may not be bound both read-only and read-write in one dispatch.
        let dummy = ctx.create_zeroed("gpu-optim unused slot", 4)?;
        // One tile's worth: a dense dispatch binds it where the tile table would be.
        let tile_words = std::mem::size_of::<layout::Tile>() / 4;
        let dummy_ro = ctx.create_zeroed("gpu-optim unused tiles", tile_words)?;
        // The uniform slot of per-step scalars (plan/scalars.rs).
        let shape = SlotShape::new(
            self.groups.len(),
            self.settings.scaler.is_some(),
            self.settings.steps_per_submission,
            limits.max_uniform_buffer_binding_size,
        )?;
        let (n_groups, lag, hyper_size) = (shape.groups_p2, shape.lag, shape.hyper_size);
        // A slot starts where a dynamic uniform offset may.
        let stride = shape
            .stage_stride()
            .next_multiple_of(limits.min_uniform_buffer_offset_alignment as u64);
        // Room to write ahead (device/record.rs) where the scalars can be predicted.
        let spc = self.settings.steps_per_submission as usize;
        let slots = if lag == 0 { spc.max(WRITE_AHEAD) } else { spc };
        let staging = Staging::new(ctx, stride, slots, hyper_size)?;
        // Any uniform, for the quantization map's binding where the kernels do not declare it.
        let dummy_uniform =
            self.buffer("gpu-optim unused uniform", 16, wgpu::BufferUsages::UNIFORM);

        let states = self.allocate_states(&lay, &placements)?;
        let tensor_state = lay.tensor_state.clone();
        let ranges = &lay.tile_ranges;
        let base = lay.n_tiles;
        let pending = &lay.launches;
        // Any group's rule with a first pass adds the measure pass (today every group runs
        // group 0's kernel: registry::check_compatible).
        let two_phase = self.groups.iter().any(|g| g.kernel().two_phase);
        // Loss scaling runs clipping's reduction (with no clipping values: norm only).
        let global = self.settings.clip.is_some() || self.settings.scaler.is_some();
        let reduce = global || two_phase;
        let aux = if reduce {
            self.buffer(
                "gpu-optim aux",
                4 * (partials_at + 2 * base as u64),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            )
        } else {
            dummy.clone()
        };
        let ack_buf = match &self.settings.scaler {
            Some(sc) => {
                ctx.queue().write_buffer(
                    &aux,
                    AUX_SCALE * 4,
                    bytemuck::cast_slice(&[sc.init_scale, 0.0, 0.0, 0.0, 0.0]),
                );
                Some(self.buffer(
                    "gpu-optim step counters",
                    8,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ))
            }
            None => None,
        };

        // Tile tables (dense dispatches need none) in one storage buffer, the dispatches'
        // geometry in one uniform buffer, each at an aligned offset.
        let ualign = limits.min_uniform_buffer_offset_alignment as u64;
        let info_stride = (std::mem::size_of::<LaunchInfo>() as u64).div_ceil(ualign) * ualign;
        let mut table_bytes: Vec<u8> = Vec::new();
        let mut info_bytes: Vec<u8> = Vec::new();
        let mut table_ranges = Vec::with_capacity(pending.len());
        for p in pending {
            info_bytes.extend_from_slice(bytemuck::bytes_of(&p.header));
            info_bytes.resize(
                info_bytes.len().div_ceil(info_stride as usize) * info_stride as usize,
                0,
            );
            if p.dense {
                table_ranges.push(None);
                continue;
            }
            let start = table_bytes.len() as u64;
            table_bytes.extend_from_slice(bytemuck::cast_slice(&p.tiles));
            table_ranges.push(Some((start, table_bytes.len() as u64 - start)));
            let align_b = layout_limits.storage_align;
            let aligned = (table_bytes.len() as u64).div_ceil(align_b) * align_b;
            table_bytes.resize(aligned as usize, 0);
        }
        let table_buf = self.buffer(
            "gpu-optim tile tables",
            table_bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        );
        if !table_bytes.is_empty() {
            ctx.queue().write_buffer(&table_buf, 0, &table_bytes);
        }
        let info_buf = self.buffer(
            "gpu-optim dispatch geometry",
            info_bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        ctx.queue().write_buffer(&info_buf, 0, &info_bytes);

        let qmap = match any_q8 {
            true => {
                let table = quant::qmap_table();
                let b = self.buffer(
                    "gpu-optim 8-bit map",
                    4 * table.len() as u64,
                    wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                );
                ctx.queue()
                    .write_buffer(&b, 0, bytemuck::cast_slice(&table));
                Some(b)
            }
            false => None,
        };
        let layouts = [
            Some(kernel::bind_group_layout(ctx, false)?),
            match mixed {
                true => Some(kernel::bind_group_layout(ctx, true)?),
                false => None,
            },
        ];
        // The next step's scalars of each group decide the words fixed at first (each step
        // checks); a rule's scalars can cost O(t) (NAdam's mu product), so once per group.
        let next = self.t.saturating_add(1);
        let next_hypers: Vec<Hyper> = self.groups.iter().map(|g| g.hyper(next)).collect();
        let mut launches = Vec::with_capacity(pending.len());
        for (li, (p, trange)) in pending.iter().zip(&table_ranges).enumerate() {
            // The launch's rule: its tensors' group's (a launch group holds one kernel).
            let rule = &self.groups[self.tensors[lay.sets[p.set].members[0]].group];
            let groups = p.groups();
            let hypers = groups.iter().map(|&g| &next_hypers[g as usize]);
            let key = KernelVariant {
                kernel: rule.kernel(),
                width: p.width,
                slots: rule.state_slots().len() as u32,
                workgroup: wg,
                clip: global,
                clip_value: global && self.settings.clip_value(),
                dense: p.dense,
                groups: n_groups,
                q8: p.q8.then_some(Q8Kernel {
                    signed: crate::rules::signed_mask(rule),
                    stochastic: self.settings.state_format.stochastic_seed().is_some(),
                }),
                lag,
                dtypes: p.dtypes,
                sr: self.settings.stochastic.is_some(),
                fixed: FixedWords::agreed(&rule.kernel(), hypers),
                shifted: p.shifted(),
                tail: p.tail(),
                exact: p.exact && !p.q8,
            };
            let main = kernel::pipeline(ctx, &key, "main")?;
            let sumsq = match global {
                true => Some(kernel::pipeline(ctx, &key, "grad_sumsq")?),
                false => None,
            };
            let measure = match rule.kernel().two_phase {
                true => Some(kernel::pipeline(ctx, &key, "measure_pass")?),
                false => None,
            };
            // Which tensor buffers this launch's windows refer to: any member will do.
            let tm = &self.tensors[lay.sets[p.set].members[0]];
            fn bind(
                buffer: &wgpu::Buffer,
                (offset, size): (u64, u64),
            ) -> wgpu::BindingResource<'_> {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: wgpu::BufferSize::new(size.max(4)),
                })
            }
            let mut entries = vec![
                bind(&tm.param.buffer, p.windows[0]),
                bind(&tm.grad.buffer, p.windows[1]),
                match trange {
                    Some(r) => bind(&table_buf, *r),
                    None => dummy_ro.as_entire_binding(),
                },
                match &qmap {
                    Some(q) => q.as_entire_binding(),
                    // Any uniform: the f32 kernels do not declare this binding.
                    None => dummy_uniform.as_entire_binding(),
                },
            ];
            for k in 0..MAX_SLOTS {
                entries.push(match states[p.set].buffers.get(k) {
                    Some(b) => bind(b, p.windows[2]),
                    None => dummy.as_entire_binding(),
                });
            }
            entries.push(aux.as_entire_binding());
            entries.push(bind(
                &info_buf,
                (
                    li as u64 * info_stride,
                    std::mem::size_of::<LaunchInfo>() as u64,
                ),
            ));
            entries.push(match (&states[p.set].absmax, &qmap) {
                (Some(a), Some(_)) if p.q8 => a.as_entire_binding(),
                _ => dummy.as_entire_binding(),
            });
            if key.mixed() {
                let m = states[p.set]
                    .master
                    .as_ref()
                    .expect("16-bit params have a master");
                entries.push(bind(m, p.windows[3]));
            }
            debug_assert_eq!(entries.len() as u32, BINDINGS + key.mixed() as u32);
            let entries: Vec<_> = entries
                .into_iter()
                .enumerate()
                .map(|(b, resource)| wgpu::BindGroupEntry {
                    binding: b as u32,
                    resource,
                })
                .collect();
            ctx.count("bind_group");
            let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("gpu-optim launch"),
                layout: layouts[key.mixed() as usize]
                    .as_ref()
                    .expect("planned layout"),
                entries: &entries,
            });
            launches.push(Launch {
                bind_group,
                grid: p.grid,
                sumsq_grid: p.sumsq_grid,
                main,
                sumsq,
                measure,
                variant: key,
                groups,
            });
        }
        let reductions = match reduce {
            false => None,
            true => {
                let pipelines = kernel::reduce_pipelines(ctx)?;
                let max_groups = max_groups as u32;
                let gx = (n_tensors as u32).min(max_groups);
                let mut bytes: Vec<u32> = vec![n_tensors as u32, partials_at as u32, gx, 0];
                bytes.extend(ranges.iter().flatten());
                let rbuf = self.buffer(
                    "gpu-optim tensor tiles",
                    (bytes.len() * 4) as u64,
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                );
                ctx.queue()
                    .write_buffer(&rbuf, 0, bytemuck::cast_slice(&bytes));
                ctx.count("bind_group");
                let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("gpu-optim reduce"),
                    layout: &pipelines.per_tensor.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: rbuf.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: aux.as_entire_binding(),
                        },
                    ],
                });
                Some(Reductions {
                    pipelines,
                    bind_group,
                    grid: (gx, (n_tensors as u32).div_ceil(gx)),
                })
            }
        };
        Ok(Plan {
            launches,
            states,
            tensor_state,
            hyper_size,
            staging,
            aux,
            reductions,
            shape,
            program: StepProgram::new(global, two_phase, lag > 0),
            ack_buf,
        })
    }

    pub(crate) fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.ctx.count("buffer");
        self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(16),
            usage,
            mapped_at_creation: false,
        })
    }
}
