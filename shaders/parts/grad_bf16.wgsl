@group(0) @binding(1) var<storage, read_write> grad: array<vec2<u32>>;
fn load_g(i: u32) -> V {
let h = halves(grad[i]);
return vec4<f32>(bf16_to_f32(h.x), bf16_to_f32(h.y), bf16_to_f32(h.z), bf16_to_f32(h.w));
}
