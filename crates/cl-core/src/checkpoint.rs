//! Checkpoint files: JSON state and Burn module records, written so that an interruption never
//! leaves a half-written checkpoint in place (write to a temporary name, then rename).

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{BinFileRecorder, FullPrecisionSettings};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClError, Result};

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| ClError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = tmp_path(path);
    fs::write(&tmp, text).map_err(|e| ClError::io("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| ClError::io("renaming into", path, e))
}

/// Reads JSON from `path`; the error names the file (and the unknown key, for strict types).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| ClError::io("reading", path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ClError::io(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (invalid byte at offset {}); a JSON file must be UTF-8",
                    e.utf8_error().valid_up_to()
                ),
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|source| ClError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Saves a module's record (full precision) to `<stem>.bin`.
pub fn save_module<B: Backend, M: Module<B>>(module: &M, stem: &Path) -> Result<()> {
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    module
        .clone()
        .save_file(stem.to_path_buf(), &recorder)
        .map_err(|e| ClError::Record {
            path: stem.with_extension("bin"),
            reason: e.to_string(),
        })
}

/// Loads a module record written by [`save_module`] into `module` (same structure).
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    stem: &Path,
    device: &B::Device,
) -> Result<M> {
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let file = stem.with_extension("bin");
    if !file.exists() {
        return Err(ClError::io(
            "reading module record",
            &file,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    module
        .load_file(stem.to_path_buf(), &recorder, device)
        .map_err(|e| ClError::Record {
            path: file,
            reason: e.to_string(),
        })
}

/// Replaces directory `dst` with `staged` (complete) so that at every instant one complete copy
/// exists: `dst` → `dst.old`, `staged` → `dst`, then `dst.old` is removed. [`existing_dir`]
/// finds `dst.old` if a crash happened between the two renames; a `dst.old` left beside a
/// missing `dst` is the only complete copy and is renamed back first, never removed, and one
/// beside a present `dst` is a half-removed leftover.
pub fn replace_dir(staged: &Path, dst: &Path) -> Result<()> {
    let old = sibling(dst, "old");
    if old.exists() && !dst.exists() {
        fs::rename(&old, dst).map_err(|e| ClError::io("restoring", dst, e))?;
    }
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| ClError::io("removing", &old, e))?;
    }
    if dst.exists() {
        fs::rename(dst, &old).map_err(|e| ClError::io("renaming", dst, e))?;
    }
    fs::rename(staged, dst).map_err(|e| ClError::io("renaming into", dst, e))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| ClError::io("removing", &old, e))?;
    }
    Ok(())
}

/// `dst` if it exists, else the `dst.old` a crash in [`replace_dir`] may have left.
pub fn existing_dir(dst: &Path) -> Option<PathBuf> {
    let old = sibling(dst, "old");
    [dst.to_path_buf(), old].into_iter().find(|p| p.is_dir())
}

/// `<dir>/<name>.<suffix>` next to `path`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    sibling(path, "tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json(&path, &vec![1, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&path).unwrap(), vec![1, 2, 3]);
        fs::write(&path, "{not json").unwrap();
        let err = read_json::<Vec<i32>>(&path).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        let missing = read_json::<Vec<i32>>(&dir.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.json"), "{missing}");
    }

    #[test]
    fn replace_dir_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("checkpoint");
        for round in 0..2 {
            let staged = dir.path().join("staged");
            fs::create_dir_all(&staged).unwrap();
            fs::write(staged.join("n"), round.to_string()).unwrap();
            replace_dir(&staged, &dst).unwrap();
            assert_eq!(
                fs::read_to_string(dst.join("n")).unwrap(),
                round.to_string()
            );
        }
        assert!(!sibling(&dst, "old").exists());
        // A crash after the first rename leaves only `.old`, which is still found.
        fs::rename(&dst, sibling(&dst, "old")).unwrap();
        assert_eq!(existing_dir(&dst).unwrap(), sibling(&dst, "old"));
        // The next replacement starts from that state: it must restore `.old` (the only
        // complete copy) rather than delete it before the new copy is in place.
        let old = sibling(&dst, "old");
        let staged = dir.path().join("staged");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("n"), "3").unwrap();
        replace_dir(&staged, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("n")).unwrap(), "3");
        assert!(!old.exists());
    }
}
