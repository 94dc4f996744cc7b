// Softmax cross-entropy over two classes, averaged over the batch: writes dlogits and,
// per sample, (loss, correct) for the host to read every few steps.
struct Dims { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = id.x;
    if n >= dims.n { return; }
    let z0 = logits[2u * n];
    let z1 = logits[2u * n + 1u];
    let m = max(z0, z1);
    let e0 = exp(z0 - m);
    let e1 = exp(z1 - m);
    let p0 = e0 / (e0 + e1);
    let p1 = e1 / (e0 + e1);
    let y = labels[n];
    let inv_n = 1.0 / f32(dims.n);
    dlogits[2u * n] = (p0 - select(0.0, 1.0, y == 0u)) * inv_n;
    dlogits[2u * n + 1u] = (p1 - select(0.0, 1.0, y == 1u)) * inv_n;
    var p = p0;
    if y == 1u { p = p1; }
    stats[2u * n] = -log(max(p, 1e-30));
    stats[2u * n + 1u] = select(0.0, 1.0, (z1 > z0) == (y == 1u));
}
