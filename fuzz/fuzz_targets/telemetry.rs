//! A telemetry recording in each format knobs reads (CSV, JSON lines, a Prometheus range query),
//! parsed and prepared (resampling, gaps, outliers, changepoints) as `knobs telemetry` does.
#![no_main]

use knobs::telemetry::{Format, TelemetryConfig, parse_str, prepare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = [Format::Csv, Format::JsonLines, Format::PrometheusJson][pick as usize % 3];
    let config = TelemetryConfig::default();
    if let Ok(recording) = parse_str(text, format, "fuzz", &config) {
        let _ = prepare(recording, &config);
    }
});
