//! `weir demo` as a user runs it (`make demo`): its own broker, the
//! event-router, the event-enricher and customer-totals queried in process;
//! it exits 0 only when every check it prints holds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir_tests::binary;

#[test]
fn the_demo_passes_its_own_checks() {
    let weir = binary("weir", "weir-cli");
    binary("event-router", "event-router");
    binary("event-enricher", "event-enricher");
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("demo.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(&weir)
        .args(["demo", "--events", "400"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "weir demo failed ({status:?}):\n{text}"
    );
    for line in [
        "every kept event is in its topic and in audit exactly once",
        "every event is there once, keyed by its customer, with the tier",
        "every customer's count and total equal a recount",
        "every customer's queried totals equal the recount",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
