alias V = f32;
alias U = u32;
alias M = bool;
const W: u32 = 1u;
// Width 1 has no partial vectors: TAIL is there for the vec4 prelude's sake.
override TAIL: bool = true;
fn live_lanes(e0: u32, end: u32) -> bool {
    return e0 < end;
}
fn lane_sum(x: f32) -> f32 {
    return x;
}
