//! Where does each element go? The pure layout of a step: launch groups, their state
//! layout, windows within the binding limit, tiles, grids. No wgpu device, queue or buffer.
//!
//! Tensors that share their param buffer and grad buffer (and the distance between their
//! param and grad offsets, as in an `Arena`) form one *launch group* and get one state
//! buffer per slot laid out like the param buffer. A launch group is cut into *windows*
//! that fit the binding limit (a tensor larger than that is split); each window is one
//! dispatch over a table of tiles, one tile per workgroup, each tile a run of
//! `workgroup × width` elements of one tensor with its param group's index. The grid is 2D
//! when the tiles exceed `max_compute_workgroups_per_dimension`. A window holding one
//! piece of one tensor (every window of a flat buffer) is *dense*: its tiles are computed
//! from the dispatch's geometry instead of read from the table.
//!
//! Width 4 (vec4 loads) is used when every tensor of the launch group starts at a multiple
//! of 4 elements in both buffers and its last vector fits in the buffers; else width 1.
//! A tensor with 8-bit state is a launch group of its own, cut at block boundaries.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::half::Dtype;
use crate::quant::BLOCK;

/// Alignment of arena tensors and of state layouts, in elements (256 bytes of f32).
pub const ARENA_ALIGN: u64 = 64;

/// Where the padding after an arena tensor ending at element `end` ends (the padding a
/// `pad_free` tensor registers and a step may update): the next multiple of
/// [`ARENA_ALIGN`].
pub(crate) fn pad_end(end: u64) -> u64 {
    end.next_multiple_of(ARENA_ALIGN)
}

/// Tiles per workgroup in a dense dispatch's clipping pre-pass (`Launch::sumsq_tiles` in
/// shaders/common.wgsl): each workgroup sums its tiles in a loop, then reduces once (two
/// barriers).
pub(crate) const SUMSQ_TILES: u64 = 16;
/// The most tiles per pre-pass workgroup on a software device ([`LayoutLimits::
/// sumsq_spread`]). On lavapipe a reduction's barriers cost ~9 µs per workgroup: Adam with
/// clip_grad_norm at 2^22 (2 cores), the pre-pass took 0.36-0.40x a plain step with 16
/// tiles per workgroup, 0.29-0.31x with 64, 0.26-0.27x with 256.
pub(crate) const SUMSQ_TILES_MAX: u64 = 64;

/// Tiles per workgroup of a dense dispatch's pre-pass over `n` tiles: [`SUMSQ_TILES`], or
/// on a software device as many as leave at least `spread` workgroups, up to
/// [`SUMSQ_TILES_MAX`].
pub(crate) fn sumsq_tiles(n: u64, spread: Option<u64>) -> u64 {
    match spread {
        Some(w) if w > 0 => (n / w).clamp(SUMSQ_TILES, SUMSQ_TILES_MAX),
        _ => SUMSQ_TILES,
    }
}

/// One workgroup's work (`struct Tile` in `shaders/common.wgsl`): vectors `first ..
/// first + workgroup` of tensor `tensor`, and, in a packed tile, from `first_b` on those of
/// the next tensor `tensor_b` of the same group (its head fills what the first one's tail
/// leaves empty).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Tile {
    pub group: u32,
    /// First vector, counted from the window's first element.
    pub first: u32,
    /// End element (exclusive) of the tensor's piece, counted from the window's first.
    pub end: u32,
    pub tensor: u32,
    /// First vector of the second tensor's piece, or [`Tile::NO_SECOND`].
    pub first_b: u32,
    /// End element (exclusive) of the second tensor's piece.
    pub end_b: u32,
    pub tensor_b: u32,
    pub pad: u32,
}

impl Tile {
    /// `first_b` of a tile with one tensor: no lane reaches it.
    pub const NO_SECOND: u32 = u32::MAX;

    /// A tile of one tensor.
    pub fn one(group: u32, first: u32, end: u32, tensor: u32) -> Tile {
        Tile {
            group,
            first,
            end,
            tensor,
            first_b: Tile::NO_SECOND,
            end_b: 0,
            tensor_b: tensor,
            pad: 0,
        }
    }
}

/// A dispatch's geometry (`struct Launch` in `shaders/common.wgsl`, a uniform).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LaunchInfo {
    pub p_shift: u32,
    pub g_shift: u32,
    pub s_shift: u32,
    pub grid_x: u32,
    pub n_tiles: u32,
    pub tile_base: u32,
    pub partials_at: u32,
    /// 8-bit state: this dispatch's first block among its tensor's.
    pub q_block0: u32,
    /// Dense dispatches (one piece of one tensor): its group, end and tensor.
    pub group: u32,
    pub end: u32,
    pub tensor: u32,
    /// 8-bit state: the tensor's blocks per slot.
    pub q_blocks: u32,
    /// The param binding's first vector in its buffer.
    pub p_base: u32,
    /// Dense dispatches: tiles per workgroup of the clipping pre-pass ([`sumsq_tiles`]).
    pub sumsq_tiles: u32,
    pub pad: [u32; 2],
}

/// A registered tensor as the layout sees it: buffers by rank (their order), offsets and
/// length in elements of its types.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    /// Rank of the param buffer among the registered buffers (any fixed order).
    pub param_buf: usize,
    pub grad_buf: usize,
    /// Sizes of the two buffers in bytes.
    pub param_bytes: u64,
    pub grad_bytes: u64,
    pub param_offset: u64,
    pub grad_offset: u64,
    pub len: u64,
    pub dtypes: (Dtype, Dtype),
    pub group: u32,
    /// Which kernel its group's rule runs (an index into the optimizer's distinct
    /// kernels): tensors of different kernels never share a launch group.
    pub kernel: usize,
    /// 8-bit state.
    pub q8: bool,
    /// The elements after it, up to the next multiple of [`ARENA_ALIGN`] in both buffers,
    /// belong to no tensor (an [`Arena`](crate::Arena)'s padding): it may run on into a
    /// tensor that starts there (see [`layout`]).
    pub pad_free: bool,
}

/// The device limits the layout respects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayoutLimits {
    /// `min_storage_buffer_offset_alignment`, bytes.
    pub storage_align: u64,
    /// The largest binding: min(`max_storage_buffer_binding_size`, `max_buffer_size`).
    pub max_binding: u64,
    /// `max_compute_workgroups_per_dimension`.
    pub max_groups: u64,
    /// Invocations per workgroup.
    pub workgroup: u32,
    /// One dispatch per tensor piece (`set_dispatch_per_tensor`).
    pub per_tensor: bool,
    /// A tensor's head may fill the previous tensor's last tile (same group, dispatch and
    /// window; f32 state only): no pass of the step sums per tile or per tensor (no
    /// clipping, loss scaling or two-phase rule).
    pub pack: bool,
    /// On a software device, the fewest workgroups a dense pre-pass should keep (a few per
    /// CPU thread): it then sums more tiles per workgroup ([`sumsq_tiles`]). `None`: a GPU,
    /// [`SUMSQ_TILES`] always.
    pub sumsq_spread: Option<u64>,
}

/// A launch group's state: one buffer per slot from `base` over `span` elements (f32), or
/// one tensor's codes (8-bit).
#[derive(Clone, Debug)]
pub(crate) struct StateLayout {
    /// Its tensors, by param offset.
    pub members: Vec<usize>,
    pub base: u64,
    pub span: u64,
    pub q8: bool,
    pub dtypes: (Dtype, Dtype),
}

impl StateLayout {
    /// Elements of the f32 master copy (16-bit params): the span, or the tensor (8-bit).
    pub fn master_len(&self, tensors: &[Placement]) -> u64 {
        if self.q8 {
            tensors[self.members[0]].len
        } else {
            self.span
        }
    }

    /// Where tensor `i`'s master copy starts in it.
    pub fn master_at(&self, t: &Placement) -> u64 {
        if self.q8 {
            0
        } else {
            t.param_offset - self.base
        }
    }
}

/// One dispatch: its tiles, geometry and binding windows.
#[derive(Clone, Debug)]
pub(crate) struct LaunchLayout {
    pub width: u32,
    pub dense: bool,
    pub q8: bool,
    pub header: LaunchInfo,
    pub tiles: Vec<Tile>,
    /// Its state layout.
    pub set: usize,
    /// (offset, size) in bytes of the param, grad, state and master bindings.
    pub windows: [(u64, u64); 4],
    pub dtypes: (Dtype, Dtype),
    /// Workgroups of the update (x, y) and of the clipping pre-pass.
    pub grid: (u32, u32),
    pub sumsq_grid: (u32, u32),
    /// Every invocation of the update has a whole vector inside the piece: dense, the
    /// piece's end at its last tile's end, and a 1D grid of exactly its tiles (a 2D grid
    /// may have workgroups past them).
    pub exact: bool,
}

impl LaunchLayout {
    /// The param groups of its tiles, ascending, each once.
    pub fn groups(&self) -> Vec<u32> {
        if self.dense {
            return vec![self.header.group];
        }
        let mut g: Vec<u32> = self.tiles.iter().map(|t| t.group).collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// Whether a vector may run past its tensor's end: an end (of a tile's tensor, or of
    /// the dense dispatch's piece) that is not a multiple of the width.
    pub fn tail(&self) -> bool {
        let w = self.width;
        if w == 1 {
            return false;
        }
        if self.dense {
            return self.header.end % w != 0;
        }
        self.tiles
            .iter()
            .any(|t| t.end % w != 0 || (t.first_b != Tile::NO_SECOND && t.end_b % w != 0))
    }

    /// Whether a binding starts before the dispatch's first element (a shift to read).
    pub fn shifted(&self) -> bool {
        let h = &self.header;
        h.p_shift != 0 || h.g_shift != 0 || h.s_shift != 0
    }
}

/// Where every element goes.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub sets: Vec<StateLayout>,
    pub launches: Vec<LaunchLayout>,
    /// Per tensor: (state layout, element offset in its buffers).
    pub tensor_state: Vec<(usize, u64)>,
    /// Per tensor: (first tile, tile count) across all dispatches.
    pub tile_ranges: Vec<[u32; 2]>,
    /// Tiles of all dispatches.
    pub n_tiles: u32,
}

/// Elements a window may span from its first element: the binding limit less room for a
/// binding's alignment shift, in whole `ARENA_ALIGN`s.
fn window_len(limits: &LayoutLimits) -> u64 {
    let align = limits.storage_align / 4;
    ((limits.max_binding / 4).saturating_sub(align)) / ARENA_ALIGN * ARENA_ALIGN
}

/// Refuses a binding limit too small for one tile.
pub(crate) fn check_window(limits: &LayoutLimits) -> Result<()> {
    if window_len(limits) < (limits.workgroup as u64) * 4 {
        return Err(Error::InvalidState(format!(
            "max_storage_buffer_binding_size {} is too small for one tile",
            limits.max_binding
        )));
    }
    Ok(())
}

/// Lays out `tensors`. `partials_at` is where the per-tile partial sums start in `aux`
/// (each dispatch's header carries it). Errors: a binding limit too small for one tile;
/// 8-bit state or 16-bit params or grads on tensors not at multiples of 4 elements.
pub(crate) fn layout(
    tensors: &[Placement],
    limits: &LayoutLimits,
    partials_at: u64,
) -> Result<Layout> {
    let wg = limits.workgroup;
    let align_b = limits.storage_align;
    let align = align_b / 4; // elements
    check_window(limits)?;
    let wmax = window_len(limits);
    let max_groups = limits.max_groups;
    let max_tiles = (max_groups * max_groups).min(u32::MAX as u64);

    // Launch groups: same kernel, same param buffer, same grad buffer, same grad-param
    // distance, same element types; a tensor with 8-bit state is a launch group of its own.
    type Key = (usize, usize, usize, i64, (Dtype, Dtype), Option<usize>);
    let mut lgroups: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, t) in tensors.iter().enumerate() {
        let delta = t.grad_offset as i64 - t.param_offset as i64;
        let q8 = t.q8.then_some(i);
        lgroups
            .entry((t.kernel, t.param_buf, t.grad_buf, delta, t.dtypes, q8))
            .or_default()
            .push(i);
    }

    let mut sets = Vec::new();
    let mut tensor_state = vec![(0usize, 0u64); tensors.len()];
    let mut launches: Vec<LaunchLayout> = Vec::new();
    for ((_, _, _, delta, dtypes, q8), mut members) in lgroups {
        let q8 = q8.is_some();
        let (ep, eg) = (dtypes.0.size(), dtypes.1.size());
        let (align_p, align_g) = (align_b / ep, align_b / eg);
        // 8-bit pieces start at block boundaries of their tensor.
        let wmax = if q8 {
            wmax / BLOCK as u64 * BLOCK as u64
        } else {
            wmax
        };
        members.sort_by_key(|&i| tensors[i].param_offset);
        let t = |i: usize| &tensors[i];
        let pad4 = |x: u64| x.div_ceil(4) * 4;
        // A tensor of no elements has no vectors: it takes no part.
        let sized: Vec<usize> = members.iter().copied().filter(|&i| t(i).len > 0).collect();
        let vec4 = delta % 4 == 0
            && sized.iter().enumerate().all(|(k, &i)| {
                let (o, n) = (t(i).param_offset, t(i).len);
                let end = pad4(o + n);
                o % 4 == 0
                    && end * ep <= t(i).param_bytes
                    && ((end as i64 + delta) as u64) * eg <= t(i).grad_bytes
                    && sized.get(k + 1).is_none_or(|&j| end <= t(j).param_offset)
            });
        let width: u64 = if vec4 { 4 } else { 1 };
        if (q8 || dtypes != (Dtype::F32, Dtype::F32)) && !vec4 {
            return Err(Error::BadRange {
                what: format!("tensor {}", members[0]),
                why: "8-bit state and 16-bit params or grads need tensors at offsets that \
                      are multiples of 4 elements in both buffers (as in an Arena)"
                    .into(),
            });
        }
        let padded_end = |i: usize| {
            let e = t(i).param_offset + t(i).len;
            e.div_ceil(width) * width
        };

        // State: one buffer per slot, laid out like the param buffer from `base`.
        let base = t(members[0]).param_offset / ARENA_ALIGN * ARENA_ALIGN;
        let span = members.iter().map(|&i| padded_end(i)).max().unwrap() - base;
        let set = sets.len();
        for &i in &members {
            tensor_state[i] = (set, if q8 { 0 } else { t(i).param_offset - base });
        }
        sets.push(StateLayout {
            members: members.clone(),
            base,
            span,
            q8,
            dtypes,
        });

        // Windows and tiles.
        let tile_elems = wg as u64 * width;
        // (start, padded end, tiles). A window's tiles index from its first element
        // `x0`; each binding starts at an aligned offset at or before x0, hence a
        // (non-negative) shift per binding.
        let mut cur: Option<(u64, u64, Vec<Tile>)> = None;
        let flush = |cur: Option<(u64, u64, Vec<Tile>)>, launches: &mut Vec<LaunchLayout>| {
            let Some((x0, pend, tiles)) = cur else { return };
            let pw = x0 / align_p * align_p;
            let g0 = (x0 as i64 + delta) as u64;
            let gw = g0 / align_g * align_g;
            let sw = (x0 - base) / align * align;
            let n = tiles.len() as u64;
            let grid_x = n.min(max_groups);
            let mut header = LaunchInfo {
                p_shift: ((x0 - pw) / width) as u32,
                g_shift: ((g0 - gw) / width) as u32,
                s_shift: ((x0 - base - sw) / width) as u32,
                grid_x: grid_x as u32,
                n_tiles: n as u32,
                tile_base: 0,
                partials_at: 0,
                q_block0: 0,
                group: 0,
                end: 0,
                tensor: 0,
                q_blocks: 0,
                p_base: (pw / width) as u32,
                sumsq_tiles: 1,
                pad: [0; 2],
            };
            let dense = tiles
                .iter()
                .all(|t| t.tensor == tiles[0].tensor && t.first_b == Tile::NO_SECOND)
                && tiles[0].first == 0;
            if dense {
                header.group = tiles[0].group;
                header.end = tiles[0].end;
                header.tensor = tiles[0].tensor;
            }
            let mut swin = (sw * 4, (pend - base - sw) * 4);
            let mut mwin = swin;
            if q8 {
                // One byte per element from the tensor's start, which is x0 - rel.
                let rel = x0 - t(tiles[0].tensor as usize).param_offset;
                header.s_shift = 0;
                header.q_block0 = (rel / BLOCK as u64) as u32;
                header.q_blocks = (t(tiles[0].tensor as usize).len).div_ceil(BLOCK as u64) as u32;
                swin = (rel, (pend - x0).div_ceil(4) * 4);
                mwin = (rel * 4, (pend - x0) * 4);
            }
            let r = if dense {
                sumsq_tiles(n, limits.sumsq_spread)
            } else {
                1
            };
            header.sumsq_tiles = r as u32;
            let coarse = n.div_ceil(r);
            let exact = dense && header.end as u64 == n * tile_elems && n <= max_groups;
            launches.push(LaunchLayout {
                width: width as u32,
                dense,
                q8,
                header,
                tiles,
                set,
                windows: [
                    (pw * ep, (pend - pw) * ep),
                    (gw * eg, (pend as i64 + delta - gw as i64) as u64 * eg),
                    swin,
                    mwin,
                ],
                dtypes,
                grid: (grid_x as u32, n.div_ceil(grid_x) as u32),
                sumsq_grid: (coarse.min(grid_x) as u32, coarse.div_ceil(grid_x) as u32),
                exact,
            });
        };
        // Runs: a tensor whose padding is free runs on into the next tensor of its group
        // that starts where the padding ends; the run is tiled as one piece (alone in its
        // window, one dense dispatch) with the first tensor's index, its padding updated
        // too (zero grads keep zero params and state there). Only where no pass sums per
        // tile or per tensor (`pack`), with f32 params, grads and state: per-tensor tiles
        // each read a table entry per lane on lavapipe, 1.2x the time of a flat buffer
        // over 1,000 tensors of 64-4063 elements.
        let may_run =
            limits.pack && !limits.per_tensor && !q8 && dtypes == (Dtype::F32, Dtype::F32);
        let mut runs: Vec<(usize, usize, u64)> = Vec::new(); // (first, last, end)
        for &i in &sized {
            let merge = runs.last().is_some_and(|&(_, last, end)| {
                may_run
                    && t(last).pad_free
                    && t(last).group == t(i).group
                    && t(i).param_offset == pad_end(end)
            });
            let end = t(i).param_offset + t(i).len;
            match runs.last_mut() {
                Some(r) if merge => *r = (r.0, i, end),
                _ => runs.push((i, i, end)),
            }
        }
        for &(i, _, end) in &runs {
            let off = t(i).param_offset;
            let mut e = off;
            while e < end {
                let fits = cur.as_ref().is_some_and(|(x0, _, tiles)| {
                    e + width <= x0 + wmax
                        && (tiles.len() as u64) < max_tiles
                        && !((limits.per_tensor || q8) && e == off)
                });
                if !fits {
                    flush(cur.take(), &mut launches);
                    cur = Some((e, e, Vec::new()));
                }
                let (x0, pend, tiles) = cur.as_mut().unwrap();
                let limit = *x0 + wmax;
                let mut piece_end = if end.div_ceil(width) * width <= limit {
                    end
                } else {
                    limit
                };
                // A 2D grid holds at most max_groups² tiles.
                let room = (max_tiles - tiles.len() as u64) * tile_elems;
                piece_end = piece_end.min(e + room);
                let mut a = e;
                // Packing: the head of this piece rides in the last tile's empty lanes.
                if let Some(last) = tiles.last_mut().filter(|l| {
                    limits.pack
                        && !q8
                        && l.group == t(i).group
                        && l.first_b == Tile::NO_SECOND
                        && l.tensor != i as u32
                }) {
                    let v = (e - *x0) / width;
                    let tile_end = last.first as u64 + wg as u64;
                    if e % width == 0 && v * width >= last.end as u64 && v < tile_end {
                        last.first_b = v as u32;
                        last.end_b = (piece_end - *x0) as u32;
                        last.tensor_b = i as u32;
                        a = (*x0 + tile_end * width).max(e);
                    }
                }
                while a < piece_end {
                    tiles.push(Tile::one(
                        t(i).group,
                        ((a - *x0) / width) as u32,
                        (piece_end - *x0) as u32,
                        i as u32,
                    ));
                    a += tile_elems;
                }
                *pend = (*pend).max(piece_end.div_ceil(width) * width);
                e = piece_end;
            }
        }
        flush(cur.take(), &mut launches);
    }

    // Number the tiles across dispatches; a tensor's tiles are consecutive.
    let mut tile_ranges = vec![[0u32; 2]; tensors.len()];
    let mut base = 0u32;
    for p in launches.iter_mut() {
        p.header.tile_base = base;
        p.header.partials_at = partials_at as u32;
        for (k, tile) in p.tiles.iter().enumerate() {
            let r = &mut tile_ranges[tile.tensor as usize];
            if r[1] == 0 {
                r[0] = base + k as u32;
            }
            r[1] += 1;
        }
        base += p.tiles.len() as u32;
    }
    Ok(Layout {
        sets,
        launches,
        tensor_state,
        tile_ranges,
        n_tiles: base,
    })
}

#[cfg(test)]
mod tests {
    //! CPU-only properties of the layout, on random registrations and small limits (no
    //! adapter): every element covered exactly once, windows aligned and within the
    //! binding limit and holding what their tiles touch, grids within limits, 8-bit pieces
    //! on block boundaries, every tile of its tensor's group.
    use super::*;
    use proptest::prelude::*;

    /// A tensor: (len, gap before it, group, 8-bit state).
    type TensorCase = (u64, u64, u32, bool);

    /// A buffer pair: (aligned offsets, laid out by an arena, element types, tensors).
    type BufferCase = (bool, bool, (Dtype, Dtype), Vec<TensorCase>);

    /// A registration: its buffer pairs.
    #[derive(Clone, Debug)]
    struct Case {
        buffers: Vec<BufferCase>,
        limits: LayoutLimits,
    }

    fn case() -> impl Strategy<Value = Case> {
        let dtypes = prop_oneof![
            4 => Just((Dtype::F32, Dtype::F32)),
            1 => Just((Dtype::Bf16, Dtype::Bf16)),
            1 => Just((Dtype::F16, Dtype::F16)),
            1 => Just((Dtype::Bf16, Dtype::F32)),
        ];
        let tensor = (
            prop_oneof![0u64..40, 0u64..700, 500u64..5000],
            0u64..70,
            0u32..3,
            any::<bool>(),
        );
        // (aligned offsets, laid out by an arena, element types, tensors)
        let buffer = (
            any::<bool>(),
            any::<bool>(),
            dtypes,
            proptest::collection::vec(tensor, 1..6),
        );
        let limits = (
            prop_oneof![Just(32u64), Just(256u64)],
            prop_oneof![Just(64u32), Just(128u32)],
            prop_oneof![Just(2u64), Just(3u64), Just(7u64), Just(65535u64)],
            12u64..40,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(storage_align, workgroup, max_groups, kib, per_tensor, pack)| LayoutLimits {
                    storage_align,
                    max_binding: kib * 1024,
                    max_groups,
                    workgroup,
                    per_tensor,
                    pack,
                    // A software device's spread on odd sizes, a GPU's on the others.
                    sumsq_spread: (kib % 2 == 1).then_some(kib / 4),
                },
            );
        (proptest::collection::vec(buffer, 1..4), limits)
            .prop_map(|(buffers, limits)| Case { buffers, limits })
    }

    /// The placements of a case: each buffer pair aligned (every tensor at a multiple of 4
    /// elements, any types and 8-bit state), by an arena (aligned, each tensor where the
    /// previous one's padding to [`ARENA_ALIGN`] ends, that padding free), or packed at
    /// any offset (f32 only, no 8-bit state); grads at the params' offsets in their buffer.
    fn placements(c: &Case) -> Vec<Placement> {
        let mut out = Vec::new();
        for (b, (aligned, arena, dtypes, tensors)) in c.buffers.iter().enumerate() {
            let arena = *aligned && *arena;
            let dtypes = if *aligned {
                *dtypes
            } else {
                (Dtype::F32, Dtype::F32)
            };
            let mut at = 0u64;
            let mut mine = Vec::new();
            for &(len, gap, group, q8) in tensors {
                let start = if arena {
                    at.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
                } else if *aligned {
                    (at + gap).div_ceil(4) * 4
                } else {
                    at + gap
                };
                mine.push((start, len, group, q8 && *aligned));
                at = start + len;
            }
            let end = at.div_ceil(ARENA_ALIGN) * ARENA_ALIGN + 4;
            for (start, len, group, q8) in mine {
                out.push(Placement {
                    param_buf: 2 * b,
                    grad_buf: 2 * b + 1,
                    param_bytes: end * dtypes.0.size(),
                    grad_bytes: end * dtypes.1.size(),
                    param_offset: start,
                    grad_offset: start,
                    len,
                    dtypes,
                    group,
                    kernel: group as usize % 2,
                    q8,
                    pad_free: arena,
                });
            }
        }
        out
    }

    /// The lanes `start..end` of a tile attributed to tensor `ti`, cut at tensor ends: past
    /// its end they may run on through its free padding into the tensor of its group that
    /// starts where the padding ends (a run), and no further.
    fn split_run(
        tensors: &[Placement],
        mut ti: usize,
        mut start: u64,
        end: u64,
    ) -> std::result::Result<Vec<(usize, u64, u64)>, TestCaseError> {
        let mut out = Vec::new();
        loop {
            let t = &tensors[ti];
            let t_end = t.param_offset + t.len;
            if start < t_end {
                out.push((ti, start, end.min(t_end)));
            }
            let next_at = t_end.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
            if end <= t_end {
                return Ok(out);
            }
            // Lanes past its end: its free padding, then the run's next tensor.
            prop_assert!(t.pad_free, "tensor {}: lanes past its end", ti);
            if end <= next_at {
                return Ok(out);
            }
            let next = tensors.iter().position(|u| {
                let key = |x: &Placement| (x.param_buf, x.grad_buf, x.group, x.dtypes, x.kernel);
                key(u) == key(t)
                    && u.param_offset == next_at
                    && u.grad_offset as i64 - u.param_offset as i64
                        == t.grad_offset as i64 - t.param_offset as i64
                    && u.len > 0
            });
            prop_assert!(next.is_some(), "tensor {}: runs on into no tensor", ti);
            (ti, start) = (next.unwrap(), start.max(next_at));
        }
    }

    fn check(c: &Case) -> std::result::Result<(), TestCaseError> {
        let tensors = placements(c);
        let lim = &c.limits;
        let lay = layout(&tensors, lim, 16).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let wg = lim.workgroup as u64;
        let mut covered: Vec<Vec<(u64, u64)>> = vec![Vec::new(); tensors.len()];
        let mut tile_no = 0u32;
        for l in &lay.launches {
            let w = l.width as u64;
            let h = &l.header;
            let set = &lay.sets[l.set];
            // Grids within limits and covering the tiles.
            prop_assert_eq!(h.n_tiles as usize, l.tiles.len());
            prop_assert!(l.grid.0 as u64 <= lim.max_groups && l.grid.1 as u64 <= lim.max_groups);
            prop_assert!(l.grid.0 as u64 * l.grid.1 as u64 >= l.tiles.len() as u64);
            let r = h.sumsq_tiles as u64;
            prop_assert_eq!(
                r,
                match l.dense {
                    true => sumsq_tiles(l.tiles.len() as u64, lim.sumsq_spread),
                    false => 1,
                }
            );
            prop_assert!((SUMSQ_TILES..=SUMSQ_TILES_MAX).contains(&r) || r == 1);
            let coarse = (l.tiles.len() as u64).div_ceil(r);
            let sg = l.sumsq_grid;
            prop_assert!(sg.0 as u64 <= lim.max_groups && sg.1 as u64 <= lim.max_groups);
            prop_assert!(sg.0 as u64 * sg.1 as u64 >= coarse);
            prop_assert_eq!(h.tile_base, tile_no);
            tile_no += l.tiles.len() as u32;
            // Windows: aligned, within the binding limit.
            for (k, &(off, size)) in l.windows.iter().enumerate() {
                prop_assert!(size <= lim.max_binding, "window {k}: {size} bytes");
                prop_assert_eq!(off % lim.storage_align, 0, "window {} offset {}", k, off);
            }
            let x0 = (h.p_base + h.p_shift) as u64 * w;
            let (ep, eg) = (l.dtypes.0.size(), l.dtypes.1.size());
            for tile in &l.tiles {
                if l.dense {
                    prop_assert_eq!(
                        (h.group, h.end, h.tensor),
                        (tile.group, tile.end, tile.tensor)
                    );
                }
                // Its lanes: vectors first.. of `tensor`, and from first_b on those of
                // `tensor_b` (a packed tile: only when packing is on, never 8-bit).
                let lanes_end = x0 + (tile.first as u64 + wg) * w;
                let mut segments = vec![(
                    tile.tensor,
                    x0 + tile.first as u64 * w,
                    x0 + tile.end as u64,
                )];
                if tile.first_b != Tile::NO_SECOND {
                    prop_assert!(lim.pack && !l.q8 && !l.dense);
                    let b = x0 + tile.first_b as u64 * w;
                    prop_assert!(b < lanes_end && b >= x0 + tile.end as u64);
                    segments[0].2 = segments[0].2.min(b);
                    segments.push((tile.tensor_b, b, x0 + tile.end_b as u64));
                }
                let mut pieces = Vec::new();
                for (ti, start, end) in segments {
                    let run = split_run(&tensors, ti as usize, start, lanes_end.min(end))?;
                    if run.len() > 1 {
                        let f32s = (Dtype::F32, Dtype::F32);
                        prop_assert!(lim.pack && !lim.per_tensor && !l.q8 && l.dtypes == f32s);
                    }
                    pieces.extend(run);
                }
                for (ti, start, end) in pieces {
                    let t = &tensors[ti];
                    prop_assert_eq!(tile.group, t.group, "tile of tensor {}", ti);
                    let first = &tensors[set.members[0]];
                    prop_assert_eq!(t.kernel, first.kernel, "one kernel per dispatch");
                    let stop = lanes_end.min(end);
                    prop_assert!(start < stop && start >= t.param_offset);
                    prop_assert!(stop <= t.param_offset + t.len);
                    covered[ti].push((start, stop));
                    // The window holds every vector the tile touches.
                    let vend = stop.div_ceil(w) * w;
                    let (pw, ps) = l.windows[0];
                    prop_assert!(start * ep >= pw && vend * ep <= pw + ps, "param window");
                    let delta = t.grad_offset as i64 - t.param_offset as i64;
                    let (gw, gs) = l.windows[1];
                    let (gstart, gend) =
                        ((start as i64 + delta) as u64, (vend as i64 + delta) as u64);
                    prop_assert!(gstart * eg >= gw && gend * eg <= gw + gs, "grad window");
                    prop_assert!(gend * eg <= t.grad_bytes && vend * ep <= t.param_bytes);
                    let (sw, ss) = l.windows[2];
                    if l.q8 {
                        // 8-bit: one tensor per dispatch, starting on a block boundary.
                        prop_assert_eq!(set.members.len(), 1);
                        let rel = x0 - t.param_offset;
                        prop_assert_eq!(rel % BLOCK as u64, 0);
                        prop_assert_eq!(h.q_block0 as u64, rel / BLOCK as u64);
                        prop_assert!(start - t.param_offset >= sw);
                        prop_assert!(vend - t.param_offset <= sw + ss);
                    } else {
                        prop_assert!((start - set.base) * 4 >= sw);
                        prop_assert!((vend - set.base) * 4 <= sw + ss);
                        prop_assert!(sw + ss <= set.span * 4);
                    }
                }
            }
        }
        prop_assert_eq!(lay.n_tiles, tile_no);
        // Every element of every tensor exactly once.
        for (i, mut runs) in covered.into_iter().enumerate() {
            runs.sort();
            let t = &tensors[i];
            let mut at = t.param_offset;
            for (a, b) in runs {
                prop_assert_eq!(a, at, "tensor {}: gap or overlap", i);
                at = b;
            }
            prop_assert_eq!(at, t.param_offset + t.len, "tensor {} not covered", i);
            let (set, off) = lay.tensor_state[i];
            prop_assert!(lay.sets[set].members.contains(&i));
            if !lay.sets[set].q8 {
                prop_assert_eq!(off, t.param_offset - lay.sets[set].base);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn layout_covers_every_element_once_within_the_limits(c in case()) {
            check(&c)?;
        }
    }

    /// An f32 tensor of `len` elements at element `offset` of buffers 0 (params) and 1
    /// (grads) of 1024 elements, in `group`.
    fn arena_place(offset: u64, len: u64, group: u32) -> Placement {
        Placement {
            param_buf: 0,
            grad_buf: 1,
            param_bytes: 4096,
            grad_bytes: 4096,
            param_offset: offset,
            grad_offset: offset,
            len,
            dtypes: (Dtype::F32, Dtype::F32),
            group,
            kernel: 0,
            q8: false,
            pad_free: false,
        }
    }

    /// Limits of 256-element tiles (workgroup 64, vec4), packing on, no dispatch per tensor.
    fn tile256_limits() -> LayoutLimits {
        LayoutLimits {
            storage_align: 256,
            max_binding: 1 << 20,
            max_groups: 65535,
            workgroup: 64,
            per_tensor: false,
            pack: true,
            sumsq_spread: None,
        }
    }

    /// Packing: a tensor's head rides in the previous tensor's last tile, once per tile,
    /// only for the same group, and never without `pack`.
    #[test]
    fn packing_fills_the_last_tile_with_the_next_tensor() {
        let limits = tile256_limits();
        // Arena-like: tensors of 100, 100, 300, 50 elements at multiples of 64; the last
        // one in another group.
        let place = arena_place;
        let tensors = [
            place(0, 100, 0),
            place(128, 100, 0),
            place(256, 300, 0),
            place(576, 50, 1),
        ];
        let tiles = |pack| {
            let lay = layout(&tensors, &LayoutLimits { pack, ..limits }, 16).unwrap();
            lay.launches
                .iter()
                .flat_map(|l| l.tiles.clone())
                .collect::<Vec<_>>()
        };
        let packed = tiles(true);
        // Tile 0: tensor 0, then tensor 1 from vector 32 (element 128) to its end (228).
        assert_eq!(
            (
                packed[0].tensor,
                packed[0].first_b,
                packed[0].end_b,
                packed[0].tensor_b
            ),
            (0, 32, 228, 1)
        );
        // Tensor 2 cannot join a tile that already holds two: its own tiles, and its last
        // tile cannot take tensor 3 (another group).
        assert!(packed[1..].iter().all(|t| t.first_b == Tile::NO_SECOND));
        assert_eq!(packed.len(), 4);
        assert_eq!(tiles(false).len(), 5);
    }

    /// A dispatch masks lanes (tail) exactly where one of its tensors ends inside a
    /// vector: a tile's end, a packed tile's second tensor's end, a dense piece's end.
    #[test]
    fn tail_is_set_where_a_tensor_ends_inside_a_vector() {
        let limits = tile256_limits();
        let tails = |lens: [u64; 4], per_tensor: bool| -> Vec<bool> {
            let tensors: Vec<Placement> = [0, 128, 256, 576]
                .iter()
                .zip(lens)
                .map(|(&offset, len)| arena_place(offset, len, 0))
                .collect();
            let limits = LayoutLimits {
                per_tensor,
                ..limits
            };
            let lay = layout(&tensors, &limits, 16).unwrap();
            lay.launches.iter().map(|l| l.tail()).collect()
        };
        assert_eq!(tails([100, 100, 300, 52], false), [false]);
        assert_eq!(tails([100, 100, 300, 50], false), [true]);
        // Tensor 1 rides in tensor 0's tile (end_b).
        assert_eq!(tails([100, 102, 300, 52], false), [true]);
        assert_eq!(
            tails([100, 100, 301, 52], true),
            [false, false, true, false]
        );
    }

    /// A dispatch skips its range test (exact) only where every invocation has a whole
    /// vector inside its piece: dense, ending at its last tile's end, and a 1D grid of
    /// exactly its tiles.
    #[test]
    fn exact_only_where_whole_tiles_fill_a_1d_grid() {
        let exact = |len: u64, limits: LayoutLimits| -> Vec<bool> {
            let lay = layout(&[arena_place(0, len, 0)], &limits, 16).unwrap();
            lay.launches.iter().map(|l| l.exact).collect()
        };
        let limits = tile256_limits();
        assert_eq!(exact(1024, limits), [true]);
        assert_eq!(exact(256, limits), [true]);
        // The last tile part-empty: its lanes past the end must not run.
        assert_eq!(exact(1020, limits), [false]);
        assert_eq!(exact(1000, limits), [false]);
        // Four tiles in a 2D grid of 3 x 2 workgroups: two past the last tile.
        let small = LayoutLimits {
            max_groups: 3,
            ..limits
        };
        assert_eq!(exact(1024, small), [false]);
        // Two tensors in one dispatch, tiles from a table: its grid is whole, its ranges not.
        let two = [arena_place(0, 256, 0), arena_place(256, 256, 1)];
        let lay = layout(&two, &limits, 16).unwrap();
        assert!(lay.launches.iter().all(|l| !l.dense && !l.exact));
    }

    /// Runs: arena tensors of one group, each where the previous one's padding ends, are
    /// one dense piece, their padding included; a tensor of another group, a tensor whose
    /// padding is not free, a pass that sums per tile (no `pack`) or one dispatch per
    /// tensor each cut the run.
    #[test]
    fn runs_join_arena_tensors_of_one_group_into_one_dense_piece() {
        let limits = tile256_limits();
        // Tensors of 100, 102, 300 and 50 elements where an arena puts them.
        let arena = |groups: [u32; 4], free: [bool; 4]| -> Vec<Placement> {
            [(0, 100), (128, 102), (256, 300), (576, 50)]
                .iter()
                .zip(groups.iter().zip(free))
                .map(|(&(offset, len), (&group, pad_free))| Placement {
                    pad_free,
                    ..arena_place(offset, len, group)
                })
                .collect()
        };
        // (dense, first tile's tensor, its end, tiles) of each dispatch.
        let shape =
            |tensors: &[Placement], limits: &LayoutLimits| -> Vec<(bool, u32, u32, usize)> {
                let lay = layout(tensors, limits, 16).unwrap();
                let s = lay.launches.iter();
                s.map(|l| (l.dense, l.tiles[0].tensor, l.tiles[0].end, l.tiles.len()))
                    .collect()
            };
        let all = arena([0; 4], [true; 4]);
        // One run from element 0 to 626: 3 tiles, no mask but at its end (626 = 4 * 156 + 2).
        assert_eq!(shape(&all, &limits), [(true, 0, 626, 3)]);
        assert!(layout(&all, &limits, 16).unwrap().launches[0].tail());
        // Tensor 2 in another group: runs 0-1 and 3 around it, packed where they can be.
        let lay = layout(&arena([0, 0, 1, 0], [true; 4]), &limits, 16).unwrap();
        let runs: Vec<_> = lay.launches.iter().flat_map(|l| l.tiles.clone()).collect();
        assert_eq!((runs[0].tensor, runs[0].end), (0, 230));
        assert!(runs.iter().all(|t| t.tensor != 1 && t.tensor_b != 1));
        // Tensor 0's padding not free: tensor 1 starts the run (in tensor 0's tile).
        let lay = layout(&arena([0; 4], [false, true, true, true]), &limits, 16).unwrap();
        let tiles: Vec<_> = lay.launches.iter().flat_map(|l| l.tiles.clone()).collect();
        assert_eq!((tiles[0].tensor, tiles[0].end), (0, 100));
        assert_eq!((tiles[0].tensor_b, tiles[0].end_b), (1, 626));
        assert!(tiles.iter().all(|t| t.tensor != 2 && t.tensor != 3));
        // No runs where a pass sums per tile or per tensor, or one dispatch per tensor.
        for limits in [
            LayoutLimits {
                pack: false,
                ..limits
            },
            LayoutLimits {
                per_tensor: true,
                ..limits
            },
        ] {
            let lay = layout(&all, &limits, 16).unwrap();
            let tiles: Vec<_> = lay.launches.iter().flat_map(|l| l.tiles.clone()).collect();
            assert!((0..4).all(|i| tiles.iter().any(|t| t.tensor == i)));
        }
    }

    /// Fault (found by a newcomer's try): a tensor of no elements between arena tensors (or
    /// inside one) made the whole launch group width 1. It has no vectors: the width and
    /// the runs are as without it.
    #[test]
    fn a_zero_length_tensor_keeps_the_width() {
        let mut tensors = vec![arena_place(0, 100, 0), arena_place(128, 102, 0)];
        for offset in [101, 150] {
            tensors.push(arena_place(offset, 0, 0));
            let lay = layout(&tensors, &tile256_limits(), 16).unwrap();
            assert!(lay.launches.iter().all(|l| l.width == 4), "offset {offset}");
            tensors.pop();
        }
    }

    /// A binding limit too small for one tile is refused by name.
    #[test]
    fn a_binding_limit_below_one_tile_is_refused() {
        let limits = LayoutLimits {
            storage_align: 256,
            max_binding: 4096,
            max_groups: 65535,
            workgroup: 256,
            per_tensor: false,
            pack: false,
            sumsq_spread: None,
        };
        let e = layout(&[], &limits, 16).unwrap_err().to_string();
        assert!(e.contains("too small for one tile"), "{e}");
    }
}
