// Gradients of the 2-D test surfaces at many points at once: params and grads hold
// (x, y) pairs. The example's own "backward pass", recorded in the same encoder as the
// optimizer step.
struct Setup { surface: u32, n: u32 }

@group(0) @binding(0) var<storage, read> params: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> grads: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> setup: Setup;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= setup.n {
        return;
    }
    let p = params[i];
    if setup.surface == 0u {
        // Saddle: f = x² − y².
        grads[i] = vec2<f32>(2.0 * p.x, -2.0 * p.y);
    } else {
        // Rosenbrock: f = (1 − x)² + 100 (y − x²)².
        let r = p.y - p.x * p.x;
        grads[i] = vec2<f32>(-2.0 * (1.0 - p.x) - 400.0 * p.x * r, 200.0 * r);
    }
}
