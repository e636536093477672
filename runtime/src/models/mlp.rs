//! A small MLP classifier: 64 → 128 (ReLU) → 64 (ReLU) → 10, optionally followed by softmax.

use super::{Layer, Rng, Sequential};
use crate::image::layers::Activation;

/// Input features.
pub const INPUTS: usize = 64;
/// Classes.
pub const CLASSES: usize = 10;

fn dense(rng: &mut Rng, inp: usize, out: usize, act: Activation) -> Layer {
    // He-uniform weights keep activations in a similar range layer after layer.
    let limit = (6.0 / inp as f32).sqrt();
    Layer::Dense {
        w: rng.vec(inp * out, limit),
        b: rng.vec(out, 0.1),
        out,
        act,
    }
}

/// The MLP with weights drawn from `seed`; `softmax` appends a softmax layer.
pub fn mlp(seed: u64, softmax: bool) -> Sequential {
    let mut rng = Rng::new(seed);
    let mut layers = vec![
        dense(&mut rng, INPUTS, 128, Activation::Relu),
        dense(&mut rng, 128, 64, Activation::Relu),
        dense(&mut rng, 64, CLASSES, Activation::None),
    ];
    if softmax {
        layers.push(Layer::Softmax);
    }
    Sequential {
        name: "mlp",
        input: vec![1, INPUTS],
        layers,
    }
}
