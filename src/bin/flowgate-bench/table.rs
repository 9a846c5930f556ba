//! Output: a two-column table per run (also valid Markdown, to paste into
//! `docs/benchmarks.md`), and exact percentiles of a sample set.
//!
//! Writes to stdout only.

/// A titled list of (metric, value) rows.
#[derive(Debug, Default)]
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Self {
        Table { title: title.into(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, metric: impl Into<String>, value: impl ToString) -> &mut Self {
        self.rows.push((metric.into(), value.to_string()));
        self
    }

    /// Prints it as a Markdown table.
    pub fn print(&self) {
        let width = self.rows.iter().map(|(m, _)| m.len()).max().unwrap_or(6).max(6);
        let vwidth = self.rows.iter().map(|(_, v)| v.len()).max().unwrap_or(5).max(5);
        println!("\n### {}\n", self.title);
        println!("| {:width$} | {:>vwidth$} |", "metric", "value");
        println!("|{}|{}:|", "-".repeat(width + 2), "-".repeat(vwidth + 1));
        for (m, v) in &self.rows {
            println!("| {m:width$} | {v:>vwidth$} |");
        }
    }
}

/// Sorted samples, for percentiles.
#[derive(Debug, Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Sorts `values` (microseconds).
    pub fn new(mut values: Vec<u32>) -> Self {
        values.sort_unstable();
        Samples(values)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0..=1) by the nearest-rank method, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u32> {
        if self.0.is_empty() {
            return None;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        Some(self.0[rank.clamp(1, self.0.len()) - 1])
    }

    /// `p50 / p99 / p99.9 / max` in milliseconds, or `-` when empty.
    pub fn summary_ms(&self) -> String {
        let ms = |q| self.quantile(q).map(|v| format!("{:.2}", f64::from(v) / 1000.0));
        match (ms(0.5), ms(0.99), ms(0.999), ms(1.0)) {
            (Some(a), Some(b), Some(c), Some(d)) => format!("{a} / {b} / {c} / {d}"),
            _ => "-".into(),
        }
    }
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_thousand() {
        let s = Samples::new((1..=1000).rev().collect());
        assert_eq!(s.quantile(0.5), Some(500));
        assert_eq!(s.quantile(0.99), Some(990));
        assert_eq!(s.quantile(0.999), Some(999));
        assert_eq!(s.quantile(1.0), Some(1000));
        assert_eq!(Samples::default().quantile(0.5), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
