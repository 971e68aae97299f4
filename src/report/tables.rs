//! Summary tables of a run. One [`Table`] feeds both the page (formatted text) and its CSV
//! download (raw numbers, full precision, units in the column names).

use super::fmt::{num, opt, raw, thousands};
use super::load::{unique, Config, Row, Run};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// HTML anchor.
    pub id: String,
    pub title: String,
    /// What the numbers are, in a sentence.
    pub note: String,
    /// Written next to index.html.
    pub csv_file: String,
    /// Columns only the CSV has, identifying each group (device, dtype, ...).
    pub key_columns: Vec<String>,
    pub columns: Vec<Column>,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub label: String,
    pub unit: String,
    /// CSV header: snake case with the unit in the name.
    pub csv: String,
    pub numeric: bool,
    /// In the CSV only (long error text, exact counts).
    pub csv_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub title: String,
    pub key: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows shown on the page; the CSV has them all.
    pub shown: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub text: String,
    pub raw: String,
    /// Secondary text after the value ("b8").
    pub detail: String,
    /// CSS class: "fail", "best".
    pub class: String,
    /// Tooltip (an error message).
    pub title: String,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        Cell { text: s.clone(), raw: s, ..Cell::default() }
    }

    pub fn num(v: Option<f64>) -> Cell {
        Cell { text: opt(v), raw: raw(v), ..Cell::default() }
    }

    pub fn count(n: u64) -> Cell {
        Cell { text: thousands(n), raw: n.to_string(), ..Cell::default() }
    }

    pub fn failed(error: &str) -> Cell {
        Cell { text: "failed".into(), raw: String::new(), class: "fail".into(), title: error.into(), ..Cell::default() }
    }

    pub fn empty() -> Cell {
        Cell { text: "—".into(), ..Cell::default() }
    }

    fn detail(mut self, d: impl Into<String>) -> Cell {
        self.detail = d.into();
        self
    }
}

fn col(label: &str, unit: &str, csv: &str, numeric: bool) -> Column {
    Column { label: label.into(), unit: unit.into(), csv: csv.into(), numeric, csv_only: false }
}

fn csv_col(csv: &str, numeric: bool) -> Column {
    Column { label: csv.into(), unit: String::new(), csv: csv.into(), numeric, csv_only: true }
}

fn config_key(c: &Config) -> Vec<String> {
    vec![
        c.device.clone(),
        c.backend.clone(),
        c.mode.clone(),
        c.dtype.clone(),
        c.threads.map(|t| t.to_string()).unwrap_or_default(),
    ]
}

const CONFIG_KEYS: [&str; 5] = ["device", "backend", "mode", "dtype", "threads_requested"];

fn error_of(row: &Row) -> &str {
    row.record.error.as_deref().unwrap_or("failed without an error message")
}

/// AI Matrix's results.csv: model x batch size -> images/s, one block per configuration.
pub fn throughput_by_batch(run: &Run) -> Table {
    let mut batches: Vec<usize> = unique(run.rows.iter().map(Row::batch));
    batches.sort_unstable();
    let mut columns = vec![col("model", "", "model", false)];
    columns.extend(batches.iter().map(|b| col(&format!("batch {b}"), "images/s", &format!("b{b}_images_per_s"), true)));
    let groups = run
        .configs()
        .iter()
        .map(|config| {
            let in_config: Vec<&Row> = run.rows.iter().filter(|r| &r.config() == config).collect();
            let models = unique(in_config.iter().map(|r| r.model().to_string()));
            let rows = models
                .iter()
                .map(|model| {
                    let mut cells = vec![Cell::text(model)];
                    for &b in &batches {
                        let row = in_config.iter().rev().find(|r| r.model() == model && r.batch() == b);
                        cells.push(match row {
                            Some(r) if r.ok() => Cell::num(r.images_per_s()),
                            Some(r) => Cell::failed(error_of(r)),
                            None => Cell::empty(),
                        });
                    }
                    cells
                })
                .collect::<Vec<_>>();
            Group { title: config.label(), key: config_key(config), shown: rows.len(), rows }
        })
        .collect();
    Table {
        id: "throughput-table".into(),
        title: "Throughput by batch size".into(),
        note: "Images per second over the measured window (batch × iterations ÷ measured time), as AI Matrix's \
               results.csv tabulates it."
            .into(),
        csv_file: "images_per_s_by_batch.csv".into(),
        key_columns: CONFIG_KEYS.iter().map(|s| s.to_string()).collect(),
        columns,
        groups,
    }
}

/// Seed 000's table: model, params, GMACs and images/s per dtype (best batch), with batch-1 latency.
pub fn models(run: &Run) -> Table {
    let dtypes = unique(run.rows.iter().map(|r| r.config().dtype));
    let has_b1 = run.rows.iter().any(|r| r.batch() == 1);
    let mut columns = vec![
        col("model", "", "model", false),
        col("params", "M", "params", true),
        col("MACs / image", "G", "macs_per_image", true),
    ];
    for d in &dtypes {
        columns.push(col(&format!("best throughput {d}"), "images/s", &format!("{d}_best_images_per_s"), true));
        columns.push(csv_col(&format!("{d}_best_batch"), true));
        if has_b1 {
            columns.push(col(&format!("batch-1 latency {d}"), "ms, p50", &format!("{d}_b1_p50_latency_ms"), true));
        }
    }
    let without_dtype = |r: &Row| Config { dtype: String::new(), ..r.config() };
    let groups = unique(run.rows.iter().map(without_dtype))
        .iter()
        .map(|config| {
            let in_config: Vec<&Row> = run.rows.iter().filter(|r| &without_dtype(r) == config).collect();
            let rows = unique(in_config.iter().map(|r| r.model().to_string()))
                .iter()
                .map(|model| {
                    let of_model: Vec<&&Row> = in_config.iter().filter(|r| r.model() == model).collect();
                    let counts = of_model.iter().find_map(|r| r.record.counts.as_ref());
                    let mut cells = vec![Cell::text(model)];
                    cells.push(match counts {
                        Some(c) => {
                            Cell { text: num(c.params as f64 / 1e6), raw: c.params.to_string(), ..Cell::default() }
                        }
                        None => Cell::empty(),
                    });
                    cells.push(match counts {
                        Some(c) => Cell {
                            text: num(c.macs_per_image as f64 / 1e9),
                            raw: c.macs_per_image.to_string(),
                            ..Cell::default()
                        },
                        None => Cell::empty(),
                    });
                    for d in &dtypes {
                        let ok = of_model.iter().filter(|r| &r.config().dtype == d && r.ok());
                        let best = ok
                            .max_by(|a, b| a.images_per_s().unwrap_or(0.0).total_cmp(&b.images_per_s().unwrap_or(0.0)));
                        match best {
                            Some(r) => {
                                cells.push(Cell::num(r.images_per_s()).detail(format!("b{}", r.batch())));
                                cells.push(Cell::count(r.batch() as u64));
                            }
                            None => {
                                cells.push(Cell::empty());
                                cells.push(Cell::empty());
                            }
                        }
                        if has_b1 {
                            let b1 = of_model.iter().find(|r| &r.config().dtype == d && r.batch() == 1 && r.ok());
                            cells.push(Cell::num(b1.and_then(|r| r.record.result.as_ref()).map(|x| x.latency.p50_ms)));
                        }
                    }
                    cells
                })
                .collect::<Vec<_>>();
            let title = config.label();
            let key = vec![config.device.clone(), config.backend.clone(), config.mode.clone()];
            Group { title, key, shown: rows.len(), rows }
        })
        .collect();
    Table {
        id: "models-table".into(),
        title: "Models".into(),
        note: "Parameters (trainable) and conv+linear MACs per image, with the best throughput over the batch \
               sizes measured (its batch beside it) and the median latency of one image, like seed 000's table."
            .into(),
        csv_file: "models.csv".into(),
        key_columns: vec!["device".into(), "backend".into(), "mode".into()],
        columns,
        groups,
    }
}

/// Every case with its full statistics.
pub fn cases(run: &Run) -> Table {
    let threads_of = |r: &Row| r.record.result.as_ref().and_then(|x| x.cpu_threads).or(r.record.case.threads);
    let several_thread_counts = unique(run.rows.iter().filter_map(threads_of)).len() > 1;
    let repeated = run.all_rows.len() > run.rows.len();
    let columns = vec![
        col("#", "", "case_number", true),
        Column { csv_only: !repeated, ..col("round", "", "round", true) },
        col("model", "", "model", false),
        col("configuration", "", "configuration", false),
        Column { csv_only: !several_thread_counts, ..col("threads", "", "cpu_threads", true) },
        col("batch", "", "batch", true),
        col("throughput", "images/s", "images_per_s", true),
        col("p50", "ms", "latency_p50_ms", true),
        col("p90", "ms", "latency_p90_ms", true),
        col("p99", "ms", "latency_p99_ms", true),
        col("jitter", "ms, MAD", "latency_mad_jitter_ms", true),
        col("iterations", "", "iterations", true),
        col("achieved", "GFLOP/s", "achieved_gflops_per_s", true),
        col("peak memory", "MiB", "peak_memory_mib", true),
        csv_col("case_id", false),
        csv_col("mode", false),
        csv_col("dtype", false),
        csv_col("device", false),
        csv_col("backend", false),
        csv_col("status", false),
        csv_col("latency_mean_ms", true),
        csv_col("latency_stderr_ms", true),
        csv_col("params", true),
        csv_col("macs_per_image", true),
        csv_col("flops_per_image", true),
        csv_col("bytes_moved", true),
        csv_col("arithmetic_intensity_flop_per_byte", true),
        csv_col("images_per_j", true),
        csv_col("images_per_s_per_w", true),
        csv_col("started_unix_s", true),
        csv_col("wall_s", true),
        csv_col("error", false),
    ];
    let rows = run
        .all_rows
        .iter()
        .map(|r| {
            let res = r.record.result.as_ref();
            let lat = res.map(|x| &x.latency);
            let counts = r.record.counts.as_ref();
            let c = r.config();
            let threads = threads_of(r);
            vec![
                Cell::count(r.index as u64),
                Cell::count(r.record.case.round.max(1) as u64),
                Cell::text(r.model()),
                Cell::text(format!("{} · {} · {}", c.mode, c.dtype, c.device)),
                threads.map(|t| Cell::count(t as u64)).unwrap_or_else(Cell::empty),
                Cell::count(r.batch() as u64),
                if r.ok() { Cell::num(r.images_per_s()) } else { Cell::failed(error_of(r)) },
                Cell::num(lat.map(|l| l.p50_ms)),
                Cell::num(lat.map(|l| l.p90_ms)),
                Cell::num(lat.map(|l| l.p99_ms)),
                Cell::num(lat.map(|l| l.mad_jitter_ms)),
                lat.map(|l| Cell::count(l.iterations as u64)).unwrap_or_else(Cell::empty),
                Cell::num(res.map(|x| x.achieved_gflops_per_s)),
                Cell::num(res.and_then(|x| x.peak_memory_bytes).map(|b| b as f64 / (1u64 << 20) as f64)),
                Cell::text(&r.record.case.id),
                Cell::text(&c.mode),
                Cell::text(&c.dtype),
                Cell::text(&c.device),
                Cell::text(&c.backend),
                Cell::text(if r.ok() { "ok" } else { "failed" }),
                Cell::num(lat.map(|l| l.mean_ms)),
                Cell::num(lat.map(|l| l.stderr_ms)),
                Cell::num(counts.map(|k| k.params as f64)),
                Cell::num(counts.map(|k| k.macs_per_image as f64)),
                Cell::num(counts.map(|k| k.flops_per_image as f64)),
                Cell::num(counts.map(|k| k.bytes_moved as f64)),
                Cell::num(counts.map(|k| k.arithmetic_intensity)),
                Cell::num(r.images_per_j()),
                Cell::num(r.images_per_s_per_w()),
                Cell::num(Some(r.record.started_unix_s)),
                Cell::num(Some(r.record.wall_s)),
                Cell::text(r.record.error.clone().unwrap_or_default()),
            ]
        })
        .collect::<Vec<_>>();
    Table {
        id: "cases-table".into(),
        title: "All cases".into(),
        note: format!(
            "Latency is per batch (one iteration); jitter is 1.4826 × the median absolute deviation; achieved \
             GFLOP/s = 2 × conv/linear MACs × images/s (× 3 in training). The CSV adds the counts, mean ± \
             standard error, energy figures and errors.{}",
            if repeated {
                " Every round of every case is listed; the other tables and the plots use each case's median round."
            } else {
                ""
            }
        ),
        csv_file: "cases.csv".into(),
        key_columns: Vec::new(),
        columns,
        groups: vec![Group { title: String::new(), key: Vec::new(), shown: rows.len(), rows }],
    }
}

/// Energy of the measured windows, where telemetry measured it.
pub fn energy(run: &Run) -> Option<Table> {
    let with_energy: Vec<&Row> =
        run.rows.iter().filter(|r| r.telemetry.as_ref().is_some_and(|t| t.energy.is_some())).collect();
    if with_energy.is_empty() {
        return None;
    }
    let columns = vec![
        col("#", "", "case_number", true),
        col("model", "", "model", false),
        col("configuration", "", "configuration", false),
        col("batch", "", "batch", true),
        col("energy counter", "J", "counter_j", true),
        col("integrated power", "J", "integrated_j", true),
        col("disagreement", "%", "disagreement_pct", true),
        col("average power", "W", "avg_power_w", true),
        col("idle power", "W", "idle_power_w", true),
        col("energy / image", "mJ", "mj_per_image", true),
        col("efficiency", "images/J", "images_per_j", true),
        col("efficiency", "images/s/W", "images_per_s_per_w", true),
        col("throttled", "", "throttled", false),
    ];
    let rows = with_energy
        .iter()
        .map(|r| {
            let e = r.telemetry.as_ref().and_then(|t| t.energy.clone()).unwrap_or_default();
            let throttled = match e.throttled {
                Some(true) => Cell { class: "fail".into(), ..Cell::text("yes") },
                Some(false) => Cell::text("no"),
                None => Cell::empty(),
            };
            vec![
                Cell::count(r.index as u64),
                Cell::text(r.model()),
                Cell::text(r.config().label()),
                Cell::count(r.batch() as u64),
                Cell::num(e.counter_j),
                Cell::num(e.integrated_j),
                Cell::num(e.disagreement.map(|d| d * 100.0)),
                Cell::num(e.avg_power_w),
                Cell::num(e.idle_power_w),
                Cell::num(e.mj_per_image),
                Cell::num(r.images_per_j()),
                Cell::num(r.images_per_s_per_w()),
                throttled,
            ]
        })
        .collect::<Vec<_>>();
    Some(Table {
        id: "energy-table".into(),
        title: "Energy of the measured windows".into(),
        note: "The energy counter's delta over the measured window is the primary figure; the trapezoid integral of \
               sampled power is the cross-check, and their disagreement is |counter − integral| ÷ counter."
            .into(),
        csv_file: "energy.csv".into(),
        key_columns: Vec::new(),
        columns,
        groups: vec![Group { title: String::new(), key: Vec::new(), shown: rows.len(), rows }],
    })
}

/// Per-layer times of the cases that measured them, slowest first.
pub fn layers(run: &Run, shown_per_case: usize) -> Option<Table> {
    let columns = vec![
        col("layer", "", "layer", false),
        col("op", "", "op", false),
        col("time", "ms", "mean_ms", true),
        col("share", "%", "share_pct", true),
        col("achieved", "GFLOP/s", "achieved_gflops_per_s", true),
        col("intensity", "FLOP/byte", "arithmetic_intensity_flop_per_byte", true),
        col("threads busy", "%", "thread_use_pct", true),
        col("kernel", "", "kernel", false),
        csv_col("flops", true),
    ];
    let groups: Vec<Group> = run
        .ok_rows()
        .filter_map(|r| {
            let layers = r.record.result.as_ref()?.layers.as_ref().filter(|l| !l.is_empty())?;
            let mut sorted: Vec<_> = layers.iter().collect();
            sorted.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
            let rows: Vec<Vec<Cell>> = sorted
                .iter()
                .map(|l| {
                    vec![
                        Cell::text(&l.name),
                        Cell::text(&l.op),
                        Cell::num(Some(l.mean_ms)),
                        Cell::num(Some(l.share * 100.0)),
                        Cell::num(Some(l.achieved_gflops_per_s)),
                        Cell::num(Some(l.arithmetic_intensity)),
                        Cell::num(l.thread_use.map(|u| u * 100.0)),
                        Cell::text(l.kernel.as_deref().unwrap_or("")),
                        Cell::count(l.flops),
                    ]
                })
                .collect();
            let title = format!("#{} {} · batch {} · {}", r.index, r.model(), r.batch(), r.config().label());
            let key = vec![r.index.to_string(), r.record.case.id.clone()];
            Some(Group { title, key, shown: shown_per_case.min(rows.len()), rows })
        })
        .collect();
    if groups.is_empty() {
        return None;
    }
    Some(Table {
        id: "layers-table".into(),
        title: "Slowest layers".into(),
        note: format!(
            "Mean time of each layer timed alone (the device synchronised after every layer), the {shown_per_case} \
             slowest per case; layers.csv has them all. Threads busy: the share of the CPU conv threads' time \
             in the layer spent in its work (below 100%, they waited for each other or had none; empty where \
             the layer did not run on them)."
        ),
        csv_file: "layers.csv".into(),
        key_columns: vec!["case_number".into(), "case_id".into()],
        columns,
        groups,
    })
}

/// Target against its mimic proxy (`report::fidelity`), when the run holds such pairs.
pub fn fidelity(run: &Run) -> Option<Table> {
    let f = super::fidelity::fidelity(run);
    if f.pairs.iter().all(|p| p.throughput.is_empty()) {
        return None;
    }
    let repeated = f.pairs.iter().flat_map(|p| &p.throughput).any(|r| r.rounds > 1);
    let paired = f.pairs.iter().flat_map(|p| &p.throughput).any(|r| r.paired.is_some());
    let columns = vec![
        csv_col("target", false),
        csv_col("proxy", false),
        col("configuration", "", "configuration", false),
        col("batch", "", "batch", true),
        col("target", "images/s", "target_images_per_s", true),
        col("proxy", "images/s", "proxy_images_per_s", true),
        col("error", "%", "throughput_error_pct", true),
        Column { csv_only: !paired, ..col("paired bursts", "", "paired_bursts", true) },
        Column { csv_only: !paired, ..col("error q1", "%", "paired_error_q1_pct", true) },
        Column { csv_only: !paired, ..col("error q3", "%", "paired_error_q3_pct", true) },
        Column { csv_only: !paired, ..col("separate cases", "error %", "separate_error_pct", true) },
        col("share gap", "pp", "share_error_pp", true),
        col("in", "op type", "share_worst_op", false),
        col("target speed-up", "x", "target_ratio", true),
        col("proxy speed-up", "x", "proxy_ratio", true),
        col("ratio error", "%", "ratio_error_pct", true),
        Column { csv_only: !repeated, ..col("rounds", "", "rounds", true) },
        Column { csv_only: !repeated, ..col("target spread", "%", "target_round_spread_pct", true) },
        Column { csv_only: !repeated, ..col("proxy spread", "%", "proxy_round_spread_pct", true) },
    ];
    let flag = |cell: Cell, bad: bool| if bad { Cell { class: "fail".into(), ..cell } } else { cell };
    let mut groups = Vec::new();
    for p in &f.pairs {
        let rows = p
            .throughput
            .iter()
            .map(|r| {
                let ratio = p.ratios.iter().find(|q| q.batch == r.batch && q.config == r.config);
                vec![
                    Cell::text(&p.target),
                    Cell::text(&p.proxy),
                    Cell::text(&r.config),
                    Cell::count(r.batch as u64),
                    Cell::num(Some(r.target_images_per_s)),
                    Cell::num(Some(r.proxy_images_per_s)),
                    flag(Cell::num(Some(r.error * 100.0)), r.error.abs() > p.throughput_target),
                    r.paired.as_ref().map(|f| Cell::count(f.bursts as u64)).unwrap_or_else(Cell::empty),
                    Cell::num(r.paired.as_ref().map(|f| f.error_q1 * 100.0)),
                    Cell::num(r.paired.as_ref().map(|f| f.error_q3 * 100.0)),
                    Cell::num(Some(r.separate_error * 100.0)),
                    Cell::num(r.share_error_pp),
                    Cell::text(r.share_worst_op.clone().unwrap_or_default()),
                    Cell::num(ratio.map(|q| q.target_ratio)),
                    Cell::num(ratio.map(|q| q.proxy_ratio)),
                    match ratio {
                        Some(q) => flag(Cell::num(Some(q.error * 100.0)), q.error.abs() > p.ratio_target),
                        None => Cell::empty(),
                    },
                    Cell::count(r.rounds as u64),
                    Cell::num(r.target_round_spread.map(|s| s * 100.0)),
                    Cell::num(r.proxy_round_spread.map(|s| s * 100.0)),
                ]
            })
            .collect::<Vec<_>>();
        groups.push(Group { title: format!("{} vs {}", p.target, p.proxy), key: Vec::new(), shown: rows.len(), rows });
    }
    Some(Table {
        id: "fidelity-table".into(),
        title: "Fidelity: targets against their mimic proxies".into(),
        note: format!(
            "Error = proxy images/s ÷ target images/s − 1 (target: within {:.0}%). Share gap: the largest \
             difference in share of per-layer time by op type, in percentage points. Speed-up: from the first \
             configuration at the same batch; the ratio error compares the proxy's with the target's (target: \
             within {:.0}%). Flagged cells miss their target. Paired: target and proxy timed in alternating \
             bursts in one process; the error is the median of the per-burst ratios (q1 and q3: the middle \
             half of them) and the ratio error follows from two paired errors; the separate cases' error is \
             beside it. With several rounds, each figure is the case's \
             median round and the spread (max ÷ min − 1 over the rounds) shows the run-to-run noise.",
            super::fidelity::THROUGHPUT_TARGET * 100.0,
            super::fidelity::RATIO_TARGET * 100.0
        ),
        csv_file: "fidelity.csv".into(),
        key_columns: Vec::new(),
        columns,
        groups,
    })
}
