//! Diagnostic: how much each branch of a trained run's model matters, by the validation loss per
//! noise level with that branch's output projection zeroed.
//! `cargo run --release -p freezeframe-train --example ablate_branches -- RUN_DIR`
use burn::tensor::Device;
use freezeframe_model::paths::map_values;
use freezeframe_train::Run;
use freezeframe_train::dataset::Dataset;
use freezeframe_train::sample::load_run;
use freezeframe_train::validate::val_loss;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: ablate_branches RUN_DIR")?;
    let device = Device::flex();
    let loaded = load_run(&Run::new(dir), &device)?;
    let data = Dataset::open(&loaded.config.data)?;
    let rows: [(&str, &[&str]); 4] = [
        ("intact", &[]),
        ("no spatial attention", &[".attn.proj."]),
        // The temporal position gates too (`gated` wiring): they are the temporal branch's.
        (
            "no temporal branch",
            &[".attn_temp.proj.", ".attn_temp.pos_gate"],
        ),
        ("no cross-attention", &[".cross_attn.proj."]),
    ];
    for (label, zero) in rows {
        let model = map_values(loaded.model.clone(), |path, shape, _| {
            zero.iter()
                .any(|z| path.contains(z))
                .then(|| vec![0.0; shape.iter().product()])
        });
        let v = val_loss(&model, &data, &loaded.encoder, 16, &device)?;
        let by_t: Vec<String> = v
            .by_t
            .iter()
            .map(|(t, l)| format!("{t:.2}:{l:.3}"))
            .collect();
        println!("{label:<24} mean {:.4}  {}", v.mean, by_t.join(" "));
    }
    Ok(())
}
