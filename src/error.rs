//! The crate's one error type.

/// Everything that can go wrong in gpu-optim. Every public fallible call returns this;
/// wgpu validation errors are captured through error scopes and surface here instead of
/// panicking in wgpu's default handler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter matched the request (or none exists at all).
    #[error(
        "no GPU adapter found{detail}. Install your GPU's Vulkan/Metal/DX12 driver, or for a \
         software device on Debian/Ubuntu: `sudo apt-get install -y mesa-vulkan-drivers` \
         (lavapipe). WGPU_BACKEND and WGPU_ADAPTER_NAME narrow the choice."
    )]
    NoAdapter {
        /// What was asked for, e.g. ` matching "nvidia"`.
        detail: String,
    },
    /// The adapter refused the device request (features or limits it lacks).
    #[error("requesting a device failed: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),
    /// A hyperparameter is outside the range torch.optim accepts.
    #[error("invalid hyperparameter for {rule}: {name} = {value} ({why})")]
    InvalidHyperparameter {
        /// Rule name, e.g. `adam`.
        rule: &'static str,
        /// Hyperparameter name as torch.optim spells it.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// The accepted range.
        why: &'static str,
    },
    /// Buffers that must have equal lengths do not.
    #[error("length mismatch: {what} has {got} elements, expected {expected}")]
    LengthMismatch {
        /// Which buffer.
        what: String,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A buffer range is misplaced: out of bounds, unaligned, overlapping another tensor.
    #[error("bad buffer range for {what}: {why}")]
    BadRange {
        /// Which buffer.
        what: String,
        /// Why it was refused.
        why: String,
    },
    /// A caller's buffer lacks a usage flag the operation needs.
    #[error("buffer {what} lacks usage {needed:?} (has {has:?})")]
    MissingUsage {
        /// Which buffer.
        what: String,
        /// Usage flags required.
        needed: wgpu::BufferUsages,
        /// Usage flags the buffer was created with.
        has: wgpu::BufferUsages,
    },
    /// Param groups of one optimizer must share the state layout (e.g. all `amsgrad` or none).
    #[error("param group {group} is incompatible: {why}")]
    IncompatibleGroup {
        /// Index of the group refused.
        group: usize,
        /// What differs.
        why: String,
    },
    /// The operation is not allowed in the optimizer's current state.
    #[error("{0}")]
    InvalidState(String),
    /// A buffer larger than the device allows (`max_buffer_size`): not a lack of memory,
    /// a limit; split the data or request a device with a higher limit.
    #[error("{what}: {size} bytes exceed the device's max_buffer_size of {limit} bytes")]
    TooLarge {
        /// What was being created.
        what: String,
        /// Bytes asked for (saturated at u64::MAX).
        size: u64,
        /// The device's limit.
        limit: u64,
    },
    /// A buffer belongs to another device than the optimizer's.
    #[error("{what} belongs to another wgpu device than the optimizer's: {message}")]
    WrongDevice {
        /// Which buffer.
        what: String,
        /// wgpu's description.
        message: String,
    },
    /// The device ran out of memory; the step that hit it did not run.
    #[error("GPU out of memory during {during}; no parameters or state were changed")]
    OutOfMemory {
        /// What was being done.
        during: &'static str,
    },
    /// wgpu reported a validation or internal error; the step that hit it did not run.
    #[error("wgpu error during {during}: {message}; no parameters or state were changed")]
    Wgpu {
        /// What was being done.
        during: &'static str,
        /// wgpu's description.
        message: String,
    },
    /// The device was lost (driver reset, GPU removed, `destroy`). Its buffers are gone;
    /// restart from a checkpoint on a new device.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// A checkpoint could not be written or read, or does not match this optimizer.
    #[error("checkpoint {path}: {why}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong, naming the field that differs.
        why: String,
    },
    /// Mapping a buffer for reading failed.
    #[error("buffer read-back failed: {0}")]
    Readback(String),
}

/// Shorthand for `Result<T, gpu_optim::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
