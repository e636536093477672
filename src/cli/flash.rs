//! `edgeloop flash`: writes a model image where a device takes it — an Intel HEX file or a raw
//! binary placed at a flash address, for standard flashers (probe-rs, OpenOCD, STM32CubeProgrammer)
//! — or, with `--qemu`, flashes it next to the `flashed` firmware on an emulated Cortex-M4F
//! (QEMU `mps2-an386`), runs test inputs there, checks every output against the host runtime
//! and streams the device's telemetry into the monitor's Parquet store (see [`crate::qemu`]).
//! The image is parsed (and, with `--pub`, its signature verified) before anything is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::Model;

use super::output;
use crate::qemu::{self, Inputs, QemuOptions, QemuRun};
use crate::say;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Intel HEX (addresses included).
    Hex,
    /// Raw bytes (the flasher is told the address).
    Bin,
}

/// Arguments of `edgeloop flash`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  edgeloop flash --image runs/demo/deploy/v1/intent.edli --address 0x08040000 --out intent.hex\n  \
probe-rs download --chip STM32F446RETx --format hex intent.hex\n  \
edgeloop flash --image intent.edli --format bin --out intent.bin --pub keys/edgeloop.pub\n  \
openocd -f board/st_nucleo_f4.cfg -c \"program intent.bin 0x08040000 verify reset exit\"\n  \
edgeloop flash --qemu --image runs/demo/deploy/v1/intent.edli --texts runs/demo/data/selected/test.jsonl \\\n    \
--tokenizer runs/demo/data/tokenizer.json --store runs/demo/telemetry/qemu"
)]
pub struct Args {
    /// The model image.
    #[arg(long)]
    pub image: PathBuf,
    /// Where the output goes (Intel HEX or raw binary; not with --qemu).
    #[arg(long, required_unless_present = "qemu")]
    pub out: Option<PathBuf>,
    /// Run the image on an emulated Cortex-M4F (QEMU mps2-an386) instead: the `flashed`
    /// firmware (built once) with the image and test inputs in flash partitions; every output
    /// is checked against the host runtime and the device's telemetry is ingested.
    #[arg(long, conflicts_with = "out")]
    pub qemu: bool,
    /// --qemu: test inputs. Raw input tensors back to back (as `firmware-assets` writes
    /// `classify.inputs`), or, for a `.jsonl` file, one JSON array of numbers per line.
    #[arg(long, requires = "qemu", conflicts_with = "texts")]
    pub inputs: Option<PathBuf>,
    /// --qemu: JSON Lines records with a "text" field (e.g. the demo's
    /// data/selected/test.jsonl), tokenized with --tokenizer to the image's input length.
    #[arg(long, requires = "tokenizer")]
    pub texts: Option<PathBuf>,
    /// --qemu: the tokenizer for --texts (`tokenizer.json`).
    #[arg(long, requires = "texts")]
    pub tokenizer: Option<PathBuf>,
    /// --qemu: at most this many inputs.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// --qemu: telemetry store (Parquet, Hive-style partitions) to ingest the device's frames into.
    #[arg(long, requires = "qemu")]
    pub store: Option<PathBuf>,
    /// --qemu: a prebuilt `flashed` firmware ELF (default: built from firmware-examples/).
    #[arg(long, requires = "qemu")]
    pub firmware: Option<PathBuf>,
    /// --qemu: a prebuilt edgeloop-qemu-run (default: built from tools/qemu-run/).
    #[arg(long, requires = "qemu")]
    pub qemu_run: Option<PathBuf>,
    /// --qemu: keep the partitions, telemetry stream and firmware log in this folder.
    #[arg(long, requires = "qemu")]
    pub workdir: Option<PathBuf>,
    /// --qemu: telemetry device id in the records' headers (decimal or 0x-hex), as `serve
    /// --device-id` takes it. (`--device` names hardware elsewhere: `train --device cpu|cuda:N`,
    /// `select --device cortex-m4`.)
    #[arg(long = "device-id", value_name = "ID", default_value = "0x0E11000000000001",
          value_parser = |s: &str| super::serve::parse_device(s).map_err(|e| e.to_string()))]
    pub device_id: u64,
    /// --qemu: kill QEMU after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "hex")]
    pub format: Format,
    /// Flash address of the image's first byte (decimal or 0x hex); must be 16-byte aligned,
    /// as the image's constant section is (execute in place).
    #[arg(long, default_value = "0x08040000", value_parser = parse_address)]
    pub address: u32,
    /// Verify the image's Ed25519 signature against this public key file first.
    #[arg(long = "pub")]
    pub public_key: Option<PathBuf>,
    /// Downgrade protection: the model version the device runs now. An image with a lower
    /// model version (header field `model_version`) is refused unless --force.
    #[arg(long, conflicts_with = "installed")]
    pub installed_version: Option<u32>,
    /// Downgrade protection: the image the device runs now (its header's model version counts,
    /// as with --installed-version).
    #[arg(long)]
    pub installed: Option<PathBuf>,
    /// Write an image even when its model version is lower than the installed one (a deliberate
    /// rollback).
    #[arg(long)]
    pub force: bool,
}

/// Downgrade protection: refuses `model` when its model version is lower than `installed`,
/// unless `force`. Equal versions pass (re-flashing the same version).
pub fn check_downgrade(
    model: &Model<'_>,
    installed: Option<u32>,
    force: bool,
) -> anyhow::Result<()> {
    let Some(installed) = installed else {
        return Ok(());
    };
    let offered = model.model_version();
    if offered < installed {
        if !force {
            bail!(
                "downgrade refused: `{}` version {offered} is lower than the installed version {installed}; \
                 pass --force to roll back on purpose",
                model.name()
            );
        }
        say!(
            "warning: rolling `{}` back from version {installed} to {offered} (--force)",
            model.name()
        );
    }
    Ok(())
}

/// The installed model version given by --installed-version or read from --installed.
fn installed_version(args: &Args) -> anyhow::Result<Option<u32>> {
    if let Some(v) = args.installed_version {
        return Ok(Some(v));
    }
    let Some(p) = &args.installed else {
        return Ok(None);
    };
    let bytes = std::fs::read(p).with_context(|| format!("reading --installed {}", p.display()))?;
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::parse(aligned.as_slice())
        .with_context(|| format!("--installed {} is not a valid model image", p.display()))?;
    Ok(Some(model.model_version()))
}

fn parse_address(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse::<u32>(),
    };
    r.map_err(|e| format!("not a 32-bit address ({e}): {s:?}"))
}

/// One Intel HEX record.
fn record(out: &mut String, kind: u8, address: u16, data: &[u8]) {
    let mut sum: u8 = data.len() as u8;
    sum = sum
        .wrapping_add((address >> 8) as u8)
        .wrapping_add(address as u8)
        .wrapping_add(kind);
    let _ = write!(out, ":{:02X}{address:04X}{kind:02X}", data.len());
    for &b in data {
        sum = sum.wrapping_add(b);
        let _ = write!(out, "{b:02X}");
    }
    let _ = writeln!(out, "{:02X}", sum.wrapping_neg());
}

/// Intel HEX text of `bytes` at `base`: extended linear address records (type 04) whenever
/// the upper 16 address bits change, 16-byte data records, an end-of-file record.
pub fn intel_hex(bytes: &[u8], base: u32) -> anyhow::Result<String> {
    if u64::from(base) + bytes.len() as u64 > u64::from(u32::MAX) + 1 {
        bail!(
            "{} bytes at {base:#010x} run past the 4 GiB address space",
            bytes.len()
        );
    }
    let mut out = String::with_capacity(bytes.len() * 3);
    let mut upper: Option<u16> = None;
    let mut off = 0usize;
    while off < bytes.len() {
        let addr = base + off as u32;
        let hi = (addr >> 16) as u16;
        if upper != Some(hi) {
            record(&mut out, 4, 0, &hi.to_be_bytes());
            upper = Some(hi);
        }
        // Never let a record cross a 64 KiB boundary.
        let to_boundary = 0x1_0000 - (addr & 0xFFFF) as usize;
        let n = 16.min(bytes.len() - off).min(to_boundary);
        record(&mut out, 0, addr as u16, &bytes[off..off + n]);
        off += n;
    }
    record(&mut out, 1, 0, &[]);
    Ok(out)
}

/// Runs `edgeloop flash`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let installed = installed_version(&args)?;
    {
        let aligned = AlignedBytes::new(&bytes);
        let model = Model::parse(aligned.as_slice())
            .with_context(|| format!("{} is not a valid model image", args.image.display()))?;
        check_downgrade(&model, installed, args.force)?;
    }
    if args.qemu {
        return run_qemu(&args, &bytes);
    }
    let Some(out) = &args.out else {
        bail!("--out is required (or --qemu)");
    };
    if !args.address.is_multiple_of(16) {
        bail!(
            "--address {:#010x} is not 16-byte aligned: the image's constants are read in place and need it",
            args.address
        );
    }
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::parse(aligned.as_slice())
        .with_context(|| format!("{} is not a valid model image", args.image.display()))?;
    if let Some(p) = &args.public_key {
        let key = super::keygen::public_key("--pub", p)?;
        model.verify_signature(&key.0).with_context(|| {
            format!(
                "{}: signature check against {} failed",
                args.image.display(),
                p.display()
            )
        })?;
        say!("signature verified against {}", p.display());
    }
    match args.format {
        Format::Hex => std::fs::write(out, intel_hex(&bytes, args.address)?),
        Format::Bin => std::fs::write(out, &bytes),
    }
    .with_context(|| format!("writing {}", out.display()))?;
    say!(
        "{} ({:?} v{}, {} bytes, arena {} bytes) → {} at {:#010x}..{:#010x} ({:?})",
        args.image.display(),
        model.name(),
        model.model_version(),
        bytes.len(),
        model.arena_bytes(),
        out.display(),
        args.address,
        u64::from(args.address) + bytes.len() as u64,
        args.format
    );
    output::summary(&serde_json::json!({
        "image": args.image.display().to_string(),
        "model": model.name(),
        "model_version": model.model_version(),
        "image_bytes": bytes.len(),
        "out": out.display().to_string(),
        "format": format!("{:?}", args.format).to_lowercase(),
        "address": args.address,
    }))?;
    Ok(())
}

/// The image's input tensor type and element count (for reading test inputs).
fn input_of(bytes: &[u8]) -> anyhow::Result<(DType, usize)> {
    let aligned = AlignedBytes::new(bytes);
    let model = Model::parse(aligned.as_slice()).context("not a valid model image")?;
    let t = model.tensor(model.input(0)?)?;
    Ok((t.dtype, t.shape.num_elements() as usize))
}

/// JSON Lines of number arrays → rows of the image's input type.
fn json_rows(path: &Path, dtype: DType, count: usize) -> anyhow::Result<Inputs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows: Vec<Vec<i64>> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if rows.len() == count {
            break;
        }
        let row: Vec<i64> = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: expected a JSON array of integers",
                path.display(),
                i + 1
            )
        })?;
        rows.push(row);
    }
    let conv = |what: &str, ok: &dyn Fn(i64) -> bool| -> anyhow::Result<()> {
        for (r, row) in rows.iter().enumerate() {
            if let Some(v) = row.iter().find(|&&v| !ok(v)) {
                bail!("{} row {}: {v} is not {what}", path.display(), r + 1);
            }
        }
        Ok(())
    };
    Ok(match dtype {
        DType::I32 => {
            conv("an i32", &|v| i32::try_from(v).is_ok())?;
            Inputs::TokenIds(
                rows.iter()
                    .map(|r| r.iter().map(|&v| v as i32).collect())
                    .collect(),
            )
        }
        DType::I8 => {
            conv("an int8", &|v| i8::try_from(v).is_ok())?;
            Inputs::Int8(
                rows.iter()
                    .map(|r| r.iter().map(|&v| v as i8).collect())
                    .collect(),
            )
        }
        other => bail!("JSON inputs need an int8 or i32 image input; this image's is {other:?}"),
    })
}

/// Token-id rows from JSON Lines records with a "text" field, encoded as the demo's classifier
/// was trained (cut and padded to the image's input length).
pub fn text_rows(
    texts: &Path,
    tokenizer: &Path,
    max_len: usize,
    count: usize,
) -> anyhow::Result<Vec<Vec<i32>>> {
    let tok = edgeloop_trainer::tokenizer::Tokenizer::load(tokenizer)
        .with_context(|| format!("loading the tokenizer {}", tokenizer.display()))?;
    let body =
        std::fs::read_to_string(texts).with_context(|| format!("reading {}", texts.display()))?;
    let mut rows = Vec::new();
    for (i, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if rows.len() == count {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", texts.display(), i + 1))?;
        let text = v.get("text").and_then(|t| t.as_str()).with_context(|| {
            format!(
                "{} line {}: no string field \"text\"",
                texts.display(),
                i + 1
            )
        })?;
        rows.push(crate::demo::device::encode(&tok, text, max_len)?);
    }
    if rows.is_empty() {
        bail!("{} holds no records", texts.display());
    }
    Ok(rows)
}

fn run_qemu(args: &Args, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(p) = &args.public_key {
        let aligned = AlignedBytes::new(bytes);
        let model = Model::parse(aligned.as_slice())
            .with_context(|| format!("{} is not a valid model image", args.image.display()))?;
        let key = super::keygen::public_key("--pub", p)?;
        model.verify_signature(&key.0).with_context(|| {
            format!(
                "{}: signature check against {} failed",
                args.image.display(),
                p.display()
            )
        })?;
    }
    let (dtype, n_el) = input_of(bytes).with_context(|| format!("{}", args.image.display()))?;
    let inputs = match (&args.inputs, &args.texts, &args.tokenizer) {
        (Some(p), _, _) if p.extension().is_some_and(|e| e == "jsonl") => {
            json_rows(p, dtype, args.count)?
        }
        (Some(p), _, _) => {
            let raw = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let elem = match dtype {
                DType::I8 => 1,
                _ => 4,
            };
            let take = (n_el * elem * args.count).min(raw.len());
            Inputs::Raw(raw[..take].to_vec())
        }
        (None, Some(t), Some(tok)) => Inputs::TokenIds(text_rows(t, tok, n_el, args.count)?),
        _ => bail!("--qemu needs test inputs: --inputs FILE, or --texts FILE --tokenizer FILE"),
    };
    let opts = QemuOptions {
        firmware: args.firmware.clone(),
        qemu_run: args.qemu_run.clone(),
        workdir: args.workdir.clone(),
        device: args.device_id,
        timeout_s: args.timeout,
        echo: output::progress(),
    };
    let run = qemu::run_in_qemu(&args.image, &inputs, args.store.as_deref(), &opts)?;
    if output::json() {
        output::summary(&run)?;
    } else {
        print_summary(&run);
    }
    if !run.passed {
        bail!(
            "the firmware failed on the device ({} of {} outputs bit-exact){}",
            run.bit_exact,
            run.inputs,
            if run.firmware_errors.is_empty() {
                String::new()
            } else {
                format!(": {}", run.firmware_errors.join("; "))
            }
        );
    }
    Ok(())
}

fn print_summary(run: &QemuRun) {
    println!(
        "\n{} ('{}' v{}, {} bytes) on {} with {}:",
        run.image, run.model, run.model_version, run.image_bytes, run.machine, run.firmware
    );
    println!("   #  host  device  confidence  latency (ticks)  output");
    for p in &run.predictions {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:>4}  {:>4}  {:>6}  {:>10}  {:>15}  {}",
            p.index,
            p.host_class,
            opt(p.device_class.map(|c| c.to_string())),
            opt(p.device_confidence.map(|c| format!("{c:.3}"))),
            opt(p.latency_ticks.map(|t| t.to_string())),
            if p.bit_exact { "bit-exact" } else { "DIFFERS" }
        );
    }
    let t = &run.telemetry;
    println!(
        "{} of {} outputs bit-exact with the host runtime; top-1 equal on {} of {}",
        run.bit_exact, run.inputs, run.top1_agree, run.inputs
    );
    println!(
        "telemetry: {} frames ingested, {} duplicates, {} corrupt ({} bytes; device {:#x}, boot {}){}",
        t.frames,
        t.duplicates,
        t.corrupt,
        t.bytes,
        t.device,
        t.boot,
        if t.store_files.is_empty() {
            String::new()
        } else {
            format!(", {} Parquet files written", t.store_files.len())
        }
    );
    if let Some(s) = run.stack_high_water_bytes {
        println!(
            "stack high-water mark: {s} bytes; QEMU ran {:.1} s",
            run.qemu_seconds
        );
    }
    println!("{}", if run.passed { "PASS" } else { "FAIL" });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny valid image of `version`, written to a temporary file.
    fn image_file(name: &str, version: u32) -> PathBuf {
        use edgeloop_runtime::image::layers::Activation;
        use edgeloop_runtime::image::writer::ImageWriter;
        let mut w = ImageWriter::new("downgrade-test", version).unwrap();
        let x = w.input(DType::F32, &[1, 4], None).unwrap();
        let y = w
            .fully_connected(x, &[0.5; 8], None, 2, Activation::None, None)
            .unwrap();
        w.output(y).unwrap();
        let p = std::env::temp_dir().join(format!("edgeloop-flash-{}-{name}", std::process::id()));
        std::fs::write(&p, w.finish().unwrap().bytes).unwrap();
        p
    }

    fn flash(args: &[&str]) -> anyhow::Result<()> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let cli = Cli::try_parse_from(std::iter::once("flash").chain(args.iter().copied()))?;
        run(cli.args)
    }

    #[test]
    fn a_lower_model_version_than_installed_is_refused_unless_forced() {
        let v2 = image_file("v2.edli", 2);
        let v3 = image_file("v3.edli", 3);
        let garbage = image_file("garbage", 1);
        std::fs::write(&garbage, b"not an image").unwrap();
        let out = std::env::temp_dir().join(format!("edgeloop-flash-{}.bin", std::process::id()));
        let (v2s, v3s, outs, gs) = (
            v2.to_str().unwrap(),
            v3.to_str().unwrap(),
            out.to_str().unwrap(),
            garbage.to_str().unwrap(),
        );
        let with = |image: &str, extra: &[&str]| {
            let mut a = vec!["--format", "bin", "--out", outs, "--image", image];
            a.extend_from_slice(extra);
            let _ = std::fs::remove_file(&out);
            flash(&a)
        };
        let m = format!(
            "{:#}",
            with(v2s, &["--installed-version", "3"]).unwrap_err()
        );
        assert!(
            m.contains("downgrade refused")
                && m.contains("version 2")
                && m.contains("installed version 3"),
            "{m}"
        );
        assert!(!out.exists(), "nothing is written for a refused image");
        let m = format!("{:#}", with(v2s, &["--installed", v3s]).unwrap_err());
        assert!(m.contains("downgrade refused"), "{m}");
        with(v2s, &["--installed", v3s, "--force"]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&v2).unwrap());
        with(v3s, &["--installed-version", "3"]).unwrap();
        with(v3s, &["--installed", v2s]).unwrap();
        with(v2s, &[]).unwrap();
        assert!(with(v2s, &["--installed", v3s, "--installed-version", "1"]).is_err());
        let m = format!("{:#}", with(v3s, &["--installed", gs]).unwrap_err());
        assert!(m.contains("--installed"), "{m}");
        for p in [v2, v3, out, garbage] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn device_id_is_decimal_or_hex_with_the_qemu_default() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |extra: &[&str]| {
            let base = [
                "flash",
                "--qemu",
                "--image",
                "i.edli",
                "--texts",
                "t",
                "--tokenizer",
                "k",
            ];
            Cli::try_parse_from(base.iter().chain(extra).copied()).map(|c| c.args.device_id)
        };
        assert_eq!(parse(&[]).unwrap(), qemu::DEFAULT_DEVICE);
        assert_eq!(parse(&["--device-id", "0x10"]).unwrap(), 16);
        assert_eq!(parse(&["--device-id", "17"]).unwrap(), 17);
        let e = parse(&["--device-id", "cpu"]).unwrap_err().to_string();
        assert!(e.contains("expected a decimal or 0x-hex u64"), "{e}");
        assert!(parse(&["--device", "1"]).is_err(), "the id is --device-id");
    }

    /// The classic example record: 16 bytes at 0x0100, checksum 0x40.
    #[test]
    fn data_record_checksum() {
        let data = [
            0x21, 0x46, 0x01, 0x36, 0x01, 0x21, 0x47, 0x01, 0x36, 0x00, 0x7E, 0xFE, 0x09, 0xD2,
            0x19, 0x01,
        ];
        let mut s = String::new();
        record(&mut s, 0, 0x0100, &data);
        assert_eq!(s.trim(), ":10010000214601360121470136007EFE09D2190140");
    }

    #[test]
    fn hex_round_trips_across_a_64k_boundary() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let base = 0x0800_FFC0;
        let hex = intel_hex(&bytes, base).unwrap();
        let mut upper = 0u32;
        let mut got = vec![None; bytes.len()];
        for line in hex.lines() {
            let raw: Vec<u8> = (1..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(raw.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0, "{line}");
            let (n, addr, kind) = (
                raw[0] as usize,
                u16::from_be_bytes([raw[1], raw[2]]),
                raw[3],
            );
            match kind {
                4 => upper = u32::from(u16::from_be_bytes([raw[4], raw[5]])) << 16,
                0 => {
                    let a = (upper | u32::from(addr)) - base;
                    for k in 0..n {
                        got[a as usize + k] = Some(raw[4 + k]);
                    }
                }
                1 => {}
                _ => panic!("unexpected record type {kind}"),
            }
        }
        let got: Vec<u8> = got.into_iter().map(|b| b.unwrap()).collect();
        assert_eq!(got, bytes);
        assert_eq!(
            hex.matches(":02000004").count(),
            2,
            "two upper-address records"
        );
        assert!(hex.ends_with(":00000001FF\n"));
    }

    #[test]
    fn address_parsing() {
        assert_eq!(parse_address("0x08040000"), Ok(0x0804_0000));
        assert_eq!(parse_address("4096"), Ok(4096));
        assert!(parse_address("0xZZ").is_err());
    }
}
