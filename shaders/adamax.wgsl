// Adamax: torch.optim.Adamax. CPU twin: src/rules/adamax.rs (same order).
// h.a = (-lr/bc1, 1 - beta1, beta2, eps); h.b = (weight_decay, maximize, lerp's flag, -).
// State: s0 = exp_avg, s1 = exp_inf.
fn update(h: Hyper, p: V, g_raw: V, s: ptr<function, State>) -> V {
    let g = grad_in(g_raw, p, h.b.x, h.b.y);
    (*s).s0 = lerp((*s).s0, g, h.a.y, h.b.z);
    (*s).s1 = max_nan((*s).s1 * h.a.z, abs(g) + h.a.w);
    return p + h.a.x * (*s).s0 / (*s).s1;
}
