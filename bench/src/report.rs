//! The printed table: one line per figure, with its baseline or target,
//! the ratio between them, and a verdict.

use std::fmt::Write as _;

/// How a figure compares with what it is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// No target: printed for the record.
    Info,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Miss => "MISS",
            Self::Info => "",
        }
    }

    /// PASS if `ok`, else MISS.
    pub fn from(ok: bool) -> Self {
        if ok {
            Self::Pass
        } else {
            Self::Miss
        }
    }
}

struct Line {
    figure: String,
    measured: String,
    against: String,
    ratio: String,
    verdict: Verdict,
}

/// A table in sections; printed once at the end.
#[derive(Default)]
pub struct Table {
    sections: Vec<(String, Vec<Line>)>,
}

impl Table {
    pub fn section(&mut self, title: impl Into<String>) {
        self.sections.push((title.into(), Vec::new()));
    }

    /// One figure. `ratio` is measured / reference, printed as `0.42x`.
    pub fn line(
        &mut self,
        figure: impl Into<String>,
        measured: impl Into<String>,
        against: impl Into<String>,
        ratio: Option<f64>,
        verdict: Verdict,
    ) {
        let line = Line {
            figure: figure.into(),
            measured: measured.into(),
            against: against.into(),
            ratio: ratio.map_or(String::new(), |r| format!("{r:.2}x")),
            verdict,
        };
        if self.sections.is_empty() {
            self.section("");
        }
        if let Some((_, lines)) = self.sections.last_mut() {
            lines.push(line);
        }
    }

    /// A line saying a scenario could not be measured.
    pub fn failed(&mut self, what: &str, error: &anyhow::Error) {
        self.line(what, "ERROR", format!("{error:#}"), None, Verdict::Miss);
    }

    pub fn misses(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|(_, l)| l)
            .filter(|l| l.verdict == Verdict::Miss)
            .count()
    }

    pub fn render(&self) -> String {
        let lines = || self.sections.iter().flat_map(|(_, l)| l);
        let w =
            |f: fn(&Line) -> usize, head: &str| lines().map(f).max().unwrap_or(0).max(head.len());
        let wf = w(|l| l.figure.len(), "figure");
        let wm = w(|l| l.measured.len(), "measured");
        let wa = w(|l| l.against.len(), "target / baseline");
        let wr = w(|l| l.ratio.len(), "ratio");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<wf$}  {:>wm$}  {:<wa$}  {:>wr$}  verdict",
            "figure", "measured", "target / baseline", "ratio"
        );
        let _ = writeln!(out, "{}", "-".repeat(wf + wm + wa + wr + 15));
        for (title, body) in &self.sections {
            if !title.is_empty() {
                let _ = writeln!(out, "{title}");
            }
            for l in body {
                let _ = writeln!(
                    out,
                    "{:<wf$}  {:>wm$}  {:<wa$}  {:>wr$}  {}",
                    l.figure,
                    l.measured,
                    l.against,
                    l.ratio,
                    l.verdict.word()
                );
            }
        }
        out
    }
}

/// Milliseconds, with sensible precision.
pub fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// Mebibytes.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A rate per second.
pub fn per_sec(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}
