//! A small blocking client of an admin endpoint (HTTP/1.1 over a plain
//! socket, one request per connection, or several over a kept
//! [`Session`]), for the `weir` command line, tests and benchmarks: no
//! async runtime needed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header name (lower case) → value.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Errors
    /// When it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }

    /// The error JSON's `message` (or the body) when the status is not 2xx.
    pub fn error_message(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let message = self
            .json()
            .ok()
            .and_then(|j| j["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.clone());
        Some(format!("{}: {message}", self.status))
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host[:port][/]`.
    #[error("{url}: not an http://host:port URL")]
    Url {
        /// The URL given.
        url: String,
    },
    /// Connecting, writing or reading failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not HTTP.
    #[error("{url}: the answer is not HTTP")]
    NotHttp {
        /// The URL.
        url: String,
    },
}

/// The endpoint at `base` (`http://host:port`).
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    authority: String,
    token: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// A client of the endpoint at `base`.
    ///
    /// # Errors
    /// [`ClientError::Url`] when `base` is not `http://host[:port]`.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::Url {
            url: base.to_string(),
        };
        let rest = base.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad());
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            authority,
            token: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// `GET path` (path and query, already URL-encoded).
    ///
    /// # Errors
    /// [`ClientError`] when there is no HTTP answer.
    pub fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send("GET", path, &[], "")
    }

    /// `method path` with extra `headers` and a JSON `body` (empty: none).
    ///
    /// # Errors
    /// [`ClientError`] when there is no HTTP answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let io = |source| ClientError::Io {
            url: url.clone(),
            source,
        };
        let mut s = self.connect(&url)?;
        s.write_all(self.request(method, path, headers, body, true).as_bytes())
            .map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        parse(&raw).ok_or(ClientError::NotHttp { url })
    }

    /// A connection kept open for several requests (HTTP keep-alive), as
    /// a service that queries often would hold: no connection set-up per
    /// request.
    pub fn session(&self) -> Session {
        Session {
            client: self.clone(),
            conn: None,
        }
    }

    fn connect(&self, url: &str) -> Result<TcpStream, ClientError> {
        let io = |source| ClientError::Io {
            url: url.to_string(),
            source,
        };
        // Every address the name resolves to (localhost: ::1, then 127.0.0.1).
        let mut last = None;
        for addr in self.authority.to_socket_addrs().map_err(io)? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout)).map_err(io)?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => io(e),
            None => ClientError::Url {
                url: url.to_string(),
            },
        })
    }

    /// The request's head and body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        close: bool,
    ) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.authority,
            body.len()
        );
        if close {
            head.push_str("Connection: close\r\n");
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        head
    }
}

/// Requests over one kept connection (see [`AdminClient::session`]). When
/// the endpoint closed the kept connection before answering, a `GET` or
/// `HEAD` is sent once more on a new one; other requests fail (they may
/// have been carried out).
#[derive(Debug)]
pub struct Session {
    client: AdminClient,
    conn: Option<TcpStream>,
}

impl Session {
    /// `GET path` (path and query, already URL-encoded).
    ///
    /// # Errors
    /// [`ClientError`] when there is no HTTP answer.
    pub fn get(&mut self, path: &str) -> Result<Answer, ClientError> {
        self.send("GET", path, &[], "")
    }

    /// As [`AdminClient::send`], on the kept connection.
    ///
    /// # Errors
    /// [`ClientError`] when there is no HTTP answer.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.client.base);
        let request = self.client.request(method, path, headers, body, false);
        let io = |source| ClientError::Io {
            url: url.clone(),
            source,
        };
        if let Some(mut kept) = self.conn.take() {
            match exchange(&mut kept, &request, method == "HEAD") {
                Ok(Some((answer, reusable))) => {
                    if reusable {
                        self.conn = Some(kept);
                    }
                    return Ok(answer);
                }
                Ok(None) => return Err(ClientError::NotHttp { url: url.clone() }),
                // The endpoint closed the kept connection before answering
                // (it may close an idle one at any time): a request that is
                // safe to repeat goes once more on a new connection.
                Err(e) if closed_unanswered(&e) && matches!(method, "GET" | "HEAD") => {}
                Err(e) => return Err(io(e)),
            }
        }
        let mut s = self.client.connect(&url)?;
        match exchange(&mut s, &request, method == "HEAD").map_err(io)? {
            Some((answer, reusable)) => {
                if reusable {
                    self.conn = Some(s);
                }
                Ok(answer)
            }
            None => Err(ClientError::NotHttp { url }),
        }
    }
}

/// Writes `request` and reads exactly one answer (`head`: to a `HEAD`, so
/// without a body); whether the connection may carry another. `None`:
/// what came back is not HTTP.
fn exchange(
    s: &mut TcpStream,
    request: &str,
    head: bool,
) -> std::io::Result<Option<(Answer, bool)>> {
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = answer_len(&raw, head) {
            let Some(answer) = parse(&raw[..end]) else {
                return Ok(None);
            };
            let reusable = end == raw.len()
                && !answer
                    .headers
                    .get("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close"));
            return Ok(Some((answer, reusable)));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return if raw.is_empty() {
                // Closed before a byte of the answer.
                Err(std::io::ErrorKind::UnexpectedEof.into())
            } else if framed(&raw) {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the connection closed in the middle of the answer",
                ))
            } else {
                // An answer without a length ends with the connection.
                Ok(parse(&raw).map(|a| (a, false)))
            };
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Whether `e` says the endpoint closed or reset the connection (not a
/// timeout: a slow answer is not asked for again).
fn closed_unanswered(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Where an answer's body ends, by its head.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body: a 1xx, 204 or 304 answer, or one to a `HEAD` (this client
    /// sends no `Expect`, so no interim answer comes before the final one).
    Bodiless,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends with the connection.
    UntilClose,
}

/// The answer's head (complete in `raw`) and where its body starts.
fn split_head(raw: &[u8]) -> Option<(usize, &str)> {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((at + 4, std::str::from_utf8(&raw[..at]).ok()?))
}

/// The value of header `name` in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// How the body of the answer with `head` ends (`to_head`: an answer to a
/// `HEAD`).
fn framing(head: &str, to_head: bool) -> Framing {
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Bodiless
    } else if header(head, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(n) = header(head, "content-length").and_then(|n| n.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }
}

/// Whether the answer's head (complete in `raw`) says where its body ends.
fn framed(raw: &[u8]) -> bool {
    split_head(raw).is_some_and(|(_, head)| framing(head, false) != Framing::UntilClose)
}

/// The length of the first answer in `raw`, once it is complete and
/// framed (`to_head`: an answer to a `HEAD`).
fn answer_len(raw: &[u8], to_head: bool) -> Option<usize> {
    let (start, head) = split_head(raw)?;
    match framing(head, to_head) {
        Framing::Bodiless => Some(start),
        Framing::Length(n) => (raw.len() - start >= n).then_some(start + n),
        Framing::Chunked => chunks(&raw[start..]).map(|(_, n)| start + n),
        Framing::UntilClose => None,
    }
}

/// A complete chunked body at the start of `s` (no trailers): its content
/// and its length; `None` while it is incomplete or when it is not
/// chunked. Sizes count bytes, so this works on bytes.
fn chunks(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (mut content, mut at) = (Vec::new(), 0);
    loop {
        let rest = &s[at..];
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at += line_end + 2;
        if n == 0 {
            return s[at..].starts_with(b"\r\n").then_some((content, at + 2));
        }
        content.extend_from_slice(s.get(at..at.checked_add(n)?)?);
        at += n;
        if !s[at..].starts_with(b"\r\n") {
            return None;
        }
        at += 2;
    }
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let (start, head) = split_head(raw)?;
    let body = &raw[start..];
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        chunks(body)?.0
    } else {
        body.to_vec()
    };
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_answers_parse() {
        assert!(AdminClient::new("https://x:1").is_err());
        assert!(AdminClient::new("http://").is_err());
        assert!(AdminClient::new("http://h:1/path").is_err());
        assert_eq!(AdminClient::new("http://h").unwrap().authority, "h:80");
        assert_eq!(AdminClient::new("http://h:9/").unwrap().base, "http://h:9");
        let a = parse(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{\"error\":\"X\",\"message\":\"m\"}").unwrap();
        assert_eq!(a.status, 404);
        assert_eq!(a.error_message().unwrap(), "404: m");
        let c = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(c.body, "abcde");
        // A chunk boundary inside a multi-byte character.
        let e = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\na\xc3\r\n1\r\n\xa9\r\n0\r\n\r\n").unwrap();
        assert_eq!(e.body, "a\u{e9}");
        assert!(c.error_message().is_none());
        assert!(parse(b"garbage").is_none());
    }

    #[test]
    fn an_answer_ends_where_its_framing_says() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1";
        assert_eq!(answer_len(a, false), Some(a.len() - 8));
        assert_eq!(
            answer_len(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab", false),
            None
        );
        assert_eq!(answer_len(b"HTTP/1.1 200 OK\r\ncontent-len", false), None);
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(answer_len(c, false), Some(c.len()));
        for cut in 0..c.len() {
            assert_eq!(
                answer_len(&c[..cut], false),
                None,
                "{:?}",
                String::from_utf8_lossy(&c[..cut])
            );
        }
        // No length: the answer ends when the connection does.
        assert_eq!(answer_len(b"HTTP/1.1 200 OK\r\n\r\nabc", false), None);
        assert!(!framed(b"HTTP/1.1 200 OK\r\n\r\nabc"));
        assert!(framed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"));
        assert!(!framed(b"HTTP/1.1 200 OK\r\nContent-Length: 9"));
        // No body, whatever the headers say.
        let none = b"HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(answer_len(none, false), Some(none.len()));
        assert!(framed(b"HTTP/1.1 304 Not Modified\r\n\r\n"));
        // An answer to a HEAD has no body, whatever its length says.
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(answer_len(head, true), Some(head.len()));
    }

    /// A session keeps its connection (the endpoint sees one client port)
    /// and replaces one the endpoint closed.
    #[test]
    fn a_session_keeps_its_connection() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let addr = rt.block_on(crate::forward::tests::endpoint());
        let client = AdminClient::new(&format!("http://{addr}")).unwrap();
        let mut session = client.session();
        let ports: Vec<String> = (0..4).map(|_| session.get("/peer").unwrap().body).collect();
        assert!(ports.iter().all(|p| p == &ports[0]), "{ports:?}");
        assert_eq!(session.get("/close").unwrap().body, "bye");
        let next = session.get("/peer").unwrap().body;
        assert_ne!(next, ports[0]);
        // One request per connection otherwise.
        let a = client.get("/peer").unwrap().body;
        let b = client.get("/peer").unwrap().body;
        assert_ne!(a, b);
    }
}
