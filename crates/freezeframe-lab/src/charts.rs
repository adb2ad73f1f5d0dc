//! The report's charts as inline SVG (plotters): validation loss per strategy with a band
//! across seeds, and per-group gradient norms — real for training groups, would-be for frozen
//! ones.
use std::collections::BTreeMap;

use plotters::prelude::*;

use crate::error::LabError;

/// One line of a chart: label, points, and an optional (step, low, high) band.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
}

/// Mean per step across seeds, with the min–max band; steps missing from a seed are skipped.
pub fn across_seeds(label: &str, series: &[&[(usize, f64)]]) -> Line {
    let mut by_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for s in series {
        for (step, v) in s.iter() {
            if v.is_finite() {
                by_step.entry(*step).or_default().push(*v);
            }
        }
    }
    let mut points = Vec::new();
    let mut band = Vec::new();
    for (step, vs) in by_step {
        let mean = vs.iter().sum::<f64>() / vs.len() as f64;
        let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        points.push((step as f64, mean));
        band.push((step as f64, lo, hi));
    }
    Line {
        label: label.to_string(),
        points,
        band,
    }
}

fn bounds(lines: &[Line], log: bool) -> Option<(f64, f64, f64, f64)> {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| {
        l.points
            .iter()
            .map(|p| p.1)
            .chain(l.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let ys: Vec<f64> = ys.filter(|y| y.is_finite() && (!log || *y > 0.0)).collect();
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (y0, y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(*y), b.max(*y))
        });
    if !(x0.is_finite() && y0.is_finite()) {
        return None;
    }
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let (y0, y1) = if log {
        (y0 / 1.5, y1 * 1.5)
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        (y0 - pad, y1 + pad)
    };
    Some((x0, x1, y0, y1))
}

/// An axis tick: three significant digits (log-scale ticks are sums like 0.30000000000000004).
fn tick(y: f64) -> String {
    if y == 0.0 || !y.is_finite() {
        return format!("{y}");
    }
    let digits = (2 - y.abs().log10().floor() as i32).max(0) as usize;
    format!("{y:.digits$}")
}

/// A line chart as SVG text; `None` when there is nothing to draw.
pub fn line_chart(
    title: &str,
    y_label: &str,
    lines: &[Line],
    log_y: bool,
) -> Result<Option<String>, LabError> {
    let Some((x0, x1, y0, y1)) = bounds(lines, log_y) else {
        return Ok(None);
    };
    let mut svg = String::new();
    let err = |e: String| LabError::Chart(format!("{title}: {e}"));
    {
        let root = SVGBackend::with_string(&mut svg, (640, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64);
        // The two y axes are different plotters types; one body serves both.
        macro_rules! axes_and_lines {
            ($y_range:expr) => {{
                let mut chart = builder
                    .build_cartesian_2d(x0..x1, $y_range)
                    .map_err(|e| err(e.to_string()))?;
                chart
                    .configure_mesh()
                    .x_desc("step")
                    .y_desc(y_label)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| tick(*y))
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
                draw_lines(&mut chart, lines).map_err(err)?;
            }};
        }
        if log_y {
            axes_and_lines!((y0..y1).log_scale());
        } else {
            axes_and_lines!(y0..y1);
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(Some(svg))
}

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, l) in lines.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        if l.band.len() > 1 {
            let mut poly: Vec<(f64, f64)> = l.band.iter().map(|b| (b.0, b.2)).collect();
            poly.extend(l.band.iter().rev().map(|b| (b.0, b.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    colour.mix(0.18).filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(l.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_with_a_band_renders_and_an_empty_one_is_none() {
        let a = [(100, 0.5), (200, 0.4)];
        let b = [(100, 0.6), (200, 0.3)];
        let line = across_seeds("full", &[&a, &b]);
        assert_eq!(line.points.len(), 2);
        assert!((line.points[1].1 - 0.35).abs() < 1e-12);
        assert_eq!(line.band[1], (200.0, 0.3, 0.4));
        let svg = line_chart("val loss", "loss", &[line], false)
            .expect("draws")
            .expect("has data");
        assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("full"));
        assert!(
            line_chart("empty", "y", &[], true)
                .expect("draws")
                .is_none()
        );
    }
}
