//! Stream-table joins on the real broker, with the `weir-test-join`
//! topology (`in` left-joined with the table read from `table`, output
//! `<value>=<tier or ->`):
//! - a table written fully before the stream starts: every record joins;
//! - table updates and stream records with interleaved timestamps: each
//!   record meets the table value current at its timestamp (an update of
//!   the same timestamp included);
//! - a table restored after kill -9 and a lost state dir stops at the
//!   committed offset of its topic: updates written after the commit are
//!   not seen by records older than them;
//! - inputs with different partition counts: a start-up error naming both.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_testkit::{create_topics, publish_at, TestBroker, TopicReader};
use weir_tests::{binary, topology_env, TopologyProcess};

struct Join {
    app: String,
    input: String,
    table: String,
    output: String,
    dir: tempfile::TempDir,
}

impl Join {
    fn new(name: &str, input_partitions: i32, table_partitions: i32) -> Join {
        let broker = TestBroker::shared();
        let app = TestBroker::unique(name);
        let (input, table, output) = (
            format!("{app}-in"),
            format!("{app}-table"),
            format!("{app}-out"),
        );
        create_topics(
            broker.bootstrap(),
            &[(&input, input_partitions), (&table, table_partitions)],
        )
        .unwrap();
        Join {
            app,
            input,
            table,
            output,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn bootstrap(&self) -> &str {
        TestBroker::shared().bootstrap()
    }

    fn start(&self, log: &str) -> TopologyProcess {
        let mut env = topology_env(
            &self.app,
            self.bootstrap(),
            &self.dir.path().join("state"),
            (&self.input, &self.output),
            &[
                ("WEIR_PROCESSING_GUARANTEE", "exactly_once_v2"),
                ("WEIR_COMMIT_INTERVAL_MS", "100"),
                ("WEIR_STATE_MEMORY_BUDGET_MB", "32"),
            ],
        );
        env.push(("WEIR_TOPICS__TABLE".into(), self.table.clone()));
        TopologyProcess::spawn(
            &binary("weir-test-join", "weir-tests"),
            &["run"],
            &env,
            &self.dir.path().join(log),
        )
    }

    /// Publishes `(key, value, timestamp)` records to `topic`.
    fn publish(&self, topic: &str, records: &[(String, String, i64)]) {
        publish_at(
            self.bootstrap(),
            topic,
            records
                .iter()
                .map(|(k, v, t)| (Some(k.as_bytes()), Some(v.as_bytes()), Some(*t))),
        )
        .unwrap();
    }

    /// The joined values by input value, read committed, once `n` are in.
    fn joined(&self, n: usize, p: &TopologyProcess) -> BTreeMap<String, String> {
        let mut reader =
            TopicReader::new(self.bootstrap(), &[&self.output], "read_committed").unwrap();
        let complete = reader.read_until(Duration::from_secs(120), |r| r.len() >= n);
        reader.read_for(Duration::from_millis(500));
        assert!(
            complete,
            "{} of {n} joined records; log:\n{}",
            reader.records().len(),
            p.log_text()
        );
        assert_eq!(reader.records().len(), n, "one output per input, no more");
        reader
            .records()
            .iter()
            .map(|r| {
                let text = String::from_utf8(r.value.clone().unwrap()).unwrap();
                let (v, t) = text.split_once('=').unwrap();
                (v.to_string(), t.to_string())
            })
            .collect()
    }
}

#[test]
fn a_table_written_before_the_stream_starts_joins_every_record() {
    let j = Join::new("join-prewritten", 4, 4);
    let base = 1_700_000_000_000;
    let table: Vec<_> = (0..100)
        .map(|i| (format!("c{i}"), format!("tier{i}"), base + i))
        .collect();
    j.publish(&j.table, &table);
    let stream: Vec<_> = (0..1_000)
        .map(|i| (format!("c{}", i % 100), format!("e{i}"), base + 10_000 + i))
        .collect();
    j.publish(&j.input, &stream);
    let mut p = j.start("log");
    let joined = j.joined(1_000, &p);
    for i in 0..1_000 {
        assert_eq!(
            joined[&format!("e{i}")],
            format!("tier{}", i % 100),
            "e{i}; log:\n{}",
            p.log_text()
        );
    }
    assert!(p.stop().success(), "{}", p.log_text());
}

#[test]
fn each_record_meets_the_table_value_current_at_its_timestamp() {
    let j = Join::new("join-interleaved", 2, 2);
    let base = 1_700_000_000_000;
    let (mut table, mut stream) = (Vec::new(), Vec::new());
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for step in 0..600i64 {
        // Every third record: the key and timestamp of the update just
        // before it (a tie: the update is current at that timestamp).
        let at = if step % 3 == 1 { step - 1 } else { step };
        let key = format!("c{}", (at * 7) % 5);
        let ts = base + at * 10;
        if step % 3 == 0 {
            let tier = format!("t{step}");
            current.insert(key.clone(), tier.clone());
            table.push((key, tier, ts));
        } else {
            let v = format!("e{step}");
            want.insert(
                v.clone(),
                current.get(&key).cloned().unwrap_or_else(|| "-".into()),
            );
            stream.push((key, v, ts));
        }
    }
    j.publish(&j.table, &table);
    j.publish(&j.input, &stream);
    let mut p = j.start("log");
    let joined = j.joined(stream.len(), &p);
    assert_eq!(joined, want, "log:\n{}", p.log_text());
    assert!(p.stop().success(), "{}", p.log_text());
}

#[test]
fn a_restored_table_stops_at_the_committed_offset_of_its_topic() {
    let j = Join::new("join-restore", 2, 2);
    let base = 1_700_000_000_000;
    let keys: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let batch = |prefix: &str, value: &dyn Fn(&str) -> String, ts: i64| {
        keys.iter()
            .map(|k| (k.clone(), value(&format!("{prefix}{}", &k[1..])), ts))
            .collect::<Vec<_>>()
    };
    j.publish(&j.table, &batch("old", &|v| v.to_string(), base));
    let mut p = j.start("log1");
    j.publish(&j.input, &batch("a", &|v| v.to_string(), base + 100));
    let first = j.joined(10, &p);
    assert!(first.values().all(|t| t.starts_with("old")), "{first:?}");
    // The outputs are committed, and with them the table's offsets. Crash,
    // lose the state, and write table updates after the commit.
    p.kill9();
    std::fs::remove_dir_all(j.dir.path().join("state")).unwrap();
    j.publish(&j.table, &batch("new", &|v| v.to_string(), base + 300));
    j.publish(&j.input, &batch("b", &|v| v.to_string(), base + 200));
    j.publish(&j.input, &batch("c", &|v| v.to_string(), base + 400));
    let mut p = j.start("log2");
    let all = j.joined(30, &p);
    for k in 0..10 {
        assert_eq!(
            all[&format!("b{k}")],
            format!("old{k}"),
            "b{k} is older than the update; log:\n{}",
            p.log_text()
        );
        assert_eq!(all[&format!("c{k}")], format!("new{k}"), "c{k}");
    }
    assert!(p.stop().success(), "{}", p.log_text());
    let restored = p.summary_counter("restored").unwrap();
    assert!(
        restored >= 10,
        "the lost table came back from its topic ({restored} records)"
    );
}

#[test]
fn inputs_with_different_partition_counts_are_refused_naming_both() {
    let j = Join::new("join-copartition", 4, 2);
    let mut p = j.start("log");
    let status = p
        .wait_exit(Duration::from_secs(60))
        .expect("exits at start");
    assert!(!status.success());
    let log = p.log_text();
    assert!(
        log.contains(&j.input) && log.contains(&j.table) && log.contains("partitions"),
        "the error names both topics: {log}"
    );
}
