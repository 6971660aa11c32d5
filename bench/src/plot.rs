//! PNG charts of a side-by-side run, drawn from its `raw.csv` (`scenario,impl,metric,value`):
//!
//! * `churn-loss.png`: events lost against the achieved churn rate, one series per daemon
//!   (the `churn-*` scenarios);
//! * `latency.png`: replication latency p50 and p99 against the achieved churn rate, log
//!   scale, one pair of series per daemon (the `latency-*` scenarios).
//!
//! A chart whose scenarios are absent from the run is not drawn. Text needs a TrueType font:
//! `$BENCH_FONT`, else DejaVu Sans or Liberation Sans from the usual Debian paths.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The daemons in a run, their legend names and colours.
const IMPLS: [(&str, &str, RGBColor); 2] = [
    ("c", "C 1.4.7", RGBColor(31, 119, 180)),
    ("ours", "ours", RGBColor(214, 39, 40)),
];

/// Fonts tried when `$BENCH_FONT` is not set.
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// One row of raw.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// `c`, `ours` or `limit`.
    pub imp: String,
    /// Metric name.
    pub metric: String,
    /// Value (NaN for a timeout).
    pub value: f64,
}

/// Parses raw.csv; the header and malformed lines are skipped.
pub fn parse_csv(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ',');
            let (s, i, m, v) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Row {
                scenario: s.to_owned(),
                imp: i.to_owned(),
                metric: m.to_owned(),
                value: v.trim().parse().ok()?,
            })
        })
        .collect()
}

/// For scenarios whose name starts with `prefix`: per daemon, the sorted `(x, y)` points
/// with x = `x_metric` × `x_scale` and y = `y_metric` × `y_scale` (non-finite values left
/// out).
pub fn points(
    rows: &[Row],
    prefix: &str,
    x_metric: &str,
    y_metric: &str,
    x_scale: f64,
    y_scale: f64,
) -> BTreeMap<String, Vec<(f64, f64)>> {
    // (scenario, impl) -> (x, y), each once its row is seen.
    type Xy = (Option<f64>, Option<f64>);
    let mut by: BTreeMap<(&str, &str), Xy> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.scenario.starts_with(prefix)) {
        let e = by.entry((&r.scenario, &r.imp)).or_default();
        if r.metric == x_metric {
            e.0 = Some(r.value * x_scale);
        }
        if r.metric == y_metric {
            e.1 = Some(r.value * y_scale);
        }
    }
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((_, imp), xy) in by {
        if let (Some(x), Some(y)) = xy
            && x.is_finite()
            && y.is_finite()
        {
            out.entry(imp.to_owned()).or_default().push((x, y));
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Registers a TrueType font as "sans-serif" once per process.
fn font() -> io::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .collect();
        let (path, bytes) = candidates
            .iter()
            .find_map(|p| fs::read(p).ok().map(|b| (p.clone(), b)))
            .ok_or_else(|| format!("no TrueType font (tried {candidates:?}; set BENCH_FONT)"))?;
        // plotters keeps fonts for the life of the process: leak the bytes once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(io::Error::other)
}

fn err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("plotters: {e}"))
}

/// Upper end of a linear axis holding `max`, with headroom for the legend box (0..10 when
/// everything is 0, so that a count axis has whole ticks).
fn top(max: f64) -> f64 {
    if max > 0.0 { max * 1.6 } else { 10.0 }
}

/// Axis numbers: whole ones without ".0", others with at most 3 decimals.
fn tick(v: &f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Marker size and style: C's hollow and larger, ours filled and smaller, so that equal
/// values of the two daemons stay visible on top of each other.
fn marker_style(imp: &str, color: RGBColor) -> (i32, ShapeStyle) {
    if imp == "c" {
        (8, color.stroke_width(2))
    } else {
        (5, color.filled())
    }
}

/// Events lost against churn rate, one line per daemon.
fn churn_loss(rows: &[Row], file: &Path) -> io::Result<bool> {
    let loss = points(
        rows,
        "churn-",
        "ctgen_rate_per_s",
        "events_lost (expected - received)",
        1e-3,
        1.0,
    );
    if loss.is_empty() {
        return Ok(false);
    }
    let all = loss.values().flatten();
    let xmax = all.clone().map(|p| p.0).fold(0.0, f64::max);
    let ymax = all.map(|p| p.1).fold(0.0, f64::max);
    let root = BitMapBackend::new(file, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Events lost vs churn rate (FTFW/UDP, same run)",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..xmax * 1.15, 0.0..top(ymax))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc("achieved churn rate (k events/s, creates + deletes)")
        .y_desc("events lost (ctgen - received by A)")
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (imp, name, color) in IMPLS {
        let Some(pts) = loss.get(imp) else { continue };
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| {
                let (size, style) = marker_style(imp, color);
                Circle::new(p, size, style)
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// Latency p50 and p99 against churn rate (log scale), two lines per daemon.
fn latency(rows: &[Row], file: &Path) -> io::Result<bool> {
    let rate = "ctgen_rate_per_s";
    let p50 = points(rows, "latency-", rate, "latency_p50_us", 1e-3, 1e-3);
    let p99 = points(rows, "latency-", rate, "latency_p99_us", 1e-3, 1e-3);
    if p50.is_empty() && p99.is_empty() {
        return Ok(false);
    }
    let all: Vec<(f64, f64)> = p50
        .values()
        .chain(p99.values())
        .flatten()
        .copied()
        .collect();
    let xmax = all.iter().map(|p| p.0).fold(0.0, f64::max);
    let ymin = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let ymax = all.iter().map(|p| p.1).fold(0.0, f64::max);
    // Decades around the data, so the 1 ms target line is always in view, and one more on
    // top for the legend box.
    let lo = 10f64.powf((ymin * 0.8).clamp(1e-4, 1.0).log10().floor());
    let hi = 10f64.powf(ymax.max(1.0).log10().ceil() + 1.0);
    let xend = xmax * 1.15;
    let root = BitMapBackend::new(file, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Replication latency vs churn rate (FTFW/UDP, same run)",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..xend, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc("achieved churn rate (k events/s, creates + deletes)")
        .y_desc("kernel NEW event -> arrival at B (ms)")
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    // The target: p99 under 1 ms.
    let target = RGBColor(44, 160, 44);
    chart
        .draw_series(LineSeries::new(
            [(0.0, 1.0), (xend, 1.0)],
            target.stroke_width(2),
        ))
        .map_err(err)?
        .label("1 ms (target for p99)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], target.stroke_width(2)));
    for (imp, name, color) in IMPLS {
        if let Some(pts) = p99.get(imp) {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(3)))
                .map_err(err)?
                .label(format!("{name} p99"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            chart
                .draw_series(pts.iter().map(|&p| {
                    let (size, style) = marker_style(imp, color);
                    TriangleMarker::new(p, size, style)
                }))
                .map_err(err)?;
        }
        if let Some(pts) = p50.get(imp) {
            let light = color.mix(0.6);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), light.stroke_width(1)))
                .map_err(err)?
                .label(format!("{name} p50"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], light));
            chart
                .draw_series(pts.iter().map(|&p| {
                    let (size, style) = marker_style(imp, color);
                    Circle::new(
                        p,
                        size - 1,
                        ShapeStyle {
                            color: light,
                            ..style
                        },
                    )
                }))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// Draws every chart the rows allow into `dir` and returns the files written.
pub fn write_charts(csv: &str, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let rows = parse_csv(csv);
    font()?;
    let mut out = Vec::new();
    let loss = dir.join("churn-loss.png");
    if churn_loss(&rows, &loss)? {
        out.push(loss);
    }
    let lat = dir.join("latency.png");
    if latency(&rows, &lat)? {
        out.push(lat);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "scenario,impl,metric,value\n\
        churn-50k-10s-live10k-ftfw-udp,c,ctgen_rate_per_s,49950\n\
        churn-50k-10s-live10k-ftfw-udp,c,events_lost (expected - received),0\n\
        churn-50k-10s-live10k-ftfw-udp,ours,ctgen_rate_per_s,49990\n\
        churn-50k-10s-live10k-ftfw-udp,ours,events_lost (expected - received),3\n\
        churn-max-10s-live10k-ftfw-udp,ours,ctgen_rate_per_s,150000\n\
        churn-max-10s-live10k-ftfw-udp,ours,events_lost (expected - received),NaN\n\
        churn-100k-10s-live10k-ftfw-udp,c,ctgen_rate_per_s,99000\n\
        churn-100k-10s-live10k-ftfw-udp,c,events_lost (expected - received),7\n\
        latency-50k-5s-live10k-ftfw-udp,c,ctgen_rate_per_s,49818\n\
        latency-50k-5s-live10k-ftfw-udp,c,latency_p50_us,680.7\n\
        latency-50k-5s-live10k-ftfw-udp,c,latency_p99_us,4149.2\n\
        latency-50k-5s-live10k-ftfw-udp,ours,ctgen_rate_per_s,49968\n\
        latency-50k-5s-live10k-ftfw-udp,ours,latency_p50_us,567\n\
        latency-50k-5s-live10k-ftfw-udp,ours,latency_p99_us,8849\n\
        baseline (no daemon),limit,burst_no_listener_per_s,300000\n\
        garbage line\n";

    #[test]
    fn points_per_impl_sorted_by_rate() {
        let rows = parse_csv(CSV);
        // Header and the garbage line are dropped; NaN parses and is kept as a row.
        assert_eq!(rows.len(), 15);
        let loss = points(
            &rows,
            "churn-",
            "ctgen_rate_per_s",
            "events_lost (expected - received)",
            1e-3,
            1.0,
        );
        assert_eq!(loss["c"], vec![(49.95, 0.0), (99.0, 7.0)]);
        // The NaN (timeout) point is left out.
        assert_eq!(loss["ours"], vec![(49.99, 3.0)]);
        let p99 = points(
            &rows,
            "latency-",
            "ctgen_rate_per_s",
            "latency_p99_us",
            1.0,
            1e-3,
        );
        assert_eq!(p99["ours"], vec![(49968.0, 8.849)]);
        assert!(!p99.contains_key("limit"));
    }

    #[test]
    fn draws_both_charts() {
        let dir = std::env::temp_dir().join(format!("ctb-plot-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let files = write_charts(CSV, &dir).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in &files {
            let b = fs::read(f).unwrap();
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", f.display());
            assert!(b.len() > 5000, "{} is {} bytes", f.display(), b.len());
        }
        // Nothing to draw: no files.
        let none = write_charts("scenario,impl,metric,value\n", &dir).unwrap();
        assert!(none.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
