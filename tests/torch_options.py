#!/usr/bin/env python3
"""Generates the expected values in tests/torch_options.rs (the part between the
`BEGIN GENERATED` and `END GENERATED` markers, rewritten in place; then run
`rustfmt --edition 2021 tests/torch_options.rs`). Run: python3 tests/torch_options.py

1. Every rule x every option that changes its math, against torch.optim itself
   (single-tensor path, foreach=False, CPU, f32): 8 steps over two tensors (2 and 4
   elements) from fixed params, grads ((7i + 3t) mod 11 - 5) / 8 times a power of two
   (exact in f32). Params and every tensor state slot (torch's names) after the last step.
   Lion and LAMB are not in torch.optim: their expected values come from independent
   implementations below, written from the papers and optax (not from the crate):
   Lion (Chen et al. 2023, Algorithm 2; optax.lion = scale_by_lion -> add_decayed_weights
   -> scale_by_learning_rate), LAMB (You et al. 2020; optax.lamb = scale_by_adam(eps,
   eps_root) -> add_decayed_weights -> scale_by_trust_ratio -> scale_by_learning_rate),
   with `maximize` negating the gradient first as torch.optim does.
2. Gradient clipping: torch.nn.utils.clip_grad_value_ / clip_grad_norm_(foreach=False).
3. lr schedules: torch.optim.lr_scheduler's lr per step, as SGD uses it.

What torch (2.15) does when an lr schedule meets a hand-set lr or a second scheduler
(from torch/optim/lr_scheduler.py and the runs below; "step k" is the k-th
optimizer.step(), each followed by scheduler.step()):

- All built-in schedulers used here are *chainable*: scheduler.step() computes the next lr
  from the group's current group['lr'] (StepLR: lr*gamma at every step_size-th epoch, else
  lr unchanged; CosineAnnealingLR: eta_min + (lr - eta_min)*(1 + cos(pi*k/T)) /
  (1 + cos(pi*(k-1)/T)), with an additive rule at k = T + 1 (mod 2T) so it rises again
  after T_max, period 2*T_max; ConstantLR: lr*factor at epoch 0, lr/factor at
  total_iters, else unchanged). The closed forms (_get_closed_form_lr, from base_lrs) are
  only used when step(epoch) is called with an explicit epoch (deprecated).
- (a) SGD lr 0.1, CosineAnnealingLR(T_max=10), group['lr'] = 0.05 set by hand after 3
  optimizer+scheduler steps: step 4 uses 0.05 exactly (the hand-set value; the scheduler
  only writes group['lr'] in its own step()). The chain then continues *from 0.05*: step 5
  uses eta_min + (0.05 - eta_min)*(1 + cos(4pi/10))/(1 + cos(3pi/10)), and so on: the
  hand-set value is scaled by the remaining cosine ratios, reaching eta_min at T_max.
  base_lrs / initial_lr stay 0.1 (they only matter for the closed form and for the
  additive rise after T_max, which adds (base_lr - eta_min)*(1 - cos(pi/T))/2).
- (b) CosineAnnealingLR(T_max=10) for 5 steps, then a *new* scheduler on the same
  optimizer. Its constructor does group.setdefault('initial_lr', group['lr']): initial_lr
  exists already (0.1, from the first scheduler), so base_lrs = [0.1] and the lr is NOT
  reset. Its initial step (last_epoch 0) keeps the current group['lr'] (ConstantLR:
  x factor = 1.0; StepLR: unchanged) -- the lr the cosine scheduler's 5th step() wrote,
  i.e. the cosine value for step 6 (0.05 for T_max=10, eta_min=0). New ConstantLR(1.0):
  steps 6..12 all use that value. New StepLR(step_size=2, gamma=0.5): steps 6, 7 use it,
  steps 8, 9 half of it, 10, 11 a quarter, 12 an eighth (its epochs count from its own
  creation, and it multiplies the current lr, not base_lrs).
- (c) StepLR(step_size=3, gamma=0.5), group['lr'] = 0.2 set by hand before step 5:
  steps 1-3 use 0.1, step 4 0.05, step 5 uses 0.2 (hand-set), step 6 0.2 (epoch 5 is not
  a multiple of 3), step 7 0.1 (epoch 6: x0.5 of the hand-set value), ... The chain
  continues from the hand-set value; the decay points stay on the original epoch grid.
- WarmupCosine{warmup: W, t_max: T, eta_min} is built as SequentialLR([LinearLR(
  start_factor=1/W, end_factor=1, total_iters=W-1), CosineAnnealingLR(T_max=T-W,
  eta_min)], milestones=[W]): step t <= W uses base*t/W, step W+1 the base lr (SequentialLR
  restarts the cosine at its milestone from the initial lr), then the cosine.
"""
import math
import re
import struct

import numpy as np
import torch

torch.set_default_dtype(torch.float32)
N, T = 6, 8
SPLIT = [2, 4]  # two tensors: LAMB's trust ratio is per tensor
# Small params (tests/torch_reference.py's over 16): the lr-0.1 updates are most of each
# final param, so an error in the update is not hidden under the param's magnitude.
P0 = [0.03125, -0.015625, 0.09375, -0.125, 0.0078125, 0.1875]
SMALL = 2.0**-20  # grads ~1e-7: v ~ 1e-14, so eps = 1e-8 vs sqrt(1e-8) = 1e-4 shows


def grad(i, t, scale):  # exact in f32
    return (((i * 7 + t * 3) % 11) - 5) * 0.125 * scale


def bits(x):
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def lit(x):
    return f"f32::from_bits(0x{bits(x):08x})"


# (name, Rust rule expression, torch constructor or "lion"/"lamb", grad scale)
CASES = [
    # SGD: lr, momentum, dampening, weight_decay, nesterov, maximize.
    ("sgd_wd_max", "Sgd { lr: 0.1, weight_decay: 0.1, maximize: true, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.1, maximize=True, foreach=False), 1.0),
    ("sgd_momentum", "Sgd { lr: 0.1, momentum: 0.5, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, foreach=False), 1.0),
    ("sgd_dampening_wd_max", "Sgd { lr: 0.1, momentum: 0.9, dampening: 0.5, weight_decay: 0.1, maximize: true, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1, maximize=True, foreach=False), 1.0),
    ("sgd_nesterov_wd", "Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.1, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, foreach=False), 1.0),
    # Adagrad: lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize.
    ("adagrad_eps_max", "Adagrad { lr: 0.1, eps: 0.1, maximize: true, ..Adagrad::default() }",
     lambda p: torch.optim.Adagrad(p, lr=0.1, eps=0.1, maximize=True, foreach=False), 1.0),
    ("adagrad_small_grads", "Adagrad { lr: 0.1, ..Adagrad::default() }",
     lambda p: torch.optim.Adagrad(p, lr=0.1, foreach=False), SMALL),
    ("adagrad_all", "Adagrad { lr: 0.1, lr_decay: 0.1, initial_accumulator_value: 0.5, weight_decay: 0.1, eps: 1e-3, ..Adagrad::default() }",
     lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, weight_decay=0.1, eps=1e-3, foreach=False), 1.0),
    # Adadelta: lr, rho, eps, weight_decay, maximize.
    ("adadelta_rho_eps_wd_max", "Adadelta { lr: 0.5, rho: 0.5, eps: 1e-2, weight_decay: 0.1, maximize: true }",
     lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.5, eps=1e-2, weight_decay=0.1, maximize=True, foreach=False), 1.0),
    ("adadelta_small_grads", "Adadelta { lr: 0.5, ..Adadelta::default() }",
     lambda p: torch.optim.Adadelta(p, lr=0.5, foreach=False), SMALL),
    # RMSprop: lr, alpha, eps, weight_decay, momentum, centered, maximize.
    ("rmsprop_eps_alpha_max", "RmsProp { lr: 0.1, alpha: 0.9, eps: 0.1, maximize: true, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, lr=0.1, alpha=0.9, eps=0.1, maximize=True, foreach=False), 1.0),
    ("rmsprop_small_grads", "RmsProp { lr: 0.1, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, lr=0.1, foreach=False), SMALL),
    ("rmsprop_momentum_wd", "RmsProp { lr: 0.1, momentum: 0.5, weight_decay: 0.1, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, lr=0.1, momentum=0.5, weight_decay=0.1, foreach=False), 1.0),
    ("rmsprop_centered_eps_max", "RmsProp { lr: 0.1, centered: true, eps: 0.1, maximize: true, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, lr=0.1, centered=True, eps=0.1, maximize=True, foreach=False), 1.0),
    ("rmsprop_centered_momentum_small", "RmsProp { lr: 0.1, centered: true, momentum: 0.9, alpha: 0.9, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, lr=0.1, centered=True, momentum=0.9, alpha=0.9, foreach=False), SMALL),
    # Adam / AdamW: lr, betas, eps, weight_decay, amsgrad, maximize, decoupled.
    ("adam_betas_eps", "Adam { lr: 0.1, betas: (0.5, 0.9), eps: 0.1, ..Adam::default() }",
     lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.5, 0.9), eps=0.1, foreach=False), 1.0),
    ("adam_small_grads", "Adam { lr: 0.1, ..Adam::default() }",
     lambda p: torch.optim.Adam(p, lr=0.1, foreach=False), SMALL),
    ("adam_l2_amsgrad", "Adam { lr: 0.1, weight_decay: 0.1, amsgrad: true, ..Adam::default() }",
     lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.1, amsgrad=True, foreach=False), 1.0),
    ("adamw_amsgrad_max_eps", "Adam { lr: 0.1, weight_decay: 0.1, decoupled_weight_decay: true, amsgrad: true, maximize: true, eps: 0.1, ..Adam::default() }",
     lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1, amsgrad=True, maximize=True, eps=0.1, foreach=False), 1.0),
    # Adamax: lr, betas, eps, weight_decay, maximize.
    ("adamax_betas_eps_wd", "Adamax { lr: 0.1, betas: (0.5, 0.9), eps: 0.1, weight_decay: 0.1, ..Adamax::default() }",
     lambda p: torch.optim.Adamax(p, lr=0.1, betas=(0.5, 0.9), eps=0.1, weight_decay=0.1, foreach=False), 1.0),
    ("adamax_small_grads_max", "Adamax { lr: 0.1, maximize: true, ..Adamax::default() }",
     lambda p: torch.optim.Adamax(p, lr=0.1, maximize=True, foreach=False), SMALL),
    # NAdam: lr, betas, eps, weight_decay, momentum_decay, decoupled, maximize.
    ("nadam_lr", "NAdam { lr: 0.1, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, lr=0.1, foreach=False), 1.0),
    ("nadam_betas_eps_max", "NAdam { lr: 0.1, betas: (0.5, 0.9), eps: 0.1, maximize: true, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, lr=0.1, betas=(0.5, 0.9), eps=0.1, maximize=True, foreach=False), 1.0),
    ("nadam_small_grads", "NAdam { lr: 0.1, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, lr=0.1, foreach=False), SMALL),
    ("nadamw_max_momentum_decay", "NAdam { lr: 0.1, weight_decay: 0.1, decoupled_weight_decay: true, maximize: true, momentum_decay: 0.01, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, lr=0.1, weight_decay=0.1, decoupled_weight_decay=True, maximize=True, momentum_decay=0.01, foreach=False), 1.0),
    # RAdam: lr, betas, eps, weight_decay, decoupled, maximize (rho_t > 5 from step 6 with
    # beta2 0.999, from step 7 with beta2 0.9: both branches run).
    ("radam_betas_eps_max", "RAdam { lr: 0.1, betas: (0.5, 0.9), eps: 0.1, maximize: true, ..RAdam::default() }",
     lambda p: torch.optim.RAdam(p, lr=0.1, betas=(0.5, 0.9), eps=0.1, maximize=True, foreach=False), 1.0),
    ("radam_small_grads_l2", "RAdam { lr: 0.1, weight_decay: 0.1, ..RAdam::default() }",
     lambda p: torch.optim.RAdam(p, lr=0.1, weight_decay=0.1, foreach=False), SMALL),
    ("radamw", "RAdam { lr: 0.1, weight_decay: 0.1, decoupled_weight_decay: true, ..RAdam::default() }",
     lambda p: torch.optim.RAdam(p, lr=0.1, weight_decay=0.1, decoupled_weight_decay=True, foreach=False), 1.0),
    # Lion (not in torch): lr, betas, weight_decay, maximize.
    ("lion", "Lion { lr: 0.1, ..Lion::default() }", dict(lr=0.1), 1.0),
    ("lion_betas_wd_max", "Lion { lr: 0.1, betas: (0.8, 0.95), weight_decay: 0.5, maximize: true }",
     dict(lr=0.1, b1=0.8, b2=0.95, wd=0.5, maximize=True), 1.0),
    # LAMB (not in torch): lr, betas, eps, eps_root, weight_decay, maximize.
    ("lamb", "Lamb { lr: 0.1, ..Lamb::default() }", dict(lr=0.1), 1.0),
    ("lamb_max_wd_betas", "Lamb { lr: 0.1, betas: (0.5, 0.9), weight_decay: 0.1, maximize: true, ..Lamb::default() }",
     dict(lr=0.1, b1=0.5, b2=0.9, wd=0.1, maximize=True), 1.0),
    ("lamb_eps_root_small", "Lamb { lr: 0.1, eps: 1e-12, eps_root: 1e-10, ..Lamb::default() }",
     dict(lr=0.1, eps=1e-12, eps_root=1e-10), SMALL),
    ("lamb_eps_max", "Lamb { lr: 0.1, eps: 0.1, maximize: true, ..Lamb::default() }",
     dict(lr=0.1, eps=0.1, maximize=True), 1.0),
]

# Tensor state torch keeps per parameter, in the crate's slot names (NAdam's scalar
# mu_product and every rule's step are not per-element state).
SCALAR_STATE = {"step", "mu_product"}

f32 = np.float32


def lion_numpy(params, grads_per_step, lr, b1=0.9, b2=0.99, wd=0.0, maximize=False):
    """optax.lion in f32: c = (1-b1)*g + b1*m; u = sign(c) + wd*p; p <- p - lr*u;
    m <- (1-b2)*g + b2*m (optax's update_moment)."""
    ps = [np.array(p, dtype=f32) for p in params]
    ms = [np.zeros_like(p) for p in ps]
    for gs in grads_per_step:
        for k, g in enumerate(gs):
            g = np.array(g, dtype=f32)
            if maximize:
                g = -g
            c = f32(1 - b1) * g + f32(b1) * ms[k]
            u = np.sign(c).astype(f32)
            if wd:
                u = u + f32(wd) * ps[k]
            ps[k] = ps[k] - f32(lr) * u
            ms[k] = f32(1 - b2) * g + f32(b2) * ms[k]
    return ps, {"exp_avg": ms}


def lamb_numpy(params, grads_per_step, lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0,
               wd=0.0, maximize=False):
    """optax.lamb in f32, norms in f64: scale_by_adam (m, v, bias corrections, u =
    m_hat / (sqrt(v_hat + eps_root) + eps)), + wd*p, trust ratio ||p|| / ||u|| per tensor
    (1 if either is 0), p <- p - lr * ratio * u."""
    ps = [np.array(p, dtype=f32) for p in params]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    for t, gs in enumerate(grads_per_step, start=1):
        bc1, bc2 = f32(1 - b1**t), f32(1 - b2**t)
        for k, g in enumerate(gs):
            g = np.array(g, dtype=f32)
            if maximize:
                g = -g
            ms[k] = f32(1 - b1) * g + f32(b1) * ms[k]
            vs[k] = f32(1 - b2) * (g * g) + f32(b2) * vs[k]
            u = (ms[k] / bc1) / (np.sqrt(vs[k] / bc2 + f32(eps_root)) + f32(eps))
            u = u + f32(wd) * ps[k]
            pn = math.sqrt(sum(float(x) ** 2 for x in ps[k]))
            un = math.sqrt(sum(float(x) ** 2 for x in u))
            ratio = f32(pn / un) if pn > 0 and un > 0 else f32(1.0)
            ps[k] = ps[k] - f32(lr) * (ratio * u)
    return ps, {"exp_avg": ms, "exp_avg_sq": vs}


def split(v):
    out, i = [], 0
    for n in SPLIT:
        out.append(list(v[i:i + n]))
        i += n
    return out


def run_case(make, scale):
    grads = [split([grad(i, t, scale) for i in range(N)]) for t in range(1, T + 1)]
    ps = [torch.nn.Parameter(torch.tensor(x)) for x in split(P0)]
    opt = make(ps)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    params = [x for p in ps for x in p.detach().tolist()]
    names = [k for k, v in opt.state[ps[0]].items() if k not in SCALAR_STATE]
    for k, v in opt.state[ps[0]].items():
        if k not in SCALAR_STATE:
            assert torch.is_tensor(v) and v.shape == ps[0].shape, (k, v)
    state = [(k, [x for p in ps for x in opt.state[p][k].tolist()]) for k in names]
    return params, state


def run_numpy(name, kw, scale):
    grads = [split([grad(i, t, scale) for i in range(N)]) for t in range(1, T + 1)]
    impl = lion_numpy if name.startswith("lion") else lamb_numpy
    ps, st = impl(split(P0), grads, **kw)
    params = [float(x) for p in ps for x in p]
    state = [(k, [float(x) for s in v for x in s]) for k, v in st.items()]
    return params, state


def rule_variant(rust):
    return rust.split("::")[0].split(" ")[0]


def gen_cases():
    out = []
    for name, rust, make, scale in CASES:
        if isinstance(make, dict):
            params, state = run_numpy(name, make, scale)
        else:
            params, state = run_case(make, scale)
        out.append(f"        Case {{")
        out.append(f'            name: "{name}",')
        out.append(f"            rule: AnyRule::{rule_variant(rust)}({rust}),")
        out.append(f"            grad_exp: {int(math.log2(scale))},")
        out.append("            params: [" + ", ".join(lit(x) for x in params) + "],")
        out.append("            state: vec![")
        for k, v in state:
            out.append(f'                ("{k}", [' + ", ".join(lit(x) for x in v) + "]),")
        out.append("            ],")
        out.append("        },")
    return "    vec![\n" + "\n".join(out) + "\n    ]\n"


# ---- gradient clipping ------------------------------------------------------------------
CLIP_SCALE = 2.0**-7  # total norm ~0.01: the 1e-6 in max_norm / (norm + 1e-6) is 1e-4


def gen_clip():
    rows = []
    for name, max_norm, value in [("norm", 0.002, None), ("value_then_norm", 0.001, 0.003),
                                  ("norm_above", 1.0, None)]:
        gs = [torch.tensor(g) for g in split([grad(i, 1, CLIP_SCALE) for i in range(N)])]
        ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        if value is not None:
            torch.nn.utils.clip_grad_value_(ps, value, foreach=False)
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, foreach=False)
        clipped = [x for p in ps for x in p.grad.tolist()]
        mn = f"Some({max_norm!r})"
        vv = "None" if value is None else f"Some({value!r})"
        rows.append(f'        ("{name}", GradClip {{ max_norm: {mn}, value: {vv} }}, '
                    f"{lit(total.item())}, [" + ", ".join(lit(x) for x in clipped) + "]),")
    return "    vec![\n" + "\n".join(rows) + "\n    ]\n"


# ---- lr schedules -----------------------------------------------------------------------
BASE = 0.1
STEPS = 24


def used_lrs(opt, sched, steps, hooks=None):
    """The lr each of `steps` optimizer steps uses, with scheduler.step() after each;
    hooks[k](opt) runs before step k (1-based)."""
    lrs = []
    for k in range(1, steps + 1):
        if hooks and k in hooks:
            r = hooks[k](opt)
            if r is not None:
                sched = r
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def sgd():
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    return torch.optim.SGD([p], lr=BASE, foreach=False)


def f32_margin(x):
    """Distance of the f64 x from the nearest f32 rounding boundary, relative to x."""
    if x == 0:
        return math.inf
    r = float(np.float32(x))
    up = float(np.nextafter(np.float32(r), np.float32(math.inf)))
    dn = float(np.nextafter(np.float32(r), np.float32(-math.inf)))
    return min(abs(x - (r + up) / 2), abs(x - (r + dn) / 2)) / abs(x)


def gen_schedules():
    lines = []
    worst = math.inf

    def emit(const, rust_doc, lrs, closed=None):
        nonlocal worst
        for i, x in enumerate(lrs):
            worst = min(worst, f32_margin(x))
            if closed is not None:
                worst = min(worst, f32_margin(closed[i]))
                assert np.float32(x) == np.float32(closed[i]), (const, i, x, closed[i])
        lines.append(f"/// {rust_doc}")
        lines.append(f"const {const}: [u32; {len(lrs)}] = [" +
                     ", ".join(f"0x{bits(x):08x}" for x in lrs) + "];")

    def cos_closed(base, k, tmax, eta):
        return eta + (base - eta) * (1 + math.cos(math.pi * k / tmax)) / 2

    opt = sgd()
    s = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    lrs = used_lrs(opt, s, STEPS)
    emit("STEP_LR", "StepLR(step_size=3, gamma=0.5), base 0.1, steps 1..=24.", lrs,
         [BASE * 0.5 ** (k // 3) for k in range(STEPS)])

    opt = sgd()
    s = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)
    emit("CONSTANT_LR", "ConstantLR(factor=1.0), base 0.1, steps 1..=24.",
         used_lrs(opt, s, STEPS), [BASE] * STEPS)

    opt = sgd()
    s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    lrs = used_lrs(opt, s, STEPS)
    emit("COSINE_LR", "CosineAnnealingLR(T_max=10, eta_min=0.001), base 0.1, steps 1..=24 "
         "(chained; it rises again after step 11).", lrs,
         [cos_closed(BASE, k, 10, 0.001) for k in range(STEPS)])

    W, TM = 4, 14
    opt = sgd()
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / W, end_factor=1.0, total_iters=W - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TM - W, eta_min=0.001)
    s = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[W])
    lrs = used_lrs(opt, s, STEPS)
    closed = [BASE * (k + 1) / W if k < W else cos_closed(BASE, k - W, TM - W, 0.001) for k in range(STEPS)]
    emit("WARMUP_COSINE_LR", "SequentialLR([LinearLR(start_factor=1/4, total_iters=3), "
         "CosineAnnealingLR(T_max=10, eta_min=0.001)], milestones=[4]), base 0.1, steps 1..=24.",
         lrs, closed)

    # Fault-1 scenarios.
    opt = sgd()
    s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    def set_lr(v):
        def f(o):
            o.param_groups[0]["lr"] = v
        return f
    lrs = used_lrs(opt, s, 10, {4: set_lr(0.05)})
    emit("HAND_SET_COSINE", "(a) CosineAnnealingLR(T_max=10), base 0.1, group lr set to 0.05 "
         "before step 4; steps 1..=10.", lrs)
    for new, const, doc in [
        (lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0), "NEW_CONSTANT_AFTER_COSINE",
         "(b) CosineAnnealingLR(T_max=10) for 5 steps, then a new ConstantLR(factor=1.0); steps 1..=12."),
        (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), "NEW_STEP_AFTER_COSINE",
         "(b) CosineAnnealingLR(T_max=10) for 5 steps, then a new StepLR(step_size=2, gamma=0.5); steps 1..=12."),
    ]:
        opt = sgd()
        s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        info = {}
        def swap(o, new=new):
            ns = new(o)
            info["initial_lr"] = o.param_groups[0]["initial_lr"]
            info["base_lrs"] = list(ns.base_lrs)
            return ns
        lrs = used_lrs(opt, s, 12, {6: swap})
        emit(const, doc + f" torch: initial_lr {info['initial_lr']}, new base_lrs {info['base_lrs']}.", lrs)
    opt = sgd()
    s = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    lrs = used_lrs(opt, s, 12, {5: set_lr(0.2)})
    emit("HAND_SET_STEP", "(c) StepLR(step_size=3, gamma=0.5), base 0.1, group lr set to 0.2 "
         "before step 5; steps 1..=12.", lrs)
    lines.append(f"// Smallest relative distance of any torch f64 lr above (chained or closed form) "
                 f"from an f32 rounding boundary: {worst:.1e}.")
    return "\n".join(lines) + "\n"


def main():
    body = ("// torch " + torch.__version__ + ", numpy " + np.__version__ +
            ", ATen CPU capability " + torch.backends.cpu.get_cpu_capability() + "\n"
            "fn cases() -> Vec<Case> {\n" + gen_cases() + "}\n\n"
            "fn clip_cases() -> Vec<(&'static str, GradClip, f32, [f32; N])> {\n" + gen_clip() + "}\n\n"
            + gen_schedules())
    path = "tests/torch_options.rs"
    src = open(path).read()
    new = re.sub(r"(// BEGIN GENERATED[^\n]*\n).*?(// END GENERATED)",
                 lambda m: m.group(1) + body + m.group(2), src, flags=re.S)
    open(path, "w").write(new)
    print(body)


if __name__ == "__main__":
    main()
