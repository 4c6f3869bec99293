//! A range across two instances of one application (both in this process,
//! each with its admin endpoint) of a store whose keys are bincode numbers
//! (variable-length, little-endian): the answer of either instance holds
//! every key once, with its count, read by the instance that holds its
//! partition, in *serialized* key order — which is neither the numbers'
//! order nor their JSON text's, so the merge must go by the owners'
//! serialized keys, not by anything rendered. Each entry names the
//! partition it was read from and the instance that holds it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weir::prelude::*;
use weir::App;
use weir_core::{Bincode, Codec};
use weir_testkit::{create_topics, publish, TestBroker};
use weir_tests::http::get;
use weir_tests::in_process_config;

/// Numbers of one, three and five bytes in bincode's variable-length form.
const KEYS: [u64; 16] = [
    1, 2, 7, 9, 10, 250, 251, 300, 511, 512, 1_000, 4_096, 65_535, 65_536, 70_000, 1_000_000,
];
const PARTITIONS: i32 = 4;

fn held(addr: SocketAddr) -> Vec<i64> {
    let stores = get(addr, "/stores").json();
    stores["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == "per-number")
        .flat_map(|s| s["held"].as_array().cloned().unwrap_or_default())
        .filter(|h| h["restoring"] != true)
        .filter_map(|h| h["partition"].as_i64())
        .collect()
}

#[test]
fn a_range_merges_two_instances_by_serialized_key() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("range-merge");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&bootstrap, &[(&input, PARTITIONS)]).unwrap();
    let topology = || {
        let b = Topology::builder();
        b.stream("in", Bincode::<u64>::new(), Str)
            .group_by_key()
            .count("per-number")
            .to_stream()
            .to("out");
        b.build().unwrap()
    };
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let instances: Vec<_> = states
        .iter()
        .map(|state| {
            let config = in_process_config(
                &app,
                &bootstrap,
                state.path(),
                PARTITIONS,
                (&input, &output),
                &[("WEIR_ADMIN_LISTEN", "127.0.0.1:0")],
            );
            App::builder()
                .with_config(config)
                .start(topology())
                .unwrap()
        })
        .collect();
    let addrs: Vec<SocketAddr> = instances
        .iter()
        .map(|i| i.admin_addr().expect("admin_listen was set"))
        .collect();

    // The i-th key is sent i + 1 times.
    let codec = Bincode::<u64>::new();
    let want: BTreeMap<u64, u64> = KEYS.iter().zip(1..).map(|(&n, c)| (n, c)).collect();
    let mut records = Vec::new();
    for (&n, &times) in &want {
        for _ in 0..times {
            records.push((codec.encode(&n).unwrap(), format!("v{n}")));
        }
    }
    publish(
        &bootstrap,
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_bytes()))),
    )
    .unwrap();

    // Both instances hold partitions, and every count is complete.
    let mut by_bytes: Vec<u64> = KEYS.to_vec();
    by_bytes.sort_by_key(|n| codec.encode(n).unwrap());
    let serialized: Vec<String> = by_bytes.iter().map(u64::to_string).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        assert!(
            Instant::now() < deadline,
            "no complete range in 120 s; held: {:?} {:?}",
            held(addrs[0]),
            held(addrs[1])
        );
        let (a, b) = (held(addrs[0]), held(addrs[1]));
        if a.is_empty() || b.is_empty() || a.len() + b.len() != PARTITIONS as usize {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let r = get(addrs[0], "/stores/per-number/range?limit=1000");
        if r.status == 503 {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let complete = v["entries"].as_array().unwrap().iter().all(|e| {
            e["key"]
                .as_u64()
                .is_some_and(|n| e["value"].as_u64() == want.get(&n).copied())
        });
        // The holdings the answer is checked against did not move meanwhile.
        let still = (held(addrs[0]), held(addrs[1])) == (a.clone(), b.clone());
        if complete && still && v["entries"].as_array().unwrap().len() == KEYS.len() {
            break (v, a, b);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (answer, held_a, held_b) = answer;

    let entries = answer["entries"].as_array().unwrap();
    let keys: Vec<String> = entries.iter().map(|e| e["key"].to_string()).collect();
    assert_eq!(keys, serialized, "in serialized key order: {answer}");
    let mut numeric = serialized.clone();
    numeric.sort_by_key(|k| k.parse::<u64>().unwrap());
    let mut text = serialized.clone();
    text.sort();
    assert_ne!(keys, numeric);
    assert_ne!(keys, text);
    assert_eq!(
        answer["partitions"],
        serde_json::json!((0..PARTITIONS).collect::<Vec<_>>())
    );
    // Each entry was read by the instance holding the partition it names.
    let ids: Vec<String> = addrs
        .iter()
        .map(|a| {
            get(*a, "/health").json()["instance_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let owner: BTreeMap<i64, &str> = held_a
        .into_iter()
        .map(|p| (p, ids[0].as_str()))
        .chain(held_b.into_iter().map(|p| (p, ids[1].as_str())))
        .collect();
    for e in entries {
        let p = e["partition"].as_i64().unwrap();
        assert_eq!(e["served_by"], owner.get(&p).copied().unwrap_or("?"), "{e}");
    }
    assert!(
        ids.iter()
            .all(|id| entries.iter().any(|e| e["served_by"] == id.as_str())),
        "both instances answered: {answer}"
    );
    // A limit and bounds cut the merged order; the other instance agrees.
    // (The other instance may not have read its directory up to date yet:
    // a 503 then, and a retry.)
    let from = &serialized[2];
    let path = format!("/stores/per-number/range?from={from}&limit=5");
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = get(addrs[1], &path);
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.status, 200, "{}", r.body);
    let cut: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].to_string())
        .collect();
    assert_eq!(cut, serialized[2..7].to_vec());
    drop(instances);
}
