@group(0) @binding(0) var<storage, read_write> param: array<vec2<u32>>;
@group(0) @binding(10) var<storage, read_write> master: array<V>;
fn load_p(pi: u32, si: u32) -> V { return master[si]; }
// The master takes the update; the caller's 16-bit params its rounding. Lanes
// past the tensor keep their halves (they may be the caller's).
fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) {
master[si] = select(old, nv, live);
var o = vec4<u32>(0u);
if !all(live) { o = halves(param[pi]); }
let h = vec4<u32>(bf16_from_f32(nv.x), bf16_from_f32(nv.y), bf16_from_f32(nv.z), bf16_from_f32(nv.w));
param[pi] = pack_halves(select(o, h, live));
}
