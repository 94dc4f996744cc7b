// LAMB (You et al. 2020; optax lamb). CPU twin: src/rules/lamb.rs (same order).
// h.a = (1 - beta1^t, 1 - beta2^t, eps_root, eps); h.b = (weight_decay, -lr, maximize, -)
// h.c = (1 - beta1, beta1, 1 - beta2, beta2). State: s0 = exp_avg, s1 = exp_avg_sq.
// Two phases (shaders/two_phase.wgsl): measure, then update with the tensor's sums.

fn direction(h: Hyper, p: V, m: V, v: V) -> V {
    let mh = m / h.a.x;
    let vh = v / h.a.y;
    return mh / (sqrt(vh + h.a.z) + h.a.w) + h.b.x * p;
}

fn measure(h: Hyper, p: V, g_raw: V, s: ptr<function, State>) -> Pair {
    let g = grad_in(g_raw, p, 0.0, h.b.z);
    (*s).s0 = h.c.x * g + h.c.y * (*s).s0;
    (*s).s1 = h.c.z * (g * g) + h.c.w * (*s).s1;
    let u = direction(h, p, (*s).s0, (*s).s1);
    return Pair(p * p, u * u);
}

fn update(h: Hyper, p: V, g: V, s: ptr<function, State>) -> V {
    let u = direction(h, p, (*s).s0, (*s).s1);
    // optax: 1 only where a norm is exactly 0, else ‖θ‖ / ‖u‖, NaN if either is NaN. The
    // zeros are found from the bits (either sign): WGSL may assume x == x.
    let bits = bitcast<vec2<u32>>(tensor_sums) << vec2<u32>(1u);
    let ratio = select(sqrt(tensor_sums.x) / sqrt(tensor_sums.y), 1.0, any(bits == vec2<u32>(0u)));
    return p + u * ratio * h.b.y;
}
