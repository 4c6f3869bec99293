//! HTTP ingress (`weir ingress`, `POST /v1/events`) on the test broker (or
//! `WEIR_TEST_BOOTSTRAP`): valid events (each a new id) posted by 1, 16
//! and 64 concurrent clients (`WEIR_BENCH_CLIENTS`, comma-separated), each
//! client keeping one connection alive and sending one request at a time,
//! for `WEIR_BENCH_SECONDS` (default 5) per round. Prints per client count
//! the median over `WEIR_BENCH_ROUNDS` rounds (default 3) of accepted
//! events/s, and p50/p99 latency to the 202 over every round's requests.
//! Checks that the topic holds as many records as were accepted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use weir_benches::{bench_var, end_offsets, median, release_binary, TopologyRun};
use weir_testkit::{create_topics, TestBroker};

const PARTITIONS: i32 = 8;

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// POSTs `body` and answers the status (the body is read and dropped).
    fn post(&mut self, body: &str) -> anyhow::Result<u16> {
        write!(
            self.writer,
            "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut rest = vec![0u8; length];
        self.reader.read_exact(&mut rest)?;
        Ok(status)
    }
}

fn event(event_type: &str, id: &str) -> String {
    serde_json::json!({
        "eventType": event_type,
        "source": "bench",
        "id": id,
        "timestamp": "2026-12-02T10:00:00Z",
        "data": {"userId": id, "email": format!("{id}@example.com"), "name": "Bench"},
        "metadata": {"correlationId": format!("c-{id}")}
    })
    .to_string()
}

/// `clients` clients posting for `seconds`: (accepted, latencies in µs).
fn round(
    addr: SocketAddr,
    event_type: &str,
    clients: usize,
    seconds: u64,
    tag: &str,
) -> anyhow::Result<(u64, Vec<f64>, f64)> {
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let results: Vec<anyhow::Result<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let mut conn = Conn::open(addr)?;
                    let mut latencies = Vec::new();
                    let mut i = 0u64;
                    while Instant::now() < end {
                        let body = event(event_type, &format!("{tag}-{c}-{i}"));
                        let t = Instant::now();
                        let status = conn.post(&body)?;
                        if status != 202 {
                            bail!("answered {status}");
                        }
                        latencies.push(t.elapsed().as_secs_f64() * 1e6);
                        i += 1;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok((all.len() as u64, all, secs))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> anyhow::Result<()> {
    let rounds = bench_var("WEIR_BENCH_ROUNDS", 3);
    let seconds = bench_var("WEIR_BENCH_SECONDS", 5) as u64;
    let clients: Vec<usize> = std::env::var("WEIR_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let bin = release_binary("weir-cli", "weir")?;
    let bootstrap = TestBroker::shared().bootstrap().to_string();
    let app = TestBroker::unique("bench-ingress");
    let topic = format!("{app}-events");
    let event_type = format!("bench.user.created.{app}");
    create_topics(&bootstrap, &[(&topic, PARTITIONS)])?;
    let cfg = weir::runtime::Config::load(
        &[
            ("application_id".to_string(), app.as_str().into()),
            ("bootstrap_servers".to_string(), bootstrap.as_str().into()),
        ]
        .into(),
        None,
        Vec::<(String, String)>::new(),
    )?;
    weir::runtime::schema_registry(&cfg)?.register(
        weir::schemas::NewDefinition::new(
            &event_type,
            serde_json::json!({
                "type": "object",
                "required": ["data"],
                "properties": {"data": {
                    "type": "object",
                    "required": ["userId", "email"],
                    "properties": {"userId": {"type": "string"}, "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}}
                }}
            }),
        ),
        weir::schemas::Compatibility::None,
    )?;
    let dir = tempfile::tempdir()?;
    let env: Vec<(String, String)> = [
        ("WEIR_APPLICATION_ID", app.as_str()),
        ("WEIR_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("WEIR_INGRESS_TOPICS", &format!("{event_type}={topic}")),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let run = TopologyRun::spawn_with(
        &bin,
        &["ingress", "--listen", "127.0.0.1:0"],
        &env,
        &dir.path().join("ingress.log"),
    )?;
    run.wait_for_log("admin endpoint listening", Duration::from_secs(60))?;
    let log = run.log_text();
    let addr: SocketAddr = log
        .lines()
        .find(|l| l.contains("admin endpoint listening"))
        .and_then(|l| l.split("127.0.0.1:").nth(1))
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|p| format!("127.0.0.1:{p}").parse().ok())
        .with_context(|| format!("no address in the log:\n{log}"))?;
    println!(
        "ingress: {seconds} s per round, {rounds} round(s), {PARTITIONS} partitions, broker {bootstrap}"
    );
    // Warm up: connections to the broker, the definitions.
    round(addr, &event_type, 4, 1, "warm")?;
    let mut accepted_total = 0u64;
    let warm = end_offsets(&bootstrap, &topic, PARTITIONS)?;
    for &c in &clients {
        let (mut rates, mut latencies) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let (accepted, l, secs) = round(addr, &event_type, c, seconds, &format!("c{c}-r{r}"))?;
            accepted_total += accepted;
            rates.push(accepted as f64 / secs);
            latencies.extend(l);
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "ingress: {c:>3} client(s): {:>8.0} accepted events/s (median of {rounds}), latency to 202 p50 {:>7.0} µs, p99 {:>7.0} µs ({} requests)",
            median(rates),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.len()
        );
    }
    let written = end_offsets(&bootstrap, &topic, PARTITIONS)? - warm;
    println!("ingress: {accepted_total} accepted, {written} records in the topic");
    if written != accepted_total as i64 {
        bail!("{accepted_total} accepted but {written} written");
    }
    drop(run);
    Ok(())
}
