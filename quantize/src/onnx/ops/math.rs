//! Element-wise math and reductions.

use super::{all_activations, first_activation, OpHandler, Registry};

pub(super) fn register(r: &mut Registry) {
    for op in ["Add", "Sub", "Mul", "Div"] {
        r.insert(op, OpHandler::new(all_activations));
    }
    for op in ["Sqrt", "Exp", "Erf", "Neg", "Abs", "Reciprocal"] {
        r.insert(op, OpHandler::new(all_activations));
    }
    r.insert("Pow", OpHandler::new(first_activation));
    r.insert("ReduceMean", OpHandler::new(first_activation));
    r.insert("Clip", OpHandler::new(first_activation).fusable());
}
