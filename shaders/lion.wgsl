// Lion (Chen et al. 2023). CPU twin: src/rules/lion.rs (same order).
// h.a = (-lr, 1 - lr*wd, beta1, 1 - beta1); h.b = (decay on, maximize, beta2, 1 - beta2).
// State: s0 = exp_avg.
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let g = grad_in(g_raw, p_in, 0.0, h.b.y);
    var p = p_in;
    if h.b.x != 0.0 {
        p = p * h.a.y;
    }
    let c = (*s).s0 * h.a.z + h.a.w * g;
    (*s).s0 = (*s).s0 * h.b.z + h.b.w * g;
    return p + h.a.x * sign_torch(c);
}
