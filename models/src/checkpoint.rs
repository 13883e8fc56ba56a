//! Checkpoints: named parameters in safetensors, written atomically (temporary file, then
//! rename). The preset and training state are saved beside them by the caller.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::{Error, Result};

/// Writes named `f32` vectors to `path` atomically.
pub fn save(path: &Path, tensors: &BTreeMap<String, Vec<f32>>) -> Result<()> {
    let err = |m: String| Error::Checkpoint {
        path: path.display().to_string(),
        message: m,
    };
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
    let data = safetensors::serialize(views, &None).map_err(|e| err(e.to_string()))?;
    write_atomic(path, &data)
}

/// Reads every `f32` tensor of a safetensors file.
pub fn load(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let err = |m: String| Error::Checkpoint {
        path: path.display().to_string(),
        message: m,
    };
    let data = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        error: source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&data).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(err(format!("{name}: dtype {:?}, expected F32", view.dtype())));
        }
        let v = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, v);
    }
    Ok(out)
}

/// Writes `data` to `path` via a temporary file in the same directory and a rename, so a
/// crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        error: source,
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(data).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
