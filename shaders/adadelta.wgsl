// Adadelta: torch.optim.Adadelta. CPU twin: src/rules/adadelta.rs (same order).
// h.a = (-lr, rho, 1 - rho, eps); h.b = (weight_decay, maximize, -, -).
// State: s0 = square_avg (v), s1 = acc_delta (u).
fn update(h: Hyper, p: V, g_raw: V, s: ptr<function, State>) -> V {
    let rho = h.a.y;
    let one_minus_rho = h.a.z;
    let eps = h.a.w;
    let g = grad_in(g_raw, p, h.b.x, h.b.y);
    (*s).s0 = (*s).s0 * rho + one_minus_rho * g * g;
    let root = sqrt((*s).s0 + eps);
    let delta = sqrt((*s).s1 + eps) / root * g;
    (*s).s1 = (*s).s1 * rho + one_minus_rho * delta * delta;
    return p + h.a.x * delta;
}
