//! `edgeloop demo`: the whole loop on the embedded default data.

use std::path::PathBuf;

/// Arguments of `edgeloop demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for every artifact of the run.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Tiny sizes, seconds instead of minutes (used by the tests).
    #[arg(long)]
    pub fast: bool,
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "edgeloop demo (out: {}, fast: {})",
        args.out.display(),
        args.fast
    );
    println!("No stage is implemented yet: see the open issues.");
    Ok(())
}
