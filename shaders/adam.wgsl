// Adam / AdamW / AMSGrad: torch.optim.Adam(W). CPU twin: src/rules/adam.rs (same order).
// h.a = (-lr*sqrt(bc2)/bc1, eps*sqrt(bc2), unused, weight_decay); h.b = (1 - beta1, beta2, 1 - beta2, 1 - lr*wd)
// h.c = (maximize, decoupled, amsgrad, |1 - beta1| < 0.5: lerp's flag).
// State: s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq (amsgrad only).
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let d = decay(p_in, g_raw, h.a.w, h.b.w, h.c.y, h.c.x);
    let p = d.p;
    moments(s, d.g, h.b.x, h.b.y, h.b.z, h.c.w);
    var v = (*s).s1;
    if h.c.z != 0.0 {
        (*s).s2 = max_nan((*s).s2, (*s).s1);
        v = (*s).s2;
    }
    let denom = sqrt(v) + h.a.y;
    return p + h.a.x * (*s).s0 / denom;
}
