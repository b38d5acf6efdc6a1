//! A prepared stream in one JSON file: the tasks' splits with their inputs already in the
//! backbone's form (token ids, pixels), as `cl export` writes them, so that a run can happen
//! where the raw datasets and the tokenizer are absent (the GPU bundle).
//!
//! Layout: `{"format": "cl-peft-stream/1", "name", "scenario", "num_classes", "meta": {...},
//! "tasks": [{"info", "train", "valid", "test"}, ...]}`; `meta` holds how it was made (stream,
//! sizes, seed, data hashes, vocabulary), which runs record in their description. A file is
//! validated like any stream on loading ([`TaskStream::new`]); every error names the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Scenario, Task, TaskStream};
use crate::error::{ClError, Result};

/// The `format` field of a stream file this version reads and writes.
pub const STREAM_FORMAT: &str = "cl-peft-stream/1";

/// How a stream file was made: flat keys (`stream`, `train_per_task`, `max_len`, ...).
pub type StreamMeta = BTreeMap<String, serde_json::Value>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFile<X> {
    format: String,
    name: String,
    scenario: Scenario,
    num_classes: usize,
    #[serde(default)]
    meta: StreamMeta,
    tasks: Vec<Task<X>>,
}

/// Writes `stream` and `meta` to `path` (atomically: a temporary file, then a rename).
pub fn save_stream<X: Serialize + Clone>(
    stream: &TaskStream<X>,
    meta: &StreamMeta,
    path: &Path,
) -> Result<()> {
    let file = StreamFile {
        format: STREAM_FORMAT.to_string(),
        name: stream.name().to_string(),
        scenario: stream.scenario(),
        num_classes: stream.num_classes(),
        meta: meta.clone(),
        tasks: stream.tasks().to_vec(),
    };
    let text = serde_json::to_vec(&file).map_err(|e| ClError::Record {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| ClError::io("writing stream file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ClError::io("renaming stream file", path, e))
}

/// Reads a stream file written by [`save_stream`]: the stream (validated) and its meta.
pub fn load_stream<X: DeserializeOwned>(path: &Path) -> Result<(TaskStream<X>, StreamMeta)> {
    let bytes = std::fs::read(path).map_err(|e| ClError::io("reading stream file", path, e))?;
    let bad = |reason: String| ClError::Record {
        path: path.to_path_buf(),
        reason,
    };
    let head: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a JSON stream file: {e}")))?;
    match head.get("format").and_then(|f| f.as_str()) {
        Some(STREAM_FORMAT) => {}
        Some(other) => {
            return Err(bad(format!(
                "format `{other}`, this version reads `{STREAM_FORMAT}`"
            )));
        }
        None => {
            return Err(bad(format!(
                "no `format` field (`{STREAM_FORMAT}` expected)"
            )));
        }
    }
    let file: StreamFile<X> =
        serde_json::from_value(head).map_err(|e| bad(format!("invalid stream file: {e}")))?;
    let stream = TaskStream::new(file.name, file.scenario, file.num_classes, file.tasks)
        .map_err(|e| bad(e.to_string()))?;
    Ok((stream, file.meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::synthetic::{SyntheticStreamConfig, synthetic_stream};

    #[test]
    fn a_stream_survives_the_file_and_bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let stream = synthetic_stream(&SyntheticStreamConfig::default()).unwrap();
        let meta: StreamMeta = [("stream".to_string(), "synthetic".into())].into();
        save_stream(&stream, &meta, &path).unwrap();
        let (back, back_meta) = load_stream::<Vec<f32>>(&path).unwrap();
        assert_eq!(back.tasks(), stream.tasks());
        assert_eq!(
            (back.name(), back.num_classes()),
            (stream.name(), stream.num_classes())
        );
        assert_eq!(back_meta, meta);

        let text = std::fs::read_to_string(&path).unwrap();
        let cases = [
            (
                text.replace(STREAM_FORMAT, "cl-peft-stream/9"),
                "cl-peft-stream/9",
            ),
            ("[1, 2".to_string(), "not a JSON stream file"),
            (r#"{"name": "x"}"#.to_string(), "no `format` field"),
            // A label outside the stream's classes fails the stream's own validation.
            (
                text.replace(r#""num_classes":6"#, r#""num_classes":3"#),
                "label",
            ),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, content).unwrap();
            let err = load_stream::<Vec<f32>>(&path).unwrap_err().to_string();
            assert!(err.contains("s.json") && err.contains(expected), "{err}");
        }
        let missing = load_stream::<Vec<f32>>(&dir.path().join("none.json")).unwrap_err();
        assert!(missing.to_string().contains("none.json"), "{missing}");
    }
}
