//! Telemetry in: every real NAB series, every format from small fixtures, bad rows, resampling
//! arithmetic and outlier flagging.

use std::collections::BTreeMap;

use knobs::Error;
use knobs::telemetry::{
    self, BadRows, Format, OutlierConfig, Series, SeriesKind, TelemetryConfig, find_outliers, parse_str, resample,
};

const NAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/telemetry/");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/telemetry/");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}{name}")
}

fn counts(names: &[&str]) -> TelemetryConfig {
    let kinds: BTreeMap<String, SeriesKind> = names.iter().map(|n| (n.to_string(), SeriesKind::Count)).collect();
    TelemetryConfig { kinds, ..TelemetryConfig::default() }
}

/// The problems of an `Error::Invalid`, as `path: message` lines, with its source.
fn problems(err: Error) -> (String, Vec<String>) {
    match err {
        Error::Invalid(p) => (p.source.clone(), p.items.iter().map(|i| i.to_string()).collect()),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

fn has(items: &[String], needle: &str) -> bool {
    items.iter().any(|i| i.contains(needle))
}

struct Nab {
    file: &'static str,
    /// `wc -l` minus the header.
    rows: usize,
    duplicates: usize,
    gaps: usize,
    missing: usize,
    longest: usize,
}

const NAB_SERIES: [Nab; 8] = [
    Nab { file: "Twitter_volume_AMZN.csv", rows: 15831, duplicates: 0, gaps: 0, missing: 0, longest: 0 },
    Nab { file: "art_daily_small_noise.csv", rows: 4032, duplicates: 0, gaps: 0, missing: 0, longest: 0 },
    Nab { file: "ec2_cpu_utilization_5f5533.csv", rows: 4032, duplicates: 0, gaps: 0, missing: 0, longest: 0 },
    Nab { file: "ec2_cpu_utilization_825cc2.csv", rows: 4032, duplicates: 0, gaps: 2, missing: 2, longest: 1 },
    Nab { file: "ec2_network_in_257a54.csv", rows: 4032, duplicates: 0, gaps: 2, missing: 2, longest: 1 },
    // 11 extra rows at 2014-03-09 03:00:00 after an 11-bucket hole (a daylight-saving artefact).
    Nab {
        file: "ec2_request_latency_system_failure.csv",
        rows: 4032,
        duplicates: 11,
        gaps: 2,
        missing: 12,
        longest: 11,
    },
    Nab { file: "elb_request_count_8c0756.csv", rows: 4032, duplicates: 0, gaps: 8, missing: 8, longest: 1 },
    Nab { file: "rds_cpu_utilization_cc0c53.csv", rows: 4032, duplicates: 0, gaps: 1, missing: 1, longest: 1 },
];

#[test]
fn every_real_series_is_read_whole_on_a_five_minute_grid() {
    for nab in &NAB_SERIES {
        let path = format!("{NAB}{}", nab.file);
        let text = std::fs::read_to_string(&path).expect("read NAB file");
        assert_eq!(text.lines().count() - 1, nab.rows, "{}: wc -l minus header", nab.file);
        let stem = nab.file.trim_end_matches(".csv");
        let cfg = counts(&["Twitter_volume_AMZN", "elb_request_count_8c0756", "ec2_network_in_257a54"]);
        let loaded = telemetry::load(&path, &cfg).unwrap_or_else(|e| panic!("{}: {e}", nab.file));
        let r = &loaded.report;
        assert_eq!(r.format, Format::Csv);
        assert_eq!((r.rows_read, r.bad_rows), (nab.rows, 0), "{}", nab.file);
        assert_eq!(r.series.len(), 1);
        let s = &r.series[0];
        assert_eq!(s.name, stem);
        assert_eq!(s.kind, cfg.kind_of(stem));
        assert_eq!((s.step, s.step_inferred), (300, true), "{}", nab.file);
        assert_eq!(s.out_of_order, 0, "{}", nab.file);
        assert_eq!(s.duplicates_merged, nab.duplicates, "{}", nab.file);
        assert_eq!(s.samples, nab.rows - nab.duplicates, "{}", nab.file);
        assert_eq!((s.gaps, s.missing_buckets, s.longest_gap), (nab.gaps, nab.missing, nab.longest), "{}", nab.file);
        assert_eq!(s.buckets, s.samples + s.missing_buckets, "{}", nab.file);
        assert_eq!(s.filled.len(), nab.missing, "{}", nab.file);

        let series = &loaded.series[0];
        assert_eq!(series.points.len(), s.buckets);
        assert!(series.points.windows(2).all(|w| w[1].0 - w[0].0 == 300), "{}: evenly spaced", nab.file);
        assert!(series.points.iter().all(|p| p.1.is_finite()));
        // The first row survives unchanged.
        let first = text.lines().nth(1).expect("first row");
        let (ts, value) = first.split_once(',').expect("two fields");
        assert_eq!(series.points[0].0, telemetry::parse_timestamp(ts).expect("timestamp"));
        assert_eq!(series.points[0].1, value.parse::<f64>().expect("number"));
        // The printed report says what was found.
        let printed = r.to_string();
        assert!(printed.contains(&format!("{} rows read", nab.rows)), "{printed}");
        if nab.gaps > 0 {
            assert!(printed.contains(&format!("{} empty bucket", nab.missing)), "{printed}");
        } else {
            assert!(printed.contains("no gaps"), "{printed}");
        }
    }
}

#[test]
fn gaps_are_interpolated_and_counts_flagged() {
    let path = format!("{NAB}elb_request_count_8c0756.csv");
    let loaded = telemetry::load(&path, &counts(&["elb_request_count_8c0756"])).expect("load");
    let s = &loaded.series[0];
    let r = &loaded.report.series[0];
    assert_eq!(r.filled[0], telemetry::parse_timestamp("2014-04-10 11:34:00").expect("ts"));
    for &t in &r.filled {
        let i = s.points.iter().position(|p| p.0 == t).expect("filled point on the grid");
        let (before, after) = (s.points[i - 1].1, s.points[i + 1].1);
        assert_eq!(s.points[i].1, (before + after) / 2.0, "one missing bucket is the midpoint");
    }
    assert!(loaded.report.to_string().contains("filled counts are estimates"));
}

#[test]
fn wide_csv_sorts_merges_and_resamples_by_kind() {
    let loaded = telemetry::load(fixture("wide.csv"), &counts(&["requests"])).expect("load");
    let r = &loaded.report;
    assert_eq!(r.rows_read, 6);
    let names: Vec<&str> = r.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["requests", "cpu_pct"]);
    for s in &r.series {
        assert_eq!((s.out_of_order, s.duplicates_merged), (1, 1), "{}", s.name);
        assert_eq!((s.step, s.gaps, s.missing_buckets, s.longest_gap), (60, 1, 2, 2), "{}", s.name);
    }
    let t0 = telemetry::parse_timestamp("2024-05-01 00:00:00").expect("ts");
    let at = |m: i64| t0 + 60 * m;
    // Requests at 00:02 are 6 + 4 (a count sums); CPU is (26 + 28) / 2 (a gauge averages).
    assert_eq!(
        loaded.series[0].points,
        vec![(at(0), 10.0), (at(1), 12.0), (at(2), 10.0), (at(3), 8.0), (at(4), 12.0), (at(5), 16.0), (at(6), 20.0)]
    );
    let cpu: Vec<f64> = loaded.series[1].points.iter().map(|p| p.1).collect();
    let want = [20.0, 22.0, 27.0, 30.0, 30.0 + 10.0 / 3.0, 30.0 + 20.0 / 3.0, 40.0];
    assert!(cpu.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9), "{cpu:?}");
    assert_eq!(r.series[0].filled, vec![at(4), at(5)]);
}

#[test]
fn resampling_sums_counts_and_averages_gauges() {
    let pts = vec![(0, 10.0), (60, 12.0), (120, 10.0), (180, 8.0), (360, 20.0), (400, 2.0)];
    let count = Series { name: "requests".into(), kind: SeriesKind::Count, points: pts.clone() };
    let gauge = Series { name: "cpu".into(), kind: SeriesKind::Gauge, points: pts };
    let c = resample(&count, Some(120)).expect("count");
    assert!(!c.step_inferred);
    // Buckets [0,120) [120,240) [240,360) [360,480): the third is empty and interpolated.
    assert_eq!(c.series.points, vec![(0, 22.0), (120, 18.0), (240, 20.0), (360, 22.0)]);
    assert_eq!(c.filled, vec![false, false, true, false]);
    assert_eq!((c.gaps, c.missing_buckets, c.longest_gap), (1, 1, 1));
    let g = resample(&gauge, Some(120)).expect("gauge");
    assert_eq!(g.series.points, vec![(0, 11.0), (120, 9.0), (240, 10.0), (360, 11.0)]);
}

#[test]
fn json_lines_in_both_shapes() {
    let loaded = telemetry::load(fixture("mixed.jsonl"), &TelemetryConfig::default()).expect("load");
    let r = &loaded.report;
    assert_eq!((r.format, r.rows_read, r.bad_rows), (Format::JsonLines, 5, 0));
    let t0 = 1_714_521_600; // 2024-05-01T00:00:00Z
    let got: Vec<(&str, &[(i64, f64)])> =
        loaded.series.iter().map(|s| (s.name.as_str(), s.points.as_slice())).collect();
    // `mixed` (the file's `value`) on its median step of 60 s: 00:02 and 00:03 are interpolated.
    assert_eq!(got[0].0, "mixed");
    let want = [(t0, 1.5), (t0 + 60, 2.5), (t0 + 120, 2.5 + 1.0 / 3.0), (t0 + 180, 2.5 + 2.0 / 3.0), (t0 + 240, 3.5)];
    assert_eq!(got[0].1.len(), want.len());
    for (g, w) in got[0].1.iter().zip(want) {
        assert!(g.0 == w.0 && (g.1 - w.1).abs() < 1e-12, "{g:?} vs {w:?}");
    }
    assert_eq!(loaded.report.series[0].filled, vec![t0 + 120, t0 + 180]);
    // A float unix time rounds to the second; the `region` and `host` labels are ignored.
    assert_eq!(got[1], ("latency_ms", &[(t0 + 120, 12.0), (t0 + 180, 14.0)][..]));
    assert_eq!(r.series[2].name, "queue");
    assert_eq!(got.len(), 3);
}

#[test]
fn a_single_point_series_takes_the_step_of_its_file() {
    let loaded = telemetry::load(fixture("mixed.jsonl"), &TelemetryConfig::default()).expect("load");
    let queue = &loaded.report.series[2];
    assert_eq!((queue.samples, queue.step, queue.step_inferred, queue.buckets), (1, 60, true, 1));
    assert_eq!(loaded.series[2].points, vec![(1_714_521_840, 7.0)]);

    // With one timestamp in the whole file there is nothing to infer from: say so, by series.
    let text = "timestamp,value\n2024-05-01 00:00:00,1\n";
    let rec = parse_str(text, Format::Csv, "one.csv", &TelemetryConfig::default()).expect("parse");
    let (source, items) = problems(telemetry::prepare(rec.clone(), &TelemetryConfig::default()).expect_err("no step"));
    assert_eq!(source, "one.csv");
    assert!(has(&items, "series `one`: cannot infer a step"), "{items:#?}");
    let cfg = TelemetryConfig { step: Some(300), ..TelemetryConfig::default() };
    assert_eq!(telemetry::prepare(rec, &cfg).expect("given step").series[0].points, vec![(1_714_521_600, 1.0)]);
}

#[test]
fn prometheus_range_query() {
    let cfg = counts(&["http_requests_total{instance=\"10.0.0.1:9090\",job=\"api\"}"]);
    let loaded = telemetry::load(fixture("range.json"), &cfg).expect("load");
    let r = &loaded.report;
    assert_eq!((r.format, r.rows_read, r.bad_rows), (Format::PrometheusJson, 6, 0));
    let a = &r.series[0];
    assert_eq!(a.name, "http_requests_total{instance=\"10.0.0.1:9090\",job=\"api\"}");
    assert_eq!((a.kind, a.samples, a.step, a.gaps, a.missing_buckets), (SeriesKind::Count, 4, 15, 1, 1));
    let values: Vec<f64> = loaded.series[0].points.iter().map(|p| p.1).collect();
    assert_eq!(values, [100.0, 130.0, 160.0, 190.0, 220.0]);
    assert_eq!(r.series[1].name, "process_cpu_seconds{job=\"api\"}");
    assert_eq!(loaded.series[1].points, vec![(1_714_521_600, 0.5), (1_714_521_615, 0.75)]);
}

#[test]
fn every_bad_csv_row_is_named_in_one_error() {
    let path = fixture("bad.csv");
    let (source, items) = problems(telemetry::load(&path, &TelemetryConfig::default()).expect_err("bad rows"));
    assert!(source.ends_with("bad.csv"), "{source}");
    assert_eq!(items.len(), 5, "{items:#?}");
    assert!(
        has(
            &items,
            "line 3, column `timestamp`: `2024-05-01 00:05` is not a timestamp; expected `YYYY-MM-DD HH:MM:SS`"
        ),
        "{items:#?}"
    );
    assert!(has(&items, "line 4, column `value`: `abc` is not a number; expected a finite number"), "{items:#?}");
    assert!(has(&items, "line 5, column `value`: missing column"), "{items:#?}");
    assert!(has(&items, "line 6, column `value`: `NaN` is not finite"), "{items:#?}");
    assert!(has(&items, "line 8, column `value`: `inf` is not finite"), "{items:#?}");

    // Skipping keeps the good rows and lists the bad ones in the report.
    let cfg = TelemetryConfig { bad_rows: BadRows::Skip, step: Some(300), ..TelemetryConfig::default() };
    let loaded = telemetry::load(&path, &cfg).expect("skip bad rows");
    assert_eq!((loaded.report.rows_read, loaded.report.bad_rows, loaded.report.skipped.len()), (7, 5, 5));
    assert_eq!(loaded.report.series[0].samples, 2);
    assert!(loaded.report.to_string().contains("dropped line 4, column `value`"));
}

#[test]
fn every_bad_json_row_is_named_in_one_error() {
    let (_, items) = problems(telemetry::load(fixture("bad.jsonl"), &TelemetryConfig::default()).expect_err("bad"));
    assert_eq!(items.len(), 3, "{items:#?}");
    assert!(has(&items, "line 1, field `timestamp`: \"yesterday\" is not a timestamp"), "{items:#?}");
    assert!(has(&items, "line 2, field `value`: missing"), "{items:#?}");
    assert!(has(&items, "line 3: not valid JSON"), "{items:#?}");

    let (_, items) =
        problems(telemetry::load(fixture("bad_values.json"), &TelemetryConfig::default()).expect_err("bad"));
    assert_eq!(items.len(), 3, "{items:#?}");
    assert!(has(&items, "data.result[0].values[1][1]: `NaN` is not finite"), "{items:#?}");
    assert!(has(&items, "data.result[0].values[2][1]: `x` is not a number"), "{items:#?}");
    assert!(has(&items, "data.result[0].values[3][0]: \"later\" is not a timestamp"), "{items:#?}");

    let (_, items) =
        problems(telemetry::load(fixture("vector.json"), &TelemetryConfig::default()).expect_err("vector"));
    assert!(has(&items, "data.resultType: Some(\"vector\"); expected \"matrix\""), "{items:#?}");
}

#[test]
fn many_bad_rows_are_capped_with_a_count() {
    let mut text = String::from("timestamp,value\n");
    for i in 0..80 {
        text += &format!("2024-05-01 00:{:02}:00,oops\n", i % 60);
    }
    let err = parse_str(&text, Format::Csv, "many.csv", &TelemetryConfig::default()).expect_err("all bad");
    let (source, items) = problems(err);
    assert_eq!(source, "many.csv");
    assert_eq!(items.len(), 51);
    assert!(items[0].starts_with("line 2, column `value`"), "{}", items[0]);
    assert!(items[49].starts_with("line 51,"), "{}", items[49]);
    assert_eq!(items[50], "...: and 30 more problems not listed");

    // Skipping does not rescue a file with no usable row.
    let cfg = TelemetryConfig { bad_rows: BadRows::Skip, ..TelemetryConfig::default() };
    let (_, items) = problems(parse_str(&text, Format::Csv, "many.csv", &cfg).expect_err("none usable"));
    assert!(items[0].contains("no usable row among 80 data rows"), "{}", items[0]);
}

#[test]
fn empty_and_header_only_files_are_clear_errors() {
    let (_, items) = problems(telemetry::load(fixture("empty.csv"), &TelemetryConfig::default()).expect_err("empty"));
    assert!(has(&items, "the file is empty; expected a header `timestamp,value`"), "{items:#?}");
    let (_, items) =
        problems(telemetry::load(fixture("header_only.csv"), &TelemetryConfig::default()).expect_err("header"));
    assert!(has(&items, "no data rows after the header"), "{items:#?}");
    for (text, format) in [("", Format::JsonLines), ("\n\n", Format::JsonLines), ("", Format::PrometheusJson)] {
        let (_, items) = problems(parse_str(text, format, "x", &TelemetryConfig::default()).expect_err("empty"));
        assert!(has(&items, "empty"), "{format}: {items:#?}");
    }
    let (_, items) = problems(
        parse_str("2024-05-01 00:00:00,1\n", Format::Csv, "x.csv", &TelemetryConfig::default()).expect_err("no header"),
    );
    assert!(has(&items, "looks like data, not a header"), "{items:#?}");
}

#[test]
fn unknown_extensions_are_refused_by_name() {
    let (source, items) = problems(telemetry::load("/tmp/series.txt", &TelemetryConfig::default()).expect_err("txt"));
    assert_eq!(source, "/tmp/series.txt");
    assert!(has(&items, "`.txt` is not a telemetry format; expected .csv"), "{items:#?}");
    assert!(matches!(telemetry::load(fixture("missing.csv"), &TelemetryConfig::default()), Err(Error::Io { .. })));
}

#[test]
fn a_spike_in_a_smooth_real_series_is_the_only_outlier() {
    let path = format!("{NAB}art_daily_small_noise.csv");
    let clean = telemetry::load(&path, &TelemetryConfig::default()).expect("load");
    assert!(clean.report.series[0].outliers.is_empty(), "{}", clean.report);

    let mut text = std::fs::read_to_string(&path).expect("read");
    let row = text.lines().nth(1001).expect("row 1001").to_string();
    let (ts, value) = row.split_once(',').expect("two fields");
    let spiked = value.parse::<f64>().expect("number") + 150.0;
    text = text.replacen(&row, &format!("{ts},{spiked}"), 1);
    let rec = parse_str(&text, Format::Csv, "art_daily_spiked.csv", &TelemetryConfig::default()).expect("parse");
    let loaded = telemetry::prepare(rec, &TelemetryConfig::default()).expect("prepare");
    let outliers = &loaded.report.series[0].outliers;
    assert_eq!(outliers.len(), 1, "{}", loaded.report);
    assert_eq!(outliers[0].at, telemetry::parse_timestamp(ts).expect("ts"));
    assert_eq!(outliers[0].value, spiked);
    assert!(loaded.report.to_string().contains("1 outlier flagged (kept)"));
    // Flagged, not removed.
    assert!(loaded.series[0].points.iter().any(|p| p.1 == spiked));
}

#[test]
fn a_spike_on_a_sine_is_the_only_outlier() {
    let day = 288;
    let mut points: Vec<(i64, f64)> = (0..3 * day)
        .map(|i| {
            let x = i as f64 / day as f64 * std::f64::consts::TAU;
            (i as i64 * 300, 50.0 + 20.0 * x.sin() + 0.3 * (i as f64 * 1.7).sin())
        })
        .collect();
    let config = OutlierConfig::default();
    assert!(find_outliers(&points, 300, &[], &config).is_empty());
    points[400].1 += 80.0;
    let found = find_outliers(&points, 300, &[], &config);
    assert_eq!(found.iter().map(|o| o.at).collect::<Vec<_>>(), vec![400 * 300]);
    assert!(found[0].z > config.threshold);
    // A filled point is never flagged.
    let mut skip = vec![false; points.len()];
    skip[400] = true;
    assert!(find_outliers(&points, 300, &skip, &config).is_empty());
}

#[test]
fn bad_settings_are_refused() {
    let path = fixture("wide.csv");
    let cfg = TelemetryConfig { step: Some(0), ..TelemetryConfig::default() };
    assert!(matches!(telemetry::load(&path, &cfg), Err(Error::Config(m)) if m.contains("telemetry.step")));
    let cfg = TelemetryConfig {
        outliers: Some(OutlierConfig { threshold: -1.0, window_s: 60 }),
        ..TelemetryConfig::default()
    };
    assert!(matches!(telemetry::load(&path, &cfg), Err(Error::Config(m)) if m.contains("outliers.threshold")));
}

/// The level shifts a reader sees in the NAB plots, and nothing else: rds_cpu steps from ~6% to
/// ~14.5% on 2014-02-25; ec2_cpu_825cc2 drops to ~33% for twelve hours on 2014-04-16; the daily
/// cycles of art_daily, elb and Twitter and the 2-unit wander of the latency series are not changes.
#[test]
fn the_level_shifts_of_the_real_series_are_flagged_and_cycles_are_not() {
    let at = |s: &str| telemetry::parse_timestamp(s).expect("ts");
    let load = |file: &str| telemetry::load(format!("{NAB}{file}"), &TelemetryConfig::default()).expect("load");

    let rds = load("rds_cpu_utilization_cc0c53.csv");
    let cps = &rds.report.series[0].changepoints;
    assert_eq!(cps.len(), 1, "{}", rds.report);
    assert!((cps[0].at - at("2014-02-25 06:30:00")).abs() <= 3600, "{}", rds.report);
    assert!((cps[0].before - 6.0).abs() < 0.5 && (cps[0].after - 14.5).abs() < 1.0, "{:?}", cps[0]);
    assert!(rds.report.to_string().contains("1 changepoint (level shifts; the series is kept whole)"));

    let cpu = load("ec2_cpu_utilization_825cc2.csv");
    let cps = &cpu.report.series[0].changepoints;
    assert_eq!(cps.len(), 2, "{}", cpu.report);
    assert!(cps[0].after < 40.0 && cps[0].shift < 0.0 && cps[1].shift > 0.0, "{cps:?}");
    assert!((cps[1].at - cps[0].at - 12 * 3600).abs() <= 3600, "{cps:?}");

    for file in [
        "art_daily_small_noise.csv",
        "elb_request_count_8c0756.csv",
        "Twitter_volume_AMZN.csv",
        "ec2_request_latency_system_failure.csv",
    ] {
        let l = load(file);
        assert!(l.report.series[0].changepoints.is_empty(), "{}", l.report);
    }
}

#[test]
fn changepoint_settings_are_checked_and_can_be_turned_off() {
    let path = format!("{NAB}rds_cpu_utilization_cc0c53.csv");
    let cfg = TelemetryConfig {
        changepoints: Some(telemetry::ChangepointConfig { min_segment_s: 0, ..Default::default() }),
        ..TelemetryConfig::default()
    };
    assert!(matches!(telemetry::load(&path, &cfg), Err(Error::Config(m)) if m.contains("changepoints.min_segment_s")));
    let off = TelemetryConfig { changepoints: None, ..TelemetryConfig::default() };
    let l = telemetry::load(&path, &off).expect("load");
    assert!(l.report.series[0].changepoints.is_empty());
    assert!(l.report.to_string().contains("no changepoints"));
}
