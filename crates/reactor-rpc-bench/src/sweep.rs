//! `bench --sweep`: every model × every connection count, each cell against a
//! freshly spawned server, written as `sweep.csv`, `sweep.json` and a
//! hand-drawn `sweep.svg` (throughput, p99 latency and server peak RSS
//! against connections, log-scale x, one line per model).
//!
//! A `pool` server with fewer threads than connections cannot serve them all:
//! the cell is capped by `--duration`/`--timeout`, reports what was served,
//! and counts the connections never served; at the largest counts its listen
//! backlog fills too, and the rest never connect. Those unanswered requests
//! and unmade connections do not fail the sweep; any other failure does, and
//! so does a connection that could not be made in a cell where every
//! connection made was served.
//!
//! Every file records the [`Machine`] the sweep ran on: the JSON as
//! `{"machine": {...}, "cells": [...]}`, the CSV as columns at the end of
//! every row, the chart as a subtitle.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::machine::Machine;
use super::{procfs, run_one, BenchArgs, Report, Target};
use reactor_rpc::Model;

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub model: &'static str,
    pub conns: usize,
    /// Why the cell was not run, if it was not.
    pub skipped: Option<String>,
    pub report: Option<Report>,
}

impl Cell {
    /// Why the cell's figures do not describe its load: connections that could
    /// not be made, unless the server left some made ones unserved too (a
    /// saturated `pool`, whose full backlog is why the rest never connected).
    fn connection_failure(&self) -> Option<String> {
        let r = self.report.as_ref()?;
        if r.connections.unserved > 0 {
            return None;
        }
        r.connection_failure()
    }

    /// Failures other than requests left unanswered on connections never served.
    fn real_failures(&self) -> u64 {
        let Some(r) = &self.report else { return 0 };
        let unanswered = r.measured.unanswered + r.warmup.unanswered;
        if r.connections.unserved > 0 {
            r.failed - unanswered
        } else {
            r.failed
        }
    }
}

/// What `sweep.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep<'a> {
    /// Where the sweep ran.
    pub machine: &'a Machine,
    /// Every cell, model by model, connection count by count.
    pub cells: &'a [Cell],
}

/// Runs the sweep and writes its files; fails if any cell failed.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn Error>> {
    let machine = Machine::here();
    let most = args.conns_list.iter().copied().max().unwrap_or(1) as u64;
    let (limit, note) = procfs::raise_nofile(most + procfs::SPARE_FDS);
    if let Some(note) = note {
        eprintln!("sweep: {note}");
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let total = args.models.len() * args.conns_list.len();
    let mut cells = Vec::new();
    for &model in &args.models {
        for &conns in &args.conns_list {
            let n = cells.len() + 1;
            let mut cell = Cell {
                model: model.name(),
                conns,
                skipped: None,
                report: None,
            };
            if conns as u64 + procfs::SPARE_FDS > limit {
                let why = format!("{conns} connections do not fit in {limit} open files");
                eprintln!("sweep [{n}/{total}] {model:>8} {conns:>6} conns: skipped: {why}");
                cell.skipped = Some(why);
                cells.push(cell);
                continue;
            }
            let mut a = args.clone();
            a.conns = conns;
            a.json = None;
            if !a.serve_args.iter().any(|s| s.starts_with("--max-conns")) {
                a.serve_args
                    .push(format!("--max-conns={}", conns.max(10_000) + 16));
            }
            match run_one(&a, Target::Spawn(model)) {
                Ok(r) => {
                    eprintln!("sweep [{n}/{total}] {}", line(&r, model, conns));
                    cell.report = Some(r);
                    if let Some(why) = cell.connection_failure() {
                        eprintln!("sweep [{n}/{total}] {model:>8} {conns:>6} conns: {why}");
                    }
                }
                Err(e) => {
                    eprintln!("sweep [{n}/{total}] {model:>8} {conns:>6} conns: failed: {e}");
                    cell.skipped = Some(format!("failed: {e}"));
                }
            }
            cells.push(cell);
        }
    }
    let out = &args.out;
    write(&out.join("sweep.csv"), csv(&cells, &machine).as_bytes())?;
    let json = Sweep {
        machine: &machine,
        cells: &cells,
    };
    write(&out.join("sweep.json"), &serde_json::to_vec_pretty(&json)?)?;
    let title = format!(
        "{:?} workload, pipeline {}, {}",
        args.workload,
        args.pipeline,
        match args.requests {
            Some(n) => format!("{n} requests per cell"),
            None => format!("{} s per cell", args.duration.unwrap_or(5.0)),
        }
    );
    write(
        &out.join("sweep.svg"),
        svg(&cells, &title, &machine.describe()).as_bytes(),
    )?;
    println!("{}", table(&cells));
    println!(
        "wrote {0}/sweep.csv, {0}/sweep.json and {0}/sweep.svg",
        out.display()
    );
    let failed: u64 = cells.iter().map(Cell::real_failures).sum();
    let broken = cells.iter().filter(|c| c.skipped.is_some()).count();
    let short = cells
        .iter()
        .filter(|c| c.connection_failure().is_some())
        .count();
    match (failed, broken, short) {
        (0, 0, 0) => Ok(()),
        _ => Err(format!(
            "{failed} requests failed; {broken} cells not run; \
             {short} cells could not open every connection"
        )
        .into()),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Box<dyn Error>> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

fn line(r: &Report, model: Model, conns: usize) -> String {
    let l = r.latency_us.as_ref();
    let sv = r.server.as_ref();
    format!(
        "{model:>8} {conns:>6} conns: {:>9.0} req/s, p99 {:>9.1} us, server {} us CPU/req, peak RSS {:.1} MiB, {} conns not connected, {} unserved, {} failed",
        r.throughput_rps,
        l.map_or(f64::NAN, |l| l.p99),
        sv.and_then(|s| s.cpu_us_per_request)
            .map_or("-".into(), |v| format!("{v:.2}")),
        sv.and_then(|s| s.peak_rss_kb).unwrap_or(0) as f64 / 1024.0,
        r.connections.connect_failed,
        r.connections.unserved,
        r.failed
    )
}

const CSV_HEADER: &str = "model,conns,connected,unserved,sent,ok,failed,throughput_rps,p50_us,p90_us,p99_us,p999_us,max_us,server_cpu_us_per_req,server_cpu_cores,server_rss_kb,server_peak_rss_kb,generator_cpu_us_per_req,skipped";

/// The CSV: a row per cell, the machine's columns at the end of each.
fn csv(cells: &[Cell], machine: &Machine) -> String {
    let mut s = format!("{CSV_HEADER},{}\n", Machine::CSV_COLUMNS);
    let machine = machine.csv_fields();
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    let u = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for c in cells {
        let _ = write!(s, "{},{},", c.model, c.conns);
        match &c.report {
            Some(r) => {
                let l = r.latency_us.as_ref();
                let sv = r.server.as_ref();
                let _ = write!(
                    s,
                    "{},{},{},{},{},{:.1},{},{},{},{},{},{},{},{},{},{},",
                    r.connections.connected,
                    r.connections.unserved,
                    r.measured.sent,
                    r.measured.ok,
                    r.failed,
                    r.throughput_rps,
                    f(l.map(|l| l.p50)),
                    f(l.map(|l| l.p90)),
                    f(l.map(|l| l.p99)),
                    f(l.map(|l| l.p999)),
                    f(l.map(|l| l.max)),
                    f(sv.and_then(|s| s.cpu_us_per_request)),
                    f(sv.map(|s| s.cpu_cores)),
                    u(sv.and_then(|s| s.rss_kb)),
                    u(sv.and_then(|s| s.peak_rss_kb)),
                    f(r.generator.cpu_us_per_request),
                );
            }
            None => s.push_str(",,,,,,,,,,,,,,,,"),
        }
        let _ = writeln!(
            s,
            "{},{machine}",
            c.skipped.as_deref().unwrap_or("").replace(',', ";")
        );
    }
    s
}

fn table(cells: &[Cell]) -> String {
    let mut s = format!(
        "{:>8} {:>6} {:>11} {:>10} {:>12} {:>12} {:>9}\n",
        "model", "conns", "req/s", "p99 us", "cpu us/req", "peak RSS MiB", "unserved"
    );
    for c in cells {
        let Some(r) = &c.report else {
            let _ = writeln!(
                s,
                "{:>8} {:>6}  {}",
                c.model,
                c.conns,
                c.skipped.as_deref().unwrap_or("")
            );
            continue;
        };
        let sv = r.server.as_ref();
        let _ = writeln!(
            s,
            "{:>8} {:>6} {:>11.0} {:>10.1} {:>12} {:>12.1} {:>9}",
            c.model,
            c.conns,
            r.throughput_rps,
            r.latency_us.map_or(f64::NAN, |l| l.p99),
            sv.and_then(|s| s.cpu_us_per_request)
                .map_or("-".into(), |v| format!("{v:.2}")),
            sv.and_then(|s| s.peak_rss_kb).unwrap_or(0) as f64 / 1024.0,
            r.connections.unserved
        );
    }
    s
}

/// One plotted quantity.
struct Panel {
    title: &'static str,
    y_label: &'static str,
    log_y: bool,
    value: fn(&Report) -> Option<f64>,
}

const PANELS: [Panel; 3] = [
    Panel {
        title: "Throughput",
        y_label: "requests / s",
        log_y: false,
        value: |r| Some(r.throughput_rps),
    },
    Panel {
        title: "p99 latency",
        y_label: "microseconds (log)",
        log_y: true,
        value: |r| r.latency_us.map(|l| l.p99),
    },
    Panel {
        title: "Server peak RSS",
        y_label: "MiB",
        log_y: false,
        value: |r| {
            r.server
                .as_ref()
                .and_then(|s| s.peak_rss_kb)
                .map(|k| k as f64 / 1024.0)
        },
    },
];

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

const PANEL_W: f64 = 380.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_T: f64 = 85.0;
const MARGIN_B: f64 = 70.0;
const GAP: f64 = 30.0;

/// The chart: three panels side by side, sharing a legend, under a title
/// and a subtitle naming the machine.
pub fn svg(cells: &[Cell], title: &str, subtitle: &str) -> String {
    let mut models: Vec<&str> = Vec::new();
    for c in cells {
        if !models.contains(&c.model) {
            models.push(c.model);
        }
    }
    let xs: Vec<f64> = cells.iter().map(|c| c.conns.max(1) as f64).collect();
    let (x_lo, x_hi) = bounds(&xs, true);
    let width = PANELS.len() as f64 * (MARGIN_L + PANEL_W + GAP) + 20.0;
    let height = MARGIN_T + PANEL_H + MARGIN_B + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="20" y="22" font-size="15" font-weight="bold">reactor-rpc bench --sweep: {}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="20" y="40" font-size="11" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    // Legend.
    let mut lx = 20.0;
    for (i, m) in models.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="58" x2="{}" y2="58" stroke="{color}" stroke-width="2.5"/><circle cx="{}" cy="58" r="3.5" fill="{color}"/><text x="{}" y="62">{}</text>"#,
            lx + 24.0,
            lx + 12.0,
            lx + 30.0,
            esc(m)
        );
        lx += 40.0 + 8.0 * m.len() as f64;
    }
    for (p, panel) in PANELS.iter().enumerate() {
        let ox = 20.0 + p as f64 * (MARGIN_L + PANEL_W + GAP) + MARGIN_L;
        let oy = MARGIN_T;
        let ys: Vec<f64> = cells
            .iter()
            .filter_map(|c| c.report.as_ref().and_then(panel.value))
            .filter(|v| v.is_finite() && (!panel.log_y || *v > 0.0))
            .collect();
        let (y_lo, y_hi) = if panel.log_y {
            bounds(&ys, true)
        } else {
            (0.0, nice_ceiling(ys.iter().copied().fold(0.0, f64::max)))
        };
        let sx = |x: f64| ox + scale(x, x_lo, x_hi, true) * PANEL_W;
        let sy = |y: f64| oy + PANEL_H - scale(y, y_lo, y_hi, panel.log_y) * PANEL_H;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-weight="bold" text-anchor="middle">{}</text><rect x="{ox}" y="{oy}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>"##,
            ox + PANEL_W / 2.0,
            oy - 8.0,
            panel.title
        );
        for x in log_ticks(x_lo, x_hi) {
            let px = sx(x);
            let _ = writeln!(
                s,
                r##"<line x1="{px}" y1="{oy}" x2="{px}" y2="{}" stroke="#ddd"/><text x="{px}" y="{}" text-anchor="middle">{}</text>"##,
                oy + PANEL_H,
                oy + PANEL_H + 16.0,
                si(x)
            );
        }
        let y_ticks = if panel.log_y {
            log_ticks(y_lo, y_hi)
        } else {
            linear_ticks(y_hi)
        };
        for y in y_ticks {
            let py = sy(y);
            let _ = writeln!(
                s,
                r##"<line x1="{ox}" y1="{py}" x2="{}" y2="{py}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                ox + PANEL_W,
                ox - 6.0,
                py + 4.0,
                si(y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">connections (log scale)</text>"#,
            ox + PANEL_W / 2.0,
            oy + PANEL_H + 36.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            ox - 52.0,
            oy + PANEL_H / 2.0,
            panel.y_label
        );
        for (i, m) in models.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<(f64, f64, bool)> = cells
                .iter()
                .filter(|c| c.model == *m)
                .filter_map(|c| {
                    let r = c.report.as_ref()?;
                    let v = (panel.value)(r)?;
                    let partial = r.connections.unserved > 0;
                    (v.is_finite() && (!panel.log_y || v > 0.0))
                        .then(|| (sx(c.conns.max(1) as f64), sy(v), partial))
                })
                .collect();
            if points.len() > 1 {
                let path: Vec<String> = points
                    .iter()
                    .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                    path.join(" ")
                );
            }
            for (x, y, partial) in points {
                let fill = if partial { "white" } else { color };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{fill}" stroke="{color}" stroke-width="1.5"/>"#
                );
            }
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="20" y="{}" fill="#555">Hollow points: some connections were never served (a pool with fewer threads than connections); the figures cover the served ones.</text>"##,
        height - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// Where `v` falls between `lo` and `hi`, from 0 to 1.
fn scale(v: f64, lo: f64, hi: f64, log: bool) -> f64 {
    let (v, lo, hi) = if log {
        (v.max(lo).log10(), lo.log10(), hi.log10())
    } else {
        (v, lo, hi)
    };
    if hi > lo {
        (v - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// Range covering `vs`: whole decades for a log axis.
fn bounds(vs: &[f64], log: bool) -> (f64, f64) {
    let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vs.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 10.0);
    }
    if log {
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil());
        (lo, if hi > lo { hi } else { lo * 10.0 })
    } else {
        (0.0, nice_ceiling(hi))
    }
}

/// 1, 2 or 5 times a power of ten, at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn linear_ticks(hi: f64) -> Vec<f64> {
    let step = nice_ceiling(hi / 5.0);
    (0..=10)
        .map(|i| i as f64 * step)
        .take_while(|&t| t <= hi * 1.0001)
        .collect()
}

fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut t = lo;
    let mut v = Vec::new();
    while t <= hi * 1.0001 {
        v.push(t);
        t *= 10.0;
    }
    v
}

/// 1500 → "1.5k", 2000000 → "2M".
fn si(v: f64) -> String {
    let (d, suffix) = match v.abs() {
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let x = v / d;
    if (x - x.round()).abs() < 1e-9 {
        format!("{}{suffix}", x.round())
    } else {
        format!("{x:.1}{suffix}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(230_000.0), 500_000.0);
        assert_eq!(bounds(&[1.0, 10_000.0], true), (1.0, 10_000.0));
        assert_eq!(bounds(&[3.0, 70.0], true), (1.0, 100.0));
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(linear_ticks(500_000.0).len(), 6);
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(2_000_000.0), "2M");
        assert_eq!(si(10.0), "10");
        assert!((scale(100.0, 1.0, 10_000.0, true) - 0.5).abs() < 1e-12);
    }

    /// A report of `conns` connections, `connected` of them made and
    /// `unserved` of those never served.
    fn report(conns: usize, connected: usize, unserved: usize) -> Report {
        use crate::load::{ConnCounts, Counts};
        use crate::workload::Kind;
        use crate::{ConfigInfo, GeneratorFigures, TargetInfo};
        Report {
            machine: None,
            target: TargetInfo {
                addr: "127.0.0.1:1".into(),
                spawned_model: Some("pool"),
                serve_args: Vec::new(),
            },
            config: ConfigInfo {
                workload: Kind::Ping,
                conns,
                pipeline: 1,
                threads: 1,
                loop_kind: "closed",
                rate: None,
                requests: None,
                duration_s: Some(1.0),
                warmup_s: 0.0,
                ping_param: None,
                fib_n: None,
                keys: None,
                value_size: None,
                read_ratio: None,
            },
            connections: ConnCounts {
                requested: conns,
                connected,
                connect_failed: conns - connected,
                closed_by_server: 0,
                unserved,
            },
            measured: Counts::default(),
            warmup: Counts::default(),
            unsolicited: 0,
            failed: 0,
            elapsed_s: 1.0,
            throughput_rps: 0.0,
            latency_us: None,
            cache: None,
            server: None,
            generator: GeneratorFigures {
                threads: 1,
                cpu_s: 0.0,
                cpu_us_per_request: None,
                cpu_cores: 0.0,
            },
            notes: Vec::new(),
            error_samples: Vec::new(),
        }
    }

    #[test]
    fn unmade_connections_fail_a_cell_unless_the_server_was_saturated() {
        let cell = |conns, connected, unserved| Cell {
            model: "pool",
            conns,
            skipped: None,
            report: Some(report(conns, connected, unserved)),
        };
        assert_eq!(cell(10, 10, 0).connection_failure(), None);
        assert_eq!(cell(10, 10, 2).connection_failure(), None);
        let some = cell(10, 7, 0).connection_failure().expect("3 failed");
        assert!(
            some.starts_with("3 of 10 connections to 127.0.0.1:1 failed"),
            "{some}"
        );
        let none = cell(10, 0, 0).connection_failure().expect("none made");
        assert!(
            none.starts_with("no connection to 127.0.0.1:1 succeeded"),
            "{none}"
        );
        // A saturated pool: its backlog full, the rest never connected.
        assert_eq!(cell(10_000, 4_104, 4_096).connection_failure(), None);
        assert!(report(10_000, 4_104, 4_096).connection_failure().is_some());
    }

    #[test]
    fn empty_sweep_still_draws() {
        let cells = vec![Cell {
            model: "reactor",
            conns: 10,
            skipped: Some("x".into()),
            report: None,
        }];
        let machine = Machine {
            host: "box".into(),
            cpus: 2,
            cpu_model: "Some CPU, 2 GHz".into(),
            kernel: "6.1.0".into(),
            commit: "abc1234-dirty".into(),
            date: "2026-11-22T09:30:00Z".into(),
        };
        let svg = svg(&cells, "t", &machine.describe());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("box: 2 CPUs (Some CPU, 2 GHz), Linux 6.1.0, commit abc1234-dirty"));
        let csv = csv(&cells, &machine);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(",skipped,host,cpus,cpu_model,kernel,commit,date"));
        assert!(
            lines[1].ends_with(",x,box,2,Some CPU; 2 GHz,6.1.0,abc1234-dirty,2026-11-22T09:30:00Z")
        );
        let columns = lines[0].split(',').count();
        assert!(
            lines.iter().all(|l| l.split(',').count() == columns),
            "{csv}"
        );
    }
}
