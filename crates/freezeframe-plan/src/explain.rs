//! The human-readable table of a resolved plan (`freezeframe plan explain`, and the head of every
//! training log).
use std::fmt::Write;

use crate::resolve::{ParamPlan, ResolvedPlan};
use crate::spec::Init;

/// AdamW keeps two f32 moments per trained parameter.
pub const ADAM_BYTES_PER_PARAM: usize = 8;

/// What one phase trains, in total: its tensors, parameters and AdamW state (the last columns
/// of the table and the `phase_start` records of a run).
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTotals {
    pub name: String,
    pub start: usize,
    pub end: usize,
    pub tensors: usize,
    pub params: usize,
    pub optimizer_bytes: usize,
}

pub fn phase_totals(plan: &ResolvedPlan) -> Vec<PhaseTotals> {
    plan.phases
        .iter()
        .map(|ph| {
            let (mut tensors, mut params) = (0, 0);
            for (p, &t) in plan.params.iter().zip(&ph.trains) {
                if t {
                    tensors += 1;
                    params += p.numel();
                }
            }
            PhaseTotals {
                name: ph.name.clone(),
                start: ph.start,
                end: ph.end,
                tensors,
                params,
                optimizer_bytes: params * ADAM_BYTES_PER_PARAM,
            }
        })
        .collect()
}

pub fn human_bytes(b: usize) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table; `base_lr` is the run's peak learning rate.
pub fn explain(plan: &ResolvedPlan, base_lr: f64) -> String {
    let mut s = String::new();
    let total: usize = plan.params.iter().map(|p| p.numel()).sum();
    let init = match plan.spec.init {
        Init::Image => "image weights (fresh: ".to_string() + &plan.spec.fresh.join(", ") + ")",
        Init::Scratch => "random (scratch)".to_string(),
    };
    let _ = writeln!(s, "plan {}: {}", plan.name, plan.spec.description);
    let _ = writeln!(s, "init: {init}");
    for (k, l) in plan.spec.lora.iter().enumerate() {
        let _ = writeln!(
            s,
            "lora[{k}]: rank {}, alpha {} on the linear layers of {}",
            l.rank,
            l.alpha(),
            l.targets.join(", ")
        );
    }
    let bases: Vec<&ParamPlan> = plan.params.iter().filter(|p| p.lora_base).collect();
    if !bases.is_empty() {
        let n: usize = bases.iter().map(|p| p.numel()).sum();
        let _ = writeln!(
            s,
            "frozen under adapters: {} tensors, {} parameters (whatever the phases say)",
            bases.len(),
            thousands(n)
        );
    }
    let _ = writeln!(
        s,
        "model: depth {}, {} tensors, {} parameters; run of {} steps, peak lr {base_lr:.1e}",
        plan.depth,
        plan.params.len(),
        thousands(total),
        plan.total_steps
    );
    let _ = writeln!(s);

    let mut header = vec![
        "group".to_string(),
        "tensors".into(),
        "params".into(),
        "share".into(),
    ];
    for ph in &plan.phases {
        header.push(format!("{} [{}–{})", ph.name, ph.start, ph.end));
    }
    header.extend([
        "lr".to_string(),
        "decay".into(),
        "init".into(),
        "adam state".into(),
    ]);
    let mut rows = vec![header];
    for (g, name) in plan.groups.iter().enumerate() {
        let idx: Vec<usize> = (0..plan.params.len())
            .filter(|&i| plan.params[i].group == g)
            .collect();
        let params: usize = idx.iter().map(|&i| plan.params[i].numel()).sum();
        let mut row = vec![
            name.clone(),
            idx.len().to_string(),
            thousands(params),
            format!("{:.1}%", 100.0 * params as f64 / total.max(1) as f64),
        ];
        for (k, ph) in plan.phases.iter().enumerate() {
            let n = idx.iter().filter(|&&i| ph.trains[i]).count();
            let mark = if n == idx.len() {
                if ph.rewarm > 0 && idx.iter().any(|&i| plan.newly_unfrozen(k, i)) {
                    format!("✓ (re-warm {})", ph.rewarm)
                } else {
                    "✓".to_string()
                }
            } else if n == 0 {
                "✗".to_string()
            } else {
                format!("{n}/{}", idx.len())
            };
            row.push(mark);
        }
        let (lo, hi) = idx.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &i| {
            let l = plan.params[i].lr_scale * base_lr;
            (lo.min(l), hi.max(l))
        });
        row.push(if (hi - lo).abs() <= 1e-12 * hi.max(1e-30) {
            format!("{hi:.1e}")
        } else {
            format!("{lo:.1e}–{hi:.1e}")
        });
        let dec = idx.iter().filter(|&&i| plan.params[i].decay).count();
        row.push(if dec == idx.len() {
            "✓".into()
        } else if dec == 0 {
            "✗".into()
        } else {
            format!("{dec}/{}", idx.len())
        });
        let fresh = idx.iter().filter(|&&i| plan.params[i].fresh).count();
        row.push(if fresh == idx.len() {
            "init".into()
        } else if fresh == 0 {
            "loaded".into()
        } else {
            format!("{fresh} init")
        });
        let trains_ever = idx
            .iter()
            .filter(|&&i| plan.phases.iter().any(|p| p.trains[i]))
            .map(|&i| plan.params[i].numel())
            .sum::<usize>();
        row.push(human_bytes(trains_ever * ADAM_BYTES_PER_PARAM));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    let d = plan.spec.lr.layer_decay;
    if d != 1.0 {
        let mut layers = vec![format!(
            "embedders {:.1e}",
            base_lr * d.powi(plan.depth as i32 + 1)
        )];
        for i in 0..plan.depth {
            layers.push(format!(
                "blocks.{i} {:.1e}",
                base_lr * d.powi((plan.depth - i) as i32)
            ));
        }
        layers.push(format!("final_layer {base_lr:.1e}"));
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "layer-wise lr (decay {d}, before group multipliers): {}",
            layers.join(", ")
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "per phase (trainable; AdamW state = 2 × f32 per trained parameter):"
    );
    for t in phase_totals(plan) {
        let _ = writeln!(
            s,
            "  {:<12} steps {:>6}–{:<6} {:>4} tensors  {:>12} params ({:>5.1}%)  adam state {}",
            t.name,
            t.start,
            t.end,
            t.tensors,
            thousands(t.params),
            100.0 * t.params as f64 / total.max(1) as f64,
            human_bytes(t.optimizer_bytes)
        );
    }
    s
}
