//! Unit tests of the cache model's private parts: eviction structures,
//! key sampling and trace parsing.

use super::WRITE_BIT;
use super::policy::{Eviction, Fifo, Lfu, Lru, Policy};
use super::trace::{keeps, parse_trace};
use crate::error::Error;
use crate::rng::Rng;

/// Drive an eviction structure against a plain model of it: every
/// victim must agree.
fn check_policy<E: Eviction>(mut e: E, policy: Policy, seed: u64) {
    let n = 40u32;
    let mut rng = Rng::new(seed, 1);
    // (key, inserted seq, last access seq, accesses)
    let mut model: Vec<(u32, u64, u64, u64)> = Vec::new();
    let mut oldest: Vec<u32> = Vec::new();
    for seq in 0..5000u64 {
        let k = rng.below(n as usize) as u32;
        match model.iter().position(|m| m.0 == k) {
            Some(i) if rng.chance(0.2) => {
                model.remove(i);
                oldest.retain(|&o| o != k);
                e.removed(k);
            }
            Some(i) => {
                model[i].2 = seq;
                model[i].3 += 1;
                e.hit(k);
            }
            None if model.len() >= 10 => {
                let expected = match policy {
                    Policy::Lru => model.iter().min_by_key(|m| m.2),
                    Policy::Lfu => model.iter().min_by_key(|m| (m.3, m.2)),
                    Policy::Fifo => model.iter().min_by_key(|m| m.1),
                }
                .map(|m| m.0)
                .unwrap();
                assert_eq!(e.victim(oldest[0]), expected, "{policy} at step {seq}");
                model.retain(|m| m.0 != expected);
                oldest.retain(|&o| o != expected);
                e.removed(expected);
            }
            None => {
                model.push((k, seq, seq, 1));
                oldest.push(k);
                e.inserted(k);
            }
        }
    }
}

#[test]
fn eviction_structures_choose_the_documented_victim() {
    for seed in 0..5 {
        check_policy(Lru::new(40), Policy::Lru, seed);
        check_policy(Lfu::new(40), Policy::Lfu, seed);
        check_policy(Fifo, Policy::Fifo, seed);
    }
}

#[test]
fn systematic_sampling_keeps_one_item_per_stride() {
    for &(n, rate) in &[(1000usize, 0.1), (997, 0.013), (50, 1.0), (10, 0.35)] {
        for u in [0.0, 0.37, 0.999] {
            let kept = (0..n).filter(|&i| keeps(i, rate, u)).count() as f64;
            assert!((kept - n as f64 * rate).abs() <= 1.0, "n {n} rate {rate} u {u}: kept {kept}");
        }
    }
}

#[test]
fn trace_csv_header_ops_and_order() {
    let text = "timestamp,key,op\n20,b,write\n10,a\n10,c,READ\n\n30,a,read\n";
    let r = parse_trace(text, "t.csv").unwrap();
    assert_eq!(r.keys, 3);
    // Sorted by time, ties in file order; ids in order of first appearance.
    assert_eq!(r.rows, vec![1, 2, WRITE_BIT, 1]);
    let no_header = parse_trace("1700000000,x\n1700000001,y,write\n", "t.csv").unwrap();
    assert_eq!(no_header.rows, vec![0, 1 | WRITE_BIT]);
}

#[test]
fn trace_csv_names_every_bad_line() {
    let text = "ts,key\nsoon,a\n5,\n6,a,delete\n7\n8,b\n";
    let Err(Error::Invalid(p)) = parse_trace(text, "keys.csv") else { panic!("accepted a bad trace") };
    assert_eq!(p.source, "keys.csv");
    let paths: Vec<&str> = p.items.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["line 2", "line 3", "line 4", "line 5"], "{p}");
    assert!(p.items[0].message.contains("`soon` is not a timestamp"), "{p}");
    assert!(p.items[2].message.contains("`delete` is not an op"), "{p}");
    assert!(matches!(parse_trace("key\n", "k.csv"), Err(Error::Invalid(_))));
    assert!(matches!(parse_trace("", "k.csv"), Err(Error::Invalid(_))));
}
