// RAdam: torch.optim.RAdam. CPU twin: src/rules/radam.rs (same order).
// h.a = (1 - beta1^t, lr, sqrt(1 - beta2^t), eps); h.b = (1 - beta1, beta2, 1 - beta2, wd)
// h.c = (1 - lr*wd, maximize, decoupled, rectified); h.d = (rect, lerp's flag, -, -).
// State: s0 = exp_avg, s1 = exp_avg_sq.
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let d = decay(p_in, g_raw, h.b.w, h.c.x, h.c.z, h.c.y);
    let p = d.p;
    moments(s, d.g, h.b.x, h.b.y, h.b.z, h.d.y);
    var a = (*s).s0 / h.a.x * h.a.y;
    if h.c.w != 0.0 {
        a = a * (1.0 / (sqrt((*s).s1) + h.a.w) * h.a.z) * h.d.x;
    }
    return p - a;
}
