//! Memory footprint of one model: the image parsed in place with only its ops linked
//! (`Model::parse_with_ops` / `Interpreter::new_with_ops` with the op set `build.rs` computed
//! from the image), one invoke on zeroed inputs, and the numbers the host cannot read from the
//! ELF: the arena the model needs and the stack high-water mark (painting).

use edgeloop_runtime::{Interpreter, Model};

use crate::{arena, stack};

/// Runs `image` once and logs `footprint NAME: image N bytes, arena N bytes, stack N bytes`.
/// `false` (after logging why) if the model does not run.
pub fn run<const OPS: u128>(name: &str, image: &'static [u8]) -> bool {
    let result = (|| -> Result<(usize, usize), edgeloop_runtime::Error> {
        let model = Model::parse_with_ops::<OPS>(image)?;
        let Some(arena) = arena::take() else {
            return Ok((0, 0));
        };
        let mut it = Interpreter::<'_, '_, OPS>::new_with_ops(&model, arena)?;
        for k in 0..model.num_inputs() {
            it.input_bytes(k)?.fill(0);
        }
        it.invoke()?;
        Ok((model.arena_bytes(), image.len()))
    })();
    match result {
        Ok((arena_bytes, image_bytes)) if image_bytes > 0 => {
            defmt::info!(
                "footprint {}: image {} bytes, arena {} bytes, stack {} bytes",
                name,
                image_bytes,
                arena_bytes,
                stack::high_water()
            );
            true
        }
        Ok(_) => {
            defmt::error!("arena already taken");
            false
        }
        Err(e) => {
            defmt::error!("footprint {}: {}", name, e);
            false
        }
    }
}

/// The `main` of a footprint example: `footprint_main!("name", assets::module, "ops_file.rs")`.
#[macro_export]
macro_rules! footprint_main {
    ($name:literal, $image:expr, $ops:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $ops));

        #[cortex_m_rt::entry]
        fn main() -> ! {
            $crate::stack::paint();
            let ok = $crate::footprint::run::<OPS>($name, $image);
            $crate::board::exit(ok)
        }
    };
}
