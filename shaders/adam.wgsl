// Adam / AdamW / AMSGrad: torch.optim.Adam(W). CPU twin: src/rules/adam.rs (same order).
// h.a = (-lr/bc1, sqrt(bc2), eps, weight_decay); h.b = (1 - beta1, beta2, 1 - beta2, 1 - lr*wd)
// h.c = (maximize, decoupled, amsgrad, -).
// State: s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq (amsgrad only).
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let wd = h.a.w;
    var p = p_in;
    var g: V;
    if h.c.y != 0.0 {
        if wd != 0.0 {
            p = p * h.b.w;
        }
        g = grad_in(g_raw, p, 0.0, h.c.x);
    } else {
        g = grad_in(g_raw, p, wd, h.c.x);
    }
    (*s).s0 = lerp((*s).s0, g, h.b.x);
    (*s).s1 = (*s).s1 * h.b.y + h.b.z * g * g;
    var v = (*s).s1;
    if h.c.z != 0.0 {
        (*s).s2 = max((*s).s2, (*s).s1);
        v = (*s).s2;
    }
    let denom = sqrt(v) / h.a.y + h.a.z;
    return p + h.a.x * (*s).s0 / denom;
}
