alias V = vec4<f32>;
alias U = vec4<u32>;
alias M = vec4<bool>;
const W: u32 = 4u;
fn live_lanes(e0: u32, end: u32) -> vec4<bool> {
return vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end);
}
fn lane_sum(x: vec4<f32>) -> f32 {
    return (x.x + x.y) + (x.z + x.w);
}
