//! Backend choice: each backend is compiled in by its cargo feature (`ndarray`, `wgpu`, `cuda`)
//! and picked at run time with `--backend`.

use anyhow::{Result, bail};

/// Names of the backends compiled into this binary.
pub fn compiled() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// The backend used when `--backend` is not given: ndarray if compiled, else the first one.
pub fn default_name() -> &'static str {
    compiled().first().copied().unwrap_or("ndarray")
}

/// The backends `cl` can be built with.
pub const KNOWN: [&str; 3] = ["ndarray", "wgpu", "cuda"];

/// Checks `--backend` before anything else runs: an unknown name lists the known ones; a
/// known one missing from this binary says how to build it in.
pub fn check(name: &str) -> Result<()> {
    let compiled = compiled();
    if compiled.contains(&name) {
        return Ok(());
    }
    if !KNOWN.contains(&name) {
        bail!(
            "unknown backend `{name}`; choose one of {} (this binary has {})",
            KNOWN.join(", "),
            compiled.join(", ")
        );
    }
    bail!(
        "backend `{name}` is not compiled into this binary (it has {}): build it with `cargo build --release -p cl-cli --features {name}`",
        compiled.join(", ")
    )
}

/// Something to run generically on an autodiff backend and its device.
pub trait OnBackend {
    /// Runs on backend `B`.
    fn run<B: burn::tensor::backend::AutodiffBackend>(self, device: B::Device) -> Result<()>;
}

/// Dispatches `job` to the backend named `name`.
pub fn dispatch(name: &str, job: impl OnBackend) -> Result<()> {
    match name {
        #[cfg(feature = "ndarray")]
        "ndarray" => {
            job.run::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(Default::default())
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(Default::default()),
        other => {
            check(other)?;
            bail!("backend `{other}` cannot be dispatched")
        }
    }
}
