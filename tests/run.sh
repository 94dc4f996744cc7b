#!/usr/bin/env bash
# The whole test suite, on any Debian/Ubuntu machine with Rust: installs Mesa's software
# Vulkan driver (lavapipe) first when no Vulkan driver is present, so the GPU tests always
# have a device. Under CI=true a missing adapter fails the tests; they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan() {
    ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
       /usr/local/share/vulkan/icd.d/*.json 2>/dev/null | grep -q . &&
        ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}

if ! have_vulkan; then
    echo "tests/run.sh: no Vulkan driver found; installing mesa-vulkan-drivers (lavapipe)" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

# A clean build of every target takes ~1 GB of disk (stop 17's CI ran out of space while
# linking); say what is free so a failure of that kind reads as what it is. CI builds from
# scratch once, so incremental caches would only take space.
echo "tests/run.sh: $(df -h . | awk 'NR==2 {print $4}') free on the build disk" >&2
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi

# lavapipe wants a runtime dir only for window systems; silence its warning.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

cargo build --all-targets
cargo test -- --test-threads="${TEST_THREADS:-2}"
# Public items are documented and the doc links resolve.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
