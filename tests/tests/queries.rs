//! Querying the stores of a running instance: customer-totals runs in this
//! process (`App::start`) under exactly-once with a long commit interval,
//! while reader threads query its store through the typed handle.
//! - every value a reader sees is one a read_committed reader of
//!   `customer-totals` also sees, and no earlier than ~1 s before that
//!   reader does (a reader of pending writes would run up to a whole
//!   3-second commit interval ahead of it);
//! - after the run, every customer's value equals the recount;
//! - the instance lists its store partitions; a partition it does not hold
//!   and an unknown store are typed errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::{App, Config, QueryError};
use weir_testkit::{create_topics, TestBroker, TopicReader};
use weir_tests::{Feeder, TestEvent};

const CUSTOMERS: usize = 40;

/// Per (customer, count): the committed total and when a read_committed
/// reader saw it.
type SeenAt = Arc<Mutex<HashMap<(String, u64), (f64, Instant)>>>;
/// What the query threads read: when, customer, count, total.
type Observed = Arc<Mutex<Vec<(Instant, String, u64, f64)>>>;

#[test]
fn queries_see_committed_values_only_and_end_at_the_recount() {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("queries");
    let (events, totals) = (format!("{app}-events"), format!("{app}-totals"));
    create_topics(&bootstrap, &[(&events, 4)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vars: Vec<(String, String)> = [
        ("WEIR_APPLICATION_ID", app.as_str()),
        ("WEIR_BOOTSTRAP_SERVERS", &bootstrap),
        ("WEIR_STATE_DIR", &dir.path().display().to_string()),
        ("WEIR_PROCESSING_GUARANTEE", "exactly_once_v2"),
        ("WEIR_COMMIT_INTERVAL_MS", "3000"),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
        ("WEIR_STATE_MEMORY_BUDGET_MB", "32"),
        ("WEIR_TOPICS__EVENTS", &events),
        ("WEIR_TOPICS__CUSTOMER_TOTALS", &totals),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::load(&BTreeMap::new(), None, vars).unwrap();
    let (topology, store) = customer_totals::topology_and_store();
    let running = App::builder().with_config(config).start(topology).unwrap();
    let query = running.store(&store);

    // Every committed update, with when the read_committed reader saw it.
    let n = 6_000;
    let seen_at: SeenAt = Arc::default();
    let reader = {
        let (bootstrap, totals, seen_at) = (bootstrap.clone(), totals.clone(), seen_at.clone());
        std::thread::spawn(move || {
            let mut r = TopicReader::new(&bootstrap, &[&totals], "read_committed").unwrap();
            let mut done = 0;
            r.read_until(Duration::from_secs(120), |recs| {
                let now = Instant::now();
                let mut seen = seen_at.lock().unwrap();
                for rec in &recs[done..] {
                    let t: customer_totals::Totals =
                        serde_json::from_slice(rec.value.as_deref().unwrap()).unwrap();
                    seen.insert((t.customer, t.count), (t.total, now));
                }
                done = recs.len();
                done >= n
            })
        })
    };

    // Readers querying the store while it is built.
    let stop = Arc::new(AtomicBool::new(false));
    let observed: Observed = Arc::default();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (query, stop, observed) = (query.clone(), stop.clone(), observed.clone());
            std::thread::spawn(move || {
                let mut i = r;
                while !stop.load(Ordering::SeqCst) {
                    let c = format!("cust-{}", i % CUSTOMERS);
                    i += 7;
                    match query.get(&c) {
                        Ok(Some(t)) => {
                            assert_eq!(t.customer, c);
                            observed
                                .lock()
                                .unwrap()
                                .push((Instant::now(), c, t.count, t.total));
                        }
                        Ok(None)
                        | Err(QueryError::Restoring { .. } | QueryError::NotLocal { .. }) => {}
                        Err(e) => panic!("query of {c}: {e}"),
                    }
                    // Pacing, not synchronisation: leave the cores to the run.
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    let mut want: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let input: Vec<TestEvent> = (0..n)
        .map(|i| {
            let customer = format!("cust-{}", (i * 13) % CUSTOMERS);
            let amount = (i % 11) as f64;
            let w = want.entry(customer.clone()).or_default();
            w.0 += 1;
            w.1 += amount;
            TestEvent {
                key: format!("k{i}"),
                value: serde_json::json!({"customer": customer, "amount": amount})
                    .to_string()
                    .into_bytes(),
                id: None,
                route: None,
            }
        })
        .collect();
    Feeder::start(&bootstrap, &events, input, 2_000).join();
    assert!(reader.join().unwrap(), "all {n} updates committed");
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }

    let seen = seen_at.lock().unwrap();
    let observed = observed.lock().unwrap();
    assert!(
        observed.len() > 100,
        "the readers saw values ({})",
        observed.len()
    );
    for (at, c, count, total) in observed.iter() {
        let Some((committed_total, committed_at)) = seen.get(&(c.clone(), *count)) else {
            panic!("{c} with count {count} was read but never committed");
        };
        assert_eq!(total, committed_total, "{c} count {count}");
        let ahead = committed_at.saturating_duration_since(*at);
        assert!(
            ahead < Duration::from_secs(1),
            "{c} count {count} was read {ahead:?} before a read_committed reader saw it: a pending value"
        );
    }

    // The store ends at the recount (it is written just after each commit).
    let deadline = Instant::now() + Duration::from_secs(30);
    for (c, (count, total)) in &want {
        loop {
            let got = query.get(c).unwrap().map(|t| (t.count, t.total));
            if got == Some((*count, *total)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{c}: {got:?}, want {count}, {total}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let all = query.all(usize::MAX).unwrap();
    assert_eq!(all.len(), CUSTOMERS);

    // What it holds, and typed errors for what it does not.
    let held = query.partitions();
    assert_eq!(held.len(), 8, "{held:?}");
    assert!(held.iter().all(|p| !p.restoring));
    let stores = running.stores();
    assert!(matches!(
        stores.range_in("customer-totals", 99, &weir::state::KeyRange::all(), 10),
        Err(QueryError::NotLocal { partition: 99, .. })
    ));
    assert!(matches!(
        stores.get("no-such-store", b"x"),
        Err(QueryError::UnknownStore { .. })
    ));
    running.stop();
    running.wait().unwrap();
}
