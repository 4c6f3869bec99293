//! Fuzzing the admin endpoint of a running instance against its own
//! OpenAPI document: schemathesis (installed by `make deps` into
//! `~/.cache/weir/venv`) generates a few hundred requests — valid and
//! invalid paths, queries, headers and bodies — and checks that none gets
//! a 5xx and every answer conforms to the document (status, content type,
//! headers, body schema), and that the mutating routes refuse requests
//! without the token. Ingress (`POST /v1/events`) is enabled, so it is
//! fuzzed too. A second run, against an instance with no token, lets the
//! mutating routes take what the document allows: every valid request must
//! be accepted (schemathesis' own expectations, no settings file).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir::prelude::*;
use weir::App;
use weir_testkit::{create_topics, publish, TestBroker};
use weir_tests::http::get;
use weir_tests::in_process_config;

fn schemathesis() -> PathBuf {
    std::env::var_os("WEIR_TEST_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/weir/venv/bin/schemathesis")
        })
}

/// An instance of a small topology (a dead-lettering step, a count) with
/// `extra` settings and 50 records processed; stopped by the caller.
fn instance(
    name: &str,
    extra: &[(&str, &str)],
) -> (weir::Running, std::net::SocketAddr, tempfile::TempDir) {
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique(name);
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&bootstrap, &[(&input, 2)]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut settings = vec![("WEIR_ADMIN_LISTEN", "127.0.0.1:0")];
    settings.extend_from_slice(extra);
    if settings
        .iter()
        .any(|(k, v)| *k == "WEIR_INGRESS_ENABLED" && *v == "true")
    {
        // POST /v1/events: its events go to the output topic.
        settings.push(("WEIR_INGRESS_DEFAULT_TOPIC", output.as_str()));
    }
    let config = in_process_config(
        &app,
        &bootstrap,
        state.path(),
        2,
        (&input, &output),
        &settings,
    );
    let b = Topology::builder();
    let s = b.stream("in", Str, Str).try_map_values(|v: String| {
        if v.starts_with("bad") {
            Err(OpError::permanent("refused"))
        } else {
            Ok(v)
        }
    });
    s.to("out");
    s.group_by_key().count("per-key");
    let running = App::builder()
        .with_config(config)
        .start(b.build().unwrap())
        .unwrap();
    let addr = running.admin_addr().unwrap();
    let records: Vec<(String, String)> = (0..50)
        .map(|i| {
            (
                format!("k{}", i % 7),
                if i % 9 == 0 {
                    format!("bad{i}")
                } else {
                    format!("v{i}")
                },
            )
        })
        .collect();
    publish(
        &bootstrap,
        &input,
        records
            .iter()
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()))),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(addr, "/stores/per-key/keys/k1").status != 200 {
        assert!(Instant::now() < deadline, "the store serves k1 within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    (running, addr, state)
}

/// The operations `/openapi.json` describes.
fn operations(addr: std::net::SocketAddr) -> usize {
    let doc = get(addr, "/openapi.json").json();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum()
}

/// Runs schemathesis with every check and its default expectations
/// against the instance at `addr`; its output, once it passed and tested
/// every operation but the document's own route.
fn fuzz(addr: std::net::SocketAddr, dir: &std::path::Path) -> String {
    let tool = schemathesis();
    assert!(
        tool.exists(),
        "{} is missing: `make deps` installs schemathesis",
        tool.display()
    );
    let operations = operations(addr);
    assert!(operations >= 14, "{operations} operations");
    let out = std::process::Command::new(&tool)
        .args([
            "run",
            &format!("http://{addr}/openapi.json"),
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(dir.join("schemathesis"))
        // Its caches go to the temporary dir, not into the repository.
        .current_dir(dir)
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    let tested: usize = text
        .split("Tested: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(tested, operations - 1, "operations tested:\n{text}");
    text
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let (running, addr, state) = instance(
        "admin-fuzz",
        &[
            ("WEIR_ADMIN_TOKEN", "fuzz-token"),
            ("WEIR_INGRESS_ENABLED", "true"),
        ],
    );
    let doc = get(addr, "/openapi.json").json();
    assert!(doc["paths"]["/v1/events"]["post"].is_object(), "{doc}");
    fuzz(addr, state.path());
    running.stop();
    running.wait().unwrap();
}

/// With no token the mutating routes take requests (definitions it
/// registers stay in the registry: no ingress here, whose answers would
/// depend on them).
#[test]
fn without_a_token_every_request_the_document_allows_is_accepted() {
    let (running, addr, state) = instance("admin-fuzz-open", &[]);
    let doc = get(addr, "/openapi.json").json();
    assert!(
        doc["paths"]["/dlq/replay"]["post"]["security"].is_null(),
        "{doc}"
    );
    fuzz(addr, state.path());
    running.stop();
    running.wait().unwrap();
}
