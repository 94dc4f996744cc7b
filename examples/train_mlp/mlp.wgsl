// A small MLP's forward and backward passes, owned by the example (not the crate): dense
// layers with tanh, softmax cross-entropy over two classes, full batch. Row-major:
// activations [n][features], a layer's parameters [in + 1][out] (the last row is the bias,
// so a layer is one tensor of the optimizer's arena). One invocation per output element.
struct Dims { n: u32, i: u32, o: u32, tanh: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// a = input [n][i], w = parameters: out[n][o] = act(w[I][o] + Σ_i a[n][i] w[i][o])
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= dims.n * dims.o { return; }
    let n = k / dims.o;
    let o = k % dims.o;
    var z = w[dims.i * dims.o + o];
    for (var i = 0u; i < dims.i; i++) {
        z = z + a[n * dims.i + i] * w[i * dims.o + o];
    }
    if dims.tanh != 0u { z = tanh(z); }
    out[k] = z;
}

// Weight and bias gradients: a = the layer's input [n][i], w = dout [n][o];
// out[i][o] = Σ_n a[n][i] dout[n][o] for i < I, and row I holds the bias gradient.
@compute @workgroup_size(64)
fn grad_weights(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= (dims.i + 1u) * dims.o { return; }
    let i = k / dims.o;
    let o = k % dims.o;
    var s = 0.0;
    for (var n = 0u; n < dims.n; n++) {
        var x = 1.0;
        if i < dims.i { x = a[n * dims.i + i]; }
        s = s + x * w[n * dims.o + o];
    }
    out[k] = s;
}

// Gradient w.r.t. the layer's input through the previous tanh: a = dout [n][o],
// w = weights [i][o], b = the layer's input (a tanh output) [n][i].
@compute @workgroup_size(64)
fn grad_input(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    if k >= dims.n * dims.i { return; }
    let n = k / dims.i;
    let i = k % dims.i;
    var s = 0.0;
    for (var o = 0u; o < dims.o; o++) {
        s = s + a[n * dims.o + o] * w[i * dims.o + o];
    }
    let y = b[k];
    out[k] = s * (1.0 - y * y);
}
