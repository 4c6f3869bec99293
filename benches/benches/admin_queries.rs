//! Point queries of customer-totals' store over the admin endpoint, on the
//! test broker (or `WEIR_TEST_BOOTSTRAP`): 300,000 events over 20,000
//! customers on 8 partitions (`WEIR_BENCH_EVENTS`, `WEIR_BENCH_CUSTOMERS`).
//! Prints, as medians over `WEIR_BENCH_ROUNDS` rounds (default 3):
//! - (a) records/s of one instance with no queries, (b) of one instance
//!   answering 1,000 key queries/s while it processes (every query local),
//!   and the slowdown 1 − b/a (target < 5 %), from the medians and as the
//!   median of each round's own (a and b run back to back);
//! - latency p50/p99 of the queries during (b) (local), and of queries sent
//!   at 1,000/s to the first of two instances processing together (about
//!   half forwarded to the second: split by `served_by`);
//! - closed-loop throughput (4 clients, 3 s) once processing is done:
//!   local and forwarded queries/s.
//!
//! Each client keeps its connection open between queries, as a service
//! that queries often would (`WEIR_BENCH_KEEP_ALIVE=0`: a connection per
//! query, the `weir` command line's way). Forwards go over the asked
//! instance's kept connections to the owner. 503s (a partition restoring
//! or moving) are counted, not timed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use weir_admin::client::{AdminClient, Answer, ClientError, Session};
use weir_benches::{
    bench_var, committed, end_offsets, median, publish_input, release_binary, TopologyRun,
    PARTITIONS,
};
use weir_testkit::TestBroker;

const REPARTITION_PARTITIONS: i32 = 8;

struct Setup<'a> {
    bin: &'a Path,
    bootstrap: &'a str,
    input: &'a str,
    n: usize,
    customers: usize,
    dir: &'a Path,
}

/// What the query load saw.
#[derive(Default)]
struct Seen {
    /// Latencies (µs) of answers read where they were asked.
    local: Vec<f64>,
    /// Latencies (µs) of answers another instance read.
    forwarded: Vec<f64>,
    unavailable: u64,
    failed: u64,
}

impl Setup<'_> {
    fn spawn(&self, app: &str, n: usize) -> anyhow::Result<(TopologyRun, SocketAddr, String)> {
        let state = self.dir.join(format!("{app}-{n}"));
        let env: Vec<(String, String)> = [
            ("WEIR_NUM_STREAM_THREADS", "1"),
            ("WEIR_APPLICATION_ID", app),
            ("WEIR_BOOTSTRAP_SERVERS", self.bootstrap),
            ("WEIR_STATE_DIR", &state.display().to_string()),
            ("WEIR_COMMIT_INTERVAL_MS", "100"),
            ("WEIR_AUTO_CREATE_TOPICS", "true"),
            ("WEIR_AUTO_CREATE_PARTITIONS", &PARTITIONS.to_string()),
            ("WEIR_TOPICS__EVENTS", self.input),
            ("WEIR_TOPICS__CUSTOMER_TOTALS", &format!("{app}-out")),
            ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let run = TopologyRun::spawn(self.bin, &env, &state.with_extension("log"))?;
        run.wait_for_log("admin endpoint listening", Duration::from_secs(60))?;
        let log = run.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("admin endpoint listening"))
            .unwrap_or_default();
        let addr: SocketAddr = line
            .split("127.0.0.1:")
            .nth(1)
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|p| format!("127.0.0.1:{p}").parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no admin address in the log:\n{log}"))?;
        let id = AdminClient::new(&format!("http://{addr}"))?
            .get("/health")?
            .json()?["instance_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((run, addr, id))
    }

    /// Waits until `app` has processed the whole input; the seconds since
    /// `start`.
    fn wait_done(&self, app: &str, start: Instant) -> anyhow::Result<f64> {
        let repartition = format!("{app}-customer-totals-repartition");
        let deadline = start + Duration::from_secs(900);
        loop {
            if committed(self.bootstrap, app, self.input, PARTITIONS)? >= self.n as i64 {
                let end = end_offsets(self.bootstrap, &repartition, REPARTITION_PARTITIONS)?;
                let done = committed(self.bootstrap, app, &repartition, REPARTITION_PARTITIONS)?;
                if end >= self.n as i64 && done >= end - i64::from(REPARTITION_PARTITIONS) {
                    return Ok(start.elapsed().as_secs_f64());
                }
            }
            if Instant::now() > deadline {
                bail!("{app} did not finish in 900 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn customer(&self, i: usize) -> String {
        format!("customer-{:06}", i % self.customers)
    }
}

/// A query client: a kept connection, or one per query.
enum Asker {
    Session(Session),
    PerQuery(AdminClient),
}

impl Asker {
    fn new(addr: SocketAddr) -> Self {
        let client = AdminClient::new(&format!("http://{addr}")).expect("an http URL");
        if bench_var("WEIR_BENCH_KEEP_ALIVE", 1) == 0 {
            Asker::PerQuery(client)
        } else {
            Asker::Session(client.session())
        }
    }

    fn get(&mut self, path: &str) -> Result<Answer, ClientError> {
        match self {
            Asker::Session(s) => s.get(path),
            Asker::PerQuery(c) => c.get(path),
        }
    }
}

/// Sends key queries to `addr` at `per_sec` until `stop`; `me` is the
/// asked instance's id (answers served by another were forwarded).
fn load(
    setup: &Setup<'_>,
    addr: SocketAddr,
    me: &str,
    per_sec: u64,
    stop: &AtomicBool,
) -> anyhow::Result<Seen> {
    let mut client = Asker::new(addr);
    let mut seen = Seen::default();
    let step = Duration::from_nanos(1_000_000_000 / per_sec.max(1));
    let mut next = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += step;
        i = i.wrapping_add(7_919);
        let started = Instant::now();
        match client.get(&format!(
            "/stores/customer-totals/keys/{}",
            setup.customer(i)
        )) {
            Ok(a) if a.status == 200 || a.status == 404 => {
                let us = started.elapsed().as_secs_f64() * 1e6;
                let served_by = a
                    .json()
                    .ok()
                    .and_then(|j| j["served_by"].as_str().map(String::from));
                match served_by {
                    Some(by) if by != me => seen.forwarded.push(us),
                    _ => seen.local.push(us),
                }
            }
            Ok(a) if a.status == 503 => seen.unavailable += 1,
            _ => seen.failed += 1,
        }
    }
    Ok(seen)
}

/// Queries answered per second by `clients` closed-loop clients in `secs`,
/// each asking for the customers of `keys` in turn.
fn closed_loop(addr: SocketAddr, keys: &[String], clients: usize, secs: u64) -> f64 {
    if keys.is_empty() {
        return f64::NAN;
    }
    let stop = Instant::now() + Duration::from_secs(secs);
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut client = Asker::new(addr);
                    let mut n = 0usize;
                    let mut i = c * 7_919;
                    while Instant::now() < stop {
                        i = (i + 1) % keys.len();
                        let path = format!("/stores/customer-totals/keys/{}", keys[i]);
                        if client.get(&path).is_ok_and(|a| a.status == 200) {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    done as f64 / secs as f64
}

/// The customers whose partition `addr`'s instance holds, and the others.
fn split_by_owner(
    setup: &Setup<'_>,
    addr: SocketAddr,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let stores = AdminClient::new(&format!("http://{addr}"))?
        .get("/stores")?
        .json()?;
    let held: Vec<i64> = stores["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == "customer-totals")
        .flat_map(|s| s["held"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h["partition"].as_i64())
        .collect();
    Ok((0..setup.customers)
        .map(|i| setup.customer(i))
        .partition(|c| {
            held.contains(&i64::from(weir_core::partition_for_key(
                c.as_bytes(),
                REPARTITION_PARTITIONS as u32,
            )))
        }))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let n = bench_var("WEIR_BENCH_EVENTS", 300_000);
    let customers = bench_var("WEIR_BENCH_CUSTOMERS", 20_000);
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    let qps = bench_var("WEIR_BENCH_QPS", 1_000) as u64;
    let bin = release_binary("customer-totals", "customer-totals")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let (input, avg) = publish_input(&bootstrap, "bench-queries", n, |i| {
        let v = serde_json::json!({
            "customer": format!("customer-{:06}", (i * 7_919) % customers),
            "amount": (i % 997) as i64 - 20,
            "id": i,
        });
        (
            format!("k{}", i % 9_973).into_bytes(),
            v.to_string().into_bytes(),
        )
    })?;
    let dir = tempfile::tempdir()?;
    let setup = Setup {
        bin: &bin,
        bootstrap: &bootstrap,
        input: &input,
        n,
        customers,
        dir: dir.path(),
    };
    println!(
        "admin_queries: {n} events (~{avg} B) over {customers} customers on {PARTITIONS} partitions, {qps} queries/s ({}), broker {bootstrap}",
        if bench_var("WEIR_BENCH_KEEP_ALIVE", 1) == 0 {
            "a connection per query"
        } else {
            "kept connections"
        }
    );
    let (mut a, mut b, mut local, mut fwd_local, mut forwarded) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut q_local, mut q_fwd) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // (a) no queries.
        let app = TestBroker::unique("bench-q-none");
        let (run, _, _) = setup.spawn(&app, 0)?;
        run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        let secs = setup.wait_done(&app, Instant::now())?;
        drop(run);
        a.push(n as f64 / secs);

        // (b) 1,000 queries/s while processing.
        let app = TestBroker::unique("bench-q-load");
        let (run, addr, id) = setup.spawn(&app, 0)?;
        run.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let (secs, seen) = std::thread::scope(|s| {
            let h = s.spawn(|| load(&setup, addr, &id, qps, &stop));
            let secs = setup.wait_done(&app, start);
            stop.store(true, Ordering::Relaxed);
            (secs, h.join().expect("the load thread"))
        });
        let (secs, mut seen) = (secs?, seen?);
        drop(run);
        b.push(n as f64 / secs);
        let sent = seen.local.len() + seen.forwarded.len();
        println!(
            "  round {round}: a {:.0}  b {:.0} records/s; {} queries answered in {secs:.1} s ({:.0}/s), {} 503s, {} failed; local p50 {:.0} us p99 {:.0} us",
            a[round - 1],
            b[round - 1],
            sent,
            sent as f64 / secs,
            seen.unavailable,
            seen.failed,
            pct(&mut seen.local, 0.5),
            pct(&mut seen.local, 0.99)
        );
        local.extend(seen.local);

        // Two instances: queries to the first, about half forwarded.
        let app = TestBroker::unique("bench-q-two");
        let (run1, addr1, id1) = setup.spawn(&app, 1)?;
        let (run2, _, _) = setup.spawn(&app, 2)?;
        run1.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        run2.wait_for_log("partitions assigned", Duration::from_secs(120))?;
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let (done, seen2) = std::thread::scope(|s| {
            let h = s.spawn(|| load(&setup, addr1, &id1, qps, &stop));
            let done = setup.wait_done(&app, start);
            stop.store(true, Ordering::Relaxed);
            (done, h.join().expect("the load thread"))
        });
        done?;
        let mut seen2 = seen2?;
        println!(
            "  round {round}: two instances: local p50 {:.0} us p99 {:.0} us ({} answers), forwarded p50 {:.0} us p99 {:.0} us ({} answers), {} 503s",
            pct(&mut seen2.local, 0.5),
            pct(&mut seen2.local, 0.99),
            seen2.local.len(),
            pct(&mut seen2.forwarded, 0.5),
            pct(&mut seen2.forwarded, 0.99),
            seen2.forwarded.len(),
            seen2.unavailable
        );
        fwd_local.extend(seen2.local);
        forwarded.extend(seen2.forwarded);
        // Closed loop once processing is done: customers instance 1 holds,
        // then customers instance 2 holds (forwarded).
        let (mine, theirs) = split_by_owner(&setup, addr1)?;
        q_local.push(closed_loop(addr1, &mine, 4, 3));
        q_fwd.push(closed_loop(addr1, &theirs, 4, 3));
        drop(run1);
        drop(run2);
    }
    let paired = median(
        a.iter()
            .zip(&b)
            .map(|(a, b)| (1.0 - b / a) * 100.0)
            .collect(),
    );
    let (ma, mb) = (median(a), median(b));
    println!("medians over {rounds} rounds:");
    println!("  (a) one instance, no queries                {ma:>10.0} records/s");
    println!("  (b) one instance, {qps} queries/s          {mb:>10.0} records/s");
    println!(
        "  slowdown 1 - b/a = {:.1} % of the medians, {paired:.1} % median of the rounds' own (target < 5 %)",
        (1.0 - mb / ma) * 100.0
    );
    println!(
        "  query latency while processing: local p50 {:.0} us p99 {:.0} us; with two instances local p50 {:.0} us p99 {:.0} us, forwarded p50 {:.0} us p99 {:.0} us",
        pct(&mut local, 0.5),
        pct(&mut local, 0.99),
        pct(&mut fwd_local, 0.5),
        pct(&mut fwd_local, 0.99),
        pct(&mut forwarded, 0.5),
        pct(&mut forwarded, 0.99)
    );
    println!(
        "  closed loop (4 clients, idle instances): local {:.0} queries/s, forwarded {:.0} queries/s",
        median(q_local),
        median(q_fwd)
    );
    Ok(())
}
