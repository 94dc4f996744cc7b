// SGD / momentum / Nesterov: torch.optim.SGD. CPU twin: src/rules/sgd.rs (same order).
// h.a = (lr, momentum, 1 - dampening, weight_decay);
// h.b = (nesterov, maximize, first step, momentum != 0: a flag the pipeline may fix)
// State: s0 = momentum_buffer (only when momentum != 0).
fn update(h: Hyper, p: V, g: V, s: ptr<function, State>) -> V {
    let lr = h.a.x;
    let momentum = h.a.y;
    let one_minus_damp = h.a.z;
    var d = grad_in(g, p, h.a.w, h.b.y);
    if h.b.w != 0.0 {
        var b: V;
        if h.b.z != 0.0 {
            b = d;
        } else {
            b = (*s).s0 * momentum + one_minus_damp * d;
        }
        (*s).s0 = b;
        if h.b.x != 0.0 {
            d = d + momentum * b;
        } else {
            d = b;
        }
    }
    return p + (-lr) * d;
}
