//! Prints the README's table of motion readings on videos whose motion is known
//! (`cargo run --release -p freezeframe-eval --example motion_cases`).
use freezeframe_data::WorldConfig;
use freezeframe_eval::cases::cases;
use freezeframe_eval::motion::{dynamic_threshold, video_motion};
use freezeframe_eval::read_video;

fn main() {
    let world = WorldConfig::default();
    println!(
        "| case (32×32, 8 frames, 8 fps; threshold {:.2} px) | truth px/frame | tracked net speed | VBench flow score | VBench dynamic | trajectory score | robust dynamic |",
        dynamic_threshold(32, 32, 8.0)
    );
    println!("|---|---|---|---|---|---|---|");
    for c in cases() {
        let m = video_motion(&c.video, 8.0);
        let r = read_video(&c.video, &world);
        let net = r.track.map_or(f32::NAN, |k| k.net_speed);
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {} | {:.2} | {} |",
            c.name,
            c.net_speed,
            net,
            m.score,
            m.dynamic as u8,
            m.robust_score,
            m.robust_dynamic as u8
        );
    }
}
