//! The request trace: Poisson arrivals at the scenario's rates, keys drawn
//! from a Zipf catalogue or replayed from a recording, sampled by key when
//! the load is too large to simulate whole.

use std::collections::HashMap;
use std::path::Path;

use super::{KEY_MASK, MAX_REQUESTS, NIL, WRITE_BIT};
use crate::error::{Error, Problem, ProblemList, Problems, Result};
use crate::eval::workload::Scenario;
use crate::rng::Rng;
use crate::telemetry::{csv_rows, parse_timestamp};

/// The precomputed trace, in time order.
#[derive(Clone)]
pub(super) struct Trace {
    /// Seconds since the scenario's start.
    pub times: Vec<f64>,
    /// Dense key id, with [`WRITE_BIT`] set for a write.
    pub keys: Vec<u32>,
    /// `bounds[i]..bounds[i + 1]` are the requests of segment `i`.
    pub bounds: Vec<usize>,
    /// Distinct keys in `keys`.
    pub distinct: usize,
    pub key_share: f64,
    pub request_share: f64,
}

impl Trace {
    pub(super) fn empty(segments: usize, key_share: f64, request_share: f64) -> Trace {
        Trace {
            times: Vec::new(),
            keys: Vec::new(),
            bounds: Vec::with_capacity(segments + 1),
            distinct: 0,
            key_share,
            request_share,
        }
    }
}

/// Poisson arrivals following the scenario's rates, scaled by a share.
pub(super) struct Arrivals<'a> {
    scenario: &'a Scenario,
    rng: Rng,
}

impl<'a> Arrivals<'a> {
    pub(super) fn new(scenario: &'a Scenario, rng: Rng) -> Self {
        Arrivals { scenario, rng }
    }

    /// Fill `trace` with arrivals at `share` × the scenario's rates, taking
    /// each request's key and write flag from `next`.
    fn fill(&mut self, trace: &mut Trace, share: f64, mut next: impl FnMut(&mut Rng) -> u32) {
        let step = self.scenario.step_s;
        let expected = (self.scenario.arrivals() * share).ceil();
        // Reserve for the mean plus four standard deviations.
        let reserve = expected + 4.0 * expected.sqrt();
        trace.times.reserve(reserve as usize);
        trace.keys.reserve(reserve as usize);
        trace.bounds.push(0);
        for (i, rate) in self.scenario.rates.iter().enumerate() {
            let lambda = rate * share;
            let start = i as f64 * step;
            let end = start + step;
            let mut t = start;
            if lambda > 0.0 {
                loop {
                    // 1 - U lies in (0, 1], so the gap is finite.
                    t += -(1.0 - self.rng.uniform()).ln() / lambda;
                    if t >= end {
                        break;
                    }
                    trace.times.push(t);
                    trace.keys.push(next(&mut self.rng));
                }
            }
            trace.bounds.push(trace.times.len());
        }
    }
}

/// Systematic sampling at `rate` from offset `u` in `[0, 1)`: item `i` is
/// kept iff `floor((i + 1) R + u) > floor(i R + u)`, one item in every `1/R`.
pub(super) fn keeps(i: usize, rate: f64, u: f64) -> bool {
    ((i + 1) as f64 * rate + u).floor() > (i as f64 * rate + u).floor()
}

/// Assigns dense ids to keys in order of first request.
struct DenseIds {
    ids: Vec<u32>,
    next: u32,
}

impl DenseIds {
    fn new(n: usize) -> Self {
        DenseIds { ids: vec![NIL; n], next: 0 }
    }
    fn id(&mut self, key: usize) -> u32 {
        if self.ids[key] == NIL {
            self.ids[key] = self.next;
            self.next += 1;
        }
        self.ids[key]
    }
}

/// The catalogue a trace is generated from (a cache spec's `keys`, `zipf`
/// and `update_fraction`).
pub(super) struct Catalogue {
    /// Distinct keys.
    pub keys: u64,
    /// Zipf exponent of their popularity.
    pub zipf: f64,
    /// Share of requests that are writes.
    pub update_fraction: f64,
}

/// The generated IRM trace, sampled at `rate` (module docs).
pub(super) fn generate(spec: &Catalogue, rate: f64, offset: f64, arrivals: &mut Arrivals) -> Result<Trace> {
    let keys = spec.keys as usize;
    let rate = rate.max(1.0 / keys as f64);
    // Cumulative popularity of the kept ranks, and the whole catalogue's.
    let mut cumulative = Vec::with_capacity(((keys as f64 * rate).ceil() as usize).min(keys) + 1);
    let (mut total, mut kept) = (0.0, 0.0);
    for i in 0..keys {
        let w = ((i + 1) as f64).powf(-spec.zipf);
        total += w;
        if keeps(i, rate, offset) {
            kept += w;
            cumulative.push(kept);
        }
    }
    if cumulative.is_empty() {
        // Rounding at rate = 1/keys can leave nothing: keep the top key.
        kept = 1.0;
        cumulative.push(kept);
    }
    let request_share = kept / total;
    feasible(arrivals.scenario.arrivals() * request_share, keys, "keys")?;
    let key_share = cumulative.len() as f64 / keys as f64;
    let mut trace = Trace::empty(arrivals.scenario.rates.len(), key_share, request_share);
    let mut dense = DenseIds::new(cumulative.len());
    let last = cumulative.len() - 1;
    let writes = spec.update_fraction;
    arrivals.fill(&mut trace, request_share, |rng| {
        let u = rng.uniform() * kept;
        let rank = cumulative.partition_point(|&c| c <= u).min(last);
        let id = dense.id(rank);
        if writes > 0.0 && rng.chance(writes) { id | WRITE_BIT } else { id }
    });
    trace.distinct = dense.next as usize;
    Ok(trace)
}

/// A recorded trace, sorted by timestamp.
pub(super) struct Recorded {
    /// Key id (in order of first appearance in the file) with the write bit.
    pub rows: Vec<u32>,
    pub keys: usize,
}

/// The recorded trace replayed over the scenario's arrivals, sampled at `rate`.
pub(super) fn replay(
    recorded: Recorded,
    expected: f64,
    rate: f64,
    offset: f64,
    arrivals: &mut Arrivals,
) -> Result<Trace> {
    // The scenario uses about `expected` rows: sample over those.
    let used = &recorded.rows[..recorded.rows.len().min(expected.ceil().max(1.0) as usize)];
    let mut count = vec![0u64; recorded.keys];
    for r in used {
        count[(r & KEY_MASK) as usize] += 1;
    }
    let present = count.iter().filter(|&&c| c > 0).count();
    let rate = rate.max(1.0 / present as f64);
    // Rank the used keys by request count (ties by first appearance).
    let mut ranked: Vec<usize> = (0..recorded.keys).filter(|&k| count[k] > 0).collect();
    ranked.sort_by_key(|&k| std::cmp::Reverse(count[k]));
    let mut kept = vec![false; recorded.keys];
    for (i, &k) in ranked.iter().enumerate() {
        kept[k] = keeps(i, rate, offset);
    }
    if !kept.iter().any(|&k| k) {
        kept[ranked[0]] = true;
    }
    let mut dense = DenseIds::new(recorded.keys);
    let rows: Vec<u32> = used
        .iter()
        .filter(|&&r| kept[(r & KEY_MASK) as usize])
        .map(|&r| dense.id((r & KEY_MASK) as usize) | (r & WRITE_BIT))
        .collect();
    let request_share = rows.len() as f64 / used.len() as f64;
    feasible(arrivals.scenario.arrivals() * request_share, present, "trace")?;
    let key_share = kept.iter().filter(|&&k| k).count() as f64 / present as f64;
    let mut trace = Trace::empty(arrivals.scenario.rates.len(), key_share, request_share);
    let mut j = 0;
    arrivals.fill(&mut trace, request_share, |_| {
        let r = rows[j];
        j = if j + 1 == rows.len() { 0 } else { j + 1 };
        r
    });
    // Keys of rows never reached (a short scenario) are not in the trace.
    trace.distinct = trace.keys.iter().map(|k| (k & KEY_MASK) as usize + 1).max().unwrap_or(0);
    Ok(trace)
}

/// Refuse a sample too large to simulate: with too few keys for the load,
/// even the smallest key sample carries more than [`MAX_REQUESTS`].
fn feasible(requests: f64, keys: usize, field: &str) -> Result<()> {
    if requests <= MAX_REQUESTS as f64 {
        return Ok(());
    }
    Err(Error::invalid(
        "cache model",
        format!("cache.{field}"),
        format!(
            "the sampled keys still carry {requests:.3e} requests, more than {MAX_REQUESTS} can be simulated: \
             {keys} keys are too few to sample this load by key; use more keys or a shorter scenario"
        ),
    ))
}

/// Read a trace file, naming every bad line.
pub(super) fn read_trace(path: &Path) -> Result<Recorded> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(source.clone(), e))?;
    parse_trace(&text, &source)
}

/// Parse CSV `timestamp,key[,op]` with an optional header; `source` names
/// the file in messages.
pub(super) fn parse_trace(text: &str, source: &str) -> Result<Recorded> {
    const VALID: &str = "expected unix seconds, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 like `2024-05-01T12:00:00Z`";
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut problems = ProblemList::default();
    let mut problem = |line: u64, message: String| problems.push(format!("line {line}"), message);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut rows: Vec<(i64, u32)> = Vec::new();
    let mut first = true;
    for (line, row) in csv_rows(&mut reader) {
        let record = match row {
            Ok(record) => record,
            Err(message) => {
                problem(line, message);
                continue;
            }
        };
        let ts = parse_timestamp(&record[0]);
        if std::mem::take(&mut first) && ts.is_none() {
            // A header: any names, but the shape of a row.
            if !(2..=3).contains(&record.len()) {
                problem(
                    line,
                    format!("header has {} columns; expected `timestamp,key` or `timestamp,key,op`", record.len()),
                );
            }
            continue;
        }
        let mut ok = true;
        if !(2..=3).contains(&record.len()) {
            problem(line, format!("{} fields; expected `timestamp,key` or `timestamp,key,op`", record.len()));
            continue;
        }
        if ts.is_none() {
            problem(line, format!("`{}` is not a timestamp; {VALID}", &record[0]));
            ok = false;
        }
        let key = &record[1];
        if key.is_empty() {
            problem(line, "empty key; expected the requested key".to_string());
            ok = false;
        }
        let write = match record.get(2).unwrap_or("") {
            "" => false,
            op if op.eq_ignore_ascii_case("read") => false,
            op if op.eq_ignore_ascii_case("write") => true,
            op => {
                problem(line, format!("`{op}` is not an op; expected `read` or `write`"));
                ok = false;
                false
            }
        };
        if !ok {
            continue;
        }
        let next = ids.len() as u32;
        let id = *ids.entry(key.to_string()).or_insert(next);
        if id >= KEY_MASK {
            problem(line, format!("more than {KEY_MASK} distinct keys; split the trace"));
            break;
        }
        rows.push((ts.unwrap_or_default(), if write { id | WRITE_BIT } else { id }));
    }
    let mut items = problems.listed();
    if items.is_empty() && rows.is_empty() {
        items.push(Problem::new("file", "no requests; expected rows `timestamp,key[,op]`"));
    }
    if !items.is_empty() {
        return Err(Error::Invalid(Problems { source: source.to_string(), items }));
    }
    // Stable: equal timestamps keep file order.
    rows.sort_by_key(|&(t, _)| t);
    Ok(Recorded { rows: rows.into_iter().map(|(_, r)| r).collect(), keys: ids.len() })
}
