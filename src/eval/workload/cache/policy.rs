//! Eviction policies: their names in a spec, and the structures that pick
//! a victim in O(1) per operation.

use std::fmt;

use super::NIL;

/// An eviction policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Least recently used.
    Lru,
    /// Least frequently used since insertion, ties by least recently used.
    Lfu,
    /// First in, first out (insertion order).
    Fifo,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 3] = [Policy::Lru, Policy::Lfu, Policy::Fifo];
    /// The names used in a spec, in the order of [`Policy::ALL`].
    pub const NAMES: [&'static str; 3] = ["lru", "lfu", "fifo"];

    /// Its name in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Fifo => "fifo",
        }
    }

    /// The policy with this name in a spec.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Links of intrusive doubly linked lists over key ids; a [`Chain`] is one
/// list's ends. A key is in at most one chain of a `Links` at a time.
pub(super) struct Links {
    links: Vec<[u32; 2]>,
}

#[derive(Clone, Copy)]
pub(super) struct Chain {
    pub head: u32,
    pub tail: u32,
}

impl Chain {
    pub const EMPTY: Chain = Chain { head: NIL, tail: NIL };
}

impl Links {
    pub(super) fn new(n: usize) -> Self {
        Links { links: vec![[NIL, NIL]; n] }
    }

    pub(super) fn push_back(&mut self, chain: &mut Chain, k: u32) {
        self.links[k as usize] = [chain.tail, NIL];
        match chain.tail {
            NIL => chain.head = k,
            t => self.links[t as usize][1] = k,
        }
        chain.tail = k;
    }

    pub(super) fn unlink(&mut self, chain: &mut Chain, k: u32) {
        let [prev, next] = self.links[k as usize];
        match prev {
            NIL => chain.head = next,
            p => self.links[p as usize][1] = next,
        }
        match next {
            NIL => chain.tail = prev,
            n => self.links[n as usize][0] = prev,
        }
    }
}

/// What a policy keeps track of to choose a victim.
pub(super) trait Eviction {
    fn inserted(&mut self, key: u32);
    fn hit(&mut self, key: u32);
    fn removed(&mut self, key: u32);
    /// The entry to evict from a full cache whose earliest-inserted entry is
    /// `oldest`.
    fn victim(&self, oldest: u32) -> u32;
}

/// FIFO: the earliest inserted, which the expiry order already gives.
pub(super) struct Fifo;

impl Eviction for Fifo {
    fn inserted(&mut self, _: u32) {}
    fn hit(&mut self, _: u32) {}
    fn removed(&mut self, _: u32) {}
    fn victim(&self, oldest: u32) -> u32 {
        oldest
    }
}

/// LRU: a recency list, least recent at the head.
pub(super) struct Lru {
    links: Links,
    chain: Chain,
}

impl Lru {
    pub(super) fn new(n: usize) -> Self {
        Lru { links: Links::new(n), chain: Chain::EMPTY }
    }
}

impl Eviction for Lru {
    fn inserted(&mut self, key: u32) {
        self.links.push_back(&mut self.chain, key);
    }
    fn hit(&mut self, key: u32) {
        if self.chain.tail != key {
            self.links.unlink(&mut self.chain, key);
            self.links.push_back(&mut self.chain, key);
        }
    }
    fn removed(&mut self, key: u32) {
        self.links.unlink(&mut self.chain, key);
    }
    fn victim(&self, _: u32) -> u32 {
        self.chain.head
    }
}

/// LFU in O(1) per operation (Shah, Mitra and Matani, 2010): a list of
/// buckets in increasing access count, each holding its entries in the order
/// they reached that count, which is the order of their last access.
pub(super) struct Lfu {
    links: Links,
    bucket_of: Vec<u32>,
    buckets: Vec<Bucket>,
    free: Vec<u32>,
    /// The lowest-count bucket.
    first: u32,
}

struct Bucket {
    count: u64,
    entries: Chain,
    prev: u32,
    next: u32,
}

impl Lfu {
    pub(super) fn new(n: usize) -> Self {
        Lfu { links: Links::new(n), bucket_of: vec![NIL; n], buckets: Vec::new(), free: Vec::new(), first: NIL }
    }

    /// A new empty bucket for `count` between `prev` and `next`.
    fn open(&mut self, count: u64, prev: u32, next: u32) -> u32 {
        let bucket = Bucket { count, entries: Chain::EMPTY, prev, next };
        let b = match self.free.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        match prev {
            NIL => self.first = b,
            p => self.buckets[p as usize].next = b,
        }
        if next != NIL {
            self.buckets[next as usize].prev = b;
        }
        b
    }

    /// Take `key` out of its bucket, closing the bucket if it empties.
    fn take(&mut self, key: u32) -> u32 {
        let b = self.bucket_of[key as usize];
        let bucket = &mut self.buckets[b as usize];
        self.links.unlink(&mut bucket.entries, key);
        if bucket.entries.head == NIL {
            let (prev, next) = (bucket.prev, bucket.next);
            match prev {
                NIL => self.first = next,
                p => self.buckets[p as usize].next = next,
            }
            if next != NIL {
                self.buckets[next as usize].prev = prev;
            }
            self.free.push(b);
        }
        b
    }

    fn put(&mut self, key: u32, b: u32) {
        self.links.push_back(&mut self.buckets[b as usize].entries, key);
        self.bucket_of[key as usize] = b;
    }
}

impl Eviction for Lfu {
    fn inserted(&mut self, key: u32) {
        let b = match self.first {
            f if f != NIL && self.buckets[f as usize].count == 1 => f,
            f => self.open(1, NIL, f),
        };
        self.put(key, b);
    }

    fn hit(&mut self, key: u32) {
        let b = self.bucket_of[key as usize];
        let Bucket { count, next, entries, .. } = self.buckets[b as usize];
        let alone = entries.head == entries.tail;
        if alone && (next == NIL || self.buckets[next as usize].count > count + 1) {
            // The only entry at this count: the bucket itself moves up.
            self.buckets[b as usize].count = count + 1;
            return;
        }
        let target = if next != NIL && self.buckets[next as usize].count == count + 1 {
            next
        } else {
            self.open(count + 1, b, next)
        };
        self.take(key);
        self.put(key, target);
    }

    fn removed(&mut self, key: u32) {
        self.take(key);
    }

    fn victim(&self, _: u32) -> u32 {
        self.buckets[self.first as usize].entries.head
    }
}
