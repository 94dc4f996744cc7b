@group(0) @binding(0) var<storage, read_write> param: array<vec2<u32>>;
fn load_p(pi: u32, si: u32) -> V {
let h = halves(param[pi]);
return vec4<f32>(bf16_to_f32(h.x), bf16_to_f32(h.y), bf16_to_f32(h.z), bf16_to_f32(h.w));
}
// No master: the update rounds stochastically, by bits hashed from the element's
// index in its buffer and the step's key (the header's a.y; src/half.rs).
fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) {
let key = bitcast<u32>(hyper[HEADER].a.y);
let e = (launch.p_base + pi) * 4u;
let h = vec4<u32>(bf16_from_f32_sr(nv.x, pcg_hash(e ^ key)), bf16_from_f32_sr(nv.y, pcg_hash((e + 1u) ^ key)),
bf16_from_f32_sr(nv.z, pcg_hash((e + 2u) ^ key)), bf16_from_f32_sr(nv.w, pcg_hash((e + 3u) ^ key)));
param[pi] = pack_halves(select(halves(param[pi]), h, live));
}
