//! The lab end to end at the smallest size: resume after a run killed mid-grid, the image
//! pre-training cache, and the report's contents.
mod common;

use std::path::{Path, PathBuf};

use common::{assert_untested, complete, figures, opts, quick, report_only, temp};
use freezeframe_lab::demo::demo_config;
use freezeframe_lab::study::{StudyOptions, StudyOutcome, run_study};
use freezeframe_lab::verdict::Outcome;

#[test]
fn a_grid_killed_mid_way_resumes_to_the_uninterrupted_results() {
    let (ab, base) = quick();
    let whole_tmp = temp("whole");
    let whole = whole_tmp.path().join("out");
    let reference = complete(run_study(&ab, base.clone(), &whole, &opts()).expect("grid"));
    assert_eq!(reference.runs.len(), 4);

    let cut_tmp = temp("cut");
    let cut = cut_tmp.path().join("out");
    // One run finishes, then the next is stopped half-way (a checkpoint at step 3 of 6).
    let first = run_study(
        &ab,
        base.clone(),
        &cut,
        &StudyOptions {
            max_cells: Some(1),
            ..opts()
        },
    )
    .expect("first call");
    assert!(matches!(
        first,
        StudyOutcome::Partial {
            done: 1,
            total: 4,
            ..
        }
    ));
    // `--report-only`: the report of what has finished so far — that one run, with the figures
    // the uninterrupted grid gave it, the other three named, and no claim decided.
    let partial = complete(
        run_study(&ab, base.clone(), &cut, &report_only()).expect("report of the finished runs"),
    );
    assert_eq!(figures(&partial), figures(&reference)[..1]);
    assert!(
        partial
            .meta
            .left_out
            .iter()
            .any(|l| l.starts_with("3 of the study's 4 runs had not finished")),
        "{:?}",
        partial.meta.left_out
    );
    assert_untested(&partial);
    assert!(cut.join("report.html").is_file());
    let second = run_study(
        &ab,
        base.clone(),
        &cut,
        &StudyOptions {
            max_cells: Some(1),
            stop_after: Some(3),
            ..opts()
        },
    )
    .expect("second call");
    assert!(matches!(second, StudyOutcome::Partial { done: 1, .. }));
    let finished: Vec<PathBuf> = std::fs::read_dir(cut.join("runs"))
        .expect("runs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("ablate.json").is_file())
        .collect();
    assert_eq!(finished.len(), 1);
    // The report of a grid half way names the interrupted run's checkpoint and what is left.
    let halfway =
        complete(run_study(&ab, base.clone(), &cut, &report_only()).expect("report half way"));
    let note = halfway
        .meta
        .left_out
        .iter()
        .find(|l| l.starts_with("3 of the study's 4 runs had not finished"))
        .expect("the unfinished runs' line");
    assert!(note.contains("(checkpoint at step 3 of 6)"), "{note}");
    assert!(note.contains("what is left needs about"), "{note}");
    let marker = std::fs::read(finished[0].join("ablate.json")).expect("marker");
    let resumed = complete(run_study(&ab, base, &cut, &opts()).expect("third call"));
    assert_eq!(
        std::fs::read(finished[0].join("ablate.json")).expect("marker"),
        marker,
        "the finished run was repeated"
    );
    assert_eq!(figures(&resumed), figures(&reference));
}

fn image_config(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("image.toml");
    std::fs::write(
        &path,
        r#"name = "image"
plan = "scratch"
[model]
preset = "small"
hidden = 96
depth = 4
heads = 4
patch = 2
text_dim = 32
[data]
size = 16
image_mode = true
object_size = [3.0, 3.0]
[train]
batch_size = 2
steps = 2
warmup = 1
[log]
val_clips = 2
[sample]
prompts = ["a red circle"]
n = 1
steps = 2
"#,
    )
    .expect("write");
    path
}

#[test]
fn the_image_pretraining_is_cached_and_shared_by_every_strategy() {
    let (mut ab, base) = quick();
    ab.seeds = vec![0];
    let out_tmp = temp("image");
    let out = out_tmp.path().join("out");
    let cfg_dir_tmp = temp("image-cfg");
    let cfg_dir = cfg_dir_tmp.path().join("out");
    ab.image.from = None;
    ab.image.pretrain = Some(image_config(&cfg_dir));
    let first = run_study(&ab, base.clone(), &out, &opts()).expect("first");
    let StudyOutcome::Complete { image, results, .. } = first else {
        panic!("incomplete")
    };
    assert!(!image.cached, "the first study trains the image model");
    assert!(image.path.starts_with(&out) && image.path.join("config.toml").is_file());
    for r in &results.runs {
        let cfg = std::fs::read_to_string(out.join(&r.run).join("config.toml")).expect("config");
        assert!(cfg.contains(&*image.path.to_string_lossy()), "{cfg}");
    }
    let metrics = std::fs::read(image.path.join("metrics.jsonl")).expect("metrics");
    // A second study with more seeds reuses the image run as it is.
    ab.seeds = vec![0, 1];
    let second = run_study(&ab, base, &out, &opts()).expect("second");
    let StudyOutcome::Complete { image: again, .. } = second else {
        panic!("incomplete")
    };
    assert!(again.cached && again.path == image.path);
    assert_eq!(
        std::fs::read(image.path.join("metrics.jsonl")).expect("metrics"),
        metrics
    );
}

#[test]
fn the_report_has_every_strategy_every_claim_and_no_nan() {
    let (ab, base, left_out) = demo_config(true).expect("demo config");
    let out_tmp = temp("report");
    let out = out_tmp.path().join("out");
    let o = StudyOptions {
        meta: freezeframe_lab::Meta {
            quick: true,
            left_out,
            ..Default::default()
        },
        ..opts()
    };
    let results = complete(run_study(&ab, base, &out, &o).expect("study"));
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    let html = std::fs::read_to_string(out.join("report.html")).expect("html");
    for s in &ab.strategies {
        assert!(md.contains(&format!("| `{s}` |")), "row {s} missing");
    }
    for c in &ab.claims {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {}. ", c.id)))
            .unwrap_or_else(|| panic!("claim {} missing", c.id));
        assert!(
            ["supported", "contradicted", "inconclusive", "not tested"]
                .iter()
                .any(|w| line.contains(&format!("**{w}**"))),
            "{line}"
        );
    }
    assert_eq!(results.verdicts.len(), ab.claims.len());
    for text in [&md, &html] {
        assert!(
            !text.contains("NaN") && !text.contains("inf "),
            "NaN printed"
        );
    }
    assert!(md.contains("QUICK SMOKE TEST") && md.contains("Left out"));
    // Which image weights every run started from, by content.
    assert!(
        md.contains("Image weights (every run's start)") && md.contains("content hash (FNV-1a)"),
        "{md}"
    );
    // Self-contained: charts inline, GIFs inline, nothing fetched.
    assert!(html.contains("<svg") && html.contains("data:image/gif;base64,"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("valid JSON");
    assert_eq!(
        json["runs"].as_array().map(Vec::len),
        Some(ab.strategies.len() * ab.seeds.len())
    );
    // Every verdict says how it fares with one seed left out (two seeds here: it cannot).
    assert!(md.contains("| leave one seed out |"), "{md}");
    // Every run of this build recorded its CPU time (where the platform tells it), and the
    // header sums it.
    if cfg!(unix) {
        assert_eq!(
            json["cpu_runs"].as_u64(),
            json["runs"].as_array().map(|r| r.len() as u64)
        );
        let cpu = json["cpu_seconds"].as_f64().expect("cpu_seconds");
        assert!(cpu > 0.0, "{json}");
        let line = format!("CPU time {:.1} min over the last attempts of", cpu / 60.0);
        assert!(md.contains(&line), "{md}");
    }
}

#[test]
fn a_report_of_a_partial_grid_decides_no_claim_whose_runs_are_missing() {
    // Three of four runs finished: `full` has both seeds, `temporal-only` one. Claim 1 compares
    // the two, so it must wait for the missing run rather than be decided on what is there.
    let (ab, base) = quick();
    let dir_tmp = temp("partial");
    let dir = dir_tmp.path().join("out");
    let first = run_study(
        &ab,
        base.clone(),
        &dir,
        &StudyOptions {
            max_cells: Some(3),
            ..opts()
        },
    )
    .expect("three runs");
    assert!(matches!(first, StudyOutcome::Partial { done: 3, .. }));
    let partial =
        complete(run_study(&ab, base, &dir, &report_only()).expect("report of the finished runs"));
    assert_eq!(partial.runs.len(), 3);
    let claim1 = partial
        .verdicts
        .iter()
        .find(|v| v.claim.id == "1")
        .expect("claim 1");
    assert_eq!(claim1.outcome, Outcome::Untested);
    assert!(
        claim1
            .note
            .as_deref()
            .is_some_and(|n| n.contains("temporal-only seed 1")),
        "{:?}",
        claim1.note
    );
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("had not finished"), "{md}");
}

#[test]
fn a_finished_run_kept_without_checkpoints_reports_and_is_never_trained_again() {
    // What `tools/study/keep-finished.sh` keeps of a finished run (marker, evaluation, logs, GIFs;
    // no checkpoints) must read as finished; when it cannot (the study's [eval] changed), the
    // run must be refused by name rather than trained again from step 0 over its own log.
    let (ab, base) = quick();
    let dir_tmp = temp("kept");
    let dir = dir_tmp.path().join("out");
    let first = run_study(
        &ab,
        base.clone(),
        &dir,
        &StudyOptions {
            max_cells: Some(1),
            ..opts()
        },
    )
    .expect("one run");
    assert!(matches!(first, StudyOutcome::Partial { done: 1, .. }));
    let run = std::fs::read_dir(dir.join("runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("ablate.json").is_file())
        .expect("the finished run");
    std::fs::remove_dir_all(run.join("checkpoints")).expect("drop checkpoints");
    let log = std::fs::read(run.join("metrics.jsonl")).expect("log");
    let kept = complete(run_study(&ab, base.clone(), &dir, &report_only()).expect("report"));
    assert_eq!(kept.runs.len(), 1);

    let mut other_eval = ab.clone();
    other_eval.eval.n += 1;
    let e = run_study(
        &other_eval,
        base.clone(),
        &dir,
        &StudyOptions {
            max_cells: Some(1),
            ..opts()
        },
    )
    .err()
    .expect("a kept run evaluated with other settings is refused")
    .to_string();
    let name = run
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(e.contains(&name) && e.contains("no checkpoint"), "{e}");
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).expect("log"), log);

    // A config edit names every cell anew: the kept run is listed as a stray, not silently lost.
    let mut edited = base;
    edited.train.lr *= 0.5;
    let prepared =
        freezeframe_lab::study::prepare(&ab, edited, &dir, false).expect("prepare the edited grid");
    assert_eq!(prepared.strays, vec![name]);
}
