//! Rendering results for people (aligned text) or programs (JSON on stdout, with a
//! `schema_version`; see docs/json.md). Commands build plain data, then hand it to an
//! [`Output`]; nothing else in the crate prints.

use serde::Serialize;
use std::io::Write;

/// Version of every JSON document lifeboat prints. Bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Where and how results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// Print a JSON document (always, even with --quiet: the caller asked for it).
    pub fn json_doc<T: Serialize>(&self, doc: &T) {
        let mut out = std::io::stdout().lock();
        match serde_json::to_writer_pretty(&mut out, doc) {
            Ok(()) => {
                let _ = writeln!(out);
            }
            Err(e) => eprintln!("lifeboat: cannot encode JSON output: {e}"),
        }
    }

    /// Print human text unless --quiet or --json.
    pub fn text(&self, s: &str) {
        if !self.quiet && !self.json {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(s.as_bytes());
        }
    }

    /// A warning on stderr unless --quiet: a line of text, or with --json a JSON-lines event
    /// `{"event": "warning", "message": …}` (stdout stays one document).
    pub fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}",
                serde_json::json!({"event": "warning", "message": message})
            );
        } else {
            eprintln!("lifeboat: warning: {message}");
        }
    }

    /// Report a failure: one line on stderr, and a JSON object on stdout with --json.
    pub fn error(&self, e: &anyhow::Error) {
        eprintln!("lifeboat: error: {e:#}");
        if self.json {
            self.json_doc(&serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "error": format!("{e:#}"),
            }));
        }
    }
}

/// Bytes as a short human figure (binary units): `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A plain text table with left-aligned columns separated by two spaces.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut s = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 << 30), "2.0 GiB");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["xxx".into(), "y".into()]);
        assert_eq!(t.render(), "A    BB\nxxx  y\n");
    }
}
