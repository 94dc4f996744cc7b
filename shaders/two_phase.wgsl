// The first pass of a two-phase rule (LAMB), appended after common.wgsl when the rule's
// Kernel says two_phase. The rule defines
//   fn measure(h: Hyper, p: V, g: V, s: ptr<function, State>) -> Pair
// which updates the state and returns two per-element quantities; this pass stores the
// state and sums the quantities per tile (then shaders/reduce.wgsl per tensor), and the
// update pass reads its tensor's sums from `tensor_sums`.

struct Pair { a: V, b: V }

@compute @workgroup_size(WG)
fn measure_pass(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = tile_index(wg);
    if t >= launch.n_tiles {
        return;
    }
    let tile = tile_at(t);
    let vi = tile.first + lid;
    let e0 = vi * W;
    var acc = vec2<f32>(0.0);
    if e0 < tile.end && !skipped() {
        let live = live_lanes(e0, tile.end);
        let h = hyper_of(tile.group);
        let si = vi + shifts().z;
        let old = load_state(si);
        var st = old;
        let p = load_p(vi + shifts().x, si);
        let c = measure(h, p, clipped(load_g(vi + shifts().y)), &st);
        store_state(si, old, st, live);
        acc = vec2<f32>(lane_sum(select(V(0.0), c.a, live)), lane_sum(select(V(0.0), c.b, live)));
    }
    tile_reduce(lid, acc);
    store_partial(lid, t);
}
