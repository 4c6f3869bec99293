//! A small blocking client of an admin endpoint (HTTP/1.1 over a plain
//! socket, one request per connection), for the `weir` command line and
//! tests: no async runtime needed.

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
        // Every address the name resolves to (localhost: ::1, then 127.0.0.1).
        let mut last = None;
        let mut connected = None;
        for addr in self.authority.to_socket_addrs().map_err(io)? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    connected = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut s = match (connected, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(io(e)),
            (None, None) => return Err(ClientError::Url { url }),
        };
        s.set_read_timeout(Some(self.timeout)).map_err(io)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.authority,
            body.len()
        );
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
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(body.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        parse(&raw).ok_or(ClientError::NotHttp { url })
    }
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
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
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A chunked body's content (sizes count bytes, so this works on bytes).
fn dechunk(mut s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = s.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&s[..line_end]).ok()?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        let rest = &s[line_end + 2..];
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..n)?);
        s = rest.get(n..)?.strip_prefix(b"\r\n")?;
    }
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
}
