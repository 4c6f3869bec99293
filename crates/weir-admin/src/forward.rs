//! Forwarded queries' HTTP: `GET` on another instance's admin endpoint
//! over a connection kept open for the next forward.
//!
//! Each instance keeps up to [`MAX_IDLE_PER_OWNER`] idle HTTP/1.1
//! connections per owner it forwarded to; a forward takes one that is
//! open, or connects. A kept connection the owner has closed meanwhile
//! fails its request: the `GET` (safe to repeat) is sent once more on a
//! new connection. A connection whose answer did not complete is not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header;
use axum::http::response::Parts;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;

use crate::query::FORWARDED;

/// How long a forwarded query may take, connection included.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per owner (`host:port`).
pub const MAX_IDLE_PER_OWNER: usize = 8;

type Sender = SendRequest<Empty<Bytes>>;

/// Idle connections to other instances' admin endpoints, by `host:port`.
#[derive(Debug, Default)]
pub struct Forwarder {
    idle: Mutex<HashMap<String, Vec<Sender>>>,
}

impl Forwarder {
    /// Idle connections kept to `authority` now (for tests).
    pub fn idle(&self, authority: &str) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get(authority).map_or(0, Vec::len)
    }

    fn take(&self, authority: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.get_mut(authority)?;
        // Closed ones (the owner hung up, or went away) are dropped here;
        // `send` waits for the others to be ready.
        while let Some(s) = kept.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn keep(&self, authority: &str, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.entry(authority.to_string()).or_default();
        if kept.len() < MAX_IDLE_PER_OWNER {
            kept.push(s);
        }
    }

    /// `GET base + path` with the forwarded header (`from`: this
    /// instance's id); the owner's answer as is (status, content type,
    /// `Retry-After`, body).
    pub(crate) async fn get(&self, base: &str, path: &str, from: &str) -> Result<Response, String> {
        let (parts, body) = self.fetch(base, path, from).await?;
        Ok(relay(&parts, body))
    }

    /// As [`Forwarder::get`], the answer's head and whole body.
    pub(crate) async fn fetch(
        &self,
        base: &str,
        path: &str,
        from: &str,
    ) -> Result<(Parts, Bytes), String> {
        let uri: hyper::Uri = format!("{}{path}", base.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("bad URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("only http:// admin URLs can be forwarded to".into());
        }
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or("the URL has no host")?;
        let call = async {
            if let Some(mut kept) = self.take(&authority) {
                if let Ok(answer) = send(&mut kept, &uri, &authority, from).await {
                    self.keep(&authority, kept);
                    return Ok(answer);
                }
            }
            let mut fresh = connect(&uri).await?;
            let answer = send(&mut fresh, &uri, &authority, from).await?;
            self.keep(&authority, fresh);
            Ok::<_, String>(answer)
        };
        tokio::time::timeout(FORWARD_TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer in {FORWARD_TIMEOUT:?}"))?
    }
}

/// An owner's answer passed on: status, content type, `Retry-After`, body.
pub(crate) fn relay(parts: &Parts, body: Bytes) -> Response {
    let mut out = (parts.status, body).into_response();
    for h in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

async fn connect(uri: &hyper::Uri) -> Result<Sender, String> {
    // An IPv6 host comes with its brackets.
    let host = uri
        .host()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    uri: &hyper::Uri,
    authority: &str,
    from: &str,
) -> Result<(Parts, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(target)
        .header(header::HOST, authority)
        .header(FORWARDED, from)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts, body))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    use axum::routing::get;
    use axum::Router;

    use super::*;

    /// A real endpoint on a loopback socket: `/peer` answers the client's
    /// port and its `X-Weir-Forwarded`; `/close` answers and closes the
    /// connection.
    pub(crate) async fn endpoint() -> SocketAddr {
        let app = Router::new()
            .route(
                "/peer",
                get(
                    |ConnectInfo(peer): ConnectInfo<SocketAddr>, h: HeaderMap| async move {
                        let from = h.get(FORWARDED).and_then(|v| v.to_str().ok()).unwrap_or("");
                        format!("{} {from}", peer.port())
                    },
                ),
            )
            .route(
                "/close",
                get(|| async { ([(header::CONNECTION, "close")], "bye") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        addr
    }

    async fn body(r: Response) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn forwards_reuse_one_connection_and_carry_the_header() {
        let addr = endpoint().await;
        let base = format!("http://{addr}");
        let f = Forwarder::default();
        let mut ports = Vec::new();
        for _ in 0..5 {
            let a = body(f.get(&base, "/peer", "instance-1").await.unwrap()).await;
            let (port, from) = a.split_once(' ').unwrap();
            assert_eq!(from, "instance-1");
            ports.push(port.to_string());
        }
        ports.dedup();
        assert_eq!(
            ports.len(),
            1,
            "one connection for five forwards: {ports:?}"
        );
        assert_eq!(f.idle(&addr.to_string()), 1);
    }

    #[tokio::test]
    async fn a_connection_the_owner_closed_is_replaced() {
        let addr = endpoint().await;
        let base = format!("http://{addr}");
        let f = Forwarder::default();
        let first = body(f.get(&base, "/peer", "i").await.unwrap()).await;
        assert_eq!(
            body(f.get(&base, "/close", "i").await.unwrap()).await,
            "bye"
        );
        // The kept connection was closed by the owner: the next forward
        // answers on a new one.
        let next = body(f.get(&base, "/peer", "i").await.unwrap()).await;
        assert_ne!(first, next, "a new connection has a new port");
        assert_eq!(f.idle(&addr.to_string()), 1);
    }

    #[tokio::test]
    async fn an_owner_that_is_gone_is_an_error_not_a_hang() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let f = Forwarder::default();
        let err = f
            .get(&format!("http://{addr}"), "/peer", "i")
            .await
            .unwrap_err();
        assert!(!err.is_empty());
        assert_eq!(f.idle(&addr.to_string()), 0);
        assert!(f.get("https://x:1", "/", "i").await.is_err());
    }
}
