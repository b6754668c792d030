//! The charts of scripts/bench.sh, as PNG files, from the load generator's results:
//! `latency.png` (the latency distribution of the write paths, percentile by
//! percentile), `throughput.png` (commands completed in each second of the run) and
//! `scaling.png` (throughput and p99 against the number of clients, embedded and
//! PostgreSQL, from `scaling_{embedded,postgres}_N.json`), `search_scaling.png`
//! (search p50 and p99 over HTTP against the number of products, Stockroom and
//! PostgreSQL full-text search, from `search_{tiny,small,large}_{http,pg,inprocess}.json`)
//! and `replay.png` (replay rate against the log's length, from `replay_curve_N.json`).
//!
//! ```text
//! charts DIR     # reads DIR/write_embedded.json, DIR/write_postgres.json, DIR/write_kafka.json
//!                # and the Kafka Streams peer's DIR/write_kafka_streams_{eos,eos_c10,alo}.json
//! ```
//!
//! Text is drawn with DejaVu Sans (Debian's fonts-dejavu-core), or the font named by
//! `STOCKROOM_CHART_FONT`.

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

const SERIES: &[(&str, &str, RGBColor)] = &[
    ("write_embedded", "Stockroom, embedded", RGBColor(31, 119, 180)),
    ("write_postgres", "PostgreSQL design", RGBColor(214, 39, 40)),
    ("write_kafka", "Stockroom, Apache Kafka", RGBColor(44, 160, 44)),
    ("write_kafka_streams_eos", "Kafka Streams peer, exactly-once", RGBColor(148, 103, 189)),
    ("write_kafka_streams_eos_c10", "Kafka Streams peer, exactly-once, commit 10 ms", RGBColor(140, 86, 75)),
    ("write_kafka_streams_alo", "Kafka Streams peer, at-least-once", RGBColor(255, 127, 14)),
];

fn load(dir: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(text.lines().rfind(|l| !l.trim().is_empty())?).ok()
}

fn font() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("STOCKROOM_CHART_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let bytes: &'static [u8] =
        Box::leak(std::fs::read(&path).map_err(|e| format!("font {path}: {e} (install fonts-dejavu-core)"))?.into());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("font {path} is not a font"))?;
    Ok(())
}

type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;
type Runs<'a> = [(&'a str, RGBColor, Value)];

/// A white canvas with the charts' caption, margins and label areas.
fn frame<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> Result<ChartBuilder<'a, 'b, BitMapBackend<'b>>, Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(root);
    builder.caption(caption, ("sans-serif", 24)).margin(16).x_label_area_size(40).y_label_area_size(70);
    Ok(builder)
}

/// One line per run (its `points`), labelled, and the legend.
fn lines<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    runs: &Runs<'_>,
    points: impl Fn(&Value) -> Vec<(f64, f64)>,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (label, color, run) in runs {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points(run), color.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: charts DIR")?;
    let dir = Path::new(&dir);
    font()?;
    let runs: Vec<(&str, RGBColor, Value)> =
        SERIES.iter().filter_map(|(file, label, color)| Some((*label, *color, load(dir, file)?))).collect();
    if runs.is_empty() {
        return Err("no write_*.json in the directory".into());
    }

    // Latency by percentile: the x axis is the percentile's index, labelled.
    let labels: Vec<String> = runs[0].2["distribution"]
        .as_array()
        .map(|d| d.iter().map(|p| format!("p{}", p[0].as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    let points = |run: &Value| -> Vec<(f64, f64)> {
        run["distribution"]
            .as_array()
            .map(|d| d.iter().enumerate().map(|(i, p)| (i as f64, p[1].as_f64().unwrap_or(0.0))).collect())
            .unwrap_or_default()
    };
    let top = runs.iter().flat_map(|(_, _, r)| points(r)).map(|(_, y)| y).fold(1.0f64, f64::max);
    let path = dir.join("latency.png");
    let root = BitMapBackend::new(&path, (900, 540)).into_drawing_area();
    let mut chart = frame(&root, "Write latency by percentile (log scale)")?
        .build_cartesian_2d(0f64..(labels.len().max(2) - 1) as f64, (0.1f64..top * 1.5).log_scale())?;
    let label_of = |x: &f64| labels.get(x.round() as usize).cloned().unwrap_or_default();
    chart.configure_mesh().x_labels(labels.len()).x_label_formatter(&label_of).y_desc("milliseconds").draw()?;
    lines(&mut chart, &runs, points)?;
    root.present()?;

    // Throughput over time.
    let series = |run: &Value| -> Vec<(f64, f64)> {
        run["per_second"]
            .as_array()
            .map(|s| {
                let n = s.len().saturating_sub(1); // the last second is partial
                s.iter().take(n).enumerate().map(|(i, c)| (i as f64, c.as_f64().unwrap_or(0.0))).collect()
            })
            .unwrap_or_default()
    };
    let width = runs.iter().map(|(_, _, r)| series(r).len()).max().unwrap_or(1).max(2) as f64;
    let top = runs.iter().flat_map(|(_, _, r)| series(r)).map(|(_, y)| y).fold(1.0f64, f64::max);
    let path = dir.join("throughput.png");
    let root = BitMapBackend::new(&path, (900, 540)).into_drawing_area();
    let mut chart =
        frame(&root, "Commands completed per second")?.build_cartesian_2d(0f64..width - 1.0, 0f64..top * 1.15)?;
    chart.configure_mesh().x_desc("second of the run").y_desc("commands/s").draw()?;
    lines(&mut chart, &runs, series)?;
    root.present()?;
    scaling(dir)?;
    search_scaling(dir)?;
    replay(dir)?;
    println!("wrote latency.png, throughput.png, scaling.png, search_scaling.png and replay.png in {}", dir.display());
    Ok(())
}

/// One point of the scaling chart: clients, commands/s, p99 ms.
type ScalingPoint = (f64, f64, f64);

/// Throughput (solid, left axis) and p99 (dashed, right axis) against clients (log
/// scale), one colour per system.
fn scaling(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let systems = [("embedded", "Stockroom, embedded", SERIES[0].2), ("postgres", "PostgreSQL design", SERIES[1].2)];
    let mut points: Vec<(&str, RGBColor, Vec<ScalingPoint>)> = Vec::new();
    for (system, label, color) in systems {
        let prefix = format!("scaling_{system}_");
        let mut runs: Vec<ScalingPoint> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_prefix(&prefix)?.strip_suffix(".json").map(str::to_owned))
            .filter_map(|clients| {
                let run = load(dir, &format!("{prefix}{clients}"))?;
                Some((clients.parse().ok()?, run["commands_per_s"].as_f64()?, run["p99_ms"].as_f64()?))
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.push((label, color, runs));
    }
    let all = || points.iter().flat_map(|(_, _, r)| r.iter().copied());
    if all().next().is_none() {
        return Ok(());
    }
    let max_clients = all().map(|p| p.0).fold(2.0f64, f64::max);
    let top_rate = all().map(|p| p.1).fold(1.0f64, f64::max);
    let top_p99 = all().map(|p| p.2).fold(1.0f64, f64::max);
    let path = dir.join("scaling.png");
    let root = BitMapBackend::new(&path, (900, 540)).into_drawing_area();
    let mut chart = frame(&root, "Writes by clients: commands/s (solid), p99 ms (dashed)")?
        .right_y_label_area_size(70)
        .build_cartesian_2d((1f64..max_clients * 1.2).log_scale(), 0f64..top_rate * 1.15)?
        .set_secondary_coord((1f64..max_clients * 1.2).log_scale(), 0f64..top_p99 * 1.15);
    chart.configure_mesh().x_desc("clients").y_desc("commands/s").draw()?;
    chart.configure_secondary_axes().y_desc("p99 ms").draw()?;
    for (label, color, runs) in &points {
        let color = *color;
        chart
            .draw_series(LineSeries::new(runs.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))?
            .label(format!("{label}, commands/s"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_secondary_series(DashedLineSeries::new(runs.iter().map(|p| (p.0, p.2)), 6, 4, color.stroke_width(2)))?
            .label(format!("{label}, p99 ms"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(1)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// One line of a curve chart: its label, colour, whether it is dashed, and its points.
type Curve = (String, RGBColor, bool, Vec<(f64, f64)>);

/// Curves against a logarithmic x axis (`log_y`: and y axis), solid or dashed.
fn curves(path: &Path, caption: &str, x_desc: &str, y_desc: &str, log_y: bool, curves: &[Curve]) -> ChartResult {
    let all = || curves.iter().flat_map(|c| c.3.iter().copied());
    if all().next().is_none() {
        return Ok(());
    }
    let (x_lo, x_hi) = (all().map(|p| p.0).fold(f64::MAX, f64::min), all().map(|p| p.0).fold(1.0f64, f64::max));
    let (y_lo, y_hi) = (all().map(|p| p.1).fold(f64::MAX, f64::min), all().map(|p| p.1).fold(1.0f64, f64::max));
    let x = (x_lo / 1.5)..(x_hi * 1.5);
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    let builder = frame(&root, caption)?;
    // The two y scales are two chart types: draw the same series on either.
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(8)
                .x_label_formatter(&short)
                .y_label_formatter(&short)
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()?;
            for (label, color, dashed, points) in curves {
                let color = *color;
                let style = color.stroke_width(2);
                let legend = move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 20, y)], style);
                if *dashed {
                    chart.draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, style))?
                } else {
                    chart.draw_series(LineSeries::new(points.iter().copied(), style))?
                }
                .label(label.as_str())
                .legend(legend);
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        }};
    }
    let mut builder = builder;
    if log_y {
        draw!(builder.build_cartesian_2d(x.log_scale(), ((y_lo / 1.5).max(1e-3)..y_hi * 1.5).log_scale())?);
    } else {
        draw!(builder.build_cartesian_2d(x.log_scale(), 0f64..y_hi * 1.15)?);
    }
    root.present()?;
    Ok(())
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// An axis label: 1k, 2.5M, 12, 0.5.
fn short(v: &f64) -> String {
    let (v, unit) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (*v, ""),
    };
    let text = if v.abs() >= 10.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    format!("{text}{unit}")
}

/// Search p50 (dashed) and p99 (solid) over HTTP against the number of products.
fn search_scaling(dir: &Path) -> ChartResult {
    // Per size: the number of products, then the HTTP and the PostgreSQL runs.
    let sizes: Vec<(f64, [Value; 2])> = ["tiny", "small", "large"]
        .iter()
        .filter_map(|size| {
            let products = load(dir, &format!("search_{size}_inprocess"))?["products"].as_f64()?;
            Some((products, [load(dir, &format!("search_{size}_http"))?, load(dir, &format!("search_{size}_pg"))?]))
        })
        .collect();
    let mut lines: Vec<Curve> = Vec::new();
    for (system, color, run) in [("Stockroom, HTTP", SERIES[0].2, 0), ("PostgreSQL FTS", SERIES[1].2, 1)] {
        for (quantile, dashed) in [("p99", false), ("p50", true)] {
            let key = format!("search_{quantile}_ms");
            let points = sizes.iter().filter_map(|(n, runs)| Some((*n, runs[run][&key].as_f64()?))).collect();
            lines.push((format!("{system}, {quantile}"), color, dashed, points));
        }
    }
    curves(
        &dir.join("search_scaling.png"),
        "Search latency by catalog size: p99 (solid), p50 (dashed)",
        "products",
        "milliseconds",
        true,
        &lines,
    )
}

/// Replay rate (the rebuild on request, the first build, the raw read) against the
/// length of the log.
fn replay(dir: &Path) -> ChartResult {
    let mut runs: Vec<Value> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix("replay_curve_")?.strip_suffix(".json").map(str::to_owned))
        .filter_map(|events| load(dir, &format!("replay_curve_{events}")))
        .collect();
    runs.sort_by(|a, b| a["events"].as_f64().unwrap_or(0.0).total_cmp(&b["events"].as_f64().unwrap_or(0.0)));
    let series = |key: &str| -> Vec<(f64, f64)> {
        runs.iter().filter_map(|r| Some((r["events"].as_f64()?, r[key].as_f64()?))).collect()
    };
    let lines: Vec<Curve> = vec![
        ("rebuild on request".into(), SERIES[0].2, false, series("rebuild_per_s")),
        ("first build (live projector)".into(), SERIES[2].2, false, series("initial_build_per_s")),
        ("raw read of the log".into(), SERIES[5].2, true, series("raw_read_per_s")),
    ];
    curves(&dir.join("replay.png"), "Replay rate by log length", "events in the log", "events/s", true, &lines)
}
