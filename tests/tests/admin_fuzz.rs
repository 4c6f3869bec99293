//! Fuzzing the admin endpoint of a running instance against its own
//! OpenAPI document: schemathesis (installed by `make deps` into
//! `~/.cache/weir/venv`) generates a few hundred requests — valid and
//! invalid paths, queries, headers and bodies — and checks that none gets
//! a 5xx and every answer conforms to the document (status, content type,
//! headers, body schema), and that the mutating routes refuse requests
//! without the token. Ingress (`POST /v1/events`) is enabled, so it is
//! fuzzed too.

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

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let tool = schemathesis();
    assert!(
        tool.exists(),
        "{} is missing: `make deps` installs schemathesis",
        tool.display()
    );
    let broker = TestBroker::shared();
    let bootstrap = broker.bootstrap().to_string();
    let app = TestBroker::unique("admin-fuzz");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(&bootstrap, &[(&input, 2)]).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = in_process_config(
        &app,
        &bootstrap,
        state.path(),
        2,
        (&input, &output),
        &[
            ("WEIR_ADMIN_LISTEN", "127.0.0.1:0"),
            ("WEIR_ADMIN_TOKEN", "fuzz-token"),
            // POST /v1/events too: its events go to the output topic.
            ("WEIR_INGRESS_ENABLED", "true"),
            ("WEIR_INGRESS_DEFAULT_TOPIC", &output),
        ],
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

    // The operations the document describes.
    let doc = get(addr, "/openapi.json").json();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert!(operations >= 14, "{doc}");
    assert!(doc["paths"]["/v1/events"]["post"].is_object(), "{doc}");
    let report = state.path().join("schemathesis");
    // An event the document allows may still name a type nobody
    // registered: 422 UNKNOWN_EVENT_TYPE is a right answer to it (whether
    // an event is accepted depends on the definitions registered).
    let settings = state.path().join("schemathesis.toml");
    std::fs::write(
        &settings,
        "[[operations]]\ninclude-path = \"/v1/events\"\nchecks.positive_data_acceptance.expected-statuses = [\"2xx\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\", \"5xx\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(&tool)
        .arg("--config-file")
        .arg(&settings)
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
        .arg(&report)
        // Its caches go to the temporary dir, not into the repository.
        .current_dir(state.path())
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    running.stop();
    running.wait().unwrap();
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    // It read the whole document and tested every operation (but the
    // document's own route, which it leaves out).
    let tested: usize = text
        .split("Tested: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(tested, operations - 1, "operations tested:\n{text}");
}
