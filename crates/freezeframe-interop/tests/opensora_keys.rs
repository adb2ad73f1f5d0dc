//! The key set freezeframe writes, against Open-Sora v1.0's STDiT: `fixtures/opensora-stdit-
//! v1.0-keys.txt` lists the `state_dict()` keys and shapes read from Open-Sora's source at tag
//! v1.0.0 (`opensora/models/stdit/stdit.py` and the layers it uses), with symbolic sizes.
use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use freezeframe_interop::st::Source;
use freezeframe_model::{StdiTConfig, Stdit};
use freezeframe_train::checkpoint::save_model;

/// Evaluates a shape entry such as `p*p*2*C` or `(Hl/p)*(Wl/p)` with the given symbols.
fn eval(expr: &str, sym: &BTreeMap<&str, usize>) -> usize {
    expr.split('*')
        .map(|f| {
            let f = f.trim();
            if let Some(inner) = f.strip_prefix('(').and_then(|f| f.strip_suffix(')')) {
                let (a, b) = inner.split_once('/').unwrap();
                eval(a, sym) / eval(b, sym)
            } else {
                f.parse()
                    .unwrap_or_else(|_| *sym.get(f).unwrap_or_else(|| panic!("symbol {f}")))
            }
        })
        .product()
}

/// Open-Sora's keys → shapes, parameters and persistent buffers alike.
fn opensora_keys(sym: &BTreeMap<&str, usize>) -> BTreeMap<String, Vec<usize>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opensora-stdit-v1.0-keys.txt");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let key = cols.next().unwrap().to_string();
            let shape = cols
                .next()
                .unwrap()
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']');
            (key, shape.split(", ").map(|e| eval(e, sym)).collect())
        })
        .collect()
}

#[test]
fn freezeframe_writes_open_soras_v1_0_stdit_keys() {
    let cfg = StdiTConfig::tiny(); // depth 2, as the fixture
    let sym = BTreeMap::from([
        ("D", cfg.hidden),
        ("C", cfg.channels),
        ("p", cfg.patch),
        ("Ct", cfg.text_dim),
        ("L", cfg.text_len),
        ("T", cfg.frames),
        ("Hl", cfg.height),
        ("Wl", cfg.width),
    ]);
    let mut theirs = opensora_keys(&sym);

    let dir = std::env::temp_dir().join(format!("ff-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.safetensors");
    let _ = std::fs::remove_file(&file);
    save_model(&Stdit::new(&cfg, &Device::flex()), &file).unwrap();
    let src = Source::open(&file).unwrap();
    let ours: BTreeMap<String, Vec<usize>> = src.shapes().into_iter().collect();

    // The documented differences, each checked:
    // 1. The fixed sin-cos tables are not stored (Open-Sora's own loader deletes them too).
    for buffer in ["pos_embed", "pos_embed_temporal"] {
        assert!(theirs.remove(buffer).is_some(), "{buffer}");
    }
    // 2. The patch embedding is a linear over (C, p, p): the Conv3d weight's bytes, flattened.
    let (d, c, p) = (cfg.hidden, cfg.channels, cfg.patch);
    assert_eq!(theirs["x_embedder.proj.weight"], vec![d, c, 1, p, p]);
    theirs.insert("x_embedder.proj.weight".into(), vec![d, c * p * p]);
    // 3. No learned variance (pred_sigma): the output is p·p·C, not p·p·2C.
    for (k, rows) in [
        ("final_layer.linear.weight", 0),
        ("final_layer.linear.bias", 0),
    ] {
        assert_eq!(theirs[k][rows], p * p * 2 * c, "{k}");
        theirs.get_mut(k).unwrap()[rows] = p * p * c;
    }
    assert_eq!(
        ours, theirs,
        "freezeframe's keys and shapes differ from Open-Sora v1.0's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
