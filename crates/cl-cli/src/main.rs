//! `cl`: continual-learning runs of PEFT methods on a frozen backbone.
//!
//! ```text
//! cl run --method seq-lora --stream text5 --seed 0 --out runs/seq
//! cl run --method replay --stream text5 --backend wgpu         # needs --features wgpu
//! cl methods                                                    # list methods and backends
//! cl report runs/a runs/b --plots plots/                        # runs side by side, SVG plots
//! cl eval --run runs/seq                                        # restore, test every task
//! cl predict --run runs/seq "a new text" "another"              # labels with scores
//! cl export --stream text5 --preset paper --out s.json          # a tokenized stream file
//! cl prune-model --streams s.json --out small/                  # MiniLM cut to its tokens
//! cl run --method replay --stream-file small/s.json --model-dir small/
//! ```

mod backend;
mod export;
mod fetch;
mod generate;
mod prompts;
mod registry;
mod report;
mod run;
mod saved;
mod streams;

use std::process::ExitCode;

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
    /// Download the real data and weights (MiniLM, MobileNetV2, text and image datasets) into
    /// the cache, checking what is there and repairing what is damaged.
    Fetch(fetch::FetchArgs),
    /// List the methods, streams and compiled-in backends.
    Methods,
    /// Write a text stream, tokenized, to one file that `cl run --stream-file` reads (for
    /// machines without the datasets or the tokenizer).
    Export(export::ExportArgs),
    /// Write a copy of MiniLM with only the word embeddings some exported streams use, and the
    /// streams with their token ids renumbered for it (`cl run --model-dir`).
    PruneModel(export::PruneArgs),
    /// Print runs side by side (OP, BWT, FWT, forgetting, parameters, time) and, with
    /// `--plots`, draw their heatmaps and accuracy-vs-tasks curves as SVG.
    Report(report::ReportArgs),
    /// Restore a run from its checkpoint and evaluate it on its stream's test splits.
    Eval(saved::EvalArgs),
    /// Restore a run from its checkpoint and label new inputs (texts, PNG files, vectors) with
    /// the three most likely classes and their scores.
    Predict(saved::PredictArgs),
    /// Continue prompts with a decoder LLM (SmolLM2-135M-Instruct, fetched on first use, or a
    /// LLaMA GGUF file): greedy or temperature / top-p sampling, stop strings, batched.
    Generate(Box<generate::GenerateArgs>),
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    cl_alloc::reuse_freed_memory();
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// `cl fetch --verify | head` closes stdout early: end quietly with the status a shell gives a
/// process killed by SIGPIPE, rather than with a panic message.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The error and its causes on one line, each cause shown once: library errors often repeat
/// their source in their own message already.
fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Fetch(args) => fetch::run(&args),
        Command::Export(args) => export::export(&args),
        Command::PruneModel(args) => export::prune(&args),
        Command::Report(args) => report::report(&args),
        Command::Eval(args) => saved::eval(&args),
        Command::Predict(args) => saved::predict_command(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Methods => {
            list_methods();
            Ok(())
        }
    }
}

/// `cl methods`: every method of the registry with what it runs on, then the streams and the
/// compiled-in backends.
fn list_methods() {
    use cl_core::registry::BackboneKind;
    println!("methods:");
    for info in registry::infos() {
        let scenarios: Vec<&str> = info.scenarios.iter().map(|s| s.name()).collect();
        let backbones: Vec<&str> = info.backbones.iter().map(|b| b.name()).collect();
        println!("  {:<15} {}", info.name, info.summary);
        println!(
            "  {:<15} ({}; {}; on {}; streams {})",
            "",
            info.crate_name,
            scenarios.join(", "),
            backbones.join(", "),
            streams::StreamName::on(info.backbones).join(", ")
        );
    }
    println!("streams:");
    for stream in <streams::StreamName as clap::ValueEnum>::value_variants() {
        let backbone: BackboneKind = stream.backbone();
        println!("  {:<15} on {}", stream.name(), backbone.name());
    }
    println!("backends: {}", backend::compiled_names().join(", "));
}
