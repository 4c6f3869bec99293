//! Harness for Weir's end-to-end tests: topology processes as real child
//! processes (so a crash test can SIGKILL one), unique topics per test on the
//! shared test broker, a bounded-rate event feed, and exactly-once checks
//! over what a `read_committed` reader sees.

pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weir_core::Record;
use weir_testkit::{publish_at, TestBroker, TopicReader};

/// The event-router's logical topics, in the order [`Scenario::topics`] lists them.
pub const LOGICAL: [&str; 5] = ["events", "orders", "payments", "other", "audit"];

/// Where a workspace binary is. The first call in a test process builds it
/// (a no-op when fresh), so `cargo test -p weir-tests` never runs a stale one.
pub fn binary(name: &str, package: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", package, "--bin", name])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building {name} failed");
        built.push(name.to_string());
    }
    dir.join(name)
}

/// One test's world: unique topic names, application id and state dirs on
/// the shared broker.
pub struct Scenario {
    /// The broker's bootstrap address.
    pub bootstrap: String,
    /// A unique application id (and so consumer group and DLQ name).
    pub app_id: String,
    /// Physical topic per logical event-router topic.
    pub topics: BTreeMap<&'static str, String>,
    /// Partitions of every topic.
    pub partitions: i32,
    dir: tempfile::TempDir,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::env::var_os("WEIR_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!(
                "WEIR_TEST_KEEP: logs and state kept in {}",
                dir.keep().display()
            );
        }
    }
}

impl Scenario {
    /// Creates the input topic (others are auto-created by the router).
    pub fn new(name: &str, partitions: i32) -> Scenario {
        let broker = TestBroker::shared();
        let app_id = TestBroker::unique(name);
        let topics: BTreeMap<&'static str, String> = LOGICAL
            .iter()
            .map(|l| (*l, format!("{app_id}-{l}")))
            .collect();
        broker
            .create_topic(&topics["events"], partitions)
            .expect("create input topic");
        Scenario {
            bootstrap: broker.bootstrap().to_string(),
            app_id,
            topics,
            partitions,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The dead-letter topic (`<application_id>-dlq`).
    pub fn dlq(&self) -> String {
        format!("{}-dlq", self.app_id)
    }

    /// A state dir for instance `n`.
    pub fn state_dir(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("state-{n}"))
    }

    /// The environment that runs the event-router in this scenario.
    pub fn router_env(&self, instance: usize) -> Vec<(String, String)> {
        let mut env = vec![
            ("WEIR_APPLICATION_ID".into(), self.app_id.clone()),
            ("WEIR_BOOTSTRAP_SERVERS".into(), self.bootstrap.clone()),
            (
                "WEIR_STATE_DIR".into(),
                self.state_dir(instance).display().to_string(),
            ),
            ("WEIR_AUTO_CREATE_TOPICS".into(), "true".into()),
            (
                "WEIR_AUTO_CREATE_PARTITIONS".into(),
                self.partitions.to_string(),
            ),
            ("WEIR_KAFKA__SESSION_TIMEOUT_MS".into(), "6000".into()),
            ("WEIR_KAFKA__TRANSACTION_TIMEOUT_MS".into(), "10000".into()),
        ];
        for (l, t) in &self.topics {
            env.push((
                format!("WEIR_TOPICS__{}", l.to_ascii_uppercase()),
                t.clone(),
            ));
        }
        env
    }

    /// Starts an event-router for instance `n` with extra environment.
    pub fn start_router(&self, instance: usize, extra: &[(&str, &str)]) -> TopologyProcess {
        let mut env = self.router_env(instance);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let log = self.dir.path().join(format!(
            "router-{instance}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        TopologyProcess::spawn(
            &binary("event-router", "event-router"),
            &["run"],
            &env,
            &log,
        )
    }

    /// The output topics to read: routed topics, audit and the DLQ.
    pub fn output_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = ["orders", "payments", "other", "audit"]
            .iter()
            .map(|l| self.topics[l].clone())
            .collect();
        t.push(self.dlq());
        t
    }
}

/// The environment that runs a test topology binary (logical topics `in`
/// and `out`) as application `app`, with `extra` settings.
pub fn topology_env(
    app: &str,
    bootstrap: &str,
    state_dir: &Path,
    (input, output): (&str, &str),
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let state_dir = state_dir.display().to_string();
    [
        ("WEIR_APPLICATION_ID", app),
        ("WEIR_BOOTSTRAP_SERVERS", bootstrap),
        ("WEIR_STATE_DIR", state_dir.as_str()),
        ("WEIR_AUTO_CREATE_TOPICS", "true"),
        ("WEIR_TOPICS__IN", input),
        ("WEIR_TOPICS__OUT", output),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The configuration of an instance run in the test process: application
/// `app` on `bootstrap`, state under `state_dir`, topics created on demand
/// with `partitions` partitions, commits every 100 ms, logical topics `in`
/// and `out` renamed to `topics`, plus `extra` `WEIR_*` settings.
pub fn in_process_config(
    app: &str,
    bootstrap: &str,
    state_dir: &Path,
    partitions: i32,
    topics: (&str, &str),
    extra: &[(&str, &str)],
) -> weir::Config {
    let mut env = topology_env(app, bootstrap, state_dir, topics, extra);
    env.push(("WEIR_AUTO_CREATE_PARTITIONS".into(), partitions.to_string()));
    if !extra.iter().any(|(k, _)| *k == "WEIR_COMMIT_INTERVAL_MS") {
        env.push(("WEIR_COMMIT_INTERVAL_MS".into(), "100".into()));
    }
    weir::Config::load(&BTreeMap::new(), None, env).expect("a valid test configuration")
}

/// A topology binary running as a child process, its output in a log file.
pub struct TopologyProcess {
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl TopologyProcess {
    /// Spawns `bin args` with `env` added to this process's environment
    /// (minus `WEIR_*` of ours, so tests control it), output to `log`.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(String, String)], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .env(
                "RUST_LOG",
                std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, _) in std::env::vars() {
            if k.starts_with("WEIR_") && !k.starts_with("WEIR_TEST_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn topology process");
        TopologyProcess {
            child,
            log: log.to_path_buf(),
            exited: None,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid(), signal);
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                return self.exited;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(10));
    }

    /// SIGTERM (graceful: commit, leave the group) and wait.
    ///
    /// # Panics
    /// If it does not exit within 30 s.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("process did not stop on SIGTERM; log:\n{}", self.log_text()))
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            if self.wait_exit(Duration::ZERO).is_some() {
                return self.log_text().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The counter `name` from the shutdown summary line, if it printed one.
    pub fn summary_counter(&self, name: &str) -> Option<u64> {
        weir_testkit::summary_counter(&self.log_text(), name)
    }

    /// The partitions of `topic` in its most recent "partitions assigned" log line.
    pub fn last_assignment(&self, topic: &str) -> Vec<i32> {
        let text = self.log_text();
        let Some(line) = text
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned"))
        else {
            return Vec::new();
        };
        let Some(start) = line.find(&format!("{topic}[")) else {
            return Vec::new();
        };
        let rest = &line[start + topic.len() + 1..];
        let end = rest.find(']').unwrap_or(rest.len());
        rest[..end]
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }
}

impl Drop for TopologyProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.signal(Signal::SIGCONT);
            self.kill9();
        }
    }
}

/// Checks the `<key>` → `<count>` updates of a counting topology: each
/// key's counts go 1, 2, 3, … in the order read (no gap, no repeat);
/// returns each key's last count.
///
/// # Panics
/// When they do not.
pub fn counts_go_up_by_one(records: &[Record]) -> BTreeMap<String, u64> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        let k = String::from_utf8(r.key.clone().expect("keyed")).expect("UTF-8 key");
        let c: u64 = String::from_utf8_lossy(r.value.as_deref().expect("a value"))
            .parse()
            .expect("a count");
        let prev = last.insert(k.clone(), c).unwrap_or(0);
        assert_eq!(c, prev + 1, "counts of {k} go 1, 2, 3, … (read_committed)");
    }
    last
}

/// One generated input event and where it must end up.
#[derive(Clone, Debug)]
pub struct TestEvent {
    /// The record key (shared by many events, to check per-key order).
    pub key: String,
    /// The serialized value.
    pub value: Vec<u8>,
    /// The event id (unique, increasing), or `None` for a malformed event.
    pub id: Option<String>,
    /// The logical topic it routes to, if kept.
    pub route: Option<&'static str>,
}

/// `n` events: ids `000000…`, keys `k-<i % 97>`, types cycling, every 10th
/// with a non-positive amount; plus a malformed one every `malformed_every`
/// (0: none).
pub fn events(n: usize, malformed_every: usize) -> Vec<TestEvent> {
    let kinds = ["order", "payment", "refund", "shipment"];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kind = kinds[i % kinds.len()];
        let amount = if i % 10 == 9 { 0 } else { 1 + (i % 500) as i64 };
        let id = format!("{i:07}");
        let value = serde_json::json!({
            "id": id, "type": kind, "region": "eu", "amount": amount,
            "pad": "x".repeat(96)
        });
        out.push(TestEvent {
            key: format!("k-{}", i % 97),
            value: value.to_string().into_bytes(),
            id: Some(id),
            route: (amount > 0).then_some(match kind {
                "order" => "orders",
                "payment" => "payments",
                _ => "other",
            }),
        });
        if malformed_every > 0 && i % malformed_every == malformed_every - 1 {
            out.push(TestEvent {
                key: format!("bad-{i}"),
                value: format!("{{\"id\": \"bad-{i}\", oops").into_bytes(),
                id: None,
                route: None,
            });
        }
    }
    out
}

/// Publishes events in the background at about `per_sec` events a second.
pub struct Feeder {
    handle: Option<JoinHandle<usize>>,
    stop: Arc<AtomicBool>,
}

impl Feeder {
    /// Starts feeding `events` to `topic`.
    pub fn start(bootstrap: &str, topic: &str, events: Vec<TestEvent>, per_sec: usize) -> Feeder {
        let timed = events
            .into_iter()
            .map(|e| (e.key.into_bytes(), e.value, None))
            .collect();
        Self::start_timed(bootstrap, topic, timed, per_sec)
    }

    /// Starts feeding `(key, value, timestamp)` records to `topic` (no
    /// timestamp: the producer's clock).
    pub fn start_timed(
        bootstrap: &str,
        topic: &str,
        events: Vec<(Vec<u8>, Vec<u8>, Option<i64>)>,
        per_sec: usize,
    ) -> Feeder {
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let chunk = (per_sec / 10).max(1);
            let start = Instant::now();
            let mut sent = 0;
            for (i, batch) in events.chunks(chunk).enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                sent += publish_at(
                    &bootstrap,
                    &topic,
                    batch
                        .iter()
                        .map(|(k, v, t)| (Some(k.as_slice()), Some(v.as_slice()), *t)),
                )
                .expect("publish");
                // Pace to the target rate: the next chunk is due at (i+1)/10 s.
                let due = start + Duration::from_millis(100 * (i as u64 + 1));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        });
        Feeder {
            handle: Some(handle),
            stop,
        }
    }

    /// Whether everything has been published.
    pub fn is_done(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the feed to finish; returns how many events were published.
    ///
    /// # Panics
    /// If publishing failed.
    pub fn join(mut self) -> usize {
        self.handle
            .take()
            .map_or(0, |h| h.join().expect("feeder panicked"))
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What a topic should hold: event id → times it should appear.
pub type Expected = BTreeMap<String, BTreeMap<String, usize>>;

/// The expected contents of every physical output topic for `events`.
pub fn expected(s: &Scenario, events: &[TestEvent]) -> Expected {
    let mut e: Expected = BTreeMap::new();
    for t in s.output_topics() {
        e.entry(t).or_default();
    }
    for ev in events {
        match (&ev.id, ev.route) {
            (Some(id), Some(route)) => {
                *e.get_mut(&s.topics[route])
                    .unwrap()
                    .entry(id.clone())
                    .or_default() += 1;
                *e.get_mut(&s.topics["audit"])
                    .unwrap()
                    .entry(id.clone())
                    .or_default() += 1;
            }
            (None, _) => {
                *e.get_mut(&s.dlq())
                    .unwrap()
                    .entry(ev.key.clone())
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    e
}

/// The id a record is counted under: the JSON `id` of outputs, the key of dead letters.
pub fn record_id(r: &Record, dlq: &str) -> String {
    if r.topic == dlq {
        return String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
    }
    serde_json::from_slice::<serde_json::Value>(r.value.as_deref().unwrap_or_default())
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| "<no id>".into())
}

/// How many times each id appears in each topic.
pub fn multiplicity(records: &[Record], dlq: &str) -> Expected {
    let mut m: Expected = BTreeMap::new();
    for r in records {
        *m.entry(r.topic.clone())
            .or_default()
            .entry(record_id(r, dlq))
            .or_default() += 1;
    }
    m
}

/// How long tests wait for an output before suspecting the test broker's
/// group defect (see [`weir_testkit::force_rebalance`]).
pub const STALL: Duration = Duration::from_secs(30);

/// Rebalances `group` after its outputs stalled for [`STALL`]: the test
/// broker can leave partitions of a group that lost members assigned to
/// nobody (never on Kafka). Only liveness: what then arrives is checked as
/// strictly as ever.
pub fn unstall(bootstrap: &str, group: &str) {
    eprintln!("no new output for {STALL:?}: forcing a rebalance of group {group}");
    if let Err(e) = weir_testkit::force_rebalance(bootstrap, group) {
        eprintln!("forcing a rebalance of {group}: {e}");
    }
}

/// Reads the outputs `read_committed` until they hold as many records as
/// expected (or `timeout`), then a little longer to catch extras.
pub fn read_committed(s: &Scenario, want: &Expected, timeout: Duration) -> Vec<Record> {
    read(s, want, timeout, "read_committed")
}

/// As [`read_committed`], at `isolation`.
pub fn read(s: &Scenario, want: &Expected, timeout: Duration, isolation: &str) -> Vec<Record> {
    let topics = s.output_topics();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    // Done when every expected id has been seen once (counting records
    // would stop early when duplicates arrive, as at least once).
    let mut missing: std::collections::BTreeSet<(String, String)> = want
        .iter()
        .flat_map(|(t, ids)| ids.keys().map(move |id| (t.clone(), id.clone())))
        .collect();
    let dlq = s.dlq();
    let mut seen = 0;
    let mut reader = TopicReader::new(&s.bootstrap, &refs, isolation).expect("reader");
    reader.read_until_unstalled(
        timeout,
        STALL,
        || unstall(&s.bootstrap, &s.app_id),
        |r| {
            for rec in &r[seen..] {
                missing.remove(&(rec.topic.clone(), record_id(rec, &dlq)));
            }
            seen = r.len();
            missing.is_empty()
        },
    );
    reader.read_for(Duration::from_secs(2));
    reader.records().to_vec()
}

/// Asserts every expected record appears exactly once, nothing else appears,
/// and within each topic the events of each key arrive in input order.
///
/// # Panics
/// With a description of the first few differences.
pub fn assert_exactly_once(s: &Scenario, want: &Expected, got: &[Record], context: &str) {
    let dlq = s.dlq();
    let have = multiplicity(got, &dlq);
    let mut problems = Vec::new();
    for (topic, ids) in want {
        let empty = BTreeMap::new();
        let seen = have.get(topic).unwrap_or(&empty);
        for (id, n) in ids {
            let m = seen.get(id).copied().unwrap_or(0);
            if m != *n {
                problems.push(format!("{topic}: id {id} seen {m} times, want {n}"));
            }
        }
        for (id, m) in seen {
            if !ids.contains_key(id) {
                problems.push(format!("{topic}: unexpected id {id} ({m} times)"));
            }
        }
    }
    // Per-key order: ids of one key increase within each topic.
    let mut last: BTreeMap<(String, Vec<u8>), String> = BTreeMap::new();
    for r in got.iter().filter(|r| r.topic != dlq) {
        let id = record_id(r, &dlq);
        let k = (r.topic.clone(), r.key.clone().unwrap_or_default());
        if let Some(prev) = last.get(&k) {
            if *prev >= id {
                problems.push(format!("{}: key order broken: {id} after {prev}", r.topic));
            }
        }
        last.insert(k, id);
    }
    let total: usize = want.values().flat_map(|m| m.values()).sum();
    assert!(
        problems.is_empty(),
        "{context}: {} problems (expected {total} records, read {}); first: {:#?}",
        problems.len(),
        got.len(),
        &problems[..problems.len().min(20)]
    );
}

/// The address in a process's "admin endpoint listening" log line (an
/// endpoint bound to `127.0.0.1:0`).
pub fn listening_addr(log: &str) -> Option<std::net::SocketAddr> {
    let line = log
        .lines()
        .find(|l| l.contains("admin endpoint listening"))?;
    let at = line.find("127.0.0.1:")?;
    let rest = &line[at..];
    let end = rest
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}
