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

/// One figure measured on cerfs and on the baseline (and maybe on the FUSE floor).
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured, with its unit.
    pub name: String,
    /// The value on cerfs.
    pub cerfs: f64,
    /// The value on the FUSE floor (bindfs), when measured.
    pub floor: Option<f64>,
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
            floor: None,
            baseline,
            with_ratio: true,
        }
    }

    /// A count (losses, errors): no ratio.
    pub fn count(name: impl Into<String>, cerfs: f64, baseline: f64) -> Figure {
        Figure {
            name: name.into(),
            cerfs,
            floor: None,
            baseline,
            with_ratio: false,
        }
    }

    /// The same figure with its value on the FUSE floor.
    pub fn with_floor(mut self, floor: f64) -> Figure {
        self.floor = Some(floor);
        self
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
    render(title, None, baseline, figures)
}

/// Like [`table`], with a `floor` column between cerfs and the baseline, and its ratio to
/// the baseline after cerfs's.
pub fn table_with_floor(title: &str, floor: &str, baseline: &str, figures: &[Figure]) -> String {
    render(title, Some(floor), baseline, figures)
}

fn render(title: &str, floor: Option<&str>, baseline: &str, figures: &[Figure]) -> String {
    let mut out = format!("\n### {title}\n\n| figure | cerfs |");
    if let Some(floor) = floor {
        out.push_str(&format!(" {floor} |"));
    }
    out.push_str(&format!(" {baseline} | cerfs / {baseline} |"));
    if let Some(floor) = floor {
        out.push_str(&format!(" {floor} / {baseline} | cerfs / {floor} |"));
    }
    out.push_str(if floor.is_some() {
        "\n|---|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---:|---:|---:|\n"
    });
    let ratio_of = |v: f64, f: &Figure| {
        if f.with_ratio {
            format!("{:.2}", ratio(v, f.baseline))
        } else {
            String::new()
        }
    };
    for f in figures {
        let floor_value = f.floor.unwrap_or(f64::NAN);
        out.push_str(&format!("| {} | {} |", f.name, fmt(f.cerfs)));
        if floor.is_some() {
            out.push_str(&format!(" {} |", fmt(floor_value)));
        }
        out.push_str(&format!(
            " {} | {} |",
            fmt(f.baseline),
            ratio_of(f.cerfs, f)
        ));
        if floor.is_some() {
            let (r, to_floor) = match (f.floor, f.with_ratio) {
                (Some(_), true) => (
                    ratio_of(floor_value, f),
                    format!("{:.2}", ratio(f.cerfs, floor_value)),
                ),
                _ => (String::new(), String::new()),
            };
            out.push_str(&format!(" {r} | {to_floor} |"));
        }
        out.push('\n');
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

    #[test]
    fn floor_column_between_cerfs_and_baseline() {
        let t = table_with_floor(
            "t",
            "bindfs",
            "plain",
            &[
                Figure::rate("r/s", 10.0, 5.0).with_floor(4.0),
                Figure::count("lost", 0.0, 3.0).with_floor(1.0),
                Figure::count("rss", 7.0, f64::NAN),
            ],
        );
        assert!(
            t.contains("| figure | cerfs | bindfs | plain | cerfs / plain | bindfs / plain |"),
            "{t}"
        );
        assert!(t.contains("|---|---:|---:|---:|---:|---:|"), "{t}");
        assert!(t.contains("| r/s | 10 | 4 | 5 | 2.00 | 0.80 |"), "{t}");
        assert!(t.contains("| lost | 0 | 1 | 3 |  |  |"), "{t}");
        assert!(t.contains("| rss | 7 | - | - |  |  |"), "{t}");
    }
}
