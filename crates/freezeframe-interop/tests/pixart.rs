//! Parity against diffusers' own PixArt transformer: the fixtures under `fixtures/pixart/` were
//! written by `tools/parity/make_fixtures.py` (diffusers 0.42.1, torch 2.15, float32), so these
//! tests need no Python.
use std::path::{Path, PathBuf};

use burn::prelude::*;
use freezeframe_interop::st::{Source, write_f32};
use freezeframe_interop::{ImportOptions, export_pixart, import_pixart};
use freezeframe_model::{CaptionBatch, StdiTConfig, Stdit};
use freezeframe_train::checkpoint::load_model_partial;

const FIXTURES: [&str; 2] = ["p2-rgb", "p4-sigma"];
/// Relative error allowed against diffusers (max |a − b| / max |b|, f32). Issue 13 asks for
/// 1e-4; the two GELUs differ by only ~7e-5 on these fixtures, so 1e-4 could not tell them
/// apart, and the import reaches ~2e-6.
const TOLERANCE: f32 = 1e-5;
const OPTS: ImportOptions = ImportOptions {
    text_len: 12,
    seed: 0,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pixart")
        .join(name)
}

/// A fresh, empty folder, removed when the returned guard drops.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ff-pixart-{name}-"))
        .tempdir()
        .expect("a temporary folder")
}

fn weights(name: &str) -> PathBuf {
    fixture(name).join("diffusion_pytorch_model.safetensors")
}

fn config(name: &str) -> PathBuf {
    fixture(name).join("config.json")
}

/// Loads an imported checkpoint into an image-mode model; only the temporal attention may be
/// missing from it.
fn load(cfg: &StdiTConfig, file: &Path, dev: &Device) -> Stdit {
    let (model, missing) = load_model_partial(Stdit::new(cfg, dev), file).unwrap();
    assert!(
        missing.iter().all(|m| m.contains(".attn_temp.")),
        "{missing:?}"
    );
    model
}

fn io_tensor<const D: usize>(io: &mut Source, name: &str, dev: &Device) -> Tensor<D> {
    let shape: [usize; D] = io.info(name).unwrap().shape.clone().try_into().unwrap();
    Tensor::<1>::from_floats(io.read_f32(name).unwrap().as_slice(), dev).reshape(shape)
}

/// freezeframe's image-mode output on the fixture's inputs, and diffusers' (its noise half).
fn outputs(
    (name, io): (&str, &str),
    cfg: &StdiTConfig,
    model: &Stdit,
    dev: &Device,
) -> (Vec<f32>, Vec<f32>) {
    let mut io = Source::open(&fixture(name).join(io)).unwrap();
    let x: Tensor<4> = io_tensor(&mut io, "latents", dev);
    let [b, c, h, w] = x.dims();
    let t: Tensor<1> = io_tensor::<1>(&mut io, "timestep", dev).div_scalar(1000.0);
    let mask: Tensor<2> = io_tensor(&mut io, "caption_mask", dev);
    let caption = CaptionBatch {
        tokens: io_tensor(&mut io, "caption", dev),
        pad: mask.lower_elem(0.5),
        null: Tensor::<1, Bool>::full([b], false, dev),
    };
    let ours = model.forward(x.reshape([b, 1, c, h, w]), t, &caption);
    let theirs: Tensor<4> = io_tensor(&mut io, "sample", dev);
    let theirs = theirs.narrow(1, 0, cfg.channels);
    let v = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    (v(ours.reshape([b, c, h, w])), v(theirs))
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    diff / b.iter().map(|y| y.abs()).fold(0.0, f32::max)
}

fn imported_error(name: &str, weights_file: &Path, dir: &Path, dev: &Device) -> f32 {
    let out = dir.join("imported.safetensors");
    let _ = std::fs::remove_file(&out);
    let imp = import_pixart(weights_file, &config(name), &out, OPTS).unwrap();
    let model = load(&imp.model, &out, dev);
    let (ours, theirs) = outputs((name, "io.safetensors"), &imp.model, &model, dev);
    rel_err(&ours, &theirs)
}

#[test]
fn imported_models_match_diffusers() {
    let dev = Device::flex();
    for name in FIXTURES {
        let dir_tmp = scratch(&format!("parity-{name}"));
        let dir = dir_tmp.path().to_path_buf();
        let e = imported_error(name, &weights(name), &dir, &dev);
        println!("{name}: relative error {e:.2e}");
        assert!(e <= TOLERANCE, "{name}: relative error {e}");
    }
    // Off the trained resolution (24×24 for a 16×16 model): positions rescaled by pos_base.
    let dir_tmp = scratch("parity-24");
    let dir = dir_tmp.path().to_path_buf();
    let file = dir.join("p2.safetensors");
    let imp = import_pixart(&weights("p2-rgb"), &config("p2-rgb"), &file, OPTS).unwrap();
    let model = load(&imp.model, &file, &dev);
    let (ours, theirs) = outputs(("p2-rgb", "io-24.safetensors"), &imp.model, &model, &dev);
    let e = rel_err(&ours, &theirs);
    println!("p2-rgb at 24×24: relative error {e:.2e}");
    assert!(e <= TOLERANCE, "24×24: relative error {e}");
}

/// Each numeric option the import sets is needed: set back to freezeframe's default, the same
/// weights miss diffusers' output by more than the tolerance.
#[test]
fn each_pixart_option_is_needed_for_parity() {
    let dev = Device::flex();
    let dir_tmp = scratch("options");
    let dir = dir_tmp.path().to_path_buf();
    for (name, io, change) in [
        ("p2-rgb", "io.safetensors", "mlp_act"),
        ("p2-rgb", "io.safetensors", "caption_act"),
        ("p4-sigma", "io.safetensors", "pos_scale"),
        ("p2-rgb", "io-24.safetensors", "pos_base"),
    ] {
        let file = dir.join(format!("{name}-{change}.safetensors"));
        let imp = import_pixart(&weights(name), &config(name), &file, OPTS).unwrap();
        let mut cfg = imp.model.clone();
        match change {
            "mlp_act" => cfg.mlp_act = freezeframe_model::Activation::Gelu,
            "caption_act" => cfg.caption_act = freezeframe_model::Activation::Gelu,
            "pos_scale" => cfg.pos_scale = 1.0,
            _ => cfg.pos_base = None,
        }
        let model = load(&cfg, &file, &dev);
        let (ours, theirs) = outputs((name, io), &cfg, &model, &dev);
        let e = rel_err(&ours, &theirs);
        println!("{name} {io} with freezeframe's default {change}: relative error {e:.2e}");
        assert!(e > TOLERANCE, "{change} made no difference ({e})");
    }
}

/// Rewrites the fixture with one tensor's rows rolled by one: a wrong mapping of that tensor.
fn with_rolled(src_path: &Path, victim: &str, out: &Path) {
    let mut src = Source::open(src_path).unwrap();
    let tensors = src.shapes();
    write_f32(out, ("format", "pt"), &tensors, |n| {
        let mut v = src.read_f32(n).unwrap();
        if n == victim {
            let rows = src.info(n).unwrap().shape[0];
            let row = v.len() / rows;
            v.rotate_left(if rows > 1 { row } else { 1 });
        }
        Ok(v)
    })
    .unwrap();
}

/// The parity test catches any single wrong mapping: every tensor of the fixture, permuted on
/// its own, moves the output far past the tolerance.
#[test]
fn permuting_any_one_tensor_breaks_parity() {
    let dev = Device::flex();
    let name = "p2-rgb";
    let dir_tmp = scratch("permuted");
    let dir = dir_tmp.path().to_path_buf();
    let names = Source::open(&weights(name)).unwrap().names();
    let mut weakest = (f32::INFINITY, String::new());
    // A key bias adds q·b to every score of a query, which softmax ignores: no output can
    // see it (a 1.4e-6 change here, the float noise), so its place is checked directly.
    let (keys, others): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|n| n.ends_with("to_k.bias"));
    let imported = dir.join("direct.safetensors");
    import_pixart(&weights(name), &config(name), &imported, OPTS).unwrap();
    let (mut ours, mut theirs) = (
        Source::open(&imported).unwrap(),
        Source::open(&weights(name)).unwrap(),
    );
    for k in &keys {
        let i: usize = k.split('.').nth(1).unwrap().parse().unwrap();
        let fused = if k.contains("attn1") {
            format!("blocks.{i}.attn.qkv.bias")
        } else {
            format!("blocks.{i}.cross_attn.kv_linear.bias")
        };
        let b = theirs.read_f32(k).unwrap();
        let at = if k.contains("attn1") { b.len() } else { 0 };
        assert_eq!(
            ours.read_f32(&fused).unwrap()[at..at + b.len()],
            b[..],
            "{k}"
        );
    }
    for victim in others {
        let bad = dir.join("diffusion_pytorch_model.safetensors");
        let _ = std::fs::remove_file(&bad);
        with_rolled(&weights(name), victim, &bad);
        let e = imported_error(name, &bad, &dir, &dev);
        if e < weakest.0 {
            weakest = (e, victim.clone());
        }
    }
    println!(
        "{} tensors; smallest error from one permuted: {:.2e} ({})",
        names.len() - keys.len(),
        weakest.0,
        weakest.1
    );
    assert!(
        weakest.0 > 1e-3,
        "{} permuted gives only {}",
        weakest.1,
        weakest.0
    );
}

#[test]
fn export_gives_back_the_same_bytes() {
    let name = "p2-rgb";
    let dir_tmp = scratch("roundtrip");
    let dir = dir_tmp.path().to_path_buf();
    let ours = dir.join("image.safetensors");
    let imp = import_pixart(&weights(name), &config(name), &ours, OPTS).unwrap();
    let out = dir.join("exported");
    let ex = export_pixart(&imp.model, &ours, &out).unwrap();
    assert_eq!(
        ex.skipped,
        vec![freezeframe_interop::NULL_CAPTION.to_string()]
    );
    assert_eq!(
        std::fs::read(&ex.weights).unwrap(),
        std::fs::read(weights(name)).unwrap(),
        "import → export is not byte-identical"
    );
    // The exported config describes the same model.
    let back = freezeframe_interop::PixartConfig::load(&ex.config).unwrap();
    let orig = freezeframe_interop::PixartConfig::load(&config(name)).unwrap();
    assert_eq!(
        back.stdit_config(256, 12).unwrap(),
        orig.stdit_config(256, 12).unwrap()
    );
    // And never replaces what is there.
    let e = export_pixart(&imp.model, &ours, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists"), "{e}");
}

#[test]
fn bad_inputs_are_named_errors() {
    let dir_tmp = scratch("bad");
    let dir = dir_tmp.path().to_path_buf();
    let name = "p2-rgb";
    let out = |f: &str| dir.join(f);
    // A safetensors file that is not PixArt: freezeframe's own checkpoint format.
    let imported = out("ours.safetensors");
    import_pixart(&weights(name), &config(name), &imported, OPTS).unwrap();
    let e = import_pixart(&imported, &config(name), &out("a.safetensors"), OPTS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a diffusers PixArt"), "{e}");
    // A truncated file.
    let bytes = std::fs::read(weights(name)).unwrap();
    std::fs::write(out("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = import_pixart(
        &out("cut.safetensors"),
        &config(name),
        &out("b.safetensors"),
        OPTS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("truncated") && e.contains("cut.safetensors"),
        "{e}"
    );
    // A config that does not match the weights: the other fixture's.
    let e = import_pixart(
        &weights(name),
        &config("p4-sigma"),
        &out("c.safetensors"),
        OPTS,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("shape") || e.contains("missing"), "{e}");
    // An unknown activation, and other settings freezeframe cannot compute.
    let text = std::fs::read_to_string(config(name)).unwrap();
    for (from, to, expect) in [
        ("\"gelu-approximate\"", "\"geglu\"", "activation_fn"),
        ("\"ada_norm_single\"", "\"ada_norm_zero\"", "norm_type"),
        ("\"num_layers\": 2", "\"num_layers\": \"two\"", "num_layers"),
    ] {
        let cfg = out("config.json");
        std::fs::write(&cfg, text.replace(from, to)).unwrap();
        let e = import_pixart(&weights(name), &cfg, &out("d.safetensors"), OPTS)
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{expect}: {e}");
    }
    // A partial file left by an interrupted run is the user's: an error, and it stays.
    let leftover = out("e.safetensors.partial");
    std::fs::write(&leftover, b"mine").unwrap();
    let e = import_pixart(&weights(name), &config(name), &out("e.safetensors"), OPTS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("interrupted"), "{e}");
    assert_eq!(std::fs::read(&leftover).unwrap(), b"mine");
    // A config with sizes no model has, and a caption length past the limit.
    let cfg = out("config.json");
    std::fs::write(&cfg, text.replace("\"patch_size\": 2", "\"patch_size\": 0")).unwrap();
    let e = import_pixart(&weights(name), &cfg, &out("f.safetensors"), OPTS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("patch_size = 0"), "{e}");
    let long = ImportOptions {
        text_len: 1 << 40,
        seed: 0,
    };
    let e = import_pixart(&weights(name), &config(name), &out("f.safetensors"), long)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--text-len"), "{e}");
    // No partial outputs were left behind by any failure.
    for f in ["a", "b", "c", "d", "f"] {
        assert!(!out(&format!("{f}.safetensors")).exists(), "{f}");
    }
}

/// An imported PixArt inflates into a video model that, frame by frame, is the image model.
#[test]
fn imported_weights_inflate_to_a_video_model_equal_per_frame() {
    let dev = Device::flex();
    let name = "p2-rgb";
    let dir_tmp = scratch("inflate");
    let dir = dir_tmp.path().to_path_buf();
    let file = dir.join("image.safetensors");
    let imp = import_pixart(&weights(name), &config(name), &file, OPTS).unwrap();
    let image = load(&imp.model, &file, &dev);
    let mut vcfg = imp.model.clone();
    vcfg.frames = 4;
    // The inflation: fresh temporal attention with its output projection at zero.
    let video = freezeframe_model::init::initialize(Stdit::new(&vcfg, &dev), 7);
    let (video, missing) = load_model_partial(video, &file).unwrap();
    assert!(missing.iter().all(|m| m.contains(".attn_temp.")));
    let (b, t, c, s) = (2, 4, vcfg.channels, vcfg.height);
    let x = Tensor::<1>::from_floats(
        (0..b * t * c * s * s)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect::<Vec<_>>()
            .as_slice(),
        &dev,
    )
    .reshape([b, t, c, s, s]);
    let caption = CaptionBatch {
        tokens: Tensor::<1>::from_floats(
            (0..b * 12 * vcfg.text_dim)
                .map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0)
                .collect::<Vec<_>>()
                .as_slice(),
            &dev,
        )
        .reshape([b, 12, vcfg.text_dim]),
        pad: Tensor::<2, Bool>::full([b, 12], false, &dev),
        null: Tensor::<1, Bool>::full([b], false, &dev),
    };
    let tt = Tensor::<1>::from_floats([0.7, 0.2], &dev);
    let vid = video.forward(x.clone(), tt.clone(), &caption);
    for f in 0..t {
        let frame = x.clone().narrow(1, f, 1);
        let img = image.forward(frame, tt.clone(), &caption);
        let d = (vid.clone().narrow(1, f, 1) - img)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(d < 1e-5, "frame {f}: {d}");
    }
}
