//! Helpers shared by the end-to-end benchmarks: a bare rdkafka pipe to
//! compare against, topology processes, committed offsets, CPU and memory
//! of a process, medians.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_testkit::{create_topics, terminate, TestBroker};

/// Partitions of every benchmark input.
pub const PARTITIONS: i32 = 8;

/// A count from the environment (`WEIR_BENCH_EVENTS`, `WEIR_BENCH_ROUNDS`, …),
/// or `default`.
pub fn bench_var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stream threads per topology instance: `WEIR_BENCH_THREADS`, else one per
/// core of this machine (how an instance would be deployed on it).
pub fn stream_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    bench_var("WEIR_BENCH_THREADS", cores)
}

/// Creates a new input topic (`prefix` + a unique suffix, [`PARTITIONS`]
/// partitions) and publishes the `n` records `record(i)` makes; returns the
/// topic and the average value size.
///
/// # Errors
/// When the broker refuses.
pub fn publish_input(
    bootstrap: &str,
    prefix: &str,
    n: usize,
    record: impl Fn(usize) -> (Vec<u8>, Vec<u8>),
) -> anyhow::Result<(String, usize)> {
    let input = TestBroker::unique(prefix);
    create_topics(bootstrap, &[(&input, PARTITIONS)])?;
    let values: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(record).collect();
    let avg = values.iter().map(|(_, v)| v.len()).sum::<usize>() / n.max(1);
    weir_testkit::publish(
        bootstrap,
        &input,
        values
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice()))),
    )?;
    Ok((input, avg))
}

/// Builds `package`'s binary `name` in the profile this benchmark was
/// built in (release under `cargo bench`; `cargo bench --profile dev` for
/// a quick run without a release build) and returns its path.
///
/// # Errors
/// When cargo fails.
pub fn release_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let exe = std::env::current_exe()?;
    // <target>/<profile dir>/deps/<bench>
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("target dir")?;
    let release = dir.file_name().is_some_and(|d| d == "release");
    let mut args = vec!["build", "--quiet", "-p", package, "--bin", name];
    if release {
        args.push("--release");
    }
    let status = Command::new(cargo).args(&args).status()?;
    if !status.success() {
        bail!("building {name} failed");
    }
    Ok(dir.join(name))
}

/// Sum of the committed offsets of `group` on `topic` (partitions 0..`partitions`).
///
/// # Errors
/// When the broker cannot be asked.
pub fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum())
}

/// Sum of the end offsets of `topic`'s partitions.
///
/// # Errors
/// When the broker cannot be asked.
pub fn end_offsets(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let mut sum = 0;
    for p in 0..partitions {
        sum += c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1;
    }
    Ok(sum)
}

/// Flushes as the runtime does: a zero-timeout flush sends what lingers,
/// then delivery reports are served in 1 ms polls (rdkafka's own `flush`
/// waits in polls of up to 100 ms).
fn flush_quickly(producer: &BaseProducer) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let _ = producer.flush(Duration::ZERO);
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            bail!("flush: outputs unacknowledged after 60 s");
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// A bare rdkafka consume → produce pipe at least once (no framework),
/// writing each input to `copies` topics; records/s from its first record
/// until all `n` are flushed and committed.
///
/// # Errors
/// When the broker fails, or `n` records do not arrive within 600 s.
pub fn bare_pipe(bootstrap: &str, input: &str, n: usize, copies: usize) -> anyhow::Result<f64> {
    let outs: Vec<String> = (0..copies)
        .map(|i| TestBroker::unique(&format!("bench-pipe-out{i}")))
        .collect();
    let specs: Vec<(&str, i32)> = outs.iter().map(|t| (t.as_str(), PARTITIONS)).collect();
    create_topics(bootstrap, &specs)?;
    let group = TestBroker::unique("bench-pipe");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    consumer.subscribe(&[input])?;
    let mut start = None;
    let mut seen = 0usize;
    let mut last_commit = Instant::now();
    let (mut flushing, mut flushes, mut backlog) = (Duration::ZERO, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n {
        if Instant::now() > deadline {
            bail!("bare pipe: only {seen} of {n} records in 600 s");
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        start.get_or_insert_with(Instant::now);
        for topic in &outs {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            if let Some(v) = m.payload() {
                rec = rec.payload(v);
            }
            while let Err((_, back)) = producer.send(rec) {
                rec = back;
                producer.poll(Duration::from_millis(1));
            }
        }
        producer.poll(Duration::ZERO);
        seen += 1;
        if last_commit.elapsed() >= Duration::from_millis(100) {
            backlog += producer.in_flight_count().max(0) as u64;
            let flush_start = Instant::now();
            flush_quickly(&producer)?;
            flushing += flush_start.elapsed();
            flushes += 1;
            consumer.commit_consumer_state(CommitMode::Async)?;
            last_commit = Instant::now();
        }
        consumer.store_offset_from_message(&m)?;
    }
    producer.flush(Duration::from_secs(60))?;
    consumer.commit_consumer_state(CommitMode::Sync)?;
    let secs = start.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
    println!(
        "  bare pipe: {:.1} s of {secs:.1} s in {flushes} flushes; outputs unacknowledged when flushes began: {backlog}",
        flushing.as_secs_f64()
    );
    Ok(n as f64 / secs)
}

/// Records/s of a bare `read_committed` consume of every partition of
/// `topic` from the start to its current end (no group): the end is reached
/// when the consumer's position (which steps over commit markers) is at the
/// high watermark listed first.
///
/// # Errors
/// When the broker fails or the end is not reached within 600 s.
pub fn bare_consume(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<(u64, f64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", TestBroker::unique("bench-consume"))
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        ends.push(
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))?
                .1,
        );
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let mut records = 0u64;
    loop {
        if Instant::now() > deadline {
            bail!("bare consume of {topic}: no end within 600 s");
        }
        let polled = consumer.poll(Duration::from_millis(10));
        if let Some(Ok(_)) = polled {
            records += 1;
            if !records.is_multiple_of(1024) {
                continue;
            }
        }
        let done = consumer
            .position()?
            .elements()
            .iter()
            .all(|e| match e.offset() {
                Offset::Offset(o) => o >= ends[e.partition() as usize],
                _ => ends[e.partition() as usize] == 0,
            });
        if done {
            break;
        }
    }
    Ok((records, records as f64 / start.elapsed().as_secs_f64()))
}

/// A topology binary running as a child process; terminated on drop.
pub struct TopologyRun {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl TopologyRun {
    /// Starts `bin run` with exactly `env` as its `WEIR_*` configuration.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn spawn(bin: &Path, env: &[(String, String)], log: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(bin, &["run"], env, log)
    }

    /// Starts `bin args…` with exactly `env` as its `WEIR_*` configuration.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn spawn_with(
        bin: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("WEIR_") && !k.starts_with("WEIR_TEST_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log contains `needle`.
    ///
    /// # Errors
    /// When it does not within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains(needle) {
            if Instant::now() > deadline {
                bail!("no {needle:?} in the log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(30));
    }
}

impl Drop for TopologyRun {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(30));
    }
}

/// User + system CPU seconds of process `pid` so far (Linux, 100 ticks/s).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:` is the peak RSS).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The median of `v` (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
