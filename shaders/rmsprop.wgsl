// RMSprop: torch.optim.RMSprop. CPU twin: src/rules/rmsprop.rs (same order).
// h.a = (-lr, alpha, 1 - alpha, eps); h.b = (weight_decay, maximize, momentum, centered);
// h.c = (lerp's flag for 1 - alpha, -, -, -).
// State: s0 = square_avg; centered: s1 = grad_avg; momentum: the next slot = momentum_buffer.
fn update(h: Hyper, p: V, g_raw: V, s: ptr<function, State>) -> V {
    let alpha = h.a.y;
    let one_minus_alpha = h.a.z;
    let momentum = h.b.z;
    let centered = h.b.w != 0.0;
    let g = grad_in(g_raw, p, h.b.x, h.b.y);
    (*s).s0 = (*s).s0 * alpha + one_minus_alpha * g * g;
    var avg: V;
    if centered {
        (*s).s1 = lerp((*s).s1, g, one_minus_alpha, h.c.x);
        avg = sqrt((*s).s0 + -(*s).s1 * (*s).s1);
    } else {
        avg = sqrt((*s).s0);
    }
    avg = avg + h.a.w;
    if momentum > 0.0 {
        var b: V;
        if centered {
            b = (*s).s2 * momentum + g / avg;
            (*s).s2 = b;
        } else {
            b = (*s).s1 * momentum + g / avg;
            (*s).s1 = b;
        }
        return p + h.a.x * b;
    }
    return p + h.a.x * g / avg;
}
