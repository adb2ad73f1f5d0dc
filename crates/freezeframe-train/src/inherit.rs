//! `base = "other.toml"` in a run config: the file says only what differs from another run
//! config, as an ablation config does with its `base`. The merge is on the TOML as written —
//! as if the child's keys were written into the base file: tables merge key by key, anything
//! else (a number, a string, an array) replaces the base's value. A path keeps the meaning of
//! the file that wrote it (relative to that file's folder); the defaults (`out_dir = "runs"`)
//! are the child's. A chain of bases is followed up to [`MAX_DEPTH`] files; a cycle is refused.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{config_dir, resolve_path};
use crate::error::TrainError;

/// Files in one chain of `base`s, the config itself included. Eight is far more than a
/// hand-written hierarchy needs, and bounds the reads of a file that names itself indirectly.
pub const MAX_DEPTH: usize = 8;

/// A config merged with its bases.
pub struct Merged {
    pub table: toml::Table,
    /// Dotted key → the folder of the last file in the chain that wrote it.
    pub dirs: HashMap<String, PathBuf>,
    /// The chain's files, the config itself first.
    pub files: Vec<PathBuf>,
}

fn bad(path: &Path, message: String) -> TrainError {
    TrainError::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// The TOML table of a config file; `None` when the text does not parse (the caller's own
/// parse then reports the error with its line).
pub fn table_of(text: &str) -> Option<toml::Table> {
    toml::from_str(text).ok()
}

/// `path`'s table merged over its chain of bases.
pub fn load(path: &Path) -> Result<Merged, TrainError> {
    let mut chain = vec![path.to_path_buf()];
    let mut tables = Vec::new();
    let mut next = Some(path.to_path_buf());
    while let Some(p) = next.take() {
        let text = freezeframe_fs::read_text(&p).map_err(|source| match chain.len() {
            1 => TrainError::ReadConfig {
                path: p.clone(),
                source,
            },
            // A base that cannot be read: named with the file that names it.
            n => bad(
                &chain[n - 2],
                format!("its `base` {} cannot be read: {source}", p.display()),
            ),
        })?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| bad(&p, e.to_string().trim_end().to_string()))?;
        let dir = config_dir(&p)?;
        match table.remove("base") {
            Some(toml::Value::String(b)) => {
                let b = resolve_path(&dir, Path::new(&b));
                refuse_cycle(&chain, &b, path)?;
                chain.push(b.clone());
                next = Some(b);
            }
            Some(other) => {
                return Err(bad(
                    &p,
                    format!(
                        "`base` must be the path of another run config (a string), not a {}",
                        other.type_str()
                    ),
                ));
            }
            None => {}
        }
        tables.push((table, dir));
    }
    // Oldest base first, each file's keys over it.
    let mut merged = toml::Table::new();
    let mut dirs = HashMap::new();
    for (table, dir) in tables.into_iter().rev() {
        merge(&mut merged, table, &dir, "", &mut dirs);
    }
    Ok(Merged {
        table: merged,
        dirs,
        files: chain,
    })
}

/// A base already in the chain, or a chain past [`MAX_DEPTH`], is an error naming the chain.
fn refuse_cycle(chain: &[PathBuf], next: &Path, config: &Path) -> Result<(), TrainError> {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    let names = |extra: &Path| {
        chain
            .iter()
            .map(|p| p.display().to_string())
            .chain([extra.display().to_string()])
            .collect::<Vec<_>>()
            .join(" → ")
    };
    if chain.iter().any(|p| same(p, next)) {
        return Err(bad(
            config,
            format!(
                "its chain of `base` files comes back to itself: {}",
                names(next)
            ),
        ));
    }
    if chain.len() >= MAX_DEPTH {
        return Err(bad(
            config,
            format!(
                "its chain of `base` files is longer than {MAX_DEPTH}: {}",
                names(next)
            ),
        ));
    }
    Ok(())
}

/// `from`'s keys over `into`'s, recursing into tables; every key `from` writes is recorded in
/// `dirs` with `dir`, the folder of the file that wrote it.
fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    dir: &Path,
    prefix: &str,
    dirs: &mut HashMap<String, PathBuf>,
) {
    for (k, v) in from {
        let key = format!("{prefix}{k}");
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
                merge(old, new, dir, &format!("{key}."), dirs);
            }
            (_, v) => {
                record(&key, &v, dir, dirs);
                into.insert(k, v);
            }
        }
    }
}

/// Records `key` (and every key below it, for a table) as written in `dir`.
fn record(key: &str, v: &toml::Value, dir: &Path, dirs: &mut HashMap<String, PathBuf>) {
    dirs.insert(key.to_string(), dir.to_path_buf());
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            record(&format!("{key}.{k}"), v, dir, dirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::RunConfig;
    use std::path::{Path, PathBuf};

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ff-inherit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        d
    }

    fn write(path: &Path, text: &str) -> PathBuf {
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    const BASE: &str = r#"name = "base"
plan = "plans/p.toml"
seed = 3
[init]
from = "weights/image.safetensors"
[train]
steps = 500
lr = 2e-4
[data]
frames = 4
"#;

    #[test]
    fn a_child_is_its_base_with_its_keys_over_it() {
        let d = dir("merge");
        write(&d.join("base.toml"), BASE);
        let child = write(
            &d.join("sub/child.toml"),
            "base = \"../base.toml\"\nname = \"child\"\n[train]\nsteps = 900\n[init]\nfrom = \"mine.safetensors\"\n",
        );
        let c = RunConfig::load(&child).unwrap();
        let b = RunConfig::load(&d.join("base.toml")).unwrap();
        // Only what the child wrote differs (tables merge key by key: lr stays)...
        assert_eq!(c.train.steps, 900);
        assert_eq!(c.train.lr, b.train.lr);
        assert_eq!((c.seed, c.data.frames), (3, 4));
        // ...each path means what it meant in the file that wrote it; defaults are the child's.
        let canon = std::fs::canonicalize(&d).unwrap();
        assert_eq!(c.plan, canon.join("plans/p.toml").display().to_string());
        assert_eq!(c.init.from, Some(canon.join("sub/mine.safetensors")));
        assert_eq!(c.out_dir, canon.join("sub/runs"));
        // The same config written out in full loads to the same thing.
        let mut same = b.clone();
        same.name = "child".into();
        same.train.steps = 900;
        same.init.from = c.init.from.clone();
        same.out_dir = c.out_dir.clone();
        assert_eq!(c, same);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn chains_follow_and_cycles_and_bad_bases_are_refused() {
        let d = dir("chain");
        write(&d.join("base.toml"), BASE);
        write(
            &d.join("mid.toml"),
            "base = \"base.toml\"\nname = \"mid\"\nseed = 5\n",
        );
        let top = write(&d.join("top.toml"), "base = \"mid.toml\"\nname = \"top\"\n");
        let c = RunConfig::load(&top).unwrap();
        assert_eq!((c.seed, c.train.steps, c.name.as_str()), (5, 500, "top"));
        // A base may be a fragment, no whole config alone (here: no `name`).
        write(&d.join("fragment.toml"), "[train]\nsteps = 700\n");
        let f = write(
            &d.join("f.toml"),
            "base = \"fragment.toml\"\nname = \"f\"\n",
        );
        assert_eq!(RunConfig::load(&f).unwrap().train.steps, 700);

        write(&d.join("a.toml"), "base = \"b.toml\"\nname = \"a\"\n");
        let b = write(&d.join("b.toml"), "base = \"a.toml\"\nname = \"b\"\n");
        let e = RunConfig::load(&b).unwrap_err().to_string();
        assert!(e.contains("comes back to itself"), "{e}");

        let selfish = write(&d.join("self.toml"), "base = \"self.toml\"\nname = \"s\"\n");
        let e = RunConfig::load(&selfish).unwrap_err().to_string();
        assert!(e.contains("comes back to itself"), "{e}");

        let nameless = write(&d.join("nameless.toml"), "base = \"base.toml\"\nseed = 1\n");
        let e = RunConfig::load(&nameless).unwrap_err().to_string();
        assert!(e.contains("its own `name`"), "{e}");

        let number = write(&d.join("number.toml"), "base = 3\nname = \"n\"\n");
        let e = RunConfig::load(&number).unwrap_err().to_string();
        assert!(e.contains("`base` must be the path"), "{e}");

        let missing = write(
            &d.join("missing.toml"),
            "base = \"nope.toml\"\nname = \"m\"\n",
        );
        let e = RunConfig::load(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.toml") && e.contains("nope.toml"), "{e}");

        // Its own name, but the base's: the base's run folder.
        let copy = write(
            &d.join("copy.toml"),
            "base = \"base.toml\"\nname = \"base\"\n",
        );
        let e = RunConfig::load(&copy).unwrap_err().to_string();
        assert!(e.contains("is its base's"), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn long_chains_are_refused() {
        let d = dir("long");
        write(&d.join("c0.toml"), BASE);
        for i in 1..=super::MAX_DEPTH {
            let text = format!("base = \"c{}.toml\"\nname = \"c{i}\"\n", i - 1);
            write(&d.join(format!("c{i}.toml")), &text);
        }
        let ok = RunConfig::load(&d.join(format!("c{}.toml", super::MAX_DEPTH - 1)));
        assert!(ok.is_ok(), "{ok:?}");
        let e = RunConfig::load(&d.join(format!("c{}.toml", super::MAX_DEPTH)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than"), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn bad_keys_and_values_are_named_with_both_files() {
        let d = dir("bad");
        write(&d.join("base.toml"), BASE);
        let typo = write(
            &d.join("typo.toml"),
            "base = \"base.toml\"\nname = \"t\"\n[train]\nlrr = 0.1\n",
        );
        let e = RunConfig::load(&typo).unwrap_err().to_string();
        assert!(
            e.contains("typo.toml")
                && e.contains("train")
                && e.contains("lrr")
                && e.contains("base.toml"),
            "{e}"
        );
        let zero = write(
            &d.join("zero.toml"),
            "base = \"base.toml\"\nname = \"z\"\n[train]\nbatch_size = 0\n",
        );
        let e = RunConfig::load(&zero).unwrap_err().to_string();
        assert!(e.contains("zero.toml") && e.contains("batch_size"), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }
}
