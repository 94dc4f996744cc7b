#!/usr/bin/env bash
# One call on a lent GPU machine (see the device tool's README and shared/gpu-machine.md):
# build here first (`cargo build --release --bin gpu-optim-bench`, and download the Vulkan
# loader into .gl/), then run with carry = [".gl", "target/release/gpu-optim-bench"]:
#     bash benches/gpu-machine.sh
# Everything lands under $OUT: the bench table, its JSON and plot, and torch's figures.
set -u
OUT="${OUT:-/tmp/gpu-optim-out}"
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES="${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
nvidia-smi -L || true
B=./target/release/gpu-optim-bench
$B --list-adapters | tee "$OUT/adapters.txt"
# Sizes up to 2^26 (1 GiB of Adam state): past any GPU cache. torch runs at the same sizes
# when it sees CUDA (fused and foreach Adam side by side).
$B --backend vulkan --sizes 2^20,2^24,2^26 --reps 20 \
    --json "$OUT/bench.json" --plot "$OUT/bench.svg" 2>"$OUT/bench.err" | tee "$OUT/bench.txt"
$B --backend vulkan --sizes 2^24 --rules adam,sgd --reps 20 --workgroup 128 --no-model \
    --no-cpu 2>/dev/null | tail -5 | tee "$OUT/wg128.txt"
$B --backend vulkan --sizes 2^24 --rules adam,sgd --reps 20 --workgroup 512 --no-model \
    --no-cpu 2>/dev/null | tail -5 | tee "$OUT/wg512.txt"
