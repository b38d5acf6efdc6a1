//! `cl`: continual-learning runs of PEFT methods on a frozen backbone.
//!
//! ```text
//! cl run --method seq-lora --stream text5 --seed 0 --out runs/seq
//! cl run --method replay --stream text5 --backend wgpu         # needs --features wgpu
//! cl methods                                                    # list methods and backends
//! ```

mod backend;
mod fetch;
mod run;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Continual learning with parameter-efficient fine-tuning.
#[derive(Parser, Debug)]
#[command(name = "cl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a method on a task stream, evaluate every task after each, write report.json.
    Run(Box<run::RunArgs>),
    /// Download the real data and weights (MiniLM, text datasets) into the cache.
    Fetch,
    /// List the methods, streams and compiled-in backends.
    Methods,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Fetch => fetch::run(),
        Command::Methods => {
            println!("methods:  {}", run::METHOD_NAMES.join(", "));
            println!("streams:  {}", run::STREAM_NAMES.join(", "));
            println!("backends: {}", backend::compiled().join(", "));
            Ok(())
        }
    }
}
