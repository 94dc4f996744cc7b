#!/usr/bin/env python3
"""PyTorch peer for gpu-optim-bench: times torch.optim steps at the same sizes and writes
the bench's JSON schema (the `rules` rows: rule, params, bytes_per_param, step{median,min,
max} in seconds, gbps), so `gpu-optim-bench --torch-json FILE` prints them side by side.

On a CUDA machine this times the fused CUDA kernels (`fused=True`) and the multi-tensor
path (`foreach=True`): the anchor to beat. Timing: CUDA events around each step after a
warm-up (wall clock with no sync needed on CPU). Usage:
    python3 benches/torch_optim.py --sizes 2^20,2^24 --json torch.json
"""
import argparse
import json
import statistics
import time

import torch

# (name, constructor, bytes per param per step) -- names match gpu-optim's where the
# algorithm is the same; the suffix says which torch implementation ran.
RULES = [
    ("sgd", lambda p, **kw: torch.optim.SGD(p, lr=1e-3, **kw), 12),
    ("sgd-momentum", lambda p, **kw: torch.optim.SGD(p, lr=1e-3, momentum=0.9, **kw), 20),
    ("adam", lambda p, **kw: torch.optim.Adam(p, **kw), 28),
    ("adamw", lambda p, **kw: torch.optim.AdamW(p, **kw), 28),
]


def parse_size(s):
    s = s.strip()
    return 1 << int(s[2:]) if s.startswith("2^") else int(s)


def time_rule(make, n, reps, device, impl):
    g = torch.Generator(device="cpu").manual_seed(1)
    p = torch.nn.Parameter((torch.rand(n, generator=g) * 2 - 1).to(device))
    p.grad = ((torch.rand(n, generator=g) * 2 - 1) * 1e-2).to(device)
    kw = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    opt = make([p], **kw)
    opt.step()  # warm-up: state allocation, kernel compilation
    xs = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            opt.step()
            end.record()
            torch.cuda.synchronize()
            xs.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            opt.step()
            xs.append(time.perf_counter() - t)
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2^20,2^24")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    impls = ["fused", "foreach"] if device == "cuda" else ["foreach", "single"]
    rows = []
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        for name, make, bpp in RULES:
            for impl in impls:
                try:
                    step = time_rule(make, n, args.reps, device, impl)
                except (RuntimeError, TypeError) as e:  # e.g. fused unsupported here
                    print(f"skip {name} {impl}: {e}")
                    continue
                rows.append({
                    "rule": f"torch-{name}-{impl}",
                    "params": n,
                    "bytes_per_param": bpp,
                    "step": step,
                    "gbps": bpp * n / step["median"] / 1e9,
                })
                print(f"{rows[-1]['rule']:<28} {n:>10} {step['median'] * 1e3:9.3f} ms {rows[-1]['gbps']:8.1f} GB/s")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    report = {
        "crate_version": f"torch {torch.__version__}",
        "adapter": {"name": name, "backend": "cuda" if device == "cuda" else "cpu"},
        "timing": "cuda-events" if device == "cuda" else "wall-clock",
        "rules": rows,
    }
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
