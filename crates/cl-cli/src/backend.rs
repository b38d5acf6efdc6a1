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
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(Default::default())
        }
        #[cfg(feature = "cuda")]
        BackendName::Cuda => {
            job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(Default::default())
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "backend `{}` is not compiled into this binary",
            other.name()
        ),
    }
}
