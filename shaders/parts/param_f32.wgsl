@group(0) @binding(0) var<storage, read_write> param: array<V>;
fn load_p(pi: u32, si: u32) -> V { return param[pi]; }
fn store_p(pi: u32, si: u32, old: V, nv: V, live: M) { param[pi] = select(old, nv, live); }
