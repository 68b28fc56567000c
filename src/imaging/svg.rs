//! The read-speed picture of a card (`image --report FILE.svg`): read throughput per region
//! across the disk as bars, regions with read errors in red, retried regions in orange, bad
//! ranges as red marks, unused (not read) regions grey, and partition boundaries with their
//! numbers and roles. Plain SVG 1.1, no scripts, from the manifest alone.

use crate::verify::manifest::Manifest;
use std::fmt::Write as _;

const W: f64 = 1000.0;
const H: f64 = 290.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 40.0;
const PLOT_H: f64 = 160.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Render the picture of `m`.
pub fn render(m: &Manifest) -> String {
    let size = m.image.size.max(1) as f64;
    let plot_w = W - LEFT - 20.0;
    let x = |off: u64| LEFT + off as f64 / size * plot_w;
    let speeds: Vec<f64> = m
        .read_profile
        .iter()
        .map(|b| {
            if b.seconds > 0.0 {
                b.bytes_read as f64 / b.seconds / 1e6
            } else {
                0.0
            }
        })
        .collect();
    // Scale to the 95th percentile so one burst (a cached read) does not flatten the rest.
    let mut sorted: Vec<f64> = speeds.iter().copied().filter(|v| *v > 0.0).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let p95 = sorted
        .get((sorted.len() * 95 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0);
    let max = (p95 * 1.1).max(1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let title = format!(
        "{} — {} — read speed (MB/s) across the disk; {} bad bytes, {} read errors",
        m.source.path,
        m.source.model.as_deref().unwrap_or("unknown model"),
        m.rescue.bad_bytes,
        m.rescue.read_errors
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="13">{}</text>"#,
        esc(&title)
    );
    // Unused regions (not read) in grey.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{PLOT_H}" fill="#eeeeee"/>"##
    );
    for r in &m.mapped {
        let (x0, x1) = (x(r.start), x(r.start + r.length));
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.2}" y="{TOP}" width="{:.2}" height="{PLOT_H}" fill="#ffffff"/>"##,
            (x1 - x0).max(0.3)
        );
    }
    for (b, sp) in m.read_profile.iter().zip(&speeds) {
        if b.seconds <= 0.0 && b.errors == 0 {
            continue;
        }
        let h = (sp / max).clamp(0.0, 1.0) * PLOT_H;
        if b.errors > 0 {
            let (x0, x1) = (x(b.start), x(b.start + b.length));
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.2}" y="{TOP}" width="{:.2}" height="{PLOT_H}" fill="#d62728" fill-opacity="0.18"/>"##,
                (x1 - x0).max(1.0)
            );
        }
        let color = if b.errors > 0 {
            "#d62728"
        } else if b.retries > 0 || b.timeouts > 0 {
            "#ff7f0e"
        } else {
            "#1f77b4"
        };
        let (x0, x1) = (x(b.start), x(b.start + b.length));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="{color}"><title>{} MiB: {sp:.1} MB/s, {} errors, {} retries</title></rect>"#,
            TOP + PLOT_H - h,
            (x1 - x0 - 0.5).max(0.3),
            b.start >> 20,
            b.errors,
            b.retries
        );
    }
    for b in &m.bad {
        let x0 = x(b.start);
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.2}" y="{}" width="{:.2}" height="8" fill="#d62728"><title>bad: {} bytes at {}</title></rect>"##,
            TOP + PLOT_H + 2.0,
            (x(b.start + b.length) - x0).max(1.0),
            b.length,
            b.start
        );
    }
    for (i, p) in m.partitions.iter().enumerate() {
        let x0 = x(p.start);
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.2}" y1="{}" x2="{x0:.2}" y2="{}" stroke="#333" stroke-dasharray="3,2"/>"##,
            TOP - 4.0,
            TOP + PLOT_H + 16.0 + (i % 3) as f64 * 11.0
        );
        let role = m
            .inspect
            .as_ref()
            .and_then(|i| i.get("partitions"))
            .and_then(|a| a.as_array())
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("number").and_then(|n| n.as_u64()) == Some(u64::from(p.number)))
            })
            .and_then(|x| x.get("role"))
            .and_then(|r| r.as_str())
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{}" font-size="9">p{}{}</text>"#,
            x0 + 2.0,
            TOP + PLOT_H + 26.0 + (i % 3) as f64 * 11.0,
            p.number,
            esc(&role)
        );
    }
    // Axis.
    let _ = writeln!(
        s,
        r#"<text x="4" y="{}" font-size="10">{max:.0} MB/s</text><text x="4" y="{}" font-size="10">0</text>"#,
        TOP + 10.0,
        TOP + PLOT_H
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="10">0</text><text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
        H - 10.0,
        W - 20.0,
        H - 10.0,
        crate::report::human_bytes(m.image.size)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="10">blue: read speed · orange: retried or timed out · red: errors / bad · grey: unused, not read</text>"##,
        LEFT + 120.0,
        H - 10.0
    );
    s.push_str("</svg>\n");
    s
}
