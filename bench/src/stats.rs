//! Latency statistics, the side-by-side figures every benchmark prints, and the report that
//! reduces several runs of a benchmark to one (medians of rates, the worst of counts).

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
    /// Whether several runs reduce to the median (a measure) rather than the largest (a
    /// count: a loss in any run must show).
    pub median: bool,
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
            median: true,
        }
    }

    /// A measure with nothing to compare it with (a rate or latency without baseline):
    /// no ratio, the median of several runs.
    pub fn measure(name: impl Into<String>, cerfs: f64) -> Figure {
        Figure {
            name: name.into(),
            cerfs,
            floor: None,
            baseline: f64::NAN,
            with_ratio: false,
            median: true,
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
            median: false,
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

fn render(
    title: &str,
    subject: &str,
    floor: Option<&str>,
    baseline: &str,
    figures: &[Figure],
) -> String {
    let mut out = format!("\n### {title}\n\n| figure | {subject} |");
    if let Some(floor) = floor {
        out.push_str(&format!(" {floor} |"));
    }
    out.push_str(&format!(" {baseline} | {subject} / {baseline} |"));
    if let Some(floor) = floor {
        out.push_str(&format!(" {floor} / {baseline} | {subject} / {floor} |"));
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

/// A benchmark's Markdown section: its text, and its tables kept as figures so that several
/// runs reduce to one.
#[derive(Debug, Default, Clone)]
pub struct Report {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Table {
        title: String,
        /// The first column's name ("cerfs" unless said).
        subject: String,
        floor: Option<String>,
        baseline: String,
        figures: Vec<Figure>,
    },
}

impl Report {
    /// A report of text alone (its figures are not reduced over runs).
    pub fn from_text(text: String) -> Report {
        let mut r = Report::default();
        r.text(text);
        r
    }

    /// Appends text.
    pub fn text(&mut self, text: impl Into<String>) {
        self.parts.push(Part::Text(text.into()));
    }

    /// Appends a Markdown table of `figures` under `title`, with `baseline` as the name of
    /// the comparison column.
    pub fn table(&mut self, title: &str, baseline: &str, figures: Vec<Figure>) {
        self.parts.push(Part::Table {
            title: title.to_owned(),
            subject: "cerfs".to_owned(),
            floor: None,
            baseline: baseline.to_owned(),
            figures,
        });
    }

    /// Like [`Report::table`], with a `floor` column between cerfs and the baseline, and its
    /// ratio to the baseline after cerfs's.
    pub fn table_with_floor(
        &mut self,
        title: &str,
        floor: &str,
        baseline: &str,
        figures: Vec<Figure>,
    ) {
        self.parts.push(Part::Table {
            title: title.to_owned(),
            subject: "cerfs".to_owned(),
            floor: Some(floor.to_owned()),
            baseline: baseline.to_owned(),
            figures,
        });
    }

    /// Like [`Report::table_with_floor`], naming the first column `subject` instead of
    /// cerfs (tables that compare cerfs with itself, one store against another).
    pub fn table_of(
        &mut self,
        title: &str,
        subject: &str,
        middle: &str,
        baseline: &str,
        figures: Vec<Figure>,
    ) {
        self.parts.push(Part::Table {
            title: title.to_owned(),
            subject: subject.to_owned(),
            floor: Some(middle.to_owned()),
            baseline: baseline.to_owned(),
            figures,
        });
    }

    /// Whether it has tables (then more runs make medians).
    pub fn has_tables(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Table { .. }))
    }

    /// The Markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Table {
                    title,
                    subject,
                    floor,
                    baseline,
                    figures,
                } => out.push_str(&render(title, subject, floor.as_deref(), baseline, figures)),
            }
        }
        out
    }

    /// Several runs of one benchmark as one: each measure (rate, latency) is the median of
    /// the runs (of each column on its own; ratios are of the medians), each count (losses,
    /// errors, totals, RSS) the largest, so that a loss in any run shows. Text is the first
    /// run's.
    pub fn reduce(runs: &[Report]) -> Result<Report, String> {
        let Some(first) = runs.first() else {
            return Err("no runs".into());
        };
        let mut out = first.clone();
        for (i, part) in out.parts.iter_mut().enumerate() {
            let Part::Table { title, figures, .. } = part else {
                continue;
            };
            for (j, fig) in figures.iter_mut().enumerate() {
                let mut values: Vec<(f64, f64, f64)> = Vec::new();
                for run in runs {
                    match run.parts.get(i) {
                        Some(Part::Table {
                            figures: theirs, ..
                        }) if theirs.get(j).is_some_and(|f| f.name == fig.name) => {
                            let f = &theirs[j];
                            values.push((f.cerfs, f.floor.unwrap_or(f64::NAN), f.baseline));
                        }
                        _ => {
                            return Err(format!(
                                "the runs differ in table {title:?} at {:?}",
                                fig.name
                            ))
                        }
                    }
                }
                let pick = |v: Vec<f64>| {
                    if fig.median {
                        median(&v)
                    } else {
                        v.into_iter().fold(f64::NAN, f64::max)
                    }
                };
                fig.cerfs = pick(values.iter().map(|v| v.0).collect());
                if fig.floor.is_some() {
                    fig.floor = Some(pick(values.iter().map(|v| v.1).collect()));
                }
                fig.baseline = pick(values.iter().map(|v| v.2).collect());
            }
            title.push_str(&format!(" — {} runs", runs.len()));
        }
        Ok(out)
    }
}

/// The median (mean of the middle two for an even count); NaN for none.
pub fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
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
        let mut r = Report::default();
        r.table(
            "t",
            "plain",
            vec![
                Figure::rate("r/s", 10.0, 5.0),
                Figure::count("lost", 0.0, 3.0),
            ],
        );
        let t = r.render();
        assert!(t.contains("| r/s | 10 | 5 | 2.00 |"), "{t}");
        assert!(t.contains("| lost | 0 | 3 |  |"), "{t}");
    }

    #[test]
    fn runs_reduce_to_medians_of_rates_and_the_worst_counts() {
        let run = |rate: f64, floor: f64, lost: f64| {
            let mut r = Report::default();
            r.text("intro\n");
            r.table_with_floor(
                "t",
                "bindfs",
                "plain",
                vec![
                    Figure::rate("r/s", rate, 10.0).with_floor(floor),
                    Figure::count("lost", lost, 0.0).with_floor(0.0),
                    Figure::measure("p50", rate * 10.0),
                ],
            );
            r
        };
        let one = Report::reduce(&[run(3.0, 6.0, 0.0), run(1.0, 4.0, 2.0), run(2.0, 8.0, 0.0)])
            .expect("runs of one shape")
            .render();
        assert!(one.starts_with("intro\n"), "{one}");
        assert!(one.contains("### t — 3 runs"), "{one}");
        assert!(
            one.contains("| r/s | 2 | 6 | 10 | 0.20 | 0.60 | 0.33 |"),
            "{one}"
        );
        assert!(one.contains("| lost | 2 | 0 | 0 |  |  |"), "{one}");
        assert!(one.contains("| p50 | 20 | - | - |  |  |"), "{one}");
        let mut other = Report::default();
        other.table("u", "plain", vec![Figure::rate("r/s", 1.0, 1.0)]);
        assert!(Report::reduce(&[run(1.0, 1.0, 0.0), other]).is_err());
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn floor_column_between_cerfs_and_baseline() {
        let mut r = Report::default();
        r.table_with_floor(
            "t",
            "bindfs",
            "plain",
            vec![
                Figure::rate("r/s", 10.0, 5.0).with_floor(4.0),
                Figure::count("lost", 0.0, 3.0).with_floor(1.0),
                Figure::count("rss", 7.0, f64::NAN),
            ],
        );
        let t = r.render();
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
