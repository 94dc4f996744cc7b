// NAdam: torch.optim.NAdam. CPU twin: src/rules/nadam.rs (same order).
// h.a = (-lr(1-mu)/(1-mu_prod), -lr*mu_next/(1-mu_prod_next), 1 - beta2^t, eps)
// h.b = (1 - beta1, beta2, 1 - beta2, weight_decay); h.c = (1 - lr*wd, maximize, decoupled, -).
// State: s0 = exp_avg, s1 = exp_avg_sq.
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let wd = h.b.w;
    var p = p_in;
    var g: V;
    if h.c.z != 0.0 {
        if wd != 0.0 {
            p = p * h.c.x;
        }
        g = grad_in(g_raw, p, 0.0, h.c.y);
    } else {
        g = grad_in(g_raw, p, wd, h.c.y);
    }
    (*s).s0 = lerp((*s).s0, g, h.b.x);
    (*s).s1 = (*s).s1 * h.b.y + h.b.z * g * g;
    let denom = sqrt((*s).s1 / h.a.z) + h.a.w;
    p = p + h.a.x * g / denom;
    return p + h.a.y * (*s).s0 / denom;
}
