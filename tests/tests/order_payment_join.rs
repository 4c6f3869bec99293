//! order-payment-join end to end on the real broker, with a SIGKILL and a
//! restart mid-run: every order and payment of one key at most 10 minutes
//! apart is joined exactly once (read_committed), none further apart.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use weir_testkit::{TestBroker, TopicReader};
use weir_tests::{binary, unstall, Feeder, TopologyProcess, STALL};

const PARTITIONS: i32 = 4;
const MIN: i64 = 60_000;

type Timed = Vec<(Vec<u8>, Vec<u8>, Option<i64>)>;

#[test]
fn in_window_pairs_join_exactly_once_across_a_sigkill() {
    let seed: u64 = std::env::var("WEIR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("order_payment_join: WEIR_TEST_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let broker = TestBroker::shared();
    let app = TestBroker::unique("order-payment-join");
    let (orders_topic, payments_topic, out_topic) = (
        format!("{app}-orders"),
        format!("{app}-payments"),
        format!("{app}-out"),
    );
    for t in [&orders_topic, &payments_topic] {
        broker.create_topic(t, PARTITIONS).unwrap();
    }
    // 3,000 orders a second of event time apart; 0–2 payments each, up to
    // 15 minutes before or after their order.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 86_400_000;
    let n = 3_000;
    let (mut orders, mut payments): (Timed, Timed) = (Vec::new(), Vec::new());
    let mut want: BTreeMap<(String, usize), i64> = BTreeMap::new();
    let mut payment_no = 0;
    for i in 0..n {
        let id = format!("order-{i:05}");
        let ts = base + i as i64 * 1_000;
        orders.push((
            id.clone().into_bytes(),
            serde_json::json!({"id": id, "n": i})
                .to_string()
                .into_bytes(),
            Some(ts),
        ));
        for _ in 0..rng.gen_range(0..=2) {
            let pts = ts + rng.gen_range(-15 * MIN..=15 * MIN);
            payments.push((
                id.clone().into_bytes(),
                serde_json::json!({"order_id": id, "p": payment_no})
                    .to_string()
                    .into_bytes(),
                Some(pts),
            ));
            if (pts - ts).abs() <= 10 * MIN {
                want.insert((id.clone(), payment_no), ts.max(pts));
            }
            payment_no += 1;
        }
    }
    payments.sort_by_key(|(_, _, t)| *t);
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let state = dir.path().join("state").display().to_string();
        let env: Vec<(String, String)> = [
            ("WEIR_APPLICATION_ID", app.as_str()),
            ("WEIR_BOOTSTRAP_SERVERS", broker.bootstrap()),
            ("WEIR_STATE_DIR", state.as_str()),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_TOPICS__ORDERS", orders_topic.as_str()),
            ("WEIR_TOPICS__PAYMENTS", payments_topic.as_str()),
            ("WEIR_TOPICS__ORDER_PAYMENTS", out_topic.as_str()),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TopologyProcess::spawn(
            &binary("order-payment-join", "order-payment-join"),
            &["run"],
            &env,
            &dir.path().join(format!("{name}.log")),
        )
    };
    // Event time 300 times the clock: 10 s of feed; payments paced alike.
    let per_sec = 300;
    let fo = Feeder::start_timed(broker.bootstrap(), &orders_topic, orders, per_sec);
    let pay_rate = (per_sec * payments.len() / n).max(1);
    let fp = Feeder::start_timed(broker.bootstrap(), &payments_topic, payments, pay_rate);
    let mut first = start("first");
    assert!(first.wait_for_log("task running", Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..3_000)));
    first.kill9();
    let mut second = start("second");
    fo.join();
    fp.join();
    let logs = || format!("{}\n----\n{}", first.log_text(), second.log_text());
    let mut reader = TopicReader::new(broker.bootstrap(), &[&out_topic], "read_committed").unwrap();
    let complete = reader.read_until_unstalled(
        Duration::from_secs(180),
        STALL,
        || unstall(broker.bootstrap(), &app),
        |r| r.len() >= want.len(),
    );
    reader.read_for(Duration::from_secs(2));
    assert!(
        complete,
        "{} of {} pairs; logs:\n{}",
        reader.records().len(),
        want.len(),
        logs()
    );
    let mut got: BTreeMap<(String, usize), i64> = BTreeMap::new();
    for r in reader.records() {
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v["order"]["id"], key.as_str());
        let p = v["payment"]["p"].as_u64().unwrap() as usize;
        assert!(
            got.insert((key.clone(), p), r.timestamp).is_none(),
            "seed {seed}: {key} × payment {p} joined twice"
        );
    }
    assert_eq!(
        got, want,
        "seed {seed}: exactly the in-window pairs, stamped with the later time"
    );
    assert!(second.stop().success(), "{}", second.log_text());
}
