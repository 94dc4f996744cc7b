// NAdam: torch.optim.NAdam. CPU twin: src/rules/nadam.rs (same order).
// h.a = (-lr(1-mu)/(1-mu_prod), -lr*mu_next/(1-mu_prod_next), 1 - beta2^t, eps)
// h.b = (1 - beta1, beta2, 1 - beta2, weight_decay); h.c = (1 - lr*wd, maximize, decoupled, lerp's flag).
// State: s0 = exp_avg, s1 = exp_avg_sq.
fn update(h: Hyper, p_in: V, g_raw: V, s: ptr<function, State>) -> V {
    let d = decay(p_in, g_raw, h.b.w, h.c.x, h.c.z, h.c.y);
    var p = d.p;
    let g = d.g;
    moments(s, g, h.b.x, h.b.y, h.b.z, h.c.w);
    let denom = sqrt((*s).s1 / h.a.z) + h.a.w;
    p = p + h.a.x * g / denom;
    return p + h.a.y * (*s).s0 / denom;
}
