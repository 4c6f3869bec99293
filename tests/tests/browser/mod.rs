//! Headless Chromium (Debian's `chromium`, installed by `make deps`) driven
//! over the Chrome DevTools Protocol: evaluate script in a page, wait for a
//! condition with a deadline, take a screenshot.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A headless Chromium with one page; killed when dropped.
pub struct Browser {
    child: Child,
    ws: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (`WEIR_TEST_CHROMIUM`, else `/usr/bin/chromium`) on
    /// `url`, with a fresh profile and none of its background traffic.
    pub fn launch(url: &str) -> Self {
        let bin =
            std::env::var("WEIR_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: `make deps` installs Debian's chromium"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(at) = line.find("ws://") {
                        let _ = tx.send(line[at..].trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("Chromium printed its DevTools address within 60 s");
        // A new page on `url`, through the browser's own socket; then that
        // page's socket.
        let mut browser = connect(&browser_ws);
        let target = call(
            &mut browser,
            1,
            "Target.createTarget",
            json!({ "url": url }),
        );
        let id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let host = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let ws = connect(&format!("ws://{host}/devtools/page/{id}"));
        let mut b = Self {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        };
        // A desktop-sized layout (a new target starts at 800 px wide).
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    /// Calls a DevTools method of the page and answers its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        call(&mut self.ws, self.next_id, method, params)
    }

    /// Evaluates `expression` in the page (awaiting a promise) and answers
    /// its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is truthy (not null, false, 0 or
    /// ""), at most `timeout`; answers its value.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expression);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let text = self.eval("document.body ? document.body.innerText.slice(0, 3000) : ''");
                panic!(
                    "{expression} did not hold within {timeout:?}; the page:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the whole page at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(url: &str) -> Socket {
    let (ws, _) = tungstenite::connect(url).unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    ws
}

/// Sends `method` as request `id` and waits for its answer (events in
/// between are skipped).
fn call(ws: &mut Socket, id: u64, method: &str, params: Value) -> Value {
    ws.send(Message::text(
        json!({"id": id, "method": method, "params": params}).to_string(),
    ))
    .expect("send to Chromium");
    loop {
        let m = ws.read().expect("read from Chromium");
        let Message::Text(text) = m else { continue };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["id"] == id {
            if let Some(e) = v.get("error") {
                panic!("{method}: {e}");
            }
            return v["result"].clone();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
