//! A chart like the paper's Fig. 6: response time over time, one panel per request type,
//! the SDD activation marked, written as plain SVG.
//!
//! The SVG is written by hand (a few hundred bytes of markup per panel) rather than with a
//! plotting crate: it keeps the harness's build light and the output byte-for-byte
//! deterministic for the same samples, which makes it easy to check in tests.
//!
//! Each panel is a `<g class="panel" data-request-type="NAME">` holding the axes, one
//! `<polyline class="series">` through the successful samples (x: when the request started,
//! y: its response time) and one `<path class="failures">` with a cross per failed request.
//! The activation is a dashed `<line class="phase-boundary">` in every panel; the migration,
//! when given, is a shaded `<rect class="migration">`.

use std::fmt::Write as _;
use std::path::Path;

use crate::clients::Sample;
use crate::error::{Result, SimError};

/// What to draw besides the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartOptions {
    /// Title above the panels, e.g. `Scenario one: Vienna ↔ Melbourne (scale: time ÷ 5, size ÷ 40)`.
    pub title: String,
    /// When the SDD was activated, seconds since the run started.
    pub phase_boundary_s: Option<f64>,
    /// When migrations ran, seconds since the run started (start, end).
    pub migration_s: Option<(f64, f64)>,
    /// Total width in pixels.
    pub width: u32,
    /// Height of one panel in pixels.
    pub panel_height: u32,
}

impl ChartOptions {
    /// Default geometry (900 px wide, 180 px per panel) with a title.
    pub fn titled(title: impl Into<String>) -> ChartOptions {
        ChartOptions { title: title.into(), phase_boundary_s: None, migration_s: None, width: 900, panel_height: 180 }
    }
}

const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const TITLE_HEIGHT: f64 = 40.0;
const PANEL_GAP: f64 = 45.0;
const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];

/// Renders the chart of `request_types` (in that order) from `samples`.
pub fn render_svg(samples: &[Sample], request_types: &[&str], options: &ChartOptions) -> String {
    let width = f64::from(options.width.max(300));
    let panel_height = f64::from(options.panel_height.max(80));
    let height = TITLE_HEIGHT + request_types.len() as f64 * (panel_height + PANEL_GAP);
    let plot_width = width - MARGIN_LEFT - MARGIN_RIGHT;
    let x_max = samples
        .iter()
        .map(|s| s.at_s)
        .chain(options.phase_boundary_s)
        .chain(options.migration_s.map(|m| m.1))
        .fold(1.0f64, f64::max);
    let (x_step, x_end) = nice_axis(x_max);
    let x_of = |t: f64| MARGIN_LEFT + t / x_end * plot_width;

    let mut svg = String::with_capacity(4096 + samples.len() * 24);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#,
        w = width,
        h = height
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(&options.title)
    );
    for (index, name) in request_types.iter().enumerate() {
        let top = TITLE_HEIGHT + index as f64 * (panel_height + PANEL_GAP);
        let bottom = top + panel_height;
        let mut points: Vec<&Sample> = samples.iter().filter(|s| s.request_type == *name && !s.failed()).collect();
        points.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let failures: Vec<&Sample> = samples.iter().filter(|s| s.request_type == *name && s.failed()).collect();
        let y_max = points.iter().chain(&failures).map(|s| s.seconds).fold(0.1f64, f64::max);
        let (y_step, y_end) = nice_axis(y_max);
        let y_of = |v: f64| bottom - v.min(y_end) / y_end * panel_height;

        let _ = write!(svg, r#"<g class="panel" data-request-type="{}">"#, escape(name));
        let _ = write!(svg, r#"<text x="{MARGIN_LEFT}" y="{}" font-weight="bold">{}</text>"#, top - 6.0, escape(name));
        if let Some((start, end)) = options.migration_s {
            let _ = write!(
                svg,
                r##"<rect class="migration" x="{:.1}" y="{top:.1}" width="{:.1}" height="{panel_height:.1}" fill="#fde9c8"/>"##,
                x_of(start),
                (x_of(end) - x_of(start)).max(1.0)
            );
        }
        // Axes and grid.
        let _ = write!(
            svg,
            r##"<path class="axes" d="M{MARGIN_LEFT},{top:.1}V{bottom:.1}H{:.1}" fill="none" stroke="#333"/>"##,
            MARGIN_LEFT + plot_width
        );
        let mut v = 0.0;
        while v <= y_end + y_step * 1e-9 {
            let y = y_of(v);
            let _ = write!(
                svg,
                r##"<line x1="{MARGIN_LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                MARGIN_LEFT + plot_width,
                MARGIN_LEFT - 6.0,
                y + 4.0,
                tick_label(v, y_step)
            );
            v += y_step;
        }
        let mut t = 0.0;
        while t <= x_end + x_step * 1e-9 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x_of(t),
                bottom + 16.0,
                tick_label(t, x_step)
            );
            t += x_step;
        }
        let _ = write!(
            svg,
            r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">response time (s)</text>"#,
            top + panel_height / 2.0
        );
        if index + 1 == request_types.len() {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"#,
                MARGIN_LEFT + plot_width / 2.0,
                bottom + 34.0
            );
        }
        // The series.
        let _ = write!(
            svg,
            r#"<polyline class="series" data-points="{}" fill="none" stroke="{}" stroke-width="1.5" points=""#,
            points.len(),
            COLORS[index % COLORS.len()]
        );
        for (i, s) in points.iter().enumerate() {
            let _ = write!(svg, "{}{:.1},{:.1}", if i > 0 { " " } else { "" }, x_of(s.at_s), y_of(s.seconds));
        }
        svg.push_str(r#""/>"#);
        let _ = write!(svg, r##"<path class="failures" data-points="{}" stroke="#d62728" d=""##, failures.len());
        for s in &failures {
            let (x, y) = (x_of(s.at_s), y_of(s.seconds));
            let _ = write!(svg, "M{:.1},{:.1}l6,6m0,-6l-6,6", x - 3.0, y - 3.0);
        }
        svg.push_str(r#""/>"#);
        if let Some(b) = options.phase_boundary_s {
            let x = x_of(b);
            let _ = write!(
                svg,
                r##"<line class="phase-boundary" x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}" stroke="#000" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}">SDD activated</text>"##,
                x + 4.0,
                top + 12.0
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders and writes the chart to `path`.
pub fn write_svg(path: &Path, samples: &[Sample], request_types: &[&str], options: &ChartOptions) -> Result<()> {
    std::fs::write(path, render_svg(samples, request_types, options))
        .map_err(|source| SimError::Write { path: path.to_owned(), source })
}

/// A step of 1, 2 or 5 × 10ⁿ giving about five ticks, and the axis end (a multiple of it).
fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max.max(1e-9) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    (step, (max / step).ceil().max(1.0) * step)
}

fn tick_label(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::Phase;

    fn sample(kind: &str, at_s: f64, seconds: f64, ok: bool) -> Sample {
        Sample {
            at_s,
            city: "vienna".into(),
            client: 0,
            request_type: kind.into(),
            phase: if at_s < 60.0 { Phase::Inactive } else { Phase::Active },
            seconds,
            status: ok.then_some(200),
            bytes: 1,
            error: (!ok).then(|| "reset".into()),
        }
    }

    /// Element nesting checked with a stack: every opened element closes, in order.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("unterminated tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "stray < in {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap().to_owned());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    #[test]
    fn fig_6_has_a_panel_and_a_series_per_request_type() {
        let types = ["buildings", "blocks", "networks", "mobility"];
        let mut samples = Vec::new();
        for (k, kind) in types.iter().enumerate() {
            for i in 0..20 {
                samples.push(sample(kind, i as f64 * 6.0, if i < 10 { 4.0 + k as f64 } else { 0.5 }, true));
            }
        }
        samples.push(sample("mobility", 70.0, 9.0, false));
        let mut options = ChartOptions::titled("Scenario one <scaled> & more");
        options.phase_boundary_s = Some(60.0);
        options.migration_s = Some((60.0, 75.0));
        let svg = render_svg(&samples, &types, &options);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_well_formed(&svg);
        for kind in types {
            assert!(svg.contains(&format!(r#"data-request-type="{kind}""#)), "{kind}");
        }
        assert_eq!(svg.matches(r#"<polyline class="series" data-points="20""#).count(), 4);
        assert_eq!(svg.matches(r#"class="phase-boundary""#).count(), 4);
        assert_eq!(svg.matches(r#"class="migration""#).count(), 4);
        assert!(svg.contains(r#"class="failures" data-points="1""#));
        assert!(svg.contains("Scenario one &lt;scaled&gt; &amp; more"));
    }

    #[test]
    fn axes_use_round_steps() {
        assert_eq!(nice_axis(14.5), (5.0, 15.0));
        assert_eq!(nice_axis(600.0), (200.0, 600.0));
        assert_eq!(nice_axis(0.37), (0.1, 0.4));
        assert_eq!(tick_label(0.2, 0.1), "0.2");
    }
}
