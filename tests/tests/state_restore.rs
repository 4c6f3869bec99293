//! Stores restored from their changelogs on the real broker, with the
//! `weir-test-count` topology (per-key counts in a RocksDB store, each
//! update written as `<key>` → `<count>`):
//! - the state directory deleted between two runs: a full restore, and the
//!   counts go on exactly where they were;
//! - kill -9 mid-run: the restart replays only the changelog's tail (far
//!   fewer records than the state holds), and read_committed output is
//!   exact: each key's counts go 1, 2, 3, … with no gap and no repeat;
//! - damaged state — RocksDB's `CURRENT` removed, an SST file truncated —
//!   and a checkpoint past the changelog's end (a fresh broker with the
//!   old cluster id, the old state dir): each wipes and restores fully,
//!   never crashes, and the counts stay exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use weir_testkit::{create_topics, publish, BrokerProcess, TestBroker, TopicReader};
use weir_tests::{binary, counts_go_up_by_one, topology_env, TopologyProcess};

struct Run {
    bootstrap: String,
    app: String,
    input: String,
    output: String,
    dir: tempfile::TempDir,
}

impl Run {
    fn new(name: &str) -> Run {
        Run::on(name, TestBroker::shared().bootstrap())
    }

    fn on(name: &str, bootstrap: &str) -> Run {
        let app = TestBroker::unique(name);
        let (input, output) = (format!("{app}-in"), format!("{app}-out"));
        create_topics(bootstrap, &[(&input, 4)]).unwrap();
        Run {
            bootstrap: bootstrap.to_string(),
            app,
            input,
            output,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn start(&self, log: &str) -> TopologyProcess {
        let env = topology_env(
            &self.app,
            &self.bootstrap,
            &self.state_dir(),
            (&self.input, &self.output),
            &[
                ("WEIR_AUTO_CREATE_PARTITIONS", "4"),
                ("WEIR_STATE_MEMORY_BUDGET_MB", "32"),
                ("WEIR_COMMIT_INTERVAL_MS", "50"),
            ],
        );
        TopologyProcess::spawn(
            &binary("weir-test-count", "weir-tests"),
            &["run"],
            &env,
            &self.dir.path().join(log),
        )
    }

    /// Publishes `n` records over `keys` keys, numbered from `from`.
    fn publish(&self, from: usize, n: usize, keys: usize, want: &mut BTreeMap<String, u64>) {
        let records: Vec<(String, String)> = (from..from + n)
            .map(|i| (format!("key-{}", (i * 7919) % keys), format!("v{i}")))
            .collect();
        for (k, _) in &records {
            *want.entry(k.clone()).or_default() += 1;
        }
        publish(
            &self.bootstrap,
            &self.input,
            records
                .iter()
                .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
        )
        .unwrap();
    }
}

/// Reads every committed update until each key's last count is `want`'s;
/// asserts each key's counts go 1, 2, 3, … without gap or repeat.
fn assert_counts(run: &Run, want: &BTreeMap<String, u64>, p: &TopologyProcess) {
    let total: u64 = want.values().sum();
    let mut reader = TopicReader::new(&run.bootstrap, &[&run.output], "read_committed").unwrap();
    let complete = reader.read_until(Duration::from_secs(180), |r| r.len() as u64 >= total);
    reader.read_for(Duration::from_secs(1));
    assert!(
        complete,
        "{} of {total} updates; log:\n{}",
        reader.records().len(),
        p.log_text()
    );
    let last = counts_go_up_by_one(reader.records());
    assert_eq!(&last, want);
    assert_eq!(reader.records().len() as u64, total, "no duplicates");
}

fn remove(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_deleted_state_dir_is_restored_fully_from_the_changelog() {
    let run = Run::new("restore-full");
    let mut want = BTreeMap::new();
    let mut p = run.start("log1");
    run.publish(0, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    assert_eq!(
        p.summary_counter("restored"),
        Some(0),
        "a first start restores nothing"
    );

    remove(&run.state_dir());
    let mut p = run.start("log2");
    run.publish(3_000, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    let restored = p.summary_counter("restored").unwrap();
    eprintln!("full restore after the state dir was deleted: {restored} changelog records");
    assert!(
        restored >= 200,
        "every key came back from the changelog (restored {restored}); log:\n{}",
        p.log_text()
    );
}

#[test]
fn after_kill_9_only_the_changelog_tail_is_replayed() {
    let run = Run::new("restore-tail");
    let mut want = BTreeMap::new();
    let keys = 20_000;
    let mut p = run.start("log1");
    // A large state: every key once.
    run.publish(0, keys, keys, &mut want);
    assert_counts(&run, &want, &p);
    // A little more, then kill -9 while it may be mid-commit.
    run.publish(keys, 500, keys, &mut want);
    p.kill9();

    let mut p = run.start("log2");
    run.publish(keys + 500, 500, keys, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    let restored = p.summary_counter("restored").unwrap();
    let total = p.summary_counter("restore_total").unwrap();
    eprintln!("restart after kill -9 with {keys} keys: replayed {restored} (planned {total})");
    assert!(
        restored < keys as u64 / 10,
        "only the tail is replayed: {restored} of a {keys}-key state (planned {total}); log:\n{}",
        p.log_text()
    );
}

/// Every file under `dir` whose name satisfies `pick`.
fn files(dir: &Path, pick: &dyn Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path, pick));
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(pick) {
            out.push(path);
        }
    }
    out
}

/// A first run, `damage` to its state dir, a second run: the damaged
/// stores are wiped and restored fully, counts stay exact.
fn survives(name: &str, damage: impl Fn(&Path)) {
    let run = Run::new(name);
    let mut want = BTreeMap::new();
    let mut p = run.start("log1");
    run.publish(0, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    damage(&run.state_dir());
    let mut p = run.start("log2");
    run.publish(3_000, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    let restored = p.summary_counter("restored").unwrap();
    eprintln!("{name}: restored {restored} changelog records");
    assert!(
        restored >= 200,
        "every key came back from the changelog (restored {restored}); log:\n{}",
        p.log_text()
    );
    assert!(
        p.log_text().contains("wiping"),
        "the damaged state was wiped; log:\n{}",
        p.log_text()
    );
}

#[test]
fn a_removed_rocksdb_current_file_gives_a_full_restore() {
    survives("restore-current", |dir| {
        let current = files(dir, &|n| n == "CURRENT");
        assert_eq!(current.len(), 4, "one RocksDB per task");
        for f in current {
            std::fs::remove_file(f).unwrap();
        }
    });
}

#[test]
fn a_truncated_sst_file_gives_a_full_restore() {
    survives("restore-sst", |dir| {
        let ssts = files(dir, &|n| n.ends_with(".sst"));
        assert!(!ssts.is_empty(), "stores are flushed to SST files on close");
        for f in ssts {
            let len = std::fs::metadata(&f).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
            file.set_len(len / 2).unwrap();
        }
    });
}

#[test]
fn a_checkpoint_past_the_changelogs_end_gives_a_full_restore() {
    // A broker that loses its data and comes back with the same cluster id:
    // the old state dir's checkpoints point past the new changelogs' end.
    let data = tempfile::tempdir().unwrap();
    let first = BrokerProcess::start_on_free_loopback(&data.path().join("a")).unwrap();
    let cluster = first.cluster_id().to_string();
    let run = Run::on("restore-past-end", first.bootstrap());
    let mut want = BTreeMap::new();
    let mut p = run.start("log1");
    run.publish(0, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    drop(first);

    let second =
        BrokerProcess::start_on_free_loopback_as(&data.path().join("b"), &cluster).unwrap();
    let run = Run {
        bootstrap: second.bootstrap().to_string(),
        ..run
    };
    create_topics(&run.bootstrap, &[(&run.input, 4)]).unwrap();
    // The new cluster has no history: counts start again from one.
    let mut want = BTreeMap::new();
    let mut p = run.start("log2");
    run.publish(0, 3_000, 200, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    let wiped = p.summary_counter("stores_wiped").unwrap();
    assert_eq!(
        wiped,
        4,
        "each task's store was wiped; log:\n{}",
        p.log_text()
    );
    assert!(
        p.log_text().contains("past the changelog's end"),
        "{}",
        p.log_text()
    );
}

#[test]
fn a_kill_9_during_a_full_restore_resumes_it_exactly() {
    // Restored batches skip RocksDB's WAL and are made durable when the
    // restore ends: a crash in between must lose them whole, with their
    // checkpoint, so the next start replays them again.
    let run = Run::new("restore-killed");
    let mut want = BTreeMap::new();
    let keys = 20_000;
    let mut p = run.start("log1");
    run.publish(0, keys, keys, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
    remove(&run.state_dir());
    let mut p = run.start("log2");
    assert!(
        p.wait_for_log("restoring", Duration::from_secs(60)),
        "{}",
        p.log_text()
    );
    p.kill9();
    let finished = p.log_text().matches("task running").count() >= 4;
    eprintln!("killed during the restore: {}", !finished);
    let mut p = run.start("log3");
    run.publish(keys, 2_000, keys, &mut want);
    assert_counts(&run, &want, &p);
    // Logged commits now follow the restored state: a kill -9 must not
    // leave them on top of restored writes that were never made durable.
    p.kill9();
    let mut p = run.start("log4");
    run.publish(keys + 2_000, 2_000, keys, &mut want);
    assert_counts(&run, &want, &p);
    assert!(p.stop().success(), "{}", p.log_text());
}
