@group(0) @binding(1) var<storage, read_write> grad: array<V>;
fn load_g(i: u32) -> V { return grad[i]; }
