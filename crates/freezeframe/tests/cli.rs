//! The command line as a user runs it (the real binary; `cargo test` builds it for this file).
use std::process::Command;

fn ff(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_freezeframe"))
        .args(args)
        .output()
        .unwrap();
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
    assert!(ok && out.lines().count() == 7, "{out}");
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
}

#[test]
fn demo_quick_runs_every_stage_and_never_writes_over_a_users_file() {
    let dir = std::env::temp_dir().join(format!("ff-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_dir = dir.to_str().unwrap();
    let (ok, out, err) = ff(&["demo", "--quick", "--out-dir", out_dir]);
    assert!(ok, "{out}{err}");
    let run = dir.join("demo-quick");
    assert!(
        run.join("eval.md").is_file() && run.join("eval.json").is_file(),
        "{out}"
    );
    assert!(
        out.contains("direction accuracy") && out.contains("eval.md"),
        "{out}"
    );
    let gifs = std::fs::read_dir(run.join("samples").join("final"))
        .unwrap()
        .count();
    assert_eq!(gifs, 5, "one GIF per demo prompt");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("shipped-image-model-"), "{config}");
    // A second demo reuses the written image model and takes the next free run name.
    let (ok, _, err) = ff(&["demo", "--quick", "--out-dir", out_dir]);
    assert!(ok && dir.join("demo-quick-2").is_dir(), "{err}");
    // A different file where the image model goes is refused and left as it was.
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("shipped-image-model-"))
        .unwrap();
    std::fs::write(&path, b"my notes").unwrap();
    let (ok, _, err) = ff(&["demo", "--quick", "--out-dir", out_dir]);
    assert!(!ok && err.contains("not the shipped image model"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"my notes");
    let _ = std::fs::remove_dir_all(&dir);
}
