//! `edgeloop-qemu-run`: runs a firmware ELF in QEMU's `mps2-an386`, decodes its defmt log with the
//! ELF's format table, and exits with the firmware's semihosting exit status.
//!
//! This is the cargo runner of `firmware-examples/` (through `qemu-run.sh`) and the engine of
//! `edgeloop flash --qemu`. It is its own cargo workspace (see Cargo.toml for why). With `--insn-count`, a TCG plugin counts executed instructions and
//! records the running count each time the firmware calls its marker function.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use object::{Object, ObjectSymbol};

/// Arguments of `edgeloop-qemu-run`.
#[derive(Debug, clap::Parser)]
#[command(name = "edgeloop-qemu-run", version, about)]
pub struct Args {
    /// The firmware ELF (built for thumbv7em-none-eabihf, linked with defmt).
    pub elf: PathBuf,
    /// Working directory of QEMU: files the firmware opens through semihosting land here.
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// Instruction-counting TCG plugin (`firmware-examples/tools/insn-count.c`, built as a .so).
    #[arg(long)]
    pub insn_plugin: Option<PathBuf>,
    /// With --insn-plugin: where the counts go (one "mark N" line per marker hit, "total N").
    #[arg(long, default_value = "insn-count.txt")]
    pub insn_out: PathBuf,
    /// With --insn-plugin: the marker function's symbol name in the ELF.
    #[arg(long, default_value = "edgeloop_bench_marker")]
    pub marker_symbol: String,
    /// Print the raw bytes count as well as decoded lines.
    #[arg(long)]
    pub verbose: bool,
    /// QEMU board: `mps2-an386` (Cortex-M4F, thumbv7em-none-eabihf) or `microbit` (nRF51,
    /// Cortex-M0, thumbv6m-none-eabi).
    #[arg(long, default_value = "mps2-an386")]
    pub machine: String,
}

/// Runs the firmware and returns its exit status.
fn run(args: Args) -> anyhow::Result<ExitCode> {
    let elf = std::fs::read(&args.elf)
        .with_context(|| format!("reading firmware ELF {}", args.elf.display()))?;
    let table = defmt_decoder::Table::parse(&elf)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("reading the defmt table of {}", args.elf.display()))?
        .with_context(|| {
            format!(
                "{} has no defmt table (not linked with defmt?)",
                args.elf.display()
            )
        })?;

    let mut cmd = Command::new("qemu-system-arm");
    let cpu = match args.machine.as_str() {
        "mps2-an386" => "cortex-m4",
        "microbit" => "cortex-m0",
        other => bail!("unsupported --machine {other}: use mps2-an386 or microbit"),
    };
    cmd.args(["-machine", &args.machine, "-cpu", cpu, "-nographic"])
        .args(["-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(std::path::absolute(&args.elf)?)
        .current_dir(&args.workdir)
        .stdout(Stdio::piped());
    if let Some(plugin) = &args.insn_plugin {
        let marker = symbol_address(&elf, &args.marker_symbol).with_context(|| {
            format!(
                "finding marker symbol {} in {}",
                args.marker_symbol,
                args.elf.display()
            )
        })?;
        let plugin = std::path::absolute(plugin)?;
        let out = std::path::absolute(&args.insn_out)?;
        cmd.arg("-plugin").arg(format!(
            "{},marker={marker:#x},out={}",
            plugin.display(),
            out.display()
        ));
    }
    let mut child = cmd
        .spawn()
        .context("starting qemu-system-arm (install it with: apt-get install qemu-system-arm)")?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let mut decoder = table.new_stream_decoder();
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    let mut out = std::io::stdout().lock();
    loop {
        let n = stdout.read(&mut buf).context("reading qemu output")?;
        if n == 0 {
            break;
        }
        total += n;
        decoder.received(&buf[..n]);
        loop {
            match decoder.decode() {
                Ok(frame) => writeln!(out, "{}", frame.display_message())?,
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    bail!("malformed defmt frame in the firmware output (ELF and firmware out of sync?)")
                }
            }
        }
    }
    let status = child.wait().context("waiting for qemu")?;
    if args.verbose {
        eprintln!("qemu-run: {total} log bytes, {status}");
    }
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

/// Address of a function symbol in an ELF.
fn symbol_address(elf: &[u8], name: &str) -> anyhow::Result<u64> {
    let file = object::File::parse(elf).context("parsing ELF")?;
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .with_context(|| format!("symbol {name} not found"))
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgeloop-qemu-run: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
