//! Data movement and shape ops. Those that only move values share their input's quantization
//! parameters, so an int8 kernel can move bytes without requantizing.

use super::{all_activations, all_params, first_activation, OpHandler, Registry};

pub(super) fn register(r: &mut Registry) {
    r.insert("Reshape", OpHandler::new(first_activation).same_as_input());
    r.insert("Flatten", OpHandler::new(all_activations).same_as_input());
    r.insert("Transpose", OpHandler::new(all_activations).same_as_input());
    r.insert("Squeeze", OpHandler::new(first_activation).same_as_input());
    r.insert(
        "Unsqueeze",
        OpHandler::new(first_activation).same_as_input(),
    );
    r.insert("Identity", OpHandler::new(all_activations).same_as_input());
    r.insert("Concat", OpHandler::new(all_activations));
    r.insert("Gather", OpHandler::new(first_activation).from_table());
    r.insert("Slice", OpHandler::new(first_activation).same_as_input());
    for op in [
        "Shape",
        "Cast",
        "Constant",
        "ConstantOfShape",
        "Range",
        "Expand",
        "Where",
        "Equal",
    ] {
        r.insert(op, OpHandler::new(all_params).float_only());
    }
}
