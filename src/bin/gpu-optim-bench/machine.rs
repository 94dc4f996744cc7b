//! What the bench runs on and what that means: the host CPU (model name, cores) for the
//! report, the header lines about the adapter, and what to install when the adapter is a
//! fallback (wgpu's GL backend, a software rasterizer) or when there is none. Measures
//! nothing.

use gpu_optim::Context;
use serde::Serialize;

/// The machine the bench ran on: a software device's figures are this CPU's, and a
/// GPU's ratios to the CPU reference depend on it too.
#[derive(Serialize)]
pub struct MachineReport {
    /// `model name` from /proc/cpuinfo on Linux, else "unknown".
    pub cpu_model: String,
    /// Threads this process may run on (`std::thread::available_parallelism`).
    pub cpu_cores: usize,
    /// `std::env::consts::OS`, e.g. `linux`.
    pub os: &'static str,
    /// `std::env::consts::ARCH`, e.g. `x86_64`.
    pub arch: &'static str,
}

impl MachineReport {
    /// This process's machine.
    pub fn this() -> MachineReport {
        MachineReport {
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }

    /// `Intel(R) Xeon(R) Processor, 2 cores (linux x86_64)`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} core{} ({} {})",
            self.cpu_model,
            self.cpu_cores,
            if self.cpu_cores == 1 { "" } else { "s" },
            self.os,
            self.arch
        )
    }
}

/// The first `model name` in /proc/cpuinfo (x86; some ARM kernels too), else its
/// `Hardware` or `Processor` line; `None` off Linux or when none is there.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    ["model name", "Hardware", "Processor"]
        .iter()
        .find_map(|key| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
            })
        })
}

/// Whether wgpu chose its GL backend (OpenGL ES / desktop GL through EGL): a fallback
/// the crate does not target.
pub fn is_gl(ctx: &Context) -> bool {
    ctx.adapter_info().backend == wgpu::Backend::Gl
}

/// `name (Backend, DeviceType; driver D I)`, leaving out an empty driver name (GL has
/// none).
fn describe(info: &wgpu::AdapterInfo) -> String {
    let driver = [info.driver.trim(), info.driver_info.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{} ({:?}, {:?}; driver {})",
        info.name,
        info.backend,
        info.device_type,
        if driver.is_empty() {
            "unknown"
        } else {
            &driver
        }
    )
}

/// What to install, the same words wherever the bench says it.
const INSTALL: &str = concat!(
    "  - no GPU: software Vulkan (lavapipe), which the crate is tested on:\n",
    "        sudo apt install mesa-vulkan-drivers      (Debian/Ubuntu)\n",
    "  - a GPU: its own driver with Vulkan (Linux, Windows), Metal (macOS) or DX12 (Windows)."
);

/// The header: the adapter, then what it means when it is a software device (with the
/// CPU it runs on) or wgpu's GL backend (what was found, why it is slow, what to
/// install). `explicit_backend`: the user restricted the backends (`--backend` or
/// `WGPU_BACKEND`), so GL may have been asked for.
pub fn print_header(ctx: &Context, machine: &MachineReport, explicit_backend: bool) {
    let info = ctx.adapter_info();
    if is_gl(ctx) {
        let bar = "=".repeat(88);
        let what: &[&str] = if ctx.is_software() {
            &[
                "That is OpenGL compute through a software rasterizer (Mesa's llvmpipe through",
                "EGL, on the CPU): the GL layer costs milliseconds of host time per step",
                "(Vulkan on the same CPU, lavapipe: ~0.1 ms), and the kernels reach a small",
                "fraction of the copy roofline. That measures the GL emulation, not gpu-optim,",
                "which targets Vulkan, Metal and DX12.",
            ]
        } else {
            &[
                "That is OpenGL compute on a GPU: wgpu's GL backend is a fallback with more",
                "host cost per step than Vulkan, Metal or DX12, which gpu-optim targets.",
            ]
        };
        let why = if explicit_backend {
            "  (GL was allowed by --backend / WGPU_BACKEND.)".to_string()
        } else {
            let others = gpu_optim::list_adapters(Some(
                wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            ));
            if others.is_empty() {
                "  wgpu found no Vulkan, Metal or DX12 adapter on this machine.".to_string()
            } else {
                let names: Vec<_> = others
                    .iter()
                    .map(|a| format!("{} ({:?})", a.name, a.backend))
                    .collect();
                format!(
                    "  Also found: {}; `--adapter NAME` picks one.",
                    names.join(", ")
                )
            }
        };
        println!("{bar}");
        println!(
            "WARNING: this run is on wgpu's GL backend: {}",
            describe(info)
        );
        for line in what {
            println!("  {line}");
        }
        println!("{why}");
        println!("  Install instead:\n{INSTALL}");
        println!("  Then `--backend vulkan` (or WGPU_BACKEND=vulkan) forces Vulkan;");
        println!("  `--list-adapters` shows what wgpu sees.");
        println!("{bar}");
    }
    println!("adapter: {}", describe(info));
    if ctx.is_software() {
        println!(
            "NOTE: this is a software (CPU) device: its figures measure this CPU's memory \
             system, not a GPU."
        );
        println!("cpu: {}", machine.describe());
    }
}

/// The words after the library's "no adapter" error (which says what to install): the
/// adapters wgpu does see on any backend, which `--adapter` and `--backend` choose among.
pub fn no_adapter_help() -> String {
    let seen = gpu_optim::list_adapters(Some(wgpu::Backends::all()));
    if seen.is_empty() {
        return "wgpu sees no adapter on any backend.".to_string();
    }
    let names: Vec<_> = seen
        .iter()
        .map(|a| format!("\n  {} ({:?}, {:?})", a.name, a.backend, a.device_type))
        .collect();
    format!(
        "wgpu sees these on all backends (--adapter NAME and --backend choose among them):{}",
        names.concat()
    )
}
