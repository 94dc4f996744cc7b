// f32 state: slots s0..s2 laid out like the params, the update entry point `main`.
// Appended after common.wgsl (src/kernel.rs).

@group(0) @binding(4) var<storage, read_write> s0: array<V>;
@group(0) @binding(5) var<storage, read_write> s1: array<V>;
@group(0) @binding(6) var<storage, read_write> s2: array<V>;

// The state slots the rule uses (SLOTS), at state index si.
fn load_state(si: u32) -> State {
    var st: State;
    if SLOTS > 0u { st.s0 = s0[si]; }
    if SLOTS > 1u { st.s1 = s1[si]; }
    if SLOTS > 2u { st.s2 = s2[si]; }
    return st;
}

// Stores the new state in the live lanes; the others keep `old`.
fn store_state(si: u32, old: State, st: State, live: M) {
    if SLOTS > 0u { s0[si] = select(old.s0, st.s0, live); }
    if SLOTS > 1u { s1[si] = select(old.s1, st.s1, live); }
    if SLOTS > 2u { s2[si] = select(old.s2, st.s2, live); }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = tile_index(wg);
    // A dense dispatch's workgroups past its last tile start past its end: the e0 test
    // below returns for them (one early return instead of two: lavapipe runs what
    // follows a return under a lane mask, ~4% of a 2^20 Adam step).
    if !DENSE && t >= launch.n_tiles {
        return;
    }
    // A step that loss scaling skips (a non-finite gradient) stores the old values back
    // instead of returning: the skip is read from `aux`, so a return would put the rest
    // under a lane mask (scaler step at 2^22-2^24: 3.5-6% faster than with the return).
    let skip = skipped();
    let tile = tile_at(t);
    let vi = tile.first + lid;
    let e0 = vi * W;
    // A packed tile's lanes from first_b on update the next tensor (plan/layout.rs).
    var end = tile.end;
    if !DENSE && vi >= tile.first_b {
        end = tile.end_b;
    }
    if !EXACT && e0 >= end {
        return;
    }
    // Lanes past the tensor's end keep their old values (they may belong to the caller),
    // and so do all lanes of a skipped step.
    let live = live_lanes(e0, end) & M(!skip);
    let h = hyper_of(tile.group);
    if TWO_PHASE {
        tensor_sums = vec2<f32>(aux[SUMS_AT + 2u * tile.tensor], aux[SUMS_AT + 2u * tile.tensor + 1u]);
    }
    let pi = vi + shifts().x;
    let si = vi + shifts().z;
    let p = load_p(pi, si);
    let old = load_state(si);
    var st = old;
    let p_new = update(h, p, clipped(load_g(vi + shifts().y)), &st);
    store_p(pi, si, p, p_new, live);
    store_state(si, old, st, live);
}

