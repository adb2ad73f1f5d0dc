//! The grid through the cluster contract: plan → run-cell by index (shuffled, one task killed
//! and run again) → report gives the figures `ablate` gives; bad indices, foreign manifests and
//! hand-edited cells are refused with nothing lost.
mod common;

use common::{assert_untested, complete, figures, opts, quick, temp};
use freezeframe_lab::cluster::{Task, plan, read_manifest, report, run_task, slurm_scripts};
use freezeframe_lab::grid::{CellOptions, CellOutcome};
use freezeframe_lab::study::run_study;
use freezeframe_lab::{AblationConfig, Meta};

fn quiet() -> CellOptions {
    CellOptions::default()
}

fn task(index: usize, cells_per_task: usize) -> Task {
    Task {
        index,
        cells_per_task,
        manifest: None,
    }
}

#[test]
fn plan_run_cell_in_any_order_and_report_match_ablate() {
    let (ab, base) = quick();
    let whole_tmp = temp("cluster-whole");
    let whole = whole_tmp.path().join("out");
    let reference = complete(run_study(&ab, base.clone(), &whole, &opts()).expect("ablate"));

    let out_tmp = temp("cluster");
    let out = out_tmp.path().join("out");
    let m = plan(&ab, base.clone(), &out, false).expect("plan");
    assert_eq!(m.cells.len(), 4);
    // Planning again is harmless: the same cells and image weights.
    let again = plan(&ab, base, &out, false).expect("plan again");
    assert!(again.cells == m.cells && again.image.hash == m.image.hash);

    // Task 2 is killed half-way (a checkpoint at step 3 of 6) ...
    let cut = CellOptions {
        stop_after: Some(3),
        ..quiet()
    };
    let first = run_task(&out, &task(2, 1), &cut).expect("task 2, killed");
    assert_eq!(first[0].1, CellOutcome::Interrupted);
    // ... a report needs a finished cell; with one, it decides nothing ...
    let e = report(&out, &Meta::default())
        .err()
        .expect("a report with no finished cell must be refused");
    assert!(e.to_string().contains("none of the study's 4 runs"), "{e}");
    run_task(&out, &task(0, 1), &quiet()).expect("task 0");
    let partial = complete(report(&out, &Meta::default()).expect("partial report"));
    assert_untested(&partial);
    // ... and the tasks run in shuffled order, task 2 again (resumed) among them.
    for i in [3, 2, 0, 1] {
        let done = run_task(&out, &task(i, 1), &quiet()).expect("task");
        assert_ne!(done[0].1, CellOutcome::Interrupted);
    }
    // A task run twice finds its cell finished.
    assert_eq!(
        run_task(&out, &task(0, 1), &quiet()).expect("task 0 again")[0].1,
        CellOutcome::AlreadyDone
    );
    let merged = complete(report(&out, &Meta::default()).expect("report"));
    assert_eq!(figures(&merged), figures(&reference));
    assert_eq!(
        merged
            .verdicts
            .iter()
            .map(|v| v.outcome)
            .collect::<Vec<_>>(),
        reference
            .verdicts
            .iter()
            .map(|v| v.outcome)
            .collect::<Vec<_>>()
    );
    assert!(out.join("report.html").is_file());
}

#[test]
fn bad_indices_foreign_manifests_and_edited_cells_are_refused() {
    let (ab, base) = quick();
    let out_tmp = temp("cluster-bad");
    let out = out_tmp.path().join("out");
    let m = plan(&ab, base.clone(), &out, false).expect("plan");

    // Index out of range, alone and with packed tasks.
    let e = run_task(&out, &task(4, 1), &quiet())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("task index 4 is out of range") && e.contains("4 cells"),
        "{e}"
    );
    let e = run_task(&out, &task(2, 2), &quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range") && e.contains("0..=1"), "{e}");

    // A manifest copied from another study's folder.
    let mut other: AblationConfig = ab.clone();
    other.name = "other-study".into();
    let elsewhere_tmp = temp("cluster-other");
    let elsewhere = elsewhere_tmp.path().join("out");
    plan(&other, base.clone(), &elsewhere, false).expect("plan the other study");
    let own = std::fs::read(out.join("manifest.json")).expect("manifest");
    std::fs::copy(elsewhere.join("manifest.json"), out.join("manifest.json")).expect("copy");
    let e = run_task(&out, &task(0, 1), &quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("other-study") && e.contains(&ab.name), "{e}");
    std::fs::write(out.join("manifest.json"), &own).expect("restore");
    assert!(read_manifest(&out).expect("own manifest").cells == m.cells);

    // A cell folder edited by hand: its config no longer the manifest's.
    run_task(
        &out,
        &task(1, 1),
        &CellOptions {
            stop_after: Some(3),
            ..quiet()
        },
    )
    .expect("task 1, killed");
    let run = m.cells[1].run();
    let cfg = std::fs::read_to_string(run.config_path()).expect("cell config");
    let edited = cfg.replace("lr = 0.001", "lr = 0.002");
    assert_ne!(edited, cfg, "the test must change the config");
    std::fs::write(run.config_path(), &edited).expect("edit");
    let e = run_task(&out, &task(1, 1), &quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.toml") || e.contains("lr"), "{e}");
    // Nothing of the cell was removed.
    assert_eq!(
        std::fs::read_to_string(run.config_path()).expect("kept"),
        edited
    );
    assert!(
        run.latest_checkpoint().is_some(),
        "the cell's checkpoint was lost"
    );

    // The sbatch scripts: an array over the four cells, the report after it.
    let s = slurm_scripts(
        &m,
        &out,
        &freezeframe_lab::cluster::SlurmOptions {
            partition: Some("debug".into()),
            max_parallel: Some(2),
            cells_per_task: 1,
            binary: "/opt/ff/freezeframe".into(),
            ..Default::default()
        },
    )
    .expect("scripts");
    let array = std::fs::read_to_string(&s.array).expect("array script");
    assert!(array.contains("#SBATCH --array=0-3%2") && array.contains("--partition=debug"));
    assert!(array.contains("ablate run-cell --out"), "{array}");
    let submit = std::fs::read_to_string(&s.submit).expect("submit script");
    assert!(submit.contains("--dependency=afterany:$array"), "{submit}");
    assert!(
        array.contains(&format!("--manifest {}", m.fingerprint())),
        "{array}"
    );
    // A task submitted for another grid (the study planned again since) is refused.
    let stale = Task {
        manifest: Some("0000000000000000".into()),
        ..task(0, 1)
    };
    let e = run_task(&out, &stale, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("grid changed since this task was submitted"),
        "{e}"
    );
}
