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
    /// With --insn-plugin: also write a flat profile here (executed instructions per address;
    /// `firmware-examples/tools/profile.py ELF PROFILE` sums it by function).
    #[arg(long, value_name = "PATH")]
    pub insn_profile: Option<PathBuf>,
    /// Print the raw bytes count as well as decoded lines.
    #[arg(long)]
    pub verbose: bool,
    /// QEMU board: `mps2-an386` (Cortex-M4F, thumbv7em-none-eabihf) or `microbit` (nRF51,
    /// Cortex-M0, thumbv6m-none-eabi).
    #[arg(long, default_value = "mps2-an386")]
    pub machine: String,
    /// Puts a file's bytes into the board's memory before the firmware starts (QEMU's generic
    /// loader device), as `FILE@ADDRESS` where ADDRESS is a number (`0x200000`) or a symbol of
    /// the ELF (`_edgeloop_model_partition`). Repeatable. A symbol `<name>_len` in the ELF, when
    /// present, bounds the file's size.
    #[arg(long, value_name = "FILE@ADDRESS")]
    pub load: Vec<String>,
    /// Kills QEMU and fails after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// `FILE@ADDRESS` → (file, address), resolving a symbol through the ELF.
fn load_spec(elf: &[u8], spec: &str) -> anyhow::Result<(PathBuf, u64)> {
    let (file, at) = spec
        .rsplit_once('@')
        .with_context(|| format!("--load {spec}: expected FILE@ADDRESS"))?;
    let hex = at.strip_prefix("0x").or_else(|| at.strip_prefix("0X"));
    let (addr, limit) = match hex {
        Some(h) => (
            u64::from_str_radix(h, 16).with_context(|| format!("--load {spec}: bad address"))?,
            None,
        ),
        None => match at.parse::<u64>() {
            Ok(a) => (a, None),
            Err(_) => (
                symbol_address(elf, at).with_context(|| format!("--load {spec}"))?,
                symbol_address(elf, &format!("{at}_len")).ok(),
            ),
        },
    };
    let file = PathBuf::from(file);
    let len = std::fs::metadata(&file)
        .with_context(|| format!("--load {spec}: reading {}", file.display()))?
        .len();
    if let Some(limit) = limit {
        if len > limit {
            bail!("--load {spec}: {len} bytes do not fit the {limit}-byte region at {addr:#x}");
        }
    }
    Ok((std::path::absolute(&file)?, addr))
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
    for spec in &args.load {
        let (file, addr) = load_spec(&elf, spec)?;
        cmd.arg("-device")
            .arg(format!("loader,file={},addr={addr:#x}", file.display()));
    }
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
        let mut spec = format!(
            "{},marker={marker:#x},out={}",
            plugin.display(),
            out.display()
        );
        if let Some(profile) = &args.insn_profile {
            // QEMU splits plugin arguments at commas.
            let profile = std::path::absolute(profile)?;
            let profile = profile.to_str().filter(|p| !p.contains(','));
            let profile =
                profile.context("--insn-profile: the path must be UTF-8 without commas")?;
            spec.push_str(&format!(",profile={profile}"));
        }
        cmd.arg("-plugin").arg(spec);
    }
    let mut child = cmd
        .spawn()
        .context("starting qemu-system-arm (install it with: apt-get install qemu-system-arm)")?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(secs) = args.timeout {
        // Watchdog: QEMU closes its stdout when it exits, which ends the read loop below; a
        // firmware that never exits is killed after `secs`.
        let (child, timed_out) = (child.clone(), timed_out.clone());
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
                if !matches!(c.try_wait(), Ok(None)) {
                    return;
                }
                if std::time::Instant::now() >= end {
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = c.kill();
                    return;
                }
            }
        });
    }
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
                // Errors and warnings carry their level, so tools reading this output
                // (`edgeloop flash --qemu`) can tell them apart.
                Ok(frame) => match frame.level().map(|l| l.as_str()) {
                    Some(level @ ("error" | "warn")) => writeln!(
                        out,
                        "{} {}",
                        level.to_ascii_uppercase(),
                        frame.display_message()
                    )?,
                    _ => writeln!(out, "{}", frame.display_message())?,
                },
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    bail!("malformed defmt frame in the firmware output (ELF and firmware out of sync?)")
                }
            }
        }
    }
    let status = loop {
        let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = c.try_wait().context("waiting for qemu")? {
            break status;
        }
        drop(c);
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    if timed_out.load(std::sync::atomic::Ordering::SeqCst) {
        bail!(
            "the firmware did not exit within {} s; QEMU was killed",
            args.timeout.unwrap_or(0)
        );
    }
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
