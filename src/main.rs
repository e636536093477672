//! The `edgeloop` command-line interface: one thin module per subcommand in `cli/`.
//!
//! Exit codes: 0 success, 1 a stage failed (the error chain is printed once), 2 bad usage.

mod cli;
mod demo;
mod qemu;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: candle allocates a fresh tensor per op, which the system allocator makes slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
