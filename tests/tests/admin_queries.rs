//! Key queries across instances: three customer-totals processes on the
//! broker, each with its admin endpoint. For 50 customers, every instance
//! answers `GET /stores/customer-totals/keys/{customer}` with the same
//! value, equal to a naive recount, and names as `served_by` the instance
//! that the *group's* assignment (as each consumer received it, not the
//! instances' directory claims) gives the key's partition — a partition
//! this test computes itself. Then one instance is SIGKILLed: while its partitions move,
//! every 200 answer is still the recount (else a 503 with `Retry-After`),
//! and afterwards the survivors answer every key, served by the new owners.
//! A range asked of any instance covers every partition, merged across the
//! owners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use weir_testkit::{publish, TestBroker};
use weir_tests::http::{get, request, try_request};
use weir_tests::{binary, listening_addr, TopologyProcess};

const CUSTOMERS: usize = 50;
const EVENTS: usize = 3_000;
/// customer-totals' store partitions (its repartition topic's).
const PARTITIONS: u32 = 8;

/// Per customer: (count, total).
type Totals = BTreeMap<String, (u64, i64)>;

struct Instance {
    process: TopologyProcess,
    addr: SocketAddr,
    id: String,
}

fn start(app: &str, events: &str, totals: &str, dir: &std::path::Path, n: usize) -> Instance {
    let state = dir.join(format!("state-{n}")).display().to_string();
    let env: Vec<(String, String)> = [
        ("WEIR_APPLICATION_ID", app),
        ("WEIR_BOOTSTRAP_SERVERS", TestBroker::shared().bootstrap()),
        ("WEIR_STATE_DIR", state.as_str()),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
        ("WEIR_TOPICS__EVENTS", events),
        ("WEIR_TOPICS__CUSTOMER_TOTALS", totals),
        ("WEIR_COMMIT_INTERVAL_MS", "100"),
        ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut process = TopologyProcess::spawn(
        &binary("customer-totals", "customer-totals"),
        &["run"],
        &env,
        &dir.join(format!("log-{n}")),
    );
    assert!(
        process.wait_for_log("admin endpoint listening", Duration::from_secs(60)),
        "instance {n} did not start its admin endpoint; log:\n{}",
        process.log_text()
    );
    let addr = listening_addr(&process.log_text())
        .unwrap_or_else(|| panic!("no address in the log:\n{}", process.log_text()));
    let id = get(addr, "/health").json()["instance_id"]
        .as_str()
        .expect("an instance id")
        .to_string();
    Instance { process, addr, id }
}

/// Who holds each partition of the repartition topic (= of the store), by
/// instance id: the consumer group's assignment as each live instance's
/// consumer received it (its last "partitions assigned" line). The test
/// broker's DescribeGroups lists members without client ids or
/// assignments, so the broker cannot be asked directly. A partition two
/// instances claim (a rebalance under way) is left out.
fn group_owners(app: &str, live: &[&Instance]) -> BTreeMap<i32, String> {
    let topic = format!("{app}-customer-totals-repartition");
    let mut owners = BTreeMap::new();
    let mut claimed_twice = Vec::new();
    for i in live {
        for p in i.process.last_assignment(&topic) {
            if owners.insert(p, i.id.clone()).is_some() {
                claimed_twice.push(p);
            }
        }
    }
    for p in claimed_twice {
        owners.remove(&p);
    }
    owners
}

/// Purchases `ids` by random customers; `want` counts them.
fn purchases(
    rng: &mut rand::rngs::StdRng,
    ids: std::ops::Range<usize>,
    want: &mut Totals,
) -> Vec<(String, Vec<u8>)> {
    ids.map(|i| {
        let customer = format!("cust-{}", rng.gen_range(0..CUSTOMERS));
        let amount = rng.gen_range(-20..200i64);
        let e = want.entry(customer.clone()).or_default();
        e.0 += 1;
        e.1 += amount;
        let v = serde_json::json!({"customer": customer, "amount": amount, "id": i});
        (format!("k-{}", i % 31), v.to_string().into_bytes())
    })
    .collect()
}

fn publish_all(topic: &str, records: &[(String, Vec<u8>)]) {
    publish(
        TestBroker::shared().bootstrap(),
        topic,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice()))),
    )
    .unwrap();
}

fn key_path(customer: &str) -> String {
    format!("/stores/customer-totals/keys/{customer}")
}

/// Whether an answer for `customer` is the recount.
fn is_recount(v: &serde_json::Value, customer: &str, want: &Totals) -> bool {
    let (n, t) = want[customer];
    v["key"] == customer
        && v["value"]["customer"] == customer
        && v["value"]["count"].as_u64() == Some(n)
        && v["value"]["total"].as_f64() == Some(t as f64)
}

fn logs(instances: &[&Instance]) -> String {
    instances
        .iter()
        .map(|i| i.process.log_text())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Every customer asked of every instance in `ask`: one value, the
/// recount, the partition computed here, served by the group's owner.
/// `Err` with the first difference (the caller retries while the group
/// settles).
fn check_all(app: &str, ask: &[&Instance], want: &Totals) -> Result<(), String> {
    let owners = group_owners(app, ask);
    for customer in want.keys() {
        let partition = weir_core::partition_for_key(customer.as_bytes(), PARTITIONS) as i32;
        let owner = owners
            .get(&partition)
            .ok_or_else(|| format!("the group has no owner of partition {partition}"))?;
        for i in ask {
            let r = try_request(i.addr, "GET", &key_path(customer), &[])
                .map_err(|e| format!("{}: {e}", i.id))?;
            if r.status != 200 {
                return Err(format!("{customer} at {}: {} {}", i.id, r.status, r.body));
            }
            let v = r.json();
            if !is_recount(&v, customer, want) {
                return Err(format!(
                    "{customer} at {}: {v}, want {:?}",
                    i.id, want[customer]
                ));
            }
            if v["partition"] != partition || v["served_by"] != owner.as_str() {
                return Err(format!(
                    "{customer} at {}: {v}; the group gives partition {partition} to {owner}",
                    i.id
                ));
            }
        }
    }
    if group_owners(app, ask) != owners {
        return Err("the group's assignment moved during the check".into());
    }
    Ok(())
}

/// Asks `i` for the range of every customer: true when it answered, and
/// then with every customer's current recount (none read by `dead`);
/// false for a 503 with `Retry-After`. Panics on anything else.
fn range_is_current_or_refused(i: &Instance, want: &Totals, dead: Option<&str>) -> bool {
    let r = request(
        i.addr,
        "GET",
        "/stores/customer-totals/range?limit=1000",
        &[],
    );
    match r.status {
        200 => {
            let range = r.json();
            let entries = range["entries"].as_array().unwrap();
            let keys: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
            let everyone: Vec<&str> = want.keys().map(String::as_str).collect();
            assert_eq!(keys, everyone, "a partial range from {}: {range}", i.id);
            for e in entries {
                let customer = e["key"].as_str().unwrap();
                assert!(
                    is_recount(
                        &serde_json::json!({"key": customer, "value": e["value"]}),
                        customer,
                        want
                    ),
                    "a stale range entry from {}: {e}, want {:?}",
                    i.id,
                    want[customer]
                );
                if let Some(dead) = dead {
                    assert_ne!(e["served_by"], dead, "read by the dead instance");
                }
            }
            true
        }
        503 => {
            assert!(r.headers.contains_key("retry-after"), "{r:?}");
            false
        }
        other => panic!("range at {}: {other} {}", i.id, r.body),
    }
}

/// Retries `check` until it passes or `timeout` ends; the last error then.
fn eventually(
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn any_instance_answers_any_key_through_the_owner_and_never_with_stale_data() {
    let broker = TestBroker::shared();
    let app = TestBroker::unique("admin-queries");
    let (events, totals) = (format!("{app}-events"), format!("{app}-totals"));
    broker.create_topic(&events, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = start(&app, &events, &totals, dir.path(), 0);
    let b = start(&app, &events, &totals, dir.path(), 1);
    let mut c = start(&app, &events, &totals, dir.path(), 2);

    let mut want = Totals::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let records = purchases(&mut rng, 0..EVENTS, &mut want);
    publish_all(&events, &records);
    assert_eq!(want.len(), CUSTOMERS, "every customer has events");

    // Every instance answers every key with the recount, served by the owner.
    eventually(Duration::from_secs(180), || {
        check_all(&app, &[&a, &b, &c], &want)
    })
    .unwrap_or_else(|e| panic!("{e}; logs:\n{}", logs(&[&a, &b, &c])));

    // The answer names the key; an unknown key and store are 404s; a
    // forwarded query the target does not hold is refused, not forwarded again.
    let owners = group_owners(&app, &[&a, &b, &c]);
    let (customer, _) = want.iter().next().unwrap();
    let p = weir_core::partition_for_key(customer.as_bytes(), PARTITIONS) as i32;
    let stranger = [&a, &b, &c]
        .into_iter()
        .find(|i| owners.get(&p) != Some(&i.id))
        .expect("three instances share 8 partitions");
    let r = request(
        stranger.addr,
        "GET",
        &key_path(customer),
        &[("X-Weir-Forwarded", "test")],
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "NOT_OWNER");
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("1"));
    let r = get(a.addr, &key_path("nobody-at-all"));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("KEY_NOT_FOUND"))
    );
    let r = get(a.addr, "/stores/no-such-store/keys/x");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("STORE_NOT_FOUND"))
    );
    // A range asked of one instance covers every partition: those it holds
    // and the others' (asked of each owner once), merged in key order;
    // each entry names the instance that read it — its partition's owner.
    let range_of = |i: &Instance, query: &str| {
        let r = get(i.addr, &format!("/stores/customer-totals/range?{query}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let keys_of = |range: &serde_json::Value| -> Vec<String> {
        range["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect()
    };
    let everyone: Vec<String> = want.keys().cloned().collect(); // sorted
    for i in [&a, &b, &c] {
        let range = range_of(i, "limit=1000");
        assert_eq!(
            range["partitions"],
            serde_json::json!((0..8).collect::<Vec<i32>>())
        );
        assert_eq!(range["served_by"], i.id.as_str());
        assert_eq!(keys_of(&range), everyone, "{range}");
        for e in range["entries"].as_array().unwrap() {
            let customer = e["key"].as_str().unwrap();
            assert!(
                is_recount(
                    &serde_json::json!({"key": customer, "value": e["value"]}),
                    customer,
                    &want
                ),
                "{e}"
            );
            let p = weir_core::partition_for_key(customer.as_bytes(), PARTITIONS) as i32;
            assert_eq!(e["partition"], p);
            assert_eq!(e["served_by"], owners[&p].as_str(), "{e}");
            assert!(e.get("raw_key").is_none(), "{e}");
        }
    }
    // Bounds and the limit apply to the merged range.
    let range = range_of(
        &b,
        &format!("from={}&to={}&limit=5", everyone[3], everyone[40]),
    );
    assert_eq!(keys_of(&range), everyone[3..8].to_vec());
    let r = get(a.addr, "/stores/customer-totals/range?scope=everything");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("BAD_REQUEST"))
    );
    // An asking instance names the partitions it wants; one not held here
    // is refused.
    let p0 = weir_core::partition_for_key(everyone[0].as_bytes(), PARTITIONS) as i32;
    let holder = [&a, &b, &c]
        .into_iter()
        .find(|i| owners[&p0] == i.id)
        .unwrap();
    let other = [&a, &b, &c]
        .into_iter()
        .find(|i| owners[&p0] != i.id)
        .unwrap();
    let asked = request(
        holder.addr,
        "GET",
        &format!("/stores/customer-totals/range?limit=1000&partitions={p0}"),
        &[("X-Weir-Forwarded", "test")],
    );
    assert_eq!(asked.status, 200, "{}", asked.body);
    let asked = asked.json();
    assert_eq!(asked["partitions"], serde_json::json!([p0]));
    assert!(asked["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["partition"] == p0 && e["raw_key"].is_string()));
    assert!(keys_of(&asked).contains(&everyone[0]));
    let r = request(
        other.addr,
        "GET",
        &format!("/stores/customer-totals/range?partitions={p0}"),
        &[("X-Weir-Forwarded", "test")],
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (503, Some("NOT_OWNER"))
    );
    // Asked by a client, `partitions` restricts the range, wherever they are.
    let in_p0: Vec<String> = everyone
        .iter()
        .filter(|c| weir_core::partition_for_key(c.as_bytes(), PARTITIONS) as i32 == p0)
        .cloned()
        .collect();
    let range = range_of(other, &format!("limit=1000&partitions={p0}"));
    assert_eq!(range["partitions"], serde_json::json!([p0]));
    assert_eq!(keys_of(&range), in_p0);
    // scope=local: the partitions held here only.
    let range = range_of(&a, "limit=1000&scope=local");
    let held: Vec<i64> = range["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_i64())
        .collect();
    let mine: Vec<String> = everyone
        .iter()
        .filter(|c| {
            held.contains(&i64::from(weir_core::partition_for_key(
                c.as_bytes(),
                PARTITIONS,
            )))
        })
        .cloned()
        .collect();
    assert!(!mine.is_empty() && mine.len() < everyone.len(), "{range}");
    assert_eq!(keys_of(&range), mine);
    assert!(range["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["served_by"] == a.id.as_str()));

    // The command line asks any instance too.
    let weir = binary("weir", "weir-cli");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(&weir)
            .args(args)
            .env_remove("WEIR_ADMIN_URL")
            .output()
            .expect("run weir");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let url = format!("http://{}", c.addr);
    let (ok, out, err) = cli(&[
        "query",
        "--admin",
        &url,
        "customer-totals",
        customer,
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(is_recount(&v, customer, &want), "{v}");
    assert_eq!(v["served_by"], owners[&p].as_str());
    let (ok, out, err) = cli(&["query", "--admin", &url, "customer-totals", customer]);
    assert!(ok, "{err}");
    let (n, _) = want[customer];
    assert!(
        out.lines().nth(1).is_some_and(
            |l| l.starts_with(customer.as_str()) && l.contains(&format!("\"count\":{n}"))
        ),
        "a table row for {customer}:\n{out}"
    );
    let (ok, _, err) = cli(&["query", "--admin", &url, "customer-totals", "nobody-at-all"]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = cli(&[
        "query",
        "--admin",
        &url,
        "customer-totals",
        customer,
        "--limit",
        "5",
    ]);
    assert!(!ok && err.contains("--limit applies to a range"), "{err}");
    // A range from the command line: every partition, some, or the asked
    // instance's.
    let range_cli = |extra: &[&str]| {
        let mut args = vec![
            "query",
            "--admin",
            &url,
            "customer-totals",
            "--limit",
            "1000",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--output", "json"]);
        let (ok, out, err) = cli(&args);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(keys_of(&range_cli(&[])), everyone);
    let p1 = (p0 + 1) % PARTITIONS as i32;
    let two = format!("{p0},{p1}");
    let in_two: Vec<String> = everyone
        .iter()
        .filter(|c| {
            let p = weir_core::partition_for_key(c.as_bytes(), PARTITIONS) as i32;
            p == p0 || p == p1
        })
        .cloned()
        .collect();
    assert!(in_two.len() > in_p0.len());
    assert_eq!(keys_of(&range_cli(&["--partitions", &two])), in_two);
    let local = range_cli(&["--local"]);
    let entries = local["entries"].as_array().unwrap();
    assert!(
        !entries.is_empty() && entries.len() < everyone.len(),
        "{local}"
    );
    assert!(entries.iter().all(|e| e["served_by"] == c.id.as_str()));
    for flag in [&["--local"][..], &["--partitions", "0"][..]] {
        let mut args = vec!["query", "--admin", &url, "customer-totals", customer];
        args.extend_from_slice(flag);
        let (ok, _, err) = cli(&args);
        assert!(!ok && err.contains("apply to a range"), "{err}");
    }
    let (ok, out, err) = cli(&["topology", "--admin", &url]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("subtopology") && out.contains("customer-totals"),
        "{out}"
    );

    // SIGKILL one: while its partitions move, every 200 is still the recount.
    c.process.kill9();
    let survivors = [&a, &b];
    let (mut ok, mut unavailable) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut complete_passes = 0;
    while complete_passes < 2 {
        assert!(
            Instant::now() < deadline,
            "the survivors did not answer every key ({ok} answers, {unavailable} 503s); logs:\n{}",
            logs(&survivors)
        );
        let mut all = true;
        for customer in want.keys() {
            for i in survivors {
                let r = request(i.addr, "GET", &key_path(customer), &[]);
                match r.status {
                    200 => {
                        ok += 1;
                        let v = r.json();
                        assert!(
                            is_recount(&v, customer, &want),
                            "a stale or wrong answer during the move: {v}, want {:?}",
                            want[customer]
                        );
                        assert_ne!(v["served_by"], c.id.as_str(), "served by the dead instance");
                    }
                    503 => {
                        unavailable += 1;
                        all = false;
                        assert!(r.headers.contains_key("retry-after"), "{r:?}");
                    }
                    other => panic!("{customer} at {}: {other} {}", i.id, r.body),
                }
            }
        }
        // A range is complete and current, or a 503.
        for i in survivors {
            if !range_is_current_or_refused(i, &want, Some(&c.id)) {
                unavailable += 1;
                all = false;
            }
        }
        complete_passes = if all { complete_passes + 1 } else { 0 };
    }
    eprintln!("during the move: {ok} answers, {unavailable} 503s");
    eventually(Duration::from_secs(60), || {
        check_all(&app, &survivors, &want)
    })
    .unwrap_or_else(|e| panic!("after the move: {e}; logs:\n{}", logs(&survivors)));
    assert!(
        group_owners(&app, &survivors).len() == PARTITIONS as usize,
        "the survivors hold every partition"
    );

    // A paused instance (SIGSTOP) loses its partitions without knowing it;
    // more events arrive meanwhile. Resumed (SIGCONT), it must not answer
    // from its old stores: until its consumer learns of the revocation, a
    // query to it is a 503 or the new owner's (current) answer.
    b.process.signal(nix::sys::signal::Signal::SIGSTOP);
    let more = purchases(&mut rng, EVENTS..EVENTS + 1_000, &mut want);
    publish_all(&events, &more);
    eventually(Duration::from_secs(120), || check_all(&app, &[&a], &want))
        .unwrap_or_else(|e| panic!("while b is paused: {e}; log:\n{}", a.process.log_text()));
    b.process.signal(nix::sys::signal::Signal::SIGCONT);
    let until = Instant::now() + Duration::from_secs(5);
    let (mut answered, mut refused) = (0, 0);
    while Instant::now() < until {
        for customer in want.keys() {
            let r = request(b.addr, "GET", &key_path(customer), &[]);
            match r.status {
                200 => {
                    answered += 1;
                    let v = r.json();
                    assert!(
                        is_recount(&v, customer, &want),
                        "a stale answer from the resumed instance: {v}, want {:?}",
                        want[customer]
                    );
                }
                503 => refused += 1,
                other => panic!("{customer} at the resumed {}: {other} {}", b.id, r.body),
            }
        }
        for i in [&a, &b] {
            if range_is_current_or_refused(i, &want, None) {
                answered += 1;
            } else {
                refused += 1;
            }
        }
    }
    eprintln!("after SIGCONT: {answered} answers, {refused} 503s");
    eventually(Duration::from_secs(120), || {
        check_all(&app, &survivors, &want)
    })
    .unwrap_or_else(|e| panic!("after the pause: {e}; logs:\n{}", logs(&survivors)));
}
