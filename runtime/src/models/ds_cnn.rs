//! A keyword-spotting DS-CNN in the manner of "Hello Edge" (Zhang et al., 2017, DS-CNN-S):
//! 49×10 MFCC input, a 10×4 stride-2 convolution to 64 channels, four depthwise-separable
//! blocks (3×3 depthwise + 1×1 pointwise, ReLU), global average pooling and a 12-way classifier.
//! About 22.6k parameters (batch norm folded into the biases).

use super::{Layer, Rng, Sequential};
use crate::image::layers::{Activation, Window};

/// Input `[1, 49, 10, 1]` (time frames × MFCC coefficients).
pub const INPUT: [usize; 4] = [1, 49, 10, 1];
/// Channels of every block.
pub const CHANNELS: usize = 64;
/// Keyword classes (10 words, silence, unknown).
pub const CLASSES: usize = 12;

/// The DS-CNN with weights drawn from `seed`; `softmax` appends a softmax layer.
pub fn ds_cnn(seed: u64, softmax: bool) -> Sequential {
    let mut rng = Rng::new(seed);
    let c = CHANNELS;
    let he = |fan_in: usize| (6.0 / fan_in as f32).sqrt();
    let mut layers = vec![Layer::Conv2d {
        w: rng.vec(c * 10 * 4, he(40)),
        b: rng.vec(c, 0.1),
        dims: [c, 10, 4, 1],
        win: Window::same([49, 10], [10, 4], [2, 2]),
        act: Activation::Relu,
    }];
    // After the first conv: 25 × 5 × 64.
    for _ in 0..4 {
        layers.push(Layer::Depthwise {
            w: rng.vec(9 * c, he(9)),
            b: rng.vec(c, 0.1),
            dims: [1, 3, 3, c],
            win: Window::same([25, 5], [3, 3], [1, 1]),
            act: Activation::Relu,
        });
        layers.push(Layer::Conv2d {
            w: rng.vec(c * c, he(c)),
            b: rng.vec(c, 0.1),
            dims: [c, 1, 1, c],
            win: Window::VALID,
            act: Activation::Relu,
        });
    }
    layers.push(Layer::GlobalAvgPool);
    layers.push(Layer::Flatten);
    layers.push(Layer::Dense {
        w: rng.vec(CLASSES * c, he(c)),
        b: rng.vec(CLASSES, 0.1),
        out: CLASSES,
        act: Activation::None,
    });
    if softmax {
        layers.push(Layer::Softmax);
    }
    Sequential {
        name: "ds-cnn-kws",
        input: INPUT.to_vec(),
        layers,
    }
}
