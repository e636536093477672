//! `edgeloop flash`: writes a model image where a device takes it — an Intel HEX file or a raw
//! binary placed at a flash address, for standard flashers (probe-rs, OpenOCD, STM32CubeProgrammer).
//! The image is parsed (and, with `--pub`, its signature verified) before anything is written.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::Model;

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
openocd -f board/st_nucleo_f4.cfg -c \"program intent.bin 0x08040000 verify reset exit\""
)]
pub struct Args {
    /// The model image.
    #[arg(long)]
    pub image: PathBuf,
    /// Where the output goes.
    #[arg(long)]
    pub out: PathBuf,
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
    if args.address % 16 != 0 {
        bail!(
            "--address {:#010x} is not 16-byte aligned: the image's constants are read in place and need it",
            args.address
        );
    }
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::parse(aligned.as_slice())
        .with_context(|| format!("{} is not a valid model image", args.image.display()))?;
    if let Some(p) = &args.public_key {
        let key = edgeloop_quantize::sign::read_public_key(p)?;
        model.verify_signature(&key.0).with_context(|| {
            format!(
                "{}: signature check against {} failed",
                args.image.display(),
                p.display()
            )
        })?;
        println!("signature verified against {}", p.display());
    }
    match args.format {
        Format::Hex => std::fs::write(&args.out, intel_hex(&bytes, args.address)?),
        Format::Bin => std::fs::write(&args.out, &bytes),
    }
    .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{} ({:?} v{}, {} bytes, arena {} bytes) → {} at {:#010x}..{:#010x} ({:?})",
        args.image.display(),
        model.name(),
        model.model_version(),
        bytes.len(),
        model.arena_bytes(),
        args.out.display(),
        args.address,
        u64::from(args.address) + bytes.len() as u64,
        args.format
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
