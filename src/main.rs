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
    if !args.is_serve() {
        default_sigpipe();
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Restores the default SIGPIPE disposition, so `edgeloop … | head` ends quietly when the reader
/// goes away, as other Unix tools do, instead of panicking on a broken pipe in `println!`.
/// Not for `serve`: a client that disconnects must not end the server.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL has no preconditions; it runs first thing in `main`, before
    // any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
