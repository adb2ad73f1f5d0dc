//! Reading back figures that may be NaN. JSON has no NaN: serde_json writes a non-finite float
//! as `null`, so a figure that does not apply (a motion ratio without moving prompts) is stored
//! as `null` and must read back as NaN, not fail the whole file. Used as
//! `#[serde(deserialize_with = "nan::f32")]` on every float field of a record that is read back.
use serde::{Deserialize, Deserializer};

pub fn f32<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

pub fn vec_f32<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let v = Vec::<Option<f32>>::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
}

/// (t, value) rows, e.g. a loss per timestep.
pub fn pairs_f32<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f32, f32)>, D::Error> {
    let v = Vec::<(Option<f32>, Option<f32>)>::deserialize(d)?;
    Ok(v.into_iter()
        .map(|(a, b)| (a.unwrap_or(f32::NAN), b.unwrap_or(f32::NAN)))
        .collect())
}
