//! order-workflow end to end on the real broker: 20,000 orders, 70 % paid
//! in time, 10 % paid late, 10 % paid the wrong amount, 10 % never; then a
//! record past every deadline + grace on each partition of both inputs.
//! read_committed must hold exactly one outcome per order, the right one
//! with the right timestamp — through a crash at each failpoint of the
//! commit loop, three random SIGKILLs, and scaling 1 → 2 → 1 while waits
//! are pending. At least once under the same crash repeats an outcome, so
//! the check tells the modes apart.
//!
//! Event time runs 20 times faster than the clock (5 ms of it per order,
//! 4,000 orders a second); the timeout is 2 s of event time. The grace
//! (600 s) exceeds the whole run: a restarted instance gets some
//! partitions seconds before others from the test broker, and the outcome
//! must depend only on timestamps, never on that skew. So every expiry
//! happens at the end, and matches all along.

use std::collections::BTreeMap;
use std::time::Duration;

use order_workflow::OrderOutcome;
use rand::{Rng, SeedableRng};
use weir_core::partition_for_key;
use weir_testkit::{TestBroker, TopicReader};
use weir_tests::{binary, unstall, Feeder, TopologyProcess, STALL};

const PARTITIONS: i32 = 4;
const STEP: i64 = 5;
const TIMEOUT: i64 = 2_000;
const GRACE: i64 = 600_000;

/// The start of event time: a day ago (inside any topic's retention).
fn base() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 86_400_000
}

type Timed = Vec<(Vec<u8>, Vec<u8>, Option<i64>)>;
/// Per order id: outcome, amount, timestamp.
type Want = BTreeMap<String, (String, f64, i64)>;

/// `n` orders and their payments (each list in timestamp order) and the
/// outcome each order must get.
fn workload(n: usize, seed: u64) -> (Timed, Timed, Want, i64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let base = base();
    let (mut orders, mut payments, mut want) = (Vec::new(), Vec::new(), Want::new());
    for i in 0..n {
        let id = format!("order-{i:06}");
        let ts = base + i as i64 * STEP;
        let amount = (10 + i % 490) as f64 + 0.5;
        orders.push((
            id.clone().into_bytes(),
            serde_json::json!({"id": id, "amount": amount, "customer": i % 97})
                .to_string()
                .into_bytes(),
            Some(ts),
        ));
        let (paid, paid_amount, confirmed) = match i % 10 {
            0..=6 => (Some(ts + rng.gen_range(0..=TIMEOUT)), amount, true),
            7 => (
                Some(ts + rng.gen_range(TIMEOUT + 1..=2 * TIMEOUT)),
                amount,
                false,
            ),
            8 => (Some(ts + rng.gen_range(0..=TIMEOUT)), amount + 1.0, false),
            _ => (None, amount, false),
        };
        if let Some(pts) = paid {
            payments.push((
                id.clone().into_bytes(),
                serde_json::json!({"order_id": id, "amount": paid_amount})
                    .to_string()
                    .into_bytes(),
                Some(pts),
            ));
        }
        let outcome = if confirmed {
            ("confirmed".to_string(), amount, paid.unwrap())
        } else {
            ("expired".to_string(), amount, ts + TIMEOUT)
        };
        want.insert(id, outcome);
    }
    payments.sort_by_key(|(_, _, t)| *t);
    let last = base + n as i64 * STEP + 3 * TIMEOUT;
    (orders, payments, want, last)
}

struct Run {
    app: String,
    orders: String,
    payments: String,
    outcomes: String,
    dir: tempfile::TempDir,
}

impl Run {
    fn new(name: &str) -> Run {
        let app = TestBroker::unique(name);
        let run = Run {
            orders: format!("{app}-orders"),
            payments: format!("{app}-payments"),
            outcomes: format!("{app}-outcomes"),
            app,
            dir: tempfile::tempdir().unwrap(),
        };
        for t in [&run.orders, &run.payments] {
            TestBroker::shared().create_topic(t, PARTITIONS).unwrap();
        }
        run
    }

    fn start(&self, name: &str, extra: &[(&str, &str)]) -> TopologyProcess {
        let state = self.dir.path().join(format!("state-{name}"));
        let state = state.display().to_string();
        let (timeout, grace) = (TIMEOUT.to_string(), GRACE.to_string());
        let mut env: Vec<(String, String)> = [
            ("WEIR_APPLICATION_ID", self.app.as_str()),
            ("WEIR_BOOTSTRAP_SERVERS", TestBroker::shared().bootstrap()),
            ("WEIR_STATE_DIR", state.as_str()),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
            ("WEIR_TOPICS__ORDERS", self.orders.as_str()),
            ("WEIR_TOPICS__PAYMENTS", self.payments.as_str()),
            ("WEIR_TOPICS__ORDER_OUTCOMES", self.outcomes.as_str()),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_PARAMS__TIMEOUT_MS", timeout.as_str()),
            ("WEIR_PARAMS__GRACE_MS", grace.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TopologyProcess::spawn(
            &binary("order-workflow", "order-workflow"),
            &["run"],
            &env,
            &self.dir.path().join(format!("{name}.log")),
        )
    }

    /// Feeds orders and payments at the same event-time pace, 20 times
    /// the clock.
    fn feed(&self, orders: Timed, payments: Timed) -> (Feeder, Feeder) {
        self.feed_at(orders, payments, 20)
    }

    /// Feeds orders and payments at the same event-time pace, `speed`
    /// times the clock.
    fn feed_at(&self, orders: Timed, payments: Timed, speed: usize) -> (Feeder, Feeder) {
        let per_sec = (1_000 / STEP) as usize * speed;
        let pay_rate = per_sec * payments.len() / orders.len().max(1);
        let bootstrap = TestBroker::shared().bootstrap();
        (
            Feeder::start_timed(bootstrap, &self.orders, orders, per_sec),
            Feeder::start_timed(bootstrap, &self.payments, payments, pay_rate.max(1)),
        )
    }

    /// A record past every deadline + grace on each partition of both
    /// inputs (the closers' own orders stay pending: no outcome).
    fn close_all(&self, last: i64) {
        let at = last + TIMEOUT + GRACE + 1_000;
        for (topic, what) in [(&self.orders, "order"), (&self.payments, "payment")] {
            let closers: Timed = (0..PARTITIONS as u32)
                .map(|p| {
                    let key = (0..)
                        .map(|i| format!("close-{what}-{i}"))
                        .find(|k| partition_for_key(k.as_bytes(), PARTITIONS as u32) == p)
                        .unwrap();
                    let value = if what == "order" {
                        serde_json::json!({"id": key, "amount": 1})
                    } else {
                        serde_json::json!({"order_id": key, "amount": 1})
                    };
                    (key.into_bytes(), value.to_string().into_bytes(), Some(at))
                })
                .collect();
            Feeder::start_timed(TestBroker::shared().bootstrap(), topic, closers, 1_000).join();
        }
    }

    /// Every committed outcome, once at least `n` arrived (then a little
    /// more, to catch repeats).
    fn outcomes(&self, n: usize, logs: &dyn Fn() -> String) -> Vec<(String, OrderOutcome, i64)> {
        let bootstrap = TestBroker::shared().bootstrap();
        let mut reader = TopicReader::new(bootstrap, &[&self.outcomes], "read_committed").unwrap();
        let complete = reader.read_until_unstalled(
            Duration::from_secs(240),
            STALL,
            || unstall(bootstrap, &self.app),
            |r| r.len() >= n,
        );
        reader.read_for(Duration::from_secs(2));
        assert!(
            complete,
            "{} of {n} outcomes arrived; logs:\n{}",
            reader.records().len(),
            logs()
        );
        reader
            .records()
            .iter()
            .map(|r| {
                (
                    String::from_utf8(r.key.clone().unwrap()).unwrap(),
                    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
                    r.timestamp,
                )
            })
            .collect()
    }
}

/// Exactly one outcome per order, the right one.
fn check(got: &[(String, OrderOutcome, i64)], want: &Want) -> Result<(), String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (key, o, ts) in got {
        *seen.entry(key.as_str()).or_default() += 1;
        match want.get(key) {
            None => return Err(format!("an outcome for {key}, which is no order: {o:?}")),
            Some((outcome, amount, at)) => {
                if o.order_id != *key || o.outcome != *outcome || o.amount != *amount || ts != at {
                    wrong.push(format!(
                        "{key}: got {o:?} at {ts}, want {outcome} {amount} at {at}"
                    ));
                }
            }
        }
    }
    if let Some((key, n)) = seen.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{key}: {n} outcomes"));
    }
    if !wrong.is_empty() {
        return Err(format!(
            "{} wrong outcomes, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        ));
    }
    if seen.len() != want.len() {
        return Err(format!(
            "{} of {} orders have an outcome",
            seen.len(),
            want.len()
        ));
    }
    Ok(())
}

fn logs(ps: &[&TopologyProcess]) -> String {
    ps.iter()
        .map(|p| p.log_text())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

const N: usize = 20_000;

/// A crash at `step` (its `hit`th hit), then a restart.
fn crash_at(step: &str, guarantee: &str, hit: u32) -> Result<(), String> {
    let run = Run::new(&format!("workflow-{}", step.replace('_', "-")));
    let (orders, payments, want, last) = workload(N, u64::from(hit));
    let (fo, fp) = run.feed(orders, payments);
    let fail = format!("{step}@{hit}");
    let mut first = run.start(
        "first",
        &[
            ("WEIR_FAILPOINT", &fail),
            ("WEIR_PROCESSING_GUARANTEE", guarantee),
        ],
    );
    let status = first.wait_exit(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the failpoint {fail} aborts the process; log:\n{}",
        first.log_text()
    );
    let mut second = run.start("second", &[("WEIR_PROCESSING_GUARANTEE", guarantee)]);
    fo.join();
    fp.join();
    run.close_all(last);
    let got = run.outcomes(want.len(), &|| logs(&[&first, &second]));
    let result = check(&got, &want);
    assert!(second.stop().success(), "{}", second.log_text());
    result
}

#[test]
fn exact_after_a_crash_after_changelog_produce() {
    crash_at("after_changelog_produce", "exactly_once_v2", 30).unwrap();
}

#[test]
fn exact_after_a_crash_before_commit() {
    crash_at("before_commit", "exactly_once_v2", 30).unwrap();
}

#[test]
fn exact_after_a_crash_after_commit() {
    crash_at("after_commit", "exactly_once_v2", 30).unwrap();
}

#[test]
fn exact_after_a_crash_after_commit_before_checkpoint() {
    crash_at("after_commit_before_checkpoint", "exactly_once_v2", 30).unwrap();
}

#[test]
fn at_least_once_under_the_same_crash_repeats_an_outcome() {
    // A crashed interval that resolved a wait repeats it: its outcome was
    // flushed before the crash, and the payment is processed again against
    // the restored (pre-crash) waits. An interval can resolve none (only
    // new waits), so up to five crashes are tried (three were once not
    // enough, in one of many runs); exactly once never repeats one.
    for attempt in 1..=5 {
        match crash_at("before_commit", "at_least_once", 10 + attempt) {
            Err(err) => {
                eprintln!("at_least_once after a crash before the commit: {err}");
                return;
            }
            Ok(()) => eprintln!("attempt {attempt}: the crashed interval repeated nothing"),
        }
    }
    panic!("at least once never repeated an outcome in five crashes");
}

#[test]
fn exact_across_random_sigkills() {
    let seed: u64 = std::env::var("WEIR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("order_workflow exact_across_random_sigkills: WEIR_TEST_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let run = Run::new("workflow-kills");
    let (orders, payments, want, last) = workload(N, seed);
    let (fo, fp) = run.feed(orders, payments);
    let mut dead = Vec::new();
    let mut p = run.start("p0", &[]);
    for kill in 1..=3 {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..2_000)));
        p.kill9();
        dead.push(p);
        p = run.start(&format!("p{kill}"), &[]);
    }
    fo.join();
    fp.join();
    run.close_all(last);
    let mut all: Vec<&TopologyProcess> = dead.iter().collect();
    all.push(&p);
    let got = run.outcomes(want.len(), &|| logs(&all));
    if let Err(e) = check(&got, &want) {
        panic!("seed {seed}: {e}; logs:\n{}", logs(&all));
    }
    assert!(p.stop().success(), "{}", p.log_text());
}

#[test]
fn waits_survive_scaling_one_two_one() {
    let run = Run::new("workflow-scale");
    let (orders, payments, want, last) = workload(N, 7);
    // 20 s of feed: the scaling happens while it runs.
    let (fo, fp) = run.feed_at(orders, payments, 5);
    let mut a = run.start("a", &[]);
    assert!(
        a.wait_for_log("task running", Duration::from_secs(60)),
        "{}",
        a.log_text()
    );
    // Scale to two while the feed runs (every expiry is still pending:
    // they fall due only at the end) …
    let mut b = run.start("b", &[]);
    assert!(
        b.wait_for_log("task running", Duration::from_secs(60)),
        "{}",
        b.log_text()
    );
    // … and back to one once B runs its share (its waits restored).
    assert!(
        !fo.is_done(),
        "the scaling happened while orders were still fed"
    );
    assert!(b.stop().success(), "{}", b.log_text());
    fo.join();
    fp.join();
    run.close_all(last);
    let got = run.outcomes(want.len(), &|| logs(&[&a, &b]));
    if let Err(e) = check(&got, &want) {
        panic!("{e}; logs:\n{}", logs(&[&a, &b]));
    }
    assert!(a.stop().success(), "{}", a.log_text());
}
