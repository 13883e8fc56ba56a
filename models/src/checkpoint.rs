//! Checkpoints: named `f32` parameters as safetensors bytes. Files are the caller's (this
//! crate knows nothing of files); the `stdl` crate writes them atomically.
//!
//! Non-finite values are refused both ways: a checkpoint that holds a NaN or an infinity
//! could never be trained on, and writing one over a good checkpoint would lose it.

use std::collections::BTreeMap;

use safetensors::tensor::{Dtype, TensorView};

use crate::{Error, Result};

fn finite(name: &str, v: &[f32], what: &str) -> std::result::Result<(), String> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(format!("{name}[{i}] is {} ({what})", v[i])),
        None => Ok(()),
    }
}

/// Named `f32` vectors as safetensors bytes; `what` names them in errors (a file).
///
/// # Errors
/// A tensor that safetensors cannot hold.
pub fn to_bytes(tensors: &BTreeMap<String, Vec<f32>>, what: &str) -> Result<Vec<u8>> {
    let err = |m: String| Error::Checkpoint {
        path: what.to_owned(),
        message: m,
    };
    for (k, v) in tensors {
        finite(k, v, "training diverged; nothing was written").map_err(err)?;
    }
    let bytes: Vec<(String, Vec<u8>, usize)> = tensors
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter().flat_map(|f| f.to_le_bytes()).collect(),
                v.len(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, b, n)| {
            Ok((
                k.clone(),
                TensorView::new(Dtype::F32, vec![*n], b).map_err(|e| err(e.to_string()))?,
            ))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, &None).map_err(|e| err(e.to_string()))
}

/// Every `f32` tensor of safetensors bytes; `what` names them in errors (a file).
///
/// # Errors
/// Bytes that are not a safetensors file of `f32` tensors.
pub fn from_bytes(data: &[u8], what: &str) -> Result<BTreeMap<String, Vec<f32>>> {
    let err = |m: String| Error::Checkpoint {
        path: what.to_owned(),
        message: m,
    };
    let st = safetensors::SafeTensors::deserialize(data).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(err(format!("{name}: dtype {:?}, expected F32", view.dtype())));
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        finite(&name, &v, "not a usable checkpoint").map_err(err)?;
        out.insert(name, v);
    }
    Ok(out)
}
