//! Latency statistics and the side-by-side figures every benchmark prints.

/// The `p`-th percentile (0–100) of `samples` by nearest rank; 0 for no samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `a / b`, or NaN when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// One figure measured on cerfs and on the baseline.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured, with its unit.
    pub name: String,
    /// The value on cerfs.
    pub cerfs: f64,
    /// The value on the baseline.
    pub baseline: f64,
    /// Whether to print the cerfs/baseline ratio (throughputs and latencies, not losses).
    pub with_ratio: bool,
}

impl Figure {
    /// A figure whose ratio matters.
    pub fn rate(name: impl Into<String>, cerfs: f64, baseline: f64) -> Figure {
        Figure {
            name: name.into(),
            cerfs,
            baseline,
            with_ratio: true,
        }
    }

    /// A count (losses, errors): no ratio.
    pub fn count(name: impl Into<String>, cerfs: f64, baseline: f64) -> Figure {
        Figure {
            name: name.into(),
            cerfs,
            baseline,
            with_ratio: false,
        }
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A Markdown table of `figures` under `title`, with `baseline` as the name of the
/// comparison column.
pub fn table(title: &str, baseline: &str, figures: &[Figure]) -> String {
    let mut out = format!("\n### {title}\n\n| figure | cerfs | {baseline} | cerfs / {baseline} |\n|---|---:|---:|---:|\n");
    for f in figures {
        let r = if f.with_ratio {
            format!("{:.2}", ratio(f.cerfs, f.baseline))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            f.name,
            fmt(f.cerfs),
            fmt(f.baseline),
            r
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn ratios_and_formatting() {
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert!(ratio(1.0, 0.0).is_nan());
        let t = table(
            "t",
            "plain",
            &[
                Figure::rate("r/s", 10.0, 5.0),
                Figure::count("lost", 0.0, 3.0),
            ],
        );
        assert!(t.contains("| r/s | 10 | 5 | 2.00 |"), "{t}");
        assert!(t.contains("| lost | 0 | 3 |  |"), "{t}");
    }
}
