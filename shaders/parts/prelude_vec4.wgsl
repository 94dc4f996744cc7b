alias V = vec4<f32>;
alias U = vec4<u32>;
alias M = vec4<bool>;
const W: u32 = 4u;
// Whether a vector of the dispatch may run past its range's end (an end that is not a
// multiple of 4): false makes every lane live, a constant, and the masked stores plain
// ones (lavapipe pays ~3% of an Adam step for the masks).
override TAIL: bool = true;
fn live_lanes(e0: u32, end: u32) -> vec4<bool> {
    if !TAIL {
        return vec4<bool>(true);
    }
    return vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end);
}
fn lane_sum(x: vec4<f32>) -> f32 {
    return (x.x + x.y) + (x.z + x.w);
}
