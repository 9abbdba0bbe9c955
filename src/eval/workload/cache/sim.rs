//! One replay of the trace through a cache: expiry, eviction, and the
//! counts and resident-entry integral of the counted pass.

use super::policy::{Chain, Eviction, Links};
use super::trace::Trace;
use super::{KEY_MASK, NIL, WRITE_BIT};

/// Request counts of one replay (of the simulated, possibly sampled, trace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Reads (requests that are not writes).
    pub reads: u64,
    /// Reads served from the cache, fresh or stale.
    pub hits: u64,
    /// Reads served a copy older than a write to its key.
    pub stale_hits: u64,
    /// Writes (they go to the backend only).
    pub writes: u64,
    /// Requests sent to the backend: read misses and writes.
    pub backend: u64,
}

impl Counts {
    pub(super) fn add(&mut self, other: &Counts) {
        self.reads += other.reads;
        self.hits += other.hits;
        self.stale_hits += other.stale_hits;
        self.writes += other.writes;
        self.backend += other.backend;
    }
}

/// Per-key state of the simulated cache.
#[derive(Clone, Copy)]
struct Slot {
    expiry: f64,
    resident: bool,
    stale: bool,
}

/// What one replay measured, in simulated units.
pub(super) struct Run {
    pub segments: Vec<Counts>,
    /// Integral of resident entries over the counted replay.
    pub entry_seconds: f64,
    pub peak: u64,
}

/// The cache's contents and the resident-entry integral.
struct Simulated<E> {
    slots: Vec<Slot>,
    /// Resident keys in insertion order, which is also expiry order (one TTL).
    order: Links,
    chain: Chain,
    eviction: E,
    ttl: f64,
    resident: u64,
    /// Time of the last change in `resident`, and the integral up to it.
    last: f64,
    pub entry_seconds: f64,
    pub peak: u64,
}

impl<E: Eviction> Simulated<E> {
    fn advance(&mut self, t: f64) {
        self.entry_seconds += self.resident as f64 * (t - self.last);
        self.last = t;
    }

    /// Remove every entry whose expiry is at or before `t`, each at its
    /// expiry instant.
    fn expire(&mut self, t: f64) {
        while self.chain.head != NIL {
            let k = self.chain.head;
            let expiry = self.slots[k as usize].expiry;
            if expiry > t {
                break;
            }
            self.advance(expiry);
            self.remove(k);
        }
    }

    fn remove(&mut self, k: u32) {
        self.slots[k as usize].resident = false;
        self.order.unlink(&mut self.chain, k);
        self.eviction.removed(k);
        self.resident -= 1;
    }

    fn insert(&mut self, k: u32, t: f64) {
        self.slots[k as usize] = Slot { expiry: t + self.ttl, resident: true, stale: false };
        self.order.push_back(&mut self.chain, k);
        self.eviction.inserted(k);
        self.resident += 1;
        self.peak = self.peak.max(self.resident);
    }
}

/// Replay `trace` twice through the cache; count the second replay (module
/// docs, "Warm start").
pub(super) fn replay_through<E: Eviction>(trace: &Trace, duration: f64, capacity: u64, ttl: f64, eviction: E) -> Run {
    let n = trace.distinct;
    let mut cache = Simulated {
        slots: vec![Slot { expiry: 0.0, resident: false, stale: false }; n],
        order: Links::new(n),
        chain: Chain::EMPTY,
        eviction,
        ttl,
        resident: 0,
        last: 0.0,
        entry_seconds: 0.0,
        peak: 0,
    };
    let segments = trace.bounds.len() - 1;
    let mut counts = vec![Counts::default(); segments];
    for pass in 0..2 {
        let shift = pass as f64 * duration;
        cache.expire(shift);
        cache.advance(shift);
        cache.entry_seconds = 0.0;
        cache.peak = cache.resident;
        counts.fill(Counts::default());
        for (s, c) in counts.iter_mut().enumerate() {
            for i in trace.bounds[s]..trace.bounds[s + 1] {
                let t = trace.times[i] + shift;
                cache.expire(t);
                let raw = trace.keys[i];
                let k = raw & KEY_MASK;
                let slot = cache.slots[k as usize];
                if raw & WRITE_BIT != 0 {
                    c.writes += 1;
                    c.backend += 1;
                    if slot.resident {
                        cache.slots[k as usize].stale = true;
                    }
                    continue;
                }
                c.reads += 1;
                if slot.resident {
                    c.hits += 1;
                    c.stale_hits += slot.stale as u64;
                    cache.eviction.hit(k);
                    continue;
                }
                c.backend += 1;
                if capacity == 0 {
                    continue;
                }
                cache.advance(t);
                if cache.resident >= capacity {
                    let victim = cache.eviction.victim(cache.chain.head);
                    cache.remove(victim);
                }
                cache.insert(k, t);
            }
        }
    }
    let end = 2.0 * duration;
    cache.expire(end);
    cache.advance(end);
    Run { segments: counts, entry_seconds: cache.entry_seconds, peak: cache.peak }
}
