//! Targets: named device profiles (flash, RAM, instructions per second) and explicit budgets.
//!
//! A [`Budget`] is what candidates are checked against. It comes from a [`DeviceProfile`]
//! ([`Budget::from_profile`]) or from explicit numbers ([`Budget::explicit`]). Besides the
//! model image and its arena, a microcontroller spends flash on the firmware's code and RAM
//! on its stack and statics; those overheads are the figures measured by the firmware
//! footprint bench for the DS-CNN firmware (`firmware-examples/BENCH.md`, row `ds-cnn`) and
//! are added to every candidate's footprint (set them to zero with explicit budgets that
//! already exclude the firmware).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};

/// Which measured instructions-per-MAC figures apply to a target ([`crate::cost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSet {
    /// The Cortex-M4 DSP (SIMD) kernels (Cortex-M4F, Cortex-M7).
    Dsp,
    /// The portable reference kernels (cores without the DSP extension: Cortex-M0+).
    Reference,
}

/// A named target device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceProfile {
    /// Profile name (`cortex-m0plus`, `cortex-m4`, `cortex-m7`, `edge-linux`).
    pub name: &'static str,
    /// The example part the numbers are taken from.
    pub part: &'static str,
    /// Flash (or storage set aside for the model) in bytes.
    pub flash_bytes: u64,
    /// RAM in bytes.
    pub ram_bytes: u64,
    /// Instructions per second (clock × instructions per cycle, see [`DeviceProfile::ips_note`]).
    pub instructions_per_second: f64,
    /// How the instructions-per-second figure was set.
    pub ips_note: &'static str,
    /// Which kernels' instruction counts apply.
    pub kernels: KernelSet,
    /// Firmware flash besides the image (code, read-only data), bytes.
    pub firmware_flash_bytes: u64,
    /// Firmware RAM besides the arena (stack high-water mark, statics), bytes.
    pub firmware_ram_bytes: u64,
}

/// Flash taken by the DS-CNN firmware besides its image: runtime + kernels + other code + other
/// rodata, the terms below (`firmware-examples/BENCH.md`, memory table, row `ds-cnn`: release
/// build, opt-level "s", LTO, Cortex-M4F, the DSP kernel table; regenerated 2026-11-29 with the
/// runtime of session 25; a test checks them against the file).
pub const MCU_FIRMWARE_FLASH: u64 = 12_092 + 18_752 + 6_000 + 4_072;
/// RAM taken by the DS-CNN firmware besides its arena: stack high-water mark + statics (same
/// row).
pub const MCU_FIRMWARE_RAM: u64 = 6_056 + 20;

/// Flash taken by the DS-CNN firmware built for ARMv6-M (the Cortex-M0+ profile) besides its
/// image: runtime + kernels + other code + other rodata of `firmware-examples/BENCH.md`'s memory
/// table, row `ds-cnn (ARMv6-M)` (the runtime's table for cores without DSP; software floating
/// point and division in *other code*; a test checks them against the file).
pub const M0_FIRMWARE_FLASH: u64 = 12_864 + 13_384 + 5_512 + 2_924;
/// RAM taken by that firmware besides its arena: stack high-water mark + statics (same row).
pub const M0_FIRMWARE_RAM: u64 = 3_832 + 20;
/// Flash taken by the intent-classifier firmware built for ARMv6-M besides its image (row
/// `intent-classifier (ARMv6-M)`): the text models' firmware on the Cortex-M0+.
pub const M0_TEXT_FIRMWARE_FLASH: u64 = 19_400 + 16_664 + 6_296 + 3_528;
/// RAM taken by that firmware besides its arena (same row).
pub const M0_TEXT_FIRMWARE_RAM: u64 = 1_740 + 20;

/// Flash taken by the intent-classifier firmware besides its image (the text models' firmware):
/// runtime + kernels + other code + other rodata, the terms below
/// (`firmware-examples/BENCH.md`, memory table, row `intent-classifier`; 2026-11-29: the fused
/// image, its op set per int8/f32 variant, with the Cortex-M4 Add, Mul and Quantize variants,
/// the DSP FullyConnected's one-block groups of four rows, and the reference Add and Mul's row
/// walk, linked as the Cortex-M4 variants' fallback).
/// A GPT links the same op set plus nothing new (its fixed-length classifier uses the same
/// kernels).
pub const TEXT_FIRMWARE_FLASH: u64 = 18_008 + 32_596 + 5_040 + 4_760;
/// RAM taken by the intent-classifier firmware besides its arena: stack high-water mark +
/// statics (same row).
pub const TEXT_FIRMWARE_RAM: u64 = 4_472 + 20;

/// Instructions a Cortex-M0+ executes (the runtime's table for cores without the DSP extension:
/// FullyConnected and pointwise Conv2D in 2×2 blocks, the other Conv2Ds through gathered
/// receptive fields, DepthwiseConv2D tap-major, with Thumb-1 `asm!` inner loops and 32-bit
/// requantization, the rest the reference kernels, all compiled for ARMv6-M) per instruction of
/// the reference kernels compiled for the Cortex-M4, on the DS-CNN
/// (`firmware-examples/BENCH.md`, ARMv6-M table, row `ds-cnn`: 17410403 / 33700216
/// instructions, 2026-11-29; a test checks it against the file). The cost figures count
/// Cortex-M4 reference instructions, so the Cortex-M0+ profile's instructions per second are
/// divided by it. The intent classifier's ratio is 3.2 (its f32 LayerNorm and Softmax run in
/// software floating point there): for models with f32 islands the estimate is optimistic.
pub const ARMV6M_PER_M4_INSTRUCTION: f64 = 0.51663;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The named profiles.
pub fn profiles() -> Vec<DeviceProfile> {
    vec![
        DeviceProfile {
            name: "cortex-m0plus",
            part: "Microchip SAMD21G18 (Cortex-M0+, 48 MHz, 256 KiB flash, 32 KiB RAM)",
            flash_bytes: 256 * KIB,
            ram_bytes: 32 * KIB,
            instructions_per_second: 48e6 / ARMV6M_PER_M4_INSTRUCTION,
            ips_note: "clock × 1 instruction per cycle, in Cortex-M4 reference-kernel instructions: divided by the measured ratio of the Cortex-M0+ build's instructions to them (0.52 on the DS-CNN; f32 ops run in software floating point there, which this leaves out)",
            kernels: KernelSet::Reference,
            firmware_flash_bytes: M0_FIRMWARE_FLASH,
            firmware_ram_bytes: M0_FIRMWARE_RAM,
        },
        DeviceProfile {
            name: "cortex-m4",
            part: "Nordic nRF52832 (Cortex-M4F, 64 MHz, 512 KiB flash, 64 KiB RAM)",
            flash_bytes: 512 * KIB,
            ram_bytes: 64 * KIB,
            instructions_per_second: 64e6,
            ips_note: "clock × 1 instruction per cycle",
            kernels: KernelSet::Dsp,
            firmware_flash_bytes: MCU_FIRMWARE_FLASH,
            firmware_ram_bytes: MCU_FIRMWARE_RAM,
        },
        DeviceProfile {
            name: "cortex-m7",
            part: "ST STM32F746 (Cortex-M7, 216 MHz, 1 MiB flash, 320 KiB RAM)",
            flash_bytes: MIB,
            ram_bytes: 320 * KIB,
            instructions_per_second: 216e6,
            ips_note: "clock × 1 instruction per cycle (dual issue not counted: conservative)",
            kernels: KernelSet::Dsp,
            firmware_flash_bytes: MCU_FIRMWARE_FLASH,
            firmware_ram_bytes: MCU_FIRMWARE_RAM,
        },
        DeviceProfile {
            name: "edge-linux",
            part: "Raspberry Pi Zero 2 W class (Cortex-A53, 1 GHz; 16 MiB storage and 64 MiB RAM set aside for the model)",
            flash_bytes: 16 * MIB,
            ram_bytes: 64 * MIB,
            instructions_per_second: 1e9,
            ips_note: "one core, clock × 1 instruction per cycle; the host kernels' instructions per MAC are not measured, the Cortex-M4 DSP figures stand in",
            kernels: KernelSet::Dsp,
            firmware_flash_bytes: 0,
            firmware_ram_bytes: 0,
        },
    ]
}

/// The profile named `name` (case-insensitive; `m0+`, `m4`, `m7` and `linux` also work).
pub fn profile(name: &str) -> Result<DeviceProfile> {
    let key = name.trim().to_ascii_lowercase();
    let key = match key.as_str() {
        "m0+" | "m0plus" | "cortex-m0+" => "cortex-m0plus",
        "m4" | "cortex-m4f" => "cortex-m4",
        "m7" => "cortex-m7",
        "linux" => "edge-linux",
        k => k,
    }
    .to_string();
    let all = profiles();
    let known = all.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
    all.into_iter()
        .find(|p| p.name == key)
        .ok_or(SelectError::UnknownDevice {
            name: name.to_string(),
            known,
        })
}

/// What every candidate must fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Where the numbers come from (a profile name or `explicit`).
    pub target: String,
    /// Flash bytes for firmware + image.
    pub flash_bytes: u64,
    /// RAM bytes for arena + firmware stack/statics + front-end scratch.
    pub ram_bytes: u64,
    /// Latency limit per inference in milliseconds (none: no limit).
    pub latency_ms: Option<f64>,
    /// Instructions per second used to turn instructions into milliseconds.
    pub instructions_per_second: f64,
    /// Which kernels' instructions-per-MAC figures apply.
    pub kernels: KernelSet,
    /// Firmware flash added to every image.
    pub firmware_flash_bytes: u64,
    /// Firmware RAM added to every arena.
    pub firmware_ram_bytes: u64,
}

impl Budget {
    /// The budget of a named profile, with an optional latency limit.
    pub fn from_profile(p: &DeviceProfile, latency_ms: Option<f64>) -> Result<Self> {
        let b = Budget {
            target: p.name.to_string(),
            flash_bytes: p.flash_bytes,
            ram_bytes: p.ram_bytes,
            latency_ms,
            instructions_per_second: p.instructions_per_second,
            kernels: p.kernels,
            firmware_flash_bytes: p.firmware_flash_bytes,
            firmware_ram_bytes: p.firmware_ram_bytes,
        };
        b.validate()?;
        Ok(b)
    }

    /// Explicit limits on a Cortex-M4-class part (DSP kernels, the `cortex-m4` profile's
    /// instructions per second and firmware overheads).
    pub fn explicit(flash_bytes: u64, ram_bytes: u64, latency_ms: Option<f64>) -> Result<Self> {
        let m4 = profile("cortex-m4")?;
        let b = Budget {
            target: "explicit".into(),
            flash_bytes,
            ram_bytes,
            latency_ms,
            ..Budget::from_profile(&m4, None)?
        };
        b.validate()?;
        Ok(b)
    }

    /// The same budget with the text models' firmware overhead ([`TEXT_FIRMWARE_FLASH`],
    /// [`TEXT_FIRMWARE_RAM`]) where it carried the keyword firmware's (microcontroller
    /// profiles and explicit budgets); zero overheads (edge Linux, or set by the user) stay zero.
    pub fn for_text(mut self) -> Self {
        if self.firmware_flash_bytes == MCU_FIRMWARE_FLASH {
            self.firmware_flash_bytes = TEXT_FIRMWARE_FLASH;
        } else if self.firmware_flash_bytes == M0_FIRMWARE_FLASH {
            self.firmware_flash_bytes = M0_TEXT_FIRMWARE_FLASH;
        }
        if self.firmware_ram_bytes == MCU_FIRMWARE_RAM {
            self.firmware_ram_bytes = TEXT_FIRMWARE_RAM;
        } else if self.firmware_ram_bytes == M0_FIRMWARE_RAM {
            self.firmware_ram_bytes = M0_TEXT_FIRMWARE_RAM;
        }
        self
    }

    /// Checks that the numbers make sense.
    pub fn validate(&self) -> Result<()> {
        if self.flash_bytes == 0 || self.ram_bytes == 0 {
            return Err(SelectError::Config(
                "flash and RAM budgets must be positive".into(),
            ));
        }
        if !(self.instructions_per_second.is_finite() && self.instructions_per_second > 0.0) {
            return Err(SelectError::Config(format!(
                "instructions per second {} must be a positive number",
                self.instructions_per_second
            )));
        }
        if let Some(l) = self.latency_ms {
            if !(l.is_finite() && l > 0.0) {
                return Err(SelectError::Config(format!(
                    "latency limit {l} ms must be a positive number"
                )));
            }
        }
        Ok(())
    }
}

/// Parses a byte size: `65536`, `64K`, `64KiB`, `64KB` (all 1024-based), `1M`, `1MiB`.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix("kb"))
        .or_else(|| lower.strip_suffix('k'))
    {
        (n, KIB)
    } else if let Some(n) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix("mb"))
        .or_else(|| lower.strip_suffix('m'))
    {
        (n, MIB)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower), 1)
    };
    let v: u64 = num.trim().parse().map_err(|_| {
        SelectError::Config(format!(
            "'{s}' is not a byte size (examples: 65536, 64K, 256KiB, 1M)"
        ))
    })?;
    v.checked_mul(mul)
        .filter(|&b| b > 0)
        .ok_or_else(|| SelectError::Config(format!("byte size '{s}' is zero or too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_by_name_and_alias() {
        assert_eq!(profile("M4").unwrap().name, "cortex-m4");
        assert_eq!(profile("cortex-m0+").unwrap().kernels, KernelSet::Reference);
        assert_eq!(profile("linux").unwrap().firmware_flash_bytes, 0);
        let e = profile("esp32").unwrap_err().to_string();
        assert!(e.contains("esp32") && e.contains("cortex-m7"), "{e}");
        for p in profiles() {
            Budget::from_profile(&p, Some(100.0)).unwrap();
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("65536").unwrap(), 65536);
        assert_eq!(parse_bytes("64K").unwrap(), 65536);
        assert_eq!(parse_bytes("256KiB").unwrap(), 262144);
        assert_eq!(parse_bytes("1M").unwrap(), 1 << 20);
        for bad in ["", "k", "-1", "0", "12x", "99999999999999999999M"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn explicit_budgets_are_checked() {
        assert!(Budget::explicit(0, 1, None).is_err());
        assert!(Budget::explicit(1, 1, Some(f64::NAN)).is_err());
        assert!(Budget::explicit(1, 1, Some(-2.0)).is_err());
        let b = Budget::explicit(256 * 1024, 64 * 1024, Some(50.0)).unwrap();
        assert_eq!(b.kernels, KernelSet::Dsp);
        assert_eq!(b.firmware_ram_bytes, MCU_FIRMWARE_RAM);
    }

    /// The firmware overheads are the memory table's rows in BENCH.md: flash = runtime +
    /// The ARMv6-M factor is the DS-CNN's row of BENCH.md's ARMv6-M table (within 0.1%).
    #[test]
    fn armv6m_factor_is_the_bench_row() {
        use crate::bench_md::{cell, row};
        let r = row("Whole inference on the ARMv6-M instruction set", "ds-cnn");
        let ratio = cell(&r, 3) / cell(&r, 2);
        assert!(
            (ratio / ARMV6M_PER_M4_INSTRUCTION - 1.0).abs() < 1e-3,
            "BENCH.md gives {ratio}, the constant is {ARMV6M_PER_M4_INSTRUCTION}"
        );
    }

    /// The Cortex-M0+ profile carries the ARMv6-M firmware's overheads, and `for_text` swaps
    /// them for the ARMv6-M text firmware's (the Cortex-M4's for the Cortex-M4).
    #[test]
    fn text_models_get_their_own_firmware_overheads() {
        for (name, kws, text) in [
            (
                "cortex-m0plus",
                (M0_FIRMWARE_FLASH, M0_FIRMWARE_RAM),
                (M0_TEXT_FIRMWARE_FLASH, M0_TEXT_FIRMWARE_RAM),
            ),
            (
                "cortex-m4",
                (MCU_FIRMWARE_FLASH, MCU_FIRMWARE_RAM),
                (TEXT_FIRMWARE_FLASH, TEXT_FIRMWARE_RAM),
            ),
        ] {
            let b = Budget::from_profile(&profile(name).unwrap(), None).unwrap();
            assert_eq!(
                (b.firmware_flash_bytes, b.firmware_ram_bytes),
                kws,
                "{name}"
            );
            let t = b.for_text();
            assert_eq!(
                (t.firmware_flash_bytes, t.firmware_ram_bytes),
                text,
                "{name}"
            );
        }
    }

    /// kernels + other code + other rodata, RAM = stack high-water mark + statics.
    #[test]
    fn firmware_overheads_are_the_bench_rows() {
        use crate::bench_md::{cell, row};
        for (model, flash, ram) in [
            ("ds-cnn", MCU_FIRMWARE_FLASH, MCU_FIRMWARE_RAM),
            ("intent-classifier", TEXT_FIRMWARE_FLASH, TEXT_FIRMWARE_RAM),
            ("ds-cnn (ARMv6-M)", M0_FIRMWARE_FLASH, M0_FIRMWARE_RAM),
            (
                "intent-classifier (ARMv6-M)",
                M0_TEXT_FIRMWARE_FLASH,
                M0_TEXT_FIRMWARE_RAM,
            ),
        ] {
            let r = row("Memory footprint per model", model);
            let sum = |cols: &[usize]| cols.iter().map(|&i| cell(&r, i)).sum::<f64>() as u64;
            assert_eq!(flash, sum(&[2, 3, 4, 6]), "{model} flash");
            assert_eq!(ram, sum(&[8, 9]), "{model} RAM");
        }
    }
}
