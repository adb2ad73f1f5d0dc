//! The study's report: `report.md`, a self-contained `report.html` (charts inline as SVG, GIFs
//! inline as base64, nothing fetched) and `results.json`. Both documents come from one list of
//! blocks, so they always say the same thing.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::charts::{Line, across_seeds, line_chart};
use crate::config::Expect;
use crate::error::{LabError, io};
use crate::explain::{IDENTITY_TOLERANCE, Identity};
use crate::files::write_atomic;
use crate::metrics::{Better, METRICS, RunResult, Section, keys_of};
use crate::results::{NOT_RECORDED, Results};
use crate::stats::Summary;
use crate::verdict::{Outcome, Verdict};

/// "1 strategy", "6 strategies".
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The verdicts' rule paragraph and table.
fn verdict_blocks(r: &Results, b: &mut Vec<Block>) {
    b.push(Block::Para(format!("Each claim with its decision rule from the ablation config: Welch's two-sided t-test across seeds, p-values Holm-corrected over a claim's comparisons; supported when every comparison is significant at α = {} in the claimed direction, contradicted when any is significant the other way, inconclusive otherwise; a claim needs at least two seeds per side. Effect size: Cohen's d (pooled sd). Stability: the same rule re-applied with one seed left out of every strategy, once per seed (a verdict that holds on every such subset does not rest on one seed; with two seeds a side a test has less power, so \"inconclusive\" there is expected more often than a reversal). The claims and α were recorded in the study folder {}{}", r.alpha, r.preregistration.recorded,
        if r.preregistration.unchanged { "; they are unchanged." } else { "; **they have been edited since: these verdicts do not follow rules fixed in advance.**" })));
    b.push(verdict_rows(r));
}

/// One GIF of a report: its file name under `gifs/` and its bytes.
type GifCell = (String, Vec<u8>);

enum Block {
    Heading(u8, String),
    Para(String),
    Table(Vec<String>, Vec<Vec<String>>),
    /// Inline SVG in HTML; a caption line in Markdown.
    Chart(String, String),
    /// Column headings (prompts), then rows of (label, GIF cells).
    Gifs(Vec<String>, Vec<(String, Vec<GifCell>)>),
}

/// A figure for a table: `n/a` for anything not finite, never `NaN`.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e4 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else if a >= 0.01 {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    }
}

/// A test statistic: signed infinity spelled out (zero variance on both sides makes the test
/// exact), never `n/a` beside a decisive verdict.
fn stat(x: f64) -> String {
    if x == f64::INFINITY {
        "∞ (no variance)".into()
    } else if x == f64::NEG_INFINITY {
        "−∞ (no variance)".into()
    } else {
        num(x)
    }
}

fn cell(s: Option<&Summary>, percent: bool) -> String {
    let Some(s) = s.filter(|s| s.mean.is_finite()) else {
        return "n/a".into();
    };
    let k = if percent { 100.0 } else { 1.0 };
    let unit = if percent { " %" } else { "" };
    let m = if percent {
        format!("{:.1}", k * s.mean)
    } else {
        num(s.mean)
    };
    if s.ci95 == 0.0 {
        // Identical across seeds (a parameter count, say): an interval of 0 says nothing.
        format!("{m}{unit}")
    } else if s.ci95.is_finite() {
        let ci = if percent {
            format!("{:.1}", k * s.ci95)
        } else {
            num(s.ci95)
        };
        format!("{m} ± {ci}{unit}")
    } else {
        format!("{m}{unit} (1 seed)")
    }
}

/// Whether `strategy`'s mean is the best of a column (lower or higher is better) and not
/// shared by every strategy; ties are all best.
fn is_best(r: &Results, key: &str, strategy: &str) -> bool {
    let Some(better) = METRICS.iter().find(|m| m.key == key).map(|m| m.better) else {
        return false;
    };
    let mean = |s: &str| {
        r.summary
            .get(s)
            .and_then(|m| m.get(key))
            .map(|x| x.mean)
            .filter(|m| m.is_finite())
    };
    let means: Vec<f64> = r.strategies.iter().filter_map(|s| mean(s)).collect();
    let best = match better {
        Better::Lower => means.iter().copied().fold(f64::INFINITY, f64::min),
        Better::Higher => means.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Better::Neither => return false,
    };
    let all_tied = means.iter().all(|m| *m == best);
    !all_tied && mean(strategy) == Some(best)
}

fn table_of(r: &Results, keys: &[&str]) -> Block {
    let mut headers = vec!["strategy".to_string()];
    let mut rows = Vec::new();
    for k in keys {
        let label = METRICS
            .iter()
            .find(|m| m.key == *k)
            .map(|m| m.label.to_string())
            .unwrap_or_else(|| format!("{} probe gap", k.trim_start_matches("probe_")));
        headers.push(label);
    }
    for s in &r.strategies {
        let row_sum = r.summary.get(s);
        let mut row = vec![format!("`{s}`")];
        for k in keys {
            let percent = METRICS.iter().any(|m| m.key == *k && m.percent);
            let summary = row_sum.and_then(|m| m.get(*k));
            let mut text = cell(summary, percent);
            // A seed whose figure is not a number (a diverged run) is not averaged in: say so.
            let n = summary.map_or(0, |x| x.n);
            if n < r.seeds.len() {
                // "(n = 1 of 3)" says what "(1 seed)" says, and more.
                let bare = text.trim_end_matches(" (1 seed)");
                text = format!("{bare} (n = {n} of {})", r.seeds.len());
            }
            if is_best(r, k, s) {
                text = format!("**{text}**");
            }
            row.push(text);
        }
        rows.push(row);
    }
    Block::Table(headers, rows)
}

fn rule_text(v: &Verdict, alpha: f64) -> String {
    let c = &v.claim;
    let against = if c.against.iter().any(|a| a == "*") {
        "every other strategy".to_string()
    } else {
        c.against.join(", ")
    };
    let dir = match c.expect {
        Expect::Lower => "lower",
        Expect::Higher => "higher",
    };
    let holm = if v.comparisons.len() > 1 {
        " (Holm-corrected)"
    } else {
        ""
    };
    format!(
        "`{}`'s {} {dir} than {against}'s, Welch p < {alpha} for each{holm}",
        c.strategy, c.metric
    )
}

/// "3 of 3 the same", or which seed's absence changes the verdict to what.
fn stability_text(v: &Verdict) -> String {
    let Some(st) = &v.stability else {
        return if v.outcome == Outcome::Untested {
            "—".into()
        } else {
            "n/a (needs 3 seeds)".into()
        };
    };
    let mut text = format!("{} of {} the same", st.same, st.of);
    for o in &st.others {
        let _ = write!(text, "; without seed {}: {}", o.seed, o.outcome.word());
    }
    text
}

fn verdict_rows(r: &Results) -> Block {
    let headers = [
        "claim",
        "decision rule",
        "verdict",
        "statistic",
        "effect size",
        "leave one seed out",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for v in &r.verdicts {
        let mut stats = String::new();
        let mut effect = String::new();
        for c in &v.comparisons {
            if let Some(w) = &c.welch {
                let holm = if v.comparisons.len() > 1 {
                    format!(", Holm p = {}", num(c.p_holm))
                } else {
                    String::new()
                };
                let _ = write!(
                    stats,
                    "vs `{}`: Welch t = {}, df = {}, p = {}{holm}; ",
                    c.other,
                    stat(w.t),
                    num(w.df),
                    num(w.p)
                );
                let _ = write!(
                    effect,
                    "vs `{}`: Δ = {}, d = {}; ",
                    c.other,
                    num(w.diff),
                    stat(w.cohens_d)
                );
            }
        }
        if let Some(n) = &v.note {
            stats.push_str(n);
        }
        rows.push(vec![
            format!("{}. {}", v.claim.id, v.claim.text),
            rule_text(v, r.alpha),
            format!("**{}**", v.outcome.word()),
            stats.trim_end_matches("; ").to_string(),
            effect.trim_end_matches("; ").to_string(),
            stability_text(v),
        ]);
    }
    Block::Table(headers, rows)
}

fn by_strategy<'a>(r: &'a Results, s: &str) -> Vec<&'a RunResult> {
    r.runs.iter().filter(|x| x.strategy == s).collect()
}

/// Mean over seeds of a per-run map (drift) as a strategy × key table.
fn map_table(r: &Results, get: fn(&RunResult) -> Vec<(String, f64)>) -> Block {
    let mut keys: Vec<String> = Vec::new();
    for run in &r.runs {
        for (k, _) in get(run) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let mut rows = Vec::new();
    for s in &r.strategies {
        let runs = by_strategy(r, s);
        let mut row = vec![format!("`{s}`")];
        for k in &keys {
            let vals: Vec<f64> = runs
                .iter()
                .filter_map(|x| get(x).into_iter().find(|(kk, _)| kk == k).map(|p| p.1))
                .collect();
            row.push(cell(Some(&crate::stats::summarise(&vals)), false));
        }
        rows.push(row);
    }
    let mut headers = vec!["strategy".to_string()];
    headers.extend(keys);
    Block::Table(headers, rows)
}

fn charts(r: &Results) -> Result<Vec<Block>, LabError> {
    let mut out = Vec::new();
    let lines: Vec<Line> = r
        .strategies
        .iter()
        .map(|s| {
            let runs = by_strategy(r, s);
            let series: Vec<&[(usize, f64)]> =
                runs.iter().map(|x| x.val_curve.as_slice()).collect();
            across_seeds(s, &series)
        })
        .collect();
    if let Some(svg) = line_chart(
        "validation loss (mean, band: min–max over seeds)",
        "val loss",
        &lines,
        false,
    )? {
        out.push(Block::Chart(
            "Validation loss over steps per strategy.".into(),
            svg,
        ));
    }
    for s in &r.strategies {
        let runs = by_strategy(r, s);
        let mut groups: Vec<Line> = Vec::new();
        for (kind, get) in [
            (
                "",
                (|x: &RunResult| &x.grad_norms)
                    as fn(&RunResult) -> &BTreeMap<String, Vec<(usize, f64)>>,
            ),
            (" (frozen: would-be)", |x: &RunResult| &x.frozen_grad_norms),
        ] {
            let names: std::collections::BTreeSet<&String> =
                runs.iter().flat_map(|x| get(x).keys()).collect();
            for g in names {
                let series: Vec<&[(usize, f64)]> = runs
                    .iter()
                    .filter_map(|x| get(x).get(g).map(|v| v.as_slice()))
                    .collect();
                groups.push(across_seeds(&format!("{g}{kind}"), &series));
            }
        }
        let title = format!("`{s}`: gradient norm per plan group (log scale)");
        if let Some(svg) = line_chart(&title.replace('`', ""), "gradient norm", &groups, true)? {
            out.push(Block::Chart(title, svg));
        }
    }
    Ok(out)
}

/// The GIF grid: one row per strategy (its first seed), one column per sample prompt, the same
/// noise everywhere. Copies the GIFs under `out/gifs/`.
fn gifs(r: &Results, out: &Path) -> Result<Block, LabError> {
    let dir = out.join("gifs");
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let mut rows = Vec::new();
    for s in &r.strategies {
        let Some(run) = by_strategy(r, s).into_iter().next() else {
            continue;
        };
        let mut cells = Vec::new();
        for p in &r.prompts {
            let slug = freezeframe_train::run::slug(p);
            let src = out
                .join(&run.run)
                .join("samples/final")
                .join(format!("{slug}.gif"));
            let Ok(bytes) = std::fs::read(&src) else {
                tracing::warn!(gif = %src.display(), "sample GIF missing; left out of the report");
                continue;
            };
            let name = format!("{s}-{slug}.gif");
            write_atomic(&dir.join(&name), &bytes)?;
            cells.push((name, bytes));
        }
        rows.push((format!("{s} (seed {})", run.seed), cells));
    }
    Ok(Block::Gifs(r.prompts.clone(), rows))
}

/// `a (3 runs), b (1 run)`: each commit or machine with how many runs it finished; commits in
/// backticks, the "not recorded" entry never.
fn counted(by: &BTreeMap<String, usize>, code: bool, sep: &str) -> String {
    by.iter()
        .map(|(k, n)| {
            let k = if code && k != NOT_RECORDED {
                format!("`{k}`")
            } else {
                k.clone()
            };
            format!("{k} ({})", plural(*n, "run", "runs"))
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn blocks(r: &Results, out: &Path) -> Result<Vec<Block>, LabError> {
    let mut b = header_blocks(r);
    result_blocks(r, out, &mut b)?;
    explanation_blocks(r, &mut b);
    Ok(b)
}

/// The title, how the study was run (commands, commits, machines, budget) and what is left out.
fn header_blocks(r: &Results) -> Vec<Block> {
    use Block::*;
    let mut b = Vec::new();
    b.push(Heading(1, format!("Ablation study `{}`", r.name)));
    if r.meta.quick {
        b.push(Para("**QUICK SMOKE TEST: every stage ran at the smallest size. These numbers mean nothing; they only show that the pipeline works end to end.**".into()));
    }
    b.push(Para(format!(
        "Command: `{}` · report written by commit `{}`; runs trained by {} on {} · report machine: {} · compute time {:.1} min (the sum of the runs' last attempts: training, evaluation, measurements) · {} × {} seeds, {} steps × batch {} each, identical data order, noise, t and caption-dropout draws and LR schedule; only the plan differs.",
        r.meta.command, r.meta.commit, counted(&r.trained_by, true, ", "),
        counted(&r.trained_on, false, "; "), r.meta.machine, r.wall_seconds / 60.0,
        plural(r.strategies.len(), "strategy", "strategies"), r.seeds.len(), r.steps, r.batch_size
    )));
    if r.cpu_runs > 0 {
        b.push(Para(format!(
            "CPU time {:.1} min over the last attempts of {}: user + system, summed over threads, so on several cores it can exceed the compute time above; unlike that, it does not grow while a process is stopped or waiting for a core.",
            r.cpu_seconds / 60.0,
            if r.cpu_runs == r.runs.len() {
                plural(r.cpu_runs, "run", "runs")
            } else {
                format!("{} of {} runs (the others' markers predate the field)", r.cpu_runs, r.runs.len())
            }
        )));
    }
    let machines = r.trained_on.keys().filter(|m| *m != NOT_RECORDED).count();
    if machines > 1 {
        b.push(Para(format!("Runs were finished on {machines} machines: step and compute times compare only between runs of one machine.")));
    }
    if let Some(n) = r.trained_on.get(NOT_RECORDED) {
        b.push(Para(format!("{} recorded no machine (their markers predate the field): compare their step and compute times with the others only where the machine is known otherwise.", plural(*n, "run", "runs"))));
    }
    if r.meta.jobs > 1 {
        b.push(Para(format!("Runs shared the machine in {} worker processes: step and wall times are not comparable between strategies.", r.meta.jobs)));
    }
    b.push(Para(format!("Setting: {}", r.setting)));
    b.push(Para(format!(
        "Image weights (every run's start): {}",
        r.image_weights
    )));
    for l in &r.meta.left_out {
        b.push(Para(format!("Left out: {l}")));
    }
    b
}

/// Verdicts, the metric tables, the samples and the curves.
fn result_blocks(r: &Results, out: &Path, b: &mut Vec<Block>) -> Result<(), LabError> {
    use Block::*;
    b.push(Heading(2, "Verdicts".into()));
    if r.verdicts.is_empty() {
        b.push(Para("The ablation config states no claims: this study measures, it tests nothing. Add `[[claims]]` with their decision rules before the runs to have verdicts.".into()));
    } else {
        verdict_blocks(r, b);
    }
    b.push(Heading(
        2,
        "Results (mean ± 95 % confidence interval across seeds)".into(),
    ));
    b.push(Heading(3, "Motion".into()));
    b.push(table_of(r, &keys_of(Section::Motion)));
    b.push(Heading(3, "Text following and appearance".into()));
    let mut text_keys = keys_of(Section::Text);
    let probes: std::collections::BTreeSet<&str> = r
        .runs
        .iter()
        .flat_map(|x| x.values.keys())
        .filter(|k| k.starts_with("probe_"))
        .map(|k| k.as_str())
        .collect();
    text_keys.extend(probes);
    b.push(table_of(r, &text_keys));
    b.push(Heading(3, "Quality and cost".into()));
    b.push(table_of(r, &keys_of(Section::Quality)));
    b.push(Heading(2, "Samples (same prompts, same noise)".into()));
    b.push(gifs(r, out)?);
    b.push(Heading(2, "Curves".into()));
    b.extend(charts(r)?);
    Ok(())
}

/// The measured explanations: the inflation identity, drift, CKA and would-be gradients.
fn explanation_blocks(r: &Results, b: &mut Vec<Block>) {
    use Block::*;
    b.push(Heading(2, "The study's explanations, measured".into()));
    let inf = &r.inflation;
    let why = match inf.identity() {
        Identity::Holds if inf.frame_slots > 0 => format!(" Below {IDENTITY_TOLERANCE:e}, float rounding: every plan starts from the image model itself, frame f as the image model at frame slot f (the image weights were trained at {} slots, read from their metadata).", inf.image_frame_slots.unwrap_or(0)),
        Identity::Holds => format!(" Below {IDENTITY_TOLERANCE:e}, float rounding: every plan starts from the image model itself."),
        Identity::StreamOffset => " The ungated stream position makes the first differ by design (every plan starts from that offset, and plans that freeze the spatial layers cannot adapt to it): a confound for claims about such plans.".into(),
        Identity::SlotsUnseen => format!(" The numbers agree only because frame f is compared with the image model at slot f, and the image weights were not trained at the slots of all {} frames (metadata frame_slots: {}): the ungated stream's offset, a confound for claims about plans that freeze the spatial layers.", inf.frames, inf.image_frame_slots.map_or("none".into(), |n| n.to_string())),
        Identity::Broken => " **The identity is broken** although this wiring should keep it: the runs did not start from the image model.".into(),
    };
    b.push(Para(format!(
        "Inflation: the inflated model against the image model frame by frame, before training, on {} frames: largest |Δ| = {} with the configured temporal position (`{}`), {} with the weights alone (temporal position inside the zero-initialised temporal attention).{why}",
        inf.frames, num(inf.max_abs_diff), inf.temporal_pos, num(inf.max_abs_diff_weights)
    )));
    b.push(Heading(
        3,
        "Parameter coupling: weight drift from the inflated initialisation (‖w − w₀‖ / ‖w₀‖)"
            .into(),
    ));
    b.push(map_table(r, |x| {
        x.drift.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }));
    b.push(Heading(3, "Parameter coupling: linear CKA, image model vs video model, per block (same noised frames)".into()));
    b.push(map_table(r, |x| {
        x.cka
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("block {i}"), *v))
            .collect()
    }));
    b.push(Heading(3, "Gradient propagation: mean would-be gradient norm of frozen groups (and real norm of training groups)".into()));
    b.push(map_table(r, |x| {
        let mean =
            |v: &Vec<(usize, f64)>| v.iter().map(|p| p.1).sum::<f64>() / v.len().max(1) as f64;
        x.frozen_grad_norms
            .iter()
            .map(|(g, v)| (format!("{g} (frozen)"), mean(v)))
            .chain(
                x.grad_norms
                    .iter()
                    .map(|(g, v)| (format!("{g} (training)"), mean(v))),
            )
            .collect()
    }));
}

fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(l, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(*l as usize));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::Table(h, rows) => {
                let row = |cells: &[String]| {
                    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
                    format!("| {} |", cells.join(" | "))
                };
                let _ = writeln!(s, "{}", row(h));
                let _ = writeln!(s, "|{}", "---|".repeat(h.len()));
                for r in rows {
                    let _ = writeln!(s, "{}", row(r));
                }
                s.push('\n');
            }
            Block::Chart(caption, _) => {
                let _ = writeln!(s, "*Chart: {caption} (in report.html)*\n");
            }
            Block::Gifs(prompts, rows) => {
                let heads: Vec<String> = prompts.iter().map(|p| p.replace('|', "\\|")).collect();
                let _ = writeln!(s, "| strategy | {} |", heads.join(" | "));
                let _ = writeln!(s, "|{}", "---|".repeat(prompts.len() + 1));
                for (label, cells) in rows {
                    let imgs: Vec<String> = cells
                        .iter()
                        .map(|(n, _)| format!("![](gifs/{n})"))
                        .collect();
                    let _ = writeln!(s, "| {label} | {} |", imgs.join(" | "));
                }
                s.push('\n');
            }
        }
    }
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Minimal inline Markdown for table cells and paragraphs: `code` and **bold**.
fn inline(t: &str) -> String {
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let e = escape(t);
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        } else if c == '*' && chars.peek() == Some(&'*') && !code {
            chars.next();
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
        } else {
            out.push(c);
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}code{background:#f4f4f4;padding:0 3px}img.gif{image-rendering:pixelated;width:200px}\
.chart{margin:1em 0}";

fn html(blocks: &[Block], title: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(l, t) => {
                let _ = writeln!(s, "<h{l}>{}</h{l}>", inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Table(h, rows) => {
                s.push_str("<table><tr>");
                for x in h {
                    let _ = write!(s, "<th>{}</th>", inline(x));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for x in r {
                        let _ = write!(s, "<td>{}</td>", inline(x));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Chart(caption, svg) => {
                let _ = writeln!(
                    s,
                    "<div class=\"chart\"><p>{}</p>{svg}</div>",
                    inline(caption)
                );
            }
            Block::Gifs(prompts, rows) => {
                s.push_str("<table class=\"gifs\"><tr><th>strategy</th>");
                for p in prompts {
                    let _ = write!(s, "<th>{}</th>", escape(p));
                }
                s.push_str("</tr>\n");
                for (label, cells) in rows {
                    let _ = write!(s, "<tr><td>{}</td>", escape(label));
                    for (name, bytes) in cells {
                        let _ = write!(
                            s,
                            "<td><img class=\"gif\" alt=\"{}\" src=\"data:image/gif;base64,{}\"></td>",
                            escape(name),
                            b64.encode(bytes)
                        );
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// Writes `results.json`, `report.md`, `report.html` and `gifs/` into `out`; returns the HTML
/// report's path.
pub fn write(r: &Results, out: &Path) -> Result<PathBuf, LabError> {
    crate::files::write_json_atomic(&out.join("results.json"), r)?;
    let b = blocks(r, out)?;
    write_atomic(&out.join("report.md"), markdown(&b).as_bytes())?;
    let path = out.join("report.html");
    write_atomic(
        &path,
        html(&b, &format!("freezeframe study: {}", r.name)).as_bytes(),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_machines_are_counted() {
        let by: BTreeMap<String, usize> = [("abc1234".into(), 3), (NOT_RECORDED.into(), 1)]
            .into_iter()
            .collect();
        assert_eq!(
            counted(&by, true, ", "),
            "`abc1234` (3 runs), not recorded (1 run)"
        );
        assert_eq!(
            counted(&by, false, "; "),
            "abc1234 (3 runs); not recorded (1 run)"
        );
    }

    #[test]
    fn figures_never_print_nan() {
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(num(f64::INFINITY), "n/a");
        assert_eq!(num(851436.0), "851436");
        assert_eq!(num(0.0123456), "0.0123");
        assert_eq!(cell(None, false), "n/a");
        let one = Summary {
            n: 1,
            mean: 0.5,
            sd: f64::NAN,
            ci95: f64::NAN,
        };
        assert_eq!(cell(Some(&one), true), "50.0 % (1 seed)");
    }

    #[test]
    fn inline_markup_is_escaped_and_converted() {
        assert_eq!(inline("**a** `b<c`"), "<b>a</b> <code>b&lt;c</code>");
    }
}
