#!/usr/bin/env python3
"""Writes tests/bnb_reference.txt for tests/bnb_reference.rs: bitsandbytes' dynamic maps
(create_dynamic_map, signed and unsigned) and its CPU quantize_blockwise (blocksize 256)
of a fixed vector spanning seven decades. Run: python3 tests/bnb_reference.py"""
import struct, torch
import bitsandbytes as bnb
import bitsandbytes.functional as F

def hexf(x):
    return f"{struct.unpack('<I', struct.pack('<f', x))[0]:08x}"

x = torch.tensor([((i * 37) % 101 - 50) / 50.0 * (10.0 ** -(i % 7)) for i in range(1024)],
                 dtype=torch.float32)
lines = [f"# bitsandbytes {bnb.__version__}, torch {torch.__version__}"]
for signed in (True, False):
    code = F.create_dynamic_map(signed=signed)
    name = "signed" if signed else "unsigned"
    lines.append(f"map_{name} " + ",".join(hexf(v) for v in code.tolist()))
    v = x if signed else x.abs()
    q, state = F.quantize_blockwise(v, code=code, blocksize=256)
    lines.append(f"input_{name} " + ",".join(hexf(a) for a in v.tolist()))
    lines.append(f"codes_{name} " + ",".join(str(c) for c in q.tolist()))
    lines.append(f"absmax_{name} " + ",".join(hexf(a) for a in state.absmax.tolist()))
open("tests/bnb_reference.txt", "w").write("\n".join(lines) + "\n")
