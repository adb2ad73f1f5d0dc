//! Path selectors: globs over dotted parameter paths.
//!
//! `*` matches any run of characters inside one path segment, a whole `**` segment matches any
//! number of segments (zero included). `blocks.*.attn_temp.**` selects every tensor under every
//! block's temporal attention; `**.bias` every bias.
//!
//! Hand-written rather than `globset`: globset's separator is `/` and its `**` rules are tied to
//! file paths; dotted parameter paths need a dozen lines of segment matching, and owning them
//! lets an error suggest the closest real paths in the same notation.

/// True when `pattern` matches the whole of `path`.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    let segs: Vec<&str> = path.split('.').collect();
    match_segments(&pat, &segs)
}

fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|skip| match_segments(rest, &segs[skip..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => {
                match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, srest)
            }
            None => false,
        },
    }
}

/// `*` inside one segment: classic wildcard matching with backtracking on the last star.
fn match_segment(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A pattern is well formed when no segment is empty and `**` stands alone in its segment.
pub fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty selector".into());
    }
    for seg in pattern.split('.') {
        if seg.is_empty() {
            return Err("an empty path segment (two dots, or a leading/trailing dot)".into());
        }
        if seg.contains("**") && seg != "**" {
            return Err(format!("`**` must be a whole segment, not part of `{seg}`"));
        }
    }
    Ok(())
}

/// The paths in the notation of selectors closest to a pattern that matched nothing: each real
/// path with its block index generalised to `*`, and each module prefix followed by `.**`.
pub fn closest<'a>(pattern: &str, paths: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    let mut candidates: Vec<String> = Vec::new();
    for p in paths {
        let general: Vec<&str> = p
            .split('.')
            .map(|s| {
                if s.chars().all(|c| c.is_ascii_digit()) {
                    "*"
                } else {
                    s
                }
            })
            .collect();
        candidates.push(general.join("."));
        for k in 1..general.len() {
            candidates.push(format!("{}.**", general[..k].join(".")));
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut scored: Vec<(f64, String)> = candidates
        .into_iter()
        .map(|c| (similarity(pattern, &c), c))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Half edit distance, half overlap of words (split at `.` and `_`, a word matching another
/// that it prefixes): a misspelt path scores by the first, a reordered name such as
/// `temporal_attn` for `attn_temp` by the second.
fn similarity(a: &str, b: &str) -> f64 {
    let words = |s: &str| -> Vec<String> { s.split(['.', '_']).map(str::to_string).collect() };
    let (wa, wb) = (words(a), words(b));
    let hit = |w: &String, other: &[String]| {
        other
            .iter()
            .any(|o| o.starts_with(w.as_str()) || w.starts_with(o.as_str()))
    };
    let common =
        wa.iter().filter(|w| hit(w, &wb)).count() + wb.iter().filter(|w| hit(w, &wa)).count();
    let overlap = common as f64 / (wa.len() + wb.len()).max(1) as f64;
    0.5 * strsim::normalized_damerau_levenshtein(a, b) + 0.5 * overlap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        assert!(matches(
            "blocks.*.attn_temp.**",
            "blocks.3.attn_temp.proj.weight"
        ));
        assert!(!matches(
            "blocks.*.attn_temp.**",
            "blocks.3.attn.proj.weight"
        ));
        assert!(matches("**.bias", "x_embedder.proj.bias"));
        assert!(!matches("**.bias", "x_embedder.proj.weight"));
        assert!(matches("**", "y_embedder.y_embedding"));
        assert!(matches("blocks.1*.**", "blocks.11.mlp.fc1.weight"));
        assert!(!matches("blocks.1*.**", "blocks.2.mlp.fc1.weight"));
        assert!(
            matches("blocks.**.weight", "blocks.weight"),
            "** matches zero segments"
        );
        assert!(
            !matches("blocks.*", "blocks.0.attn.qkv.weight"),
            "* stays in one segment"
        );
        assert!(matches("*_embedder.**", "t_embedder.mlp.0.bias"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert!(check("blocks..attn").is_err());
        assert!(check("blocks.a**.x").is_err());
        assert!(check("").is_err());
        assert!(check("blocks.*.attn_temp.**").is_ok());
    }

    #[test]
    fn closest_suggests_the_generalised_module() {
        let paths = [
            "blocks.0.attn_temp.qkv.weight",
            "blocks.1.attn_temp.qkv.weight",
            "blocks.0.attn.qkv.weight",
        ];
        let c = closest("blocks.*.temporal_attn.**", paths.iter().copied(), 3);
        assert!(c.contains(&"blocks.*.attn_temp.**".to_string()), "{c:?}");
    }

    /// The reference semantics, as a regular expression over the path with a leading dot: each
    /// plain segment consumes one `.segment`, `**` consumes any number of them.
    fn oracle(pattern: &str, path: &str) -> bool {
        let mut re = String::from("^");
        for seg in pattern.split('.') {
            if seg == "**" {
                re.push_str("(?:\\.[^.]+)*");
                continue;
            }
            re.push_str("\\.");
            let parts: Vec<String> = seg.split('*').map(regex::escape).collect();
            re.push_str(&parts.join("[^.]*"));
        }
        re.push('$');
        regex::Regex::new(&re)
            .unwrap()
            .is_match(&format!(".{path}"))
    }

    /// Property tests over seeded random patterns and paths (hand-rolled rather than proptest:
    /// proptest's `std` feature changes `regex-syntax`'s feature set, which Burn shares, and
    /// a test build would then rebuild Burn).
    const SEGMENTS: [&str; 5] = ["a", "ab", "b", "0", "12"];
    const PATTERN_SEGMENTS: [&str; 11] =
        ["a", "ab", "b", "0", "12", "*", "**", "a*", "*b", "1*", "**"];

    fn random_join<R: rand::Rng>(
        rng: &mut R,
        from: &[&str],
        len: std::ops::Range<usize>,
    ) -> Vec<String> {
        let n = rng.random_range(len);
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())].to_string())
            .collect()
    }

    fn cases(n: usize, mut f: impl FnMut(&mut rand_chacha::ChaCha8Rng)) {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5e1e);
        for _ in 0..n {
            f(&mut rng);
        }
    }

    #[test]
    fn agrees_with_the_regex_oracle() {
        cases(5000, |rng| {
            let pat = random_join(rng, &PATTERN_SEGMENTS, 1..5).join(".");
            let path = random_join(rng, &SEGMENTS, 1..6).join(".");
            assert_eq!(
                matches(&pat, &path),
                oracle(&pat, &path),
                "pattern {pat} path {path}"
            );
        });
    }

    #[test]
    fn a_path_matches_itself_and_its_prefix_globs() {
        cases(2000, |rng| {
            let path = random_join(rng, &SEGMENTS, 1..6);
            let p = path.join(".");
            assert!(matches(&p, &p));
            assert!(matches("**", &p));
            let k = rand::Rng::random_range(rng, 0..=path.len());
            let prefix_glob = if k == 0 {
                "**".to_string()
            } else {
                format!("{}.**", path[..k].join("."))
            };
            assert!(matches(&prefix_glob, &p), "{prefix_glob} {p}");
        });
    }

    #[test]
    fn a_star_never_crosses_a_dot() {
        cases(2000, |rng| {
            let path = random_join(rng, &SEGMENTS, 2..6);
            let stars = vec!["*"; path.len() - 1].join(".");
            assert!(!matches(&stars, &path.join(".")));
        });
    }
}
