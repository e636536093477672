//! Serde adapter writing NaN as JSON `null` and reading `null` back as NaN, so metrics that
//! are undefined (zero division, empty bins) survive a JSON round trip.

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes NaN as `null`, other values as numbers.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_none()
    } else {
        s.serialize_f64(*v)
    }
}

/// Deserializes `null` as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
