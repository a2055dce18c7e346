//! Charts as inline SVG, drawn on the server: a stacked bar per day with axes and a
//! legend, and a small trend line for lists. No script, readable without one; each bar
//! has a `<title>` that browsers show on hover.

use maud::{html, Markup};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

/// One stacked series: its name (legend, CSS class) and a value per day.
pub struct Series<'a> {
    /// Shown in the legend and as the segment's CSS class (`kind-NAME`).
    pub name: &'a str,
    /// One value per label.
    pub values: Vec<u64>,
}

/// A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten.
fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = step.saturating_mul(m);
            if v >= max || v == u64::MAX {
                return v.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The stacked segments of day `i`: each non-zero series value with its bottom and top.
fn segments<'a>(series: &'a [Series<'a>], i: usize) -> Vec<(&'a str, u64, u64)> {
    let mut base = 0u64;
    let mut out = Vec::new();
    for s in series {
        let v = s.values.get(i).copied().unwrap_or(0);
        if v > 0 {
            out.push((s.name, base, base + v));
            base += v;
        }
    }
    out
}

/// Stacked bars: one `<g class="day">` per label, a segment per non-zero series value.
pub fn stacked_bars(title: &str, labels: &[String], series: &[Series<'_>]) -> Markup {
    let totals: Vec<u64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let top = nice_max(totals.iter().copied().max().unwrap_or(0));
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / labels.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let y_of = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    // A date label every few days so that they never overlap.
    let every = (labels.len() / 10).max(1);
    html! {
        figure.chart {
            svg role="img" aria-label=(title) viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
                width="100%" preserveAspectRatio="xMidYMid meet" {
                title { (title) }
                // y axis: 0, half, top.
                @for v in [0, top / 2, top] {
                    line.grid x1=(LEFT) x2=(WIDTH - 8.0) y1=(y_of(v)) y2=(y_of(v)) {}
                    text.axis x=(LEFT - 6.0) y=(y_of(v) + 4.0) text-anchor="end" { (v) }
                }
                @for (i, label) in labels.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                    g.day data-day=(label) data-total=(totals[i]) {
                        title { (label) ": " (totals[i]) " reports" }
                        @for (name, low, high) in segments(series, i) {
                            rect class=(format!("seg kind-{name}")) x=(format!("{x:.1}"))
                                y=(format!("{:.1}", y_of(high)))
                                width=(format!("{bar:.1}"))
                                height=(format!("{:.1}", y_of(low) - y_of(high))) {}
                        }
                        @if i % every == 0 {
                            text.axis x=(format!("{:.1}", x + bar / 2.0)) y=(HEIGHT - 10.0)
                                text-anchor="middle" { (label.get(5..).unwrap_or(label)) }
                        }
                    }
                }
                line.axis-line x1=(LEFT) x2=(WIDTH - 8.0) y1=(y_of(0)) y2=(y_of(0)) {}
            }
            figcaption {
                (title) " — "
                @for s in series {
                    span class=(format!("legend kind-{}", s.name)) { "■ " (s.name) } " "
                }
            }
        }
    }
}

/// A small line of `values` (oldest first), for a list's trend column.
pub fn sparkline(values: &[u64]) -> Markup {
    let (w, h) = (90.0, 20.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 1.0 - (*v as f64 / max) * (h - 2.0)
            )
        })
        .collect();
    let label = values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        svg.spark role="img" aria-label=(format!("per day: {label}")) viewBox=(format!("0 0 {w} {h}"))
            width=(w) height=(h) {
            title { "per day: " (label) }
            polyline points=(points.join(" ")) fill="none" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(12), 20);
        assert_eq!(nice_max(40), 50);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
    }

    #[test]
    fn one_group_per_day_and_a_segment_per_value() {
        let labels: Vec<String> = (1..=3).map(|d| format!("2026-12-0{d}")).collect();
        let svg = stacked_bars(
            "t",
            &labels,
            &[
                Series {
                    name: "application",
                    values: vec![1, 0, 3],
                },
                Series {
                    name: "kernel",
                    values: vec![2, 0, 0],
                },
            ],
        )
        .into_string();
        assert_eq!(svg.matches("<g class=\"day\"").count(), 3);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("data-total=\"3\""));
    }
}
