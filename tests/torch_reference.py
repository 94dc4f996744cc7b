#!/usr/bin/env python3
"""Generates the expected values in tests/torch_reference.rs: torch.optim single-tensor
(foreach=False) on CPU, 8 steps from fixed params with exactly representable grads; then
Adam under torch.amp.GradScaler with some steps' grads holding an inf.
Run: python3 tests/torch_reference.py  (the Case list and the scaler values are printed
to paste)."""
import torch, struct
torch.set_default_dtype(torch.float32)
N, T = 6, 8
p0 = [0.5, -0.25, 1.5, -2.0, 0.125, 3.0]
def grad(i, t):  # exact in f32
    return (((i * 7 + t * 3) % 11) - 5) * 0.125
CONFIGS = [
  ("sgd", "Sgd::default()", lambda p: torch.optim.SGD(p, foreach=False)),
  ("sgd_momentum", "Sgd { lr: 0.1, momentum: 0.9, dampening: 0.1, weight_decay: 0.01, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, foreach=False)),
  ("sgd_nesterov_max", "Sgd { lr: 0.1, momentum: 0.9, nesterov: true, maximize: true, ..Sgd::default() }",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, maximize=True, foreach=False)),
  ("adagrad", "Adagrad { lr: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.1, weight_decay: 0.01, ..Adagrad::default() }",
     lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01, foreach=False)),
  ("adadelta", "Adadelta { weight_decay: 0.01, ..Adadelta::default() }",
     lambda p: torch.optim.Adadelta(p, weight_decay=0.01, foreach=False)),
  ("rmsprop", "RmsProp::default()", lambda p: torch.optim.RMSprop(p, foreach=False)),
  ("rmsprop_centered_momentum", "RmsProp { centered: true, momentum: 0.9, weight_decay: 0.01, ..RmsProp::default() }",
     lambda p: torch.optim.RMSprop(p, centered=True, momentum=0.9, weight_decay=0.01, foreach=False)),
  ("adam", "Adam::default()", lambda p: torch.optim.Adam(p, foreach=False)),
  ("adam_l2", "Adam { lr: 0.01, weight_decay: 0.1, ..Adam::default() }", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, foreach=False)),
  ("adamw", "Adam::adamw()", lambda p: torch.optim.AdamW(p, foreach=False)),
  ("adam_amsgrad_max", "Adam { amsgrad: true, maximize: true, ..Adam::default() }", lambda p: torch.optim.Adam(p, amsgrad=True, maximize=True, foreach=False)),
  ("adamax", "Adamax::default()", lambda p: torch.optim.Adamax(p, foreach=False)),
  ("adamax_wd_max", "Adamax { lr: 0.01, weight_decay: 0.1, maximize: true, ..Adamax::default() }",
     lambda p: torch.optim.Adamax(p, lr=0.01, weight_decay=0.1, maximize=True, foreach=False)),
  ("nadam", "NAdam::default()", lambda p: torch.optim.NAdam(p, foreach=False)),
  ("nadamw", "NAdam { lr: 0.01, weight_decay: 0.1, decoupled_weight_decay: true, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, foreach=False)),
  ("nadam_l2", "NAdam { weight_decay: 0.1, momentum_decay: 0.01, ..NAdam::default() }",
     lambda p: torch.optim.NAdam(p, weight_decay=0.1, momentum_decay=0.01, foreach=False)),
  ("radam", "RAdam::default()", lambda p: torch.optim.RAdam(p, foreach=False)),
  ("radamw_max", "RAdam { lr: 0.01, weight_decay: 0.1, decoupled_weight_decay: true, maximize: true, ..RAdam::default() }",
     lambda p: torch.optim.RAdam(p, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True, foreach=False)),
  ("radam_l2", "RAdam { weight_decay: 0.1, betas: (0.9, 0.99), ..RAdam::default() }",
     lambda p: torch.optim.RAdam(p, weight_decay=0.1, betas=(0.9, 0.99), foreach=False)),
]
STATE = {"Sgd": ["momentum_buffer"], "Adagrad": ["sum"], "Adadelta": ["square_avg", "acc_delta"],
         "RmsProp": ["square_avg", "grad_avg", "momentum_buffer"], "Adam": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
         "Adamax": ["exp_avg", "exp_inf"], "NAdam": ["exp_avg", "exp_avg_sq"], "RAdam": ["exp_avg", "exp_avg_sq"]}
def lit(x): return f"f32::from_bits(0x{struct.unpack('<I', struct.pack('<f', x))[0]:08x})"
out = []
for name, rust, make in CONFIGS:
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = make([p])
    for t in range(1, T + 1):
        p.grad = torch.tensor([grad(i, t) for i in range(N)])
        opt.step()
    st = opt.state[p]
    kind = rust.split("::")[0].split(" ")[0]
    slots = [(k, st[k]) for k in STATE[kind] if k in st]
    out.append((name, rust, p.detach().tolist(), [(k, v.tolist()) for k, v in slots]))
print(torch.__version__)
for name, rust, params, slots in out:
    print("    Case {")
    print(f'        name: "{name}",')
    print(f"        rule: AnyRule::{rust.split('::')[0].split(' ')[0]}({rust}),")
    print("        params: [" + ", ".join(lit(x) for x in params) + "],")
    print("        state: &[")
    for k, v in slots:
        print(f'            ("{k}", [' + ", ".join(lit(x) for x in v) + "]),")
    print("        ],")
    print("    },")

# Adam under GradScaler("cpu", init_scale=2^16, growth_interval=2): grads are the loss
# scale times grad(i, t), with an inf at the steps (and elements) in BAD.
BAD = {2: 1, 5: 4, 6: 0}
p = torch.nn.Parameter(torch.tensor(p0))
opt = torch.optim.Adam([p], foreach=False)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=2)
scales = []
for t in range(1, T + 1):
    s = scaler.scale(torch.tensor(1.0)).item()
    g = torch.tensor([grad(i, t) for i in range(N)]) * s
    if t in BAD:
        g[BAD[t]] = float("inf")
    p.grad = g
    scaler.step(opt)
    scaler.update()
    scales.append(scaler.get_scale())
print("SCALER_PARAMS: [" + ", ".join(lit(x) for x in p.detach().tolist()) + "]")
print("SCALER_STEPS:", int(opt.state[p]["step"].item()), "SCALES:", scales)
