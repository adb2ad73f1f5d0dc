//! The command line as a user runs it (the real binary; `cargo test` builds it for this file).
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn ff(args: &[&str]) -> (bool, String, String) {
    ff_in(Path::new("."), args)
}

/// The binary run from the working directory `cwd`.
fn ff_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    outcome(
        Command::new(env!("CARGO_BIN_EXE_freezeframe"))
            .current_dir(cwd)
            .args(args),
    )
}

/// Runs `cmd`: (success, stdout, stderr).
fn outcome(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn plan_explain_prints_the_table_and_rejects_an_invalid_plan() {
    let (ok, out, _) = ff(&[
        "plan", "explain", "--plan", "staged", "--model", "tiny", "--steps", "100",
    ]);
    assert!(ok);
    assert!(
        out.contains("temporal [0–50)") && out.contains("all [50–100)"),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("ff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "init = \"image\"\n[groups]\nt = [\"blocks.*.temporal.**\"]\n[[phase]]\ntrain = [\"t\"]\n",
    )
    .unwrap();
    let (ok, _, err) = ff(&[
        "plan",
        "explain",
        "--plan",
        bad.to_str().unwrap(),
        "--model",
        "tiny",
    ]);
    assert!(!ok, "an invalid plan must exit non-zero");
    assert!(
        err.contains("bad.toml")
            && err.contains("groups.t")
            && err.contains("matches no parameter"),
        "{err}"
    );

    let (ok, out, _) = ff(&["plan", "list"]);
    assert!(ok && out.lines().count() == 9, "{out}");
    // Passed: nothing to look at, so nothing left in the temp folder.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_and_model_commands_run() {
    let (ok, out, _) = ff(&["model", "params", "--preset", "tiny"]);
    assert!(
        ok && out.contains("blocks.1.attn_temp.proj.weight") && out.contains("63056"),
        "{out}"
    );
    let dir = std::env::temp_dir().join(format!("ff-cli-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gif = dir.join("p.gif");
    let (ok, _, err) = ff(&[
        "data",
        "preview",
        "--n",
        "4",
        "--out",
        gif.to_str().unwrap(),
    ]);
    assert!(ok && gif.is_file(), "{err}");
    let (ok, out, err) = ff(&["eval", "--videos", gif.to_str().unwrap()]);
    assert!(
        ok && out.contains("1 videos scored") && out.contains("dynamic_degree"),
        "{out}{err}"
    );
    // A one-frame GIF is a still image: skipped and counted, not scored as a static video.
    let still = dir.join("stills");
    std::fs::create_dir_all(&still).unwrap();
    let frame = freezeframe_data::Video::zeros(1, 3, 16, 16);
    freezeframe_data::gif_out::write_grid(&still.join("a.gif"), &[frame], 1, 1, 10).unwrap();
    std::fs::copy(&gif, still.join("b.gif")).unwrap();
    let (ok, out, err) = ff(&["eval", "--videos", still.to_str().unwrap()]);
    assert!(
        ok && out.contains("1 videos scored (1 skipped)"),
        "{out}{err}"
    );
    let (ok, _, err) = ff(&[
        "data",
        "preview",
        "--cache",
        dir.join("nope").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("index.json"),
        "a missing cache is an error naming the file: {err}"
    );
    // Passed: nothing to look at, so nothing left in the temp folder.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn paths_in_a_config_are_relative_to_the_config_file_from_any_working_directory() {
    let dir = std::env::temp_dir().join(format!("ff-cli-paths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("exp/plans")).unwrap();
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    std::fs::write(
        dir.join("exp/plans/mine.toml"),
        "init = \"scratch\"\n[[phase]]\ntrain = [\"all\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("exp/run.toml"),
        "name = \"p\"\nplan = \"plans/mine.toml\"\n[model]\npreset = \"tiny\"\n\
         [data]\nframes = 2\nsize = 16\nobject_size = [2.0, 3.0]\nval_clips = 2\n\
         [train]\nbatch_size = 1\nsteps = 1\nwarmup = 1\n[log]\nval_clips = 1\n\
         [sample]\nprompts = [\"a red circle stays still\"]\nn = 1\nsteps = 1\n",
    )
    .unwrap();
    // Run from a sibling folder, naming the config by a relative path.
    let cwd = dir.join("elsewhere");
    let (ok, _, err) = ff_in(&cwd, &["train", "--config", "../exp/run.toml"]);
    assert!(ok, "{err}");
    // out_dir's default `runs` is next to the config, not in the working directory.
    let run = dir.join("exp/runs/p");
    assert!(run.join("config.toml").is_file(), "{err}");
    assert!(!cwd.join("runs").exists());
    // The saved config's paths are absolute, so the run resumes and evaluates from anywhere.
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains(&format!(
            "{}",
            std::fs::canonicalize(dir.join("exp/plans/mine.toml"))
                .unwrap()
                .display()
        )),
        "{saved}"
    );
    let (ok, out, err) = ff_in(&dir, &["train", "--config", "exp/run.toml", "--resume"]);
    assert!(ok && out.contains("already complete"), "{out}{err}");
    // --resume on a run that does not exist is an error, not a fresh start at step 0.
    let moved = dir.join("elsewhere/run.toml");
    std::fs::copy(dir.join("exp/run.toml"), &moved).unwrap();
    let (ok, _, err) = ff_in(
        &dir,
        &["train", "--config", "elsewhere/run.toml", "--resume"],
    );
    assert!(!ok && err.contains("no run at"), "{err}");
    assert!(!dir.join("elsewhere/runs").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_train_step_times_the_step_a_run_config_takes() {
    let dir = std::env::temp_dir().join(format!("ff-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("img.toml");
    std::fs::write(
        &config,
        "name = \"img\"\nplan = \"temporal-only\"\n[model]\npreset = \"tiny\"\n[data]\nframes = 4\nsize = 16\nobject_size = [2.0, 3.0]\nspeeds = { slow = 0.5, fast = 1.0 }\n[train]\nbatch_size = 3\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (ok, out, err) = ff(&[
        "bench",
        "train-step",
        "--config",
        c,
        "--steps",
        "1",
        "--warmup",
        "0",
    ]);
    // The config's name, plan and batch size, and the plan's frozen set (temporal only).
    assert!(
        ok && out.contains("model=img backend=flex plan=temporal-only") && out.contains("batch=3"),
        "{out}{err}"
    );
    let (ok, out, _) = ff(&[
        "bench",
        "train-step",
        "--config",
        c,
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch",
        "2",
    ]);
    assert!(ok && out.contains("batch=2"), "{out}");
    let (ok, _, err) = ff(&["bench", "train-step", "--config", c, "--preset", "tiny"]);
    assert!(!ok && err.contains("--preset"), "{err}");
    // A backend this binary was not built with is an error that says how to build it.
    if !freezeframe_train::runtime::GPU_BUILT {
        let (ok, _, err) = ff(&[
            "bench",
            "train-step",
            "--config",
            c,
            "--steps",
            "1",
            "--backend",
            "wgpu",
        ]);
        assert!(!ok && err.contains("--features gpu"), "{err}");
    }
    let (ok, _, err) = ff(&["bench", "train-step", "--config", c, "--backend", "cuda"]);
    assert!(!ok && err.contains("flex or wgpu"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_quick_runs_the_study_end_to_end_resumes_and_never_writes_over_a_users_file() {
    let dir = std::env::temp_dir().join(format!("ff-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_dir = dir.to_str().unwrap();
    // Run from outside the checkout: the report still names the commit the binary was built from.
    let (ok, out, err) = ff_in(&dir, &["demo", "--quick", "--out", out_dir]);
    assert!(ok, "{out}{err}");
    let study = dir.join("demo-quick");
    for f in ["report.html", "report.md", "results.json"] {
        assert!(study.join(f).is_file(), "{f} missing: {out}");
    }
    assert!(
        out.contains("report: ") && out.contains("claim 1 ("),
        "{out}"
    );
    let md = std::fs::read_to_string(study.join("report.md")).unwrap();
    assert!(
        md.starts_with("# ") && md.contains("QUICK SMOKE TEST"),
        "{md}"
    );
    let commit = format!("report written by commit `{}`", env!("FREEZEFRAME_COMMIT"));
    assert!(md.contains(&commit), "{commit} not in {md}");
    let runs: Vec<_> = std::fs::read_dir(study.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 4, "2 strategies × 2 seeds");
    check_in_browser(&study.join("report.html"), 10);
    // Every run started from the shipped image model except none (the demo has no scratch).
    for r in std::fs::read_dir(study.join("runs")).unwrap() {
        let config = std::fs::read_to_string(r.unwrap().path().join("config.toml")).unwrap();
        assert!(config.contains("shipped-image-model-"), "{config}");
    }
    // A second demo finds every run finished and only rewrites the report.
    let stamp = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let first = study
        .join("runs")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = stamp(&first.join("ablate.json"));
    // `--out-dir`, the flag's name in earlier builds, still works.
    let (ok, _, err) = ff(&["demo", "--quick", "--out-dir", out_dir]);
    assert!(ok, "{err}");
    assert_eq!(
        stamp(&first.join("ablate.json")),
        before,
        "a finished run was repeated"
    );
    // A different file where the image model goes is refused and left as it was.
    let path = std::fs::read_dir(&study)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("shipped-image-model-"))
        .unwrap();
    std::fs::write(&path, b"my notes").unwrap();
    let (ok, _, err) = ff(&["demo", "--quick", "--out", out_dir]);
    assert!(!ok && err.contains("not the shipped image model"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"my notes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ablate_reports_its_own_errors_before_anything_trains() {
    let dir = std::env::temp_dir().join(format!("ff-cli-ablate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/calibrated-full.toml"
    );
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("name = \"t\"\nbase = \"{base}\"\n{body}")).unwrap();
        p
    };
    let bad_plan = dir.join("bad-plan.toml");
    std::fs::write(
        &bad_plan,
        "init = \"image\"\n[groups]\nt = [\"blocks.*.temporal.**\"]\n[[phase]]\ntrain = [\"t\"]\n",
    )
    .unwrap();
    let cases = [
        (
            write(
                "twice.toml",
                "strategies = [\"full\", \"full\"]\nseeds = [0]\n",
            ),
            "named twice",
        ),
        (
            write("noseed.toml", "strategies = [\"full\"]\nseeds = []\n"),
            "seeds is empty",
        ),
        (
            write(
                "typo.toml",
                "strategies = [\"full\"]\nseeds = [0]\nsteps = 3\n",
            ),
            "steps",
        ),
        (
            write(
                "plan.toml",
                "strategies = [\"full\", \"bad-plan.toml\"]\nseeds = [0]\n",
            ),
            "bad-plan",
        ),
    ];
    for (config, needle) in cases {
        let out = dir.join("out");
        let (ok, _, err) = ff(&[
            "ablate",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok && err.contains(needle), "{needle}: {err}");
        assert!(
            !out.join("runs").exists(),
            "{needle}: something was trained"
        );
    }
    // Image weights that are not there: an error naming the file, and no study folder (no
    // study.json) is left behind; the same for an image pre-training config.
    for (name, image) in [
        ("noimage.toml", "[image]\nfrom = \"missing.safetensors\"\n"),
        (
            "nopretrain.toml",
            "[image]\npretrain = \"missing-image.toml\"\n",
        ),
    ] {
        let config = write(
            name,
            &format!("strategies = [\"full\"]\nseeds = [0]\n{image}"),
        );
        let out = dir.join("no-image-out");
        let (ok, _, err) = ff(&[
            "ablate",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok && err.contains("missing"), "{name}: {err}");
        assert!(!out.exists(), "{name}: a study folder was left behind");
    }
    // `--report-only` before any run exists: an error, and no study folder is made.
    let good = write("good.toml", "strategies = [\"full\"]\nseeds = [0]\n");
    let out = dir.join("not-yet");
    let (ok, _, err) = ff(&[
        "ablate",
        "--config",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report-only",
    ]);
    assert!(!ok && err.contains("holds no runs"), "{err}");
    assert!(!out.exists(), "--report-only made a study folder");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a report in headless Chromium (Debian's `chromium`; CI sets
/// FREEZEFRAME_REQUIRE_CHROMIUM=1, elsewhere a missing browser skips the check): the DOM must
/// hold the tables, the inline charts and `gifs` GIFs, and the screenshot must show them — the
/// GIFs are dark, so a page whose images failed to decode has far fewer dark pixels. The
/// screenshot is kept as `report-screenshot.png` in Cargo's test tmpdir.
fn check_in_browser(report: &std::path::Path, gifs: usize) {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var("FREEZEFRAME_REQUIRE_CHROMIUM").is_err(),
            "FREEZEFRAME_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("no chromium: the report was not checked in a browser");
        return;
    };
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    let dom = Command::new(browser)
        .args(flags)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.matches("<table").count() >= 5,
        "tables missing from the DOM"
    );
    assert!(
        dom.matches("<svg").count() >= 2,
        "charts missing from the DOM"
    );
    assert_eq!(
        dom.matches("class=\"gif\"").count(),
        gifs,
        "GIFs missing from the DOM"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let (w, h) = (1280usize, 4000usize);
    let ok = Command::new(browser)
        .args(flags)
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(ok.status.success() && shot.is_file(), "no screenshot");
    let gray = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(&shot)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert_eq!(gray.stdout.len(), w * h, "screenshot size");
    let dark = gray.stdout.iter().filter(|&&p| p < 60).count();
    // Each GIF is drawn 200 px wide and square; at least half of their area must be there.
    assert!(
        dark > gifs * 200 * 200 / 2,
        "only {dark} dark pixels: the GIFs did not render"
    );
    eprintln!("report screenshot: {}", shot.display());
}

#[test]
fn numeric_flags_refuse_nan_infinity_zero_and_negatives_naming_the_flag() {
    let cases: [(&[&str], &str); 12] = [
        (
            &["sample", "--run", "r", "--prompt", "p", "--cfg", "nan"],
            "--cfg",
        ),
        (
            &["sample", "--run", "r", "--prompt", "p", "--cfg", "inf"],
            "--cfg",
        ),
        (
            &["sample", "--run", "r", "--prompt", "p", "--cfg=-1"],
            "--cfg",
        ),
        (
            &["sample", "--run", "r", "--prompt", "p", "--n", "0"],
            "--n",
        ),
        (
            &["sample", "--run", "r", "--prompt", "p", "--steps", "0"],
            "--steps",
        ),
        (&["eval", "--videos", "v", "--fps", "0"], "--fps"),
        (&["eval", "--videos", "v", "--fps", "nan"], "--fps"),
        (
            &["plan", "explain", "--plan", "full", "--lr", "nan"],
            "--lr",
        ),
        (&["plan", "explain", "--plan", "full", "--lr=-1"], "--lr"),
        (&["data", "preview", "--n", "0"], "--n"),
        (&["bench", "train-step", "--batch", "0"], "--batch"),
        (&["bench", "train-step", "--steps", "0"], "--steps"),
    ];
    for (args, flag) in cases {
        let (ok, _, err) = ff(args);
        assert!(!ok && err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn ablate_with_two_jobs_runs_the_grid_in_worker_processes() {
    let dir = std::env::temp_dir().join(format!("ff-cli-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/calibrated-full.toml"
    );
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"tiny\"\nbase = \"{base}\"\nstrategies = [\"full\", \"temporal-only\"]\nseeds = [0]\n\
             [budget]\nsteps = 2\nwarmup = 1\nbatch_size = 2\nsample_n = 1\nsample_steps = 1\n[eval]\nn = 2\nsteps = 1\n"
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let (ok, stdout, err) = ff(&[
        "ablate",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(ok, "{stdout}{err}");
    assert!(
        out.join("report.html").is_file() && stdout.contains("report: "),
        "{stdout}"
    );
    let done = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("ablate.json").is_file())
        .count();
    assert_eq!(done, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A diffusers PixArt transformer (the parity fixture) imported, inflated and trained under a
/// plan, then exported back: the whole interop path as a user runs it.
#[test]
fn an_imported_pixart_trains_under_a_plan_and_exports_back() {
    let dir = std::env::temp_dir().join(format!("ff-cli-pixart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../freezeframe-interop/tests/fixtures/pixart/p2-rgb/diffusion_pytorch_model.safetensors",
    );
    let image = dir.join("pixart.safetensors");
    let (ok, out, err) = ff(&[
        "import",
        "pixart",
        "--from",
        fixture.to_str().unwrap(),
        "--out",
        image.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("mlp_act = \"gelu_tanh\"") && out.contains("[data] size = 16"),
        "{out}"
    );
    // The [model] section exactly as the import printed it.
    let model = &out[out.find("[model]").unwrap()..];
    let cfg = format!(
        "name = \"pixart-video\"\nout_dir = \"runs\"\nplan = \"temporal-only\"\n\
         [init]\nfrom = \"pixart.safetensors\"\n\
         [data]\nframes = 4\nsize = 16\nobject_size = [3.0, 3.0]\nspeeds = {{ slow = 1.0, fast = 1.4 }}\n\
         [train]\nbatch_size = 2\nsteps = 6\nwarmup = 1\n\
         [log]\nevery = 2\nval_every = 6\ncheckpoint_every = 6\nval_clips = 2\n\
         [sample]\nn = 1\nsteps = 2\nprompts = [\"a red circle moves left\"]\n{model}"
    );
    std::fs::write(dir.join("video.toml"), cfg).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "video.toml"]);
    assert!(ok, "{err}");
    assert!(err.contains("initialised from image weights"), "{err}");
    let run = dir.join("runs/pixart-video");
    assert!(
        run.join("checkpoints/step-000006/ema.safetensors")
            .is_file()
    );

    let back = dir.join("exported");
    let (ok, out, err) = ff(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--format",
        "diffusers-pixart",
        "--out",
        back.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("step 6"), "{out}");
    // temporal-only froze the spatial part: the export is the imported PixArt, byte for byte.
    assert_eq!(
        std::fs::read(back.join("diffusion_pytorch_model.safetensors")).unwrap(),
        std::fs::read(&fixture).unwrap()
    );
    // Under a LoRA plan the spatial weights stay frozen too, but the export merges the trained
    // adapters into them; the adapters alone go out in PEFT's layout.
    let lora_cfg = std::fs::read_to_string(dir.join("video.toml"))
        .unwrap()
        .replace("name = \"pixart-video\"", "name = \"pixart-lora\"")
        .replace("plan = \"temporal-only\"", "plan = \"lora-wide.toml\"");
    std::fs::write(dir.join("lora.toml"), lora_cfg).unwrap();
    // `lora-all`, plus the patch embedding (a Conv2d in diffusers) and the output layer.
    let plan = include_str!("../../../configs/plans/lora-all.toml").replace(
        "targets = [\"blocks.**\"]",
        "targets = [\"blocks.**\", \"x_embedder.proj.**\", \"final_layer.linear.**\"]",
    );
    assert!(plan.contains("x_embedder.proj"));
    std::fs::write(dir.join("lora-wide.toml"), plan).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "lora.toml"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("LoRA adapters against the model without them"),
        "{err}"
    );
    let lora_run = dir.join("runs/pixart-lora");
    let export = |format: &str, to: &str| {
        ff(&[
            "export",
            "--run",
            lora_run.to_str().unwrap(),
            "--format",
            format,
            "--out",
            dir.join(to).to_str().unwrap(),
        ])
    };
    let (ok, out, err) = export("diffusers-pixart", "merged");
    assert!(ok, "{err}");
    assert!(
        out.contains("merged") && out.contains("LoRA adapters"),
        "{out}"
    );
    // `lora-all` adapts the temporal attention too, which diffusers' PixArt has no place for:
    // the export says which adapters it leaves out.
    assert!(
        err.contains("warning: 4 of the 20 merged adapters sit on the temporal attention")
            && err.contains("blocks.0.attn_temp.qkv"),
        "{err}"
    );
    assert_ne!(
        std::fs::read(dir.join("merged/diffusion_pytorch_model.safetensors")).unwrap(),
        std::fs::read(&fixture).unwrap(),
        "the trained adapters must be in the merged weights"
    );
    let (ok, out, err) = export("lora-peft", "peft");
    assert!(ok, "{err}");
    assert!(out.contains("adapters"), "{out}");
    let conf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("peft/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (conf["r"].as_u64(), conf["lora_alpha"].as_f64()),
        (Some(8), Some(8.0))
    );
    assert!(dir.join("peft/adapter_model.safetensors").is_file());
    // The same adapters on diffusers' module names (fused q/k/v and k/v split, 16 of the 20
    // layers: the temporal attention has no place there).
    let (ok, out, err) = export("lora-diffusers-pixart", "peft-pixart");
    assert!(ok, "{err}");
    assert!(
        out.contains("22 adapters on diffusers' PixArt transformer modules (from 20"),
        "{out}"
    );
    assert!(
        err.contains("warning: 4 of the 20 adapters sit on the temporal attention"),
        "{err}"
    );
    assert!(out.contains("note: the adapter on proj_out fits"), "{out}");
    // Applied as PEFT applies them to the base (the imported PixArt, which the plan froze),
    // they give the merged export: this checks names, layouts, split and scale at once.
    let peft = dir.join("peft-pixart");
    let want = peft_applied(&fixture, &peft);
    let merged = tensors(&dir.join("merged/diffusion_pytorch_model.safetensors"));
    let base = tensors(&fixture);
    assert_eq!(merged.len(), want.len());
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    // Each tensor against its own change (a few training steps leave changes small, and a
    // wrong split or layout errs by about the change itself), above float rounding (~1e-8).
    let mut adapted = 0;
    for (name, (shape, v)) in &merged {
        let (w_shape, w) = &want[name];
        assert_eq!(shape, w_shape, "{name}");
        let change = max_diff(v, &base[name].1);
        adapted += usize::from(change > 1e-6);
        let d = max_diff(v, w);
        assert!(
            d <= 1e-2 * change + 1e-7,
            "{name}: merged export and PEFT-applied adapters differ by {d} (change {change})"
        );
    }
    // Every adapted module changed: the 20 linear ones of the blocks, the patch embedding's
    // kernel and the output projection.
    assert_eq!(adapted, 22, "modules the trained adapters changed");
    // A run without adapters has nothing to export this way.
    let (ok, _, err) = ff(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--format",
        "lora-peft",
        "--out",
        dir.join("none").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("has no LoRA adapters"), "{err}");

    // A bad input is an error naming it, not a panic.
    let (ok, _, err) = ff(&[
        "import",
        "pixart",
        "--from",
        image.to_str().unwrap(),
        "--config",
        fixture.with_file_name("config.json").to_str().unwrap(),
        "--out",
        dir.join("x.safetensors").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not a diffusers PixArt"), "{err}");
    // Passed: nothing to look at, so nothing left in the temp folder.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every tensor of a safetensors file: name → (shape, values).
fn tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut src = freezeframe_interop::st::Source::open(path).unwrap();
    src.shapes()
        .into_iter()
        .map(|(name, shape)| {
            let v = src.read_f32(&name).unwrap();
            (name, (shape, v))
        })
        .collect()
}

/// The diffusers weights at `base` with the PEFT LoRA folder `peft` applied as PEFT applies
/// it: every target module's weight gains (lora_alpha / r)·B·A, a convolution's kernel A and
/// 1 × 1 B read as the matrices of their row-major bytes.
fn peft_applied(base: &Path, peft: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(peft.join("adapter_config.json")).unwrap())
            .unwrap();
    // One rank and α for every module here: PEFT's per-module patterns are not exercised.
    assert!(conf["rank_pattern"].as_object().unwrap().is_empty());
    assert!(conf["alpha_pattern"].as_object().unwrap().is_empty());
    let scale = (conf["lora_alpha"].as_f64().unwrap() / conf["r"].as_f64().unwrap()) as f32;
    let mut w = tensors(base);
    let lora = tensors(&peft.join("adapter_model.safetensors"));
    let mut modules: Vec<String> = Vec::new();
    for (key, (a_shape, a)) in &lora {
        let Some(m) = key
            .strip_prefix("base_model.model.")
            .and_then(|k| k.strip_suffix(".lora_A.weight"))
        else {
            continue;
        };
        let (b_shape, b) = &lora[&format!("base_model.model.{m}.lora_B.weight")];
        let (r, d_out) = (a_shape[0], b_shape[0]);
        let (shape, weight) = w.get_mut(&format!("{m}.weight")).unwrap();
        // PEFT's shapes: A [r, …the weight's input dims], B [d_out, r, 1 per kernel dim].
        let a_want: Vec<usize> = [r].iter().chain(&shape[1..]).copied().collect();
        let ones = vec![1; shape.len() - 2];
        let b_want: Vec<usize> = [shape[0], r].iter().chain(&ones).copied().collect();
        assert_eq!((a_shape, b_shape), (&a_want, &b_want), "{m}");
        let d_in = a.len() / r;
        assert_eq!(weight.len(), d_out * d_in, "{m}");
        for o in 0..d_out {
            for i in 0..d_in {
                let delta: f32 = (0..r).map(|k| b[o * r + k] * a[k * d_in + i]).sum();
                weight[o * d_in + i] += scale * delta;
            }
        }
        modules.push(m.to_string());
    }
    // The config targets exactly the modules the weights hold adapters for.
    let mut targets: Vec<String> = conf["target_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    targets.sort();
    modules.sort();
    assert_eq!(targets, modules);
    assert_eq!(lora.len(), 2 * modules.len());
    w
}

/// The binary under `ulimit -v` (1 GB of address space): a size that were allocated before
/// it is checked would fail here with an allocation error instead of the limit's message.
fn ff_bounded(args: &[&str]) -> (bool, String, String) {
    outcome(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 1000000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_freezeframe"))
            .args(args),
    )
}

#[test]
fn oversized_configs_are_refused_in_bounded_memory_and_leave_no_run_folder() {
    let dir = std::env::temp_dir().join(format!("ff-cli-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (section, key) in [
        ("[data]\nsize = 100000", "data.size"),
        ("[model]\ndepth = 100000000", "model.depth"),
        ("[model]\ntext_len = 100000000", "model.text_len"),
        ("[model]\nmlp_ratio = 1e9", "model.mlp_ratio"),
        ("[model]\nhidden = 4000000", "model.hidden"),
        ("[train]\nbatch_size = 100000000", "train.batch_size"),
    ] {
        let config = dir.join("big.toml");
        std::fs::write(
            &config,
            format!("name = \"big\"\nout_dir = \"out\"\n{section}\n"),
        )
        .unwrap();
        let (ok, _, err) = ff_bounded(&["train", "--config", config.to_str().unwrap()]);
        assert!(
            !ok && err.contains(key) && err.contains("limit"),
            "{key}: {err}"
        );
        assert!(
            !dir.join("out/big").exists(),
            "{key}: a run folder was left behind"
        );
    }
    // A text file far above the limit (sparse: 2 GiB that take no disk) is refused from its
    // size, within the memory bound; an endless device after one byte past the limit.
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let (ok, _, err) = ff_bounded(&["train", "--config", huge.to_str().unwrap()]);
    assert!(
        !ok && err.contains("huge.toml") && err.contains("larger than 256 MiB"),
        "{err}"
    );
    // Said once: the config error carries its cause, and the binary does not repeat it.
    assert_eq!(err.matches("larger than").count(), 1, "{err}");
    #[cfg(unix)]
    for args in [
        ["train", "--config", "/dev/zero"],
        ["ablate", "--config", "/dev/zero"],
    ] {
        let (ok, _, err) = ff(&args);
        assert!(
            !ok && err.contains("larger than 256 MiB"),
            "{args:?}: {err}"
        );
    }
    // A GIF whose header claims 65535 × 65535 (51 GB decoded) is refused by `eval --videos`
    // from its header, within the same memory bound.
    let gif = dir.join("huge.gif");
    let frame = freezeframe_data::Video::zeros(2, 3, 4, 4);
    freezeframe_data::gif_out::write_grid(&gif, &[frame], 1, 1, 10).unwrap();
    let mut bytes = std::fs::read(&gif).unwrap();
    bytes[6..10].copy_from_slice(&[0xff; 4]);
    std::fs::write(&gif, bytes).unwrap();
    let (ok, out, err) = ff_bounded(&["eval", "--videos", gif.to_str().unwrap()]);
    assert!(!ok && err.contains("1 skipped"), "{out}{err}");
    assert!(err.contains("65535×65535"), "{err}");
    // Passed: nothing to look at, so nothing left in the temp folder.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counts_and_scales_above_their_limits_are_refused_naming_the_flag_and_limit() {
    let cases: [(&[&str], &str, &str); 8] = [
        (
            &["sample", "--run", "r", "--prompt", "p", "--n", "1000000"],
            "--n",
            "64",
        ),
        (
            &["sample", "--run", "r", "--prompt", "p", "--cfg", "1e10"],
            "--cfg",
            "50",
        ),
        (
            &[
                "sample",
                "--run",
                "r",
                "--prompt",
                "p",
                "--steps",
                "100000000",
            ],
            "--steps",
            "10000",
        ),
        (&["eval", "--run", "r", "--n", "100000000"], "--n", "4096"),
        (&["data", "preview", "--n", "100000000"], "--n", "4096"),
        (&["bench", "eval", "--n", "100000000"], "--n", "4096"),
        (&["data", "preview", "--n", "1e8"], "--n", "invalid"),
        (
            &[
                "bench",
                "train-step",
                "--preset",
                "tiny",
                "--batch",
                "100000000",
            ],
            "train.batch_size",
            "4096",
        ),
    ];
    for (args, flag, limit) in cases {
        let (ok, _, err) = ff_bounded(args);
        assert!(
            !ok && err.contains(flag) && err.contains(limit),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn sample_and_preview_never_replace_a_users_file() {
    let dir = std::env::temp_dir().join(format!("ff-cli-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mine = dir.join("mine.gif");
    std::fs::write(&mine, b"the user's file").unwrap();
    let (ok, _, err) = ff(&[
        "sample",
        "--run",
        dir.join("no-run").to_str().unwrap(),
        "--prompt",
        "p",
        "--out",
        mine.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("never replaced"), "{err}");
    let (ok, _, err) = ff(&["data", "preview", "--out", mine.to_str().unwrap()]);
    assert!(!ok && err.contains("never replaced"), "{err}");
    // The caption list beside a preview is the user's file too.
    let txt = dir.join("p.txt");
    std::fs::write(&txt, b"notes").unwrap();
    let (ok, _, err) = ff(&[
        "data",
        "preview",
        "--out",
        dir.join("p.gif").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("p.txt"), "{err}");
    assert_eq!(std::fs::read(&mine).unwrap(), b"the user's file");
    assert_eq!(std::fs::read(&txt).unwrap(), b"notes");
    assert!(!dir.join("p.gif").exists());
    // Passed: nothing to look at, so nothing left in the temp folder.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_cell_takes_its_index_from_the_cluster_or_says_what_is_missing() {
    let dir = std::env::temp_dir().join(format!("ff-cli-cell-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.to_str().unwrap();
    let run_cell = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_freezeframe"));
        cmd.args(["ablate", "run-cell", "--out", out])
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX");
        for (k, v) in env {
            cmd.env(k, v);
        }
        outcome(&mut cmd)
    };
    let (ok, _, err) = run_cell(&[]);
    assert!(!ok && err.contains("no task index"), "{err}");
    let (ok, _, err) = run_cell(&[("SLURM_ARRAY_TASK_ID", "x")]);
    assert!(
        !ok && err.contains("SLURM_ARRAY_TASK_ID") && err.contains("not a task index"),
        "{err}"
    );
    // An index from either engine reaches the study folder, which has no manifest yet.
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        let (ok, _, err) = run_cell(&[(var, "0")]);
        assert!(!ok && err.contains("no manifest"), "{var}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "run-cell wrote into the folder"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 27: a tiny imported PixArt (the p4-sigma fixture: 4 latent channels, caption features
/// of 32) trains on the committed latent cache (two size buckets), resumes bit-exactly, samples
/// latents; misfit caches and prompts are errors naming what is wrong.
#[test]
fn an_imported_pixart_trains_on_a_latent_cache_and_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("ff-cli-latents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixture = root.join("crates/freezeframe-interop/tests/fixtures/pixart/p4-sigma");
    let cache = root.join("crates/freezeframe-train/tests/fixtures/latents");
    let image = dir.join("pixart.safetensors");
    let (ok, out, err) = ff(&[
        "import",
        "pixart",
        "--from",
        fixture
            .join("diffusion_pytorch_model.safetensors")
            .to_str()
            .unwrap(),
        "--out",
        image.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("in_channels = 4") && out.contains("text_dim = 32"),
        "{out}"
    );
    let model = &out[out.find("[model]").unwrap()..];
    let config = |name: &str, steps: usize, model: &str, cache: &Path| {
        format!(
            "name = \"{name}\"\nout_dir = \"runs\"\nplan = \"full\"\n\
             [init]\nfrom = \"pixart.safetensors\"\n\
             [data]\nkind = \"latents\"\ncache = {:?}\nframes = 4\nsize = 8\n\
             [train]\nbatch_size = 2\nsteps = {steps}\nwarmup = 1\n\
             [log]\nevery = 1\nval_every = 3\ncheckpoint_every = 3\nval_clips = 4\n\
             [sample]\nn = 1\nsteps = 2\nprompts = [\"a red square moves left\"]\n{model}",
            cache.to_str().unwrap()
        )
    };
    let train = |name: &str, steps: usize, extra: &[&str]| {
        let file = format!("{name}-{steps}.toml");
        std::fs::write(dir.join(&file), config(name, steps, model, &cache)).unwrap();
        let mut args = vec!["train", "--config", file.as_str()];
        args.extend_from_slice(extra);
        ff_in(&dir, &args)
    };
    // Six steps; then the last checkpoint removed and the run resumed from step 3.
    let (ok, _, err) = train("lat", 6, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("latent clips by size") && err.contains("4×8×8"),
        "{err}"
    );
    let last = dir.join("runs/lat/checkpoints/step-000006");
    // Tensor by tensor (the header's metadata order is not fixed between processes).
    let read = |f: &str| {
        let mut src = freezeframe_interop::st::Source::open(&last.join(f)).unwrap();
        let mut names = src.names();
        names.sort();
        let values: Vec<Vec<f32>> = names.iter().map(|n| src.read_f32(n).unwrap()).collect();
        (names, values)
    };
    let straight = [read("model.safetensors"), read("ema.safetensors")];
    std::fs::remove_dir_all(&last).unwrap();
    let (ok, _, err) = train("lat", 6, &["--resume"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("resuming") && err.contains("step-000003"),
        "{err}"
    );
    assert!(
        [read("model.safetensors"), read("ema.safetensors")] == straight,
        "resumed from step 3, the run must end bit-identical to the straight one"
    );
    // The run folder records the buckets; resuming on a cache written again at the same path
    // is refused.
    let record = dir.join("runs/lat/latent-cache.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        rec["train_buckets"],
        serde_json::json!([[2, 8, 16, 3], [4, 8, 8, 8]])
    );
    let id = rec["identity"].as_str().unwrap();
    std::fs::write(&record, text.replace(id, "0123456789abcdef")).unwrap();
    let (ok, _, err) = train("lat", 6, &["--resume"]);
    assert!(!ok && err.contains("written again"), "{err}");
    let metrics = std::fs::read_to_string(dir.join("runs/lat/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"val_loss\""), "{metrics}");
    // Final samples are latents, [n, T, C, h, w] of the largest bucket.
    let sample = dir.join("runs/lat/samples/final/a-red-square-moves-left.safetensors");
    let meta = freezeframe_train::checkpoint::file_metadata(&sample);
    assert!(meta.is_ok(), "{meta:?}");
    let run = dir.join("runs/lat");
    let (ok, out, err) = ff(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--prompt",
        "a blue square moves right",
        "--n",
        "2",
        "--steps",
        "2",
        "--out",
        dir.join("s.safetensors").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("[4, 4, 8, 8]"), "{out}");
    let (ok, _, err) = ff(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--prompt",
        "a green circle",
        "--out",
        dir.join("t.safetensors").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("not in the latent cache"), "{err}");
    let (ok, _, err) = ff(&["eval", "--run", run.to_str().unwrap()]);
    assert!(!ok && err.contains("read pixels"), "{err}");

    // The imported section in a pixel run: refused at load, not a shape panic in training.
    let pixels = config("px", 1, model, &cache)
        .replace("kind = \"latents\"\n", "")
        .replace("size = 8\n", "");
    std::fs::write(dir.join("px.toml"), pixels).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "px.toml"]);
    assert!(
        !ok && err.contains("in_channels = 4 reads latents"),
        "{err}"
    );
    // Misfits: RGB channels, captions longer than text_len, a shard changed since written.
    let rgb = model.replace("in_channels = 4", "in_channels = 3");
    std::fs::write(dir.join("rgb.toml"), config("rgb", 1, &rgb, &cache)).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "rgb.toml"]);
    assert!(
        !ok && err.contains("index.json") && err.contains("in_channels is 3"),
        "{err}"
    );
    let short = model.replace("text_len = 12", "text_len = 4");
    std::fs::write(dir.join("short.toml"), config("short", 1, &short, &cache)).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "short.toml"]);
    assert!(!ok && err.contains("text_len = 4"), "{err}");
    let copy = dir.join("cache-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&cache).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let shard = std::fs::read_dir(&copy)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .unwrap();
    let mut b = std::fs::read(&shard).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&shard, b).unwrap();
    std::fs::write(dir.join("changed.toml"), config("changed", 1, model, &copy)).unwrap();
    let (ok, _, err) = ff_in(&dir, &["train", "--config", "changed.toml"]);
    let name = shard.file_name().unwrap().to_str().unwrap();
    assert!(
        !ok && err.contains(name) && err.contains("content hash"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
