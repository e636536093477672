//! The intent classifier on the device: runs every embedded test input through the model image,
//! logs each prediction, records telemetry (written to `telemetry.bin` on the host through
//! semihosting), and exits with success only if every output tensor equals, byte for byte, the
//! host runtime's output for the same input. Builds for the mps2-an386 (Cortex-M4F: the demo's
//! intent classifier, token ids of the demo's test split) and the microbit (Cortex-M0, small MLP).
//!
//! On the mps2-an386, with `tools/insn-count.c` loaded in QEMU, the executed instructions are
//! measured per inference (as `kws` and `bench` do: region `classify model` for every input but
//! the first, which runs op by op: regions `classify op <i> <op>`); the log also gives the
//! model's MACs per inference and its arena.
#![no_std]
#![no_main]

use edgeloop_firmware_examples::{assets, board, classify, stack};
use edgeloop_runtime::Model;

// `OPS`: the embedded image's op set (build.rs reads it from the image), so only the kernels this
// model needs are linked, as a TFLite Micro op resolver would: the whole runtime does not fit the
// microbit's 128 KiB firmware region next to the model.
#[cfg(board = "mps2_an386")]
include!(concat!(env!("OUT_DIR"), "/ops_classify.rs"));
#[cfg(board = "microbit")]
include!(concat!(env!("OUT_DIR"), "/ops_mlp.rs"));

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let Some(mut ticks) = board::Ticks::start() else {
        defmt::error!("tick counter already taken");
        return Ok(false);
    };
    let t0 = ticks.now();
    let model = Model::parse_with_ops::<OPS>(assets::classify::image())?;
    defmt::info!("parsed in {} ticks", ticks.since(t0));
    let tests = classify::TestSet {
        inputs: assets::classify::INPUTS,
        expected: assets::classify::EXPECTED,
        device: classify::DEFAULT_DEVICE,
        boot: 0,
    };
    #[cfg(board = "mps2_an386")]
    {
        let mut probe = marks::Marks::new(&model);
        classify::run_probed::<OPS, _>(
            &model,
            assets::classify::image().len(),
            &tests,
            &mut ticks,
            &mut probe,
        )
    }
    #[cfg(not(board = "mps2_an386"))]
    classify::run::<OPS>(&model, assets::classify::image().len(), &tests, &mut ticks)
}

/// Instruction-count marks around every inference (`bench::mark`, read by the TCG plugin).
#[cfg(board = "mps2_an386")]
mod marks {
    use edgeloop_firmware_examples::bench::{macs, mark, op_name};
    use edgeloop_firmware_examples::classify::Probe;
    use edgeloop_runtime::Model;

    /// Ops whose instructions are counted one by one (first input only).
    const MAX_OPS: usize = 64;

    /// The marks of the current inference; input 0 runs op by op.
    pub struct Marks<'a, 'm> {
        model: &'a Model<'m>,
        macs: u64,
        start: u32,
        end: u32,
        ops: [u32; MAX_OPS],
    }

    impl<'a, 'm> Marks<'a, 'm> {
        /// Marks for `model`; logs its MACs per inference and its arena.
        pub fn new(model: &'a Model<'m>) -> Self {
            let macs: u64 = model
                .ops()
                .map(|r| r.map(|r| macs(model, &r, 0)).unwrap_or(0))
                .sum();
            defmt::info!(
                "classify: {} MACs per inference, arena {} bytes",
                macs,
                model.arena_bytes()
            );
            Self {
                model,
                macs,
                start: 0,
                end: 0,
                ops: [0; MAX_OPS],
            }
        }
    }

    impl Probe for Marks<'_, '_> {
        fn per_op(&self, k: usize) -> bool {
            k == 0
        }

        fn before(&mut self, _k: usize) {
            self.start = mark();
        }

        fn op(&mut self, _k: usize, op: usize) {
            if op < MAX_OPS {
                self.ops[op] = mark();
            }
        }

        fn after(&mut self, _k: usize) {
            self.end = mark();
        }

        fn done(&mut self, k: usize) {
            if k > 0 {
                defmt::info!(
                    "region classify model: marks {} {}, {} MACs",
                    self.start,
                    self.end,
                    self.macs
                );
                return;
            }
            let mut from = self.start;
            for (i, rec) in self.model.ops().enumerate().take(MAX_OPS) {
                let Ok(rec) = rec else { break };
                defmt::info!(
                    "region classify op {} {}: marks {} {}, {} MACs",
                    i,
                    op_name(rec.code),
                    from,
                    self.ops[i],
                    macs(self.model, &rec, 0)
                );
                from = self.ops[i];
            }
            if self.model.num_ops() > MAX_OPS {
                defmt::warn!(
                    "only the first {} of {} ops counted one by one",
                    MAX_OPS,
                    self.model.num_ops()
                );
            }
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    stack::paint();
    let ok = match run() {
        Ok(ok) => ok,
        Err(e) => {
            defmt::error!("runtime error: {}", e);
            false
        }
    };
    defmt::info!("stack high-water mark: {} bytes", stack::high_water());
    defmt::info!(
        "{}",
        if ok {
            "classify: PASS"
        } else {
            "classify: FAIL"
        }
    );
    board::exit(ok)
}
