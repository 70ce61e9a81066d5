//! How the listing commands print: an aligned text table for people, or
//! with `--json` one JSON array (one object per row) for scripts.
//!
//! Kept in one place so every command agrees on the two forms: times are
//! always [`format_utc`] text (RFC 3339, UTC), a value an operator typed
//! into `sqlite3` never breaks a line (control characters are escaped),
//! and JSON goes to stdout alone, so `recsched ... --json | jq` works.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::clock::format_utc;

/// Rows of text cells under a header, printed with aligned columns.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; each cell is shown on one line (see [`one_line`]).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| one_line(c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: two spaces between columns, no trailing blanks.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    let _ = write!(line, "{cell}{:pad$}  ", "");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A stored value shown on one line: control characters (a newline typed
/// into a name with sqlite3) are escaped, everything else is kept.
pub fn one_line(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value`, cut to `max` characters with a trailing `…` when longer.
pub fn truncated(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// An instant in the canonical text form of the database.
pub fn utc(at: DateTime<Utc>) -> String {
    format_utc(at)
}

/// A number of seconds the way people say it: `8h`, `1h 30m`, `90s`.
pub fn human_secs(secs: i64) -> String {
    if secs <= 0 {
        return format!("{secs}s");
    }
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    parts.join(" ")
}

/// `yes` / `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding the output as JSON")?;
    print_text(&format!("{text}\n"))
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let mut t = Table::new(&["ID", "NAME", "NOTE"]);
        t.row(vec!["1".into(), "night-shift".into(), String::new()]);
        t.row(vec!["12".into(), "a\nb".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME         NOTE\n1   night-shift\n12  a\\nb         x\n"
        );
    }

    #[test]
    fn seconds_read_as_people_say_them() {
        assert_eq!(human_secs(28_800), "8h");
        assert_eq!(human_secs(5_400), "1h 30m");
        assert_eq!(human_secs(90), "1m 30s");
        assert_eq!(human_secs(604_800), "7d");
        assert_eq!(human_secs(3), "3s");
        assert_eq!(human_secs(-1), "-1s");
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(truncated("abcdef", 4), "abc…");
        assert_eq!(truncated("abc", 4), "abc");
    }
}
