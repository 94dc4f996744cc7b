// Adagrad: torch.optim.Adagrad. CPU twin: src/rules/adagrad.rs (same order).
// h.a = (-clr, weight_decay, eps, maximize). State: s0 = sum.
fn update(h: Hyper, p: V, g_raw: V, s: ptr<function, State>) -> V {
    let g = grad_in(g_raw, p, h.a.y, h.a.w);
    (*s).s0 = (*s).s0 + g * g;
    let root = sqrt((*s).s0) + h.a.z;
    return p + h.a.x * g / root;
}
