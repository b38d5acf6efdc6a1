//! Backend choice: each backend is compiled in by its cargo feature (`ndarray`, `wgpu`, `cuda`)
//! and picked at run time with `--backend`.

use anyhow::{Result, bail};
use clap::ValueEnum;

/// The backends `cl` can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// Burn's CPU backend.
    Ndarray,
    /// Vulkan / Metal / DX12 through wgpu (with kernel fusion and autotune).
    Wgpu,
    /// NVIDIA CUDA (with kernel fusion and autotune).
    Cuda,
}

impl BackendName {
    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            BackendName::Ndarray => "ndarray",
            BackendName::Wgpu => "wgpu",
            BackendName::Cuda => "cuda",
        }
    }

    /// `true` when this binary was built with the backend's feature.
    pub fn compiled(self) -> bool {
        match self {
            BackendName::Ndarray => cfg!(feature = "ndarray"),
            BackendName::Wgpu => cfg!(feature = "wgpu"),
            BackendName::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backend used when `--backend` is not given: ndarray if compiled, else the first one.
    pub fn default_compiled() -> Self {
        compiled().first().copied().unwrap_or(BackendName::Ndarray)
    }

    /// Checks the choice before anything else runs: one missing from this binary says how to
    /// build it in.
    pub fn check(self) -> Result<()> {
        if self.compiled() {
            return Ok(());
        }
        bail!(
            "backend `{}` is not compiled into this binary (it has {}): build it with `cargo build --release -p cl-cli --features {}`",
            self.name(),
            compiled_names().join(", "),
            self.name()
        )
    }
}

/// The backends compiled into this binary.
pub fn compiled() -> Vec<BackendName> {
    BackendName::value_variants()
        .iter()
        .copied()
        .filter(|b| b.compiled())
        .collect()
}

/// Names of [`compiled`].
pub fn compiled_names() -> Vec<&'static str> {
    compiled().into_iter().map(BackendName::name).collect()
}

/// A backend compiled into this binary, to instantiate the method registry for its
/// descriptions (no device is created).
#[cfg(feature = "ndarray")]
pub type ListingBackend = burn::backend::Autodiff<burn::backend::NdArray<f32>>;
/// A backend compiled into this binary, to instantiate the method registry for its
/// descriptions (no device is created).
#[cfg(all(not(feature = "ndarray"), feature = "wgpu"))]
pub type ListingBackend = burn::backend::Autodiff<burn::backend::Wgpu>;
/// A backend compiled into this binary, to instantiate the method registry for its
/// descriptions (no device is created).
#[cfg(all(not(feature = "ndarray"), not(feature = "wgpu"), feature = "cuda"))]
pub type ListingBackend = burn::backend::Autodiff<burn::backend::Cuda>;
#[cfg(not(any(feature = "ndarray", feature = "wgpu", feature = "cuda")))]
compile_error!("cl needs at least one backend feature: ndarray, wgpu or cuda");

/// Something to run generically on an autodiff backend and its device.
pub trait OnBackend {
    /// Runs on backend `B`.
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<()>;
}

/// Dispatches `job` to `backend`.
pub fn dispatch(backend: BackendName, job: impl OnBackend) -> Result<()> {
    backend.check()?;
    match backend {
        #[cfg(feature = "ndarray")]
        BackendName::Ndarray => {
            job.run::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(Default::default())
        }
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => {
            type B = burn::backend::Autodiff<burn::backend::Wgpu>;
            let device = Default::default();
            probe::<B>(backend, &device)?;
            job.run::<B>(device)
        }
        #[cfg(feature = "cuda")]
        BackendName::Cuda => {
            type B = burn::backend::Autodiff<burn::backend::Cuda>;
            let device = Default::default();
            probe::<B>(backend, &device)?;
            job.run::<B>(device)
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "backend `{}` is not compiled into this binary",
            other.name()
        ),
    }
}

/// Creates one small tensor on `device` and reads it back, so that a GPU backend without a
/// driver or device fails here with an error that says what is missing, instead of panicking
/// inside the first training step. The backend's own panic message is kept in the error.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn probe<B: burn::tensor::backend::Backend>(
    backend: BackendName,
    device: &B::Device,
) -> Result<()> {
    use std::sync::{Arc, Mutex};
    let device = device.clone();
    // The runtimes start a device thread; its panic (the real reason) is recorded here, and
    // the probing thread only sees a closed channel.
    let first_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let record = Arc::clone(&first_panic);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut slot) = record.lock() {
            slot.get_or_insert_with(|| info.to_string());
        }
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        burn::tensor::Tensor::<B, 1>::ones([4], &device)
            .sum()
            .into_scalar()
    }));
    std::panic::set_hook(default_hook);
    if outcome.is_ok() {
        return Ok(());
    }
    let reason = first_panic
        .lock()
        .ok()
        .and_then(|slot| slot.clone())
        .unwrap_or_else(|| "the backend panicked without a message".into());
    let hint = match backend {
        BackendName::Cuda => {
            "it needs an NVIDIA GPU and its driver (libcuda.so; `nvidia-smi` lists the GPU)"
        }
        BackendName::Wgpu => {
            "it needs a Vulkan, Metal or DX12 adapter (on Linux the Vulkan loader and a driver, e.g. Mesa's lavapipe for the CPU: apt-get install mesa-vulkan-drivers)"
        }
        BackendName::Ndarray => "",
    };
    bail!(
        "backend `{}` could not start on this machine: {hint}; use `--backend ndarray` for the CPU. The backend said: {}",
        backend.name(),
        reason.trim()
    )
}
