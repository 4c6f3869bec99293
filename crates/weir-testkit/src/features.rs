//! The test broker's start-up step: lower the cluster feature
//! `transaction.version` to 1 with a raw Kafka `UpdateFeatures` request.
//!
//! crabka-broker otherwise applies KIP-890's epoch bump at every commit, and
//! librdkafka's second transaction then fails as fenced. rdkafka's admin
//! client has no UpdateFeatures call, so this speaks the protocol directly:
//! request header v2, UpdateFeatures v1 (flexible versions throughout).
//! It is only ever sent to a broker Weir started itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const API_KEY_UPDATE_FEATURES: i16 = 57;
const API_VERSION: i16 = 1;
/// Upgrade type 2: safe downgrade.
const SAFE_DOWNGRADE: i8 = 2;

/// The broker refused or garbled the `UpdateFeatures` request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// The connection failed.
    #[error("UpdateFeatures to {addr}: {source}")]
    Io {
        /// The broker address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The broker answered with an error code.
    #[error("UpdateFeatures to {addr} failed with error code {code}: {message}")]
    Refused {
        /// The broker address.
        addr: String,
        /// Kafka's error code.
        code: i16,
        /// The broker's message, if any.
        message: String,
    },
    /// The response could not be parsed.
    #[error("UpdateFeatures to {addr}: malformed response")]
    Malformed {
        /// The broker address.
        addr: String,
    },
}

fn uvarint(buf: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn compact_string(buf: &mut Vec<u8>, s: &str) {
    uvarint(buf, s.len() as u32 + 1);
    buf.extend_from_slice(s.as_bytes());
}

fn request(correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&API_KEY_UPDATE_FEATURES.to_be_bytes());
    body.extend_from_slice(&API_VERSION.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    let client_id = b"weir-testkit";
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.push(0); // header tagged fields
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    uvarint(&mut body, 2); // one feature update
    compact_string(&mut body, "transaction.version");
    body.extend_from_slice(&1i16.to_be_bytes()); // max_version_level
    body.push(SAFE_DOWNGRADE as u8);
    body.push(0); // feature update tagged fields
    body.push(0); // validate_only = false
    body.push(0); // request tagged fields
    let mut framed = (body.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn compact_nullable_string(&mut self) -> Option<Option<String>> {
        match self.uvarint()? {
            0 => Some(None),
            n => Some(Some(
                String::from_utf8_lossy(self.take(n as usize - 1)?).into_owned(),
            )),
        }
    }
    fn skip_tags(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let len = self.uvarint()?;
            self.take(len as usize)?;
        }
        Some(())
    }
}

/// Parses the response; returns the first error code and message found.
fn parse_response(buf: &[u8]) -> Option<(i16, String)> {
    let mut r = Reader(buf);
    r.i32()?; // correlation id
    r.skip_tags()?;
    r.i32()?; // throttle
    let code = r.i16()?;
    let message = r.compact_nullable_string()?.unwrap_or_default();
    if code != 0 {
        return Some((code, message));
    }
    let results = r.uvarint()?.saturating_sub(1);
    for _ in 0..results {
        r.compact_nullable_string()?;
        let code = r.i16()?;
        let message = r.compact_nullable_string()?.unwrap_or_default();
        r.skip_tags()?;
        if code != 0 {
            return Some((code, message));
        }
    }
    Some((0, String::new()))
}

/// Sets the cluster feature `transaction.version` to 1 on the broker at `addr`.
///
/// # Errors
/// A [`FeatureError`] if the broker cannot be reached, refuses, or answers
/// something unparsable.
pub fn downgrade_transaction_version(addr: &str) -> Result<(), FeatureError> {
    let io = |source| FeatureError::Io {
        addr: addr.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(addr).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    stream.write_all(&request(1)).map_err(io)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(io)?;
    let len = i32::from_be_bytes(len);
    if !(0..=1 << 20).contains(&len) {
        return Err(FeatureError::Malformed {
            addr: addr.to_string(),
        });
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).map_err(io)?;
    match parse_response(&buf) {
        Some((0, _)) => Ok(()),
        Some((code, message)) => Err(FeatureError::Refused {
            addr: addr.to_string(),
            code,
            message,
        }),
        None => Err(FeatureError::Malformed {
            addr: addr.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_framed_with_its_length() {
        let r = request(7);
        let len = i32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize;
        assert_eq!(len, r.len() - 4);
        assert_eq!(&r[4..6], &57i16.to_be_bytes());
        assert_eq!(&r[6..8], &1i16.to_be_bytes());
        assert_eq!(&r[8..12], &7i32.to_be_bytes());
    }

    #[test]
    fn response_errors_are_reported() {
        // correlation id, no tags, throttle 0, error 0, null message,
        // one result: "transaction.version", error 42, message "no".
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        compact_string(&mut b, "transaction.version");
        b.extend_from_slice(&42i16.to_be_bytes());
        compact_string(&mut b, "no");
        b.push(0);
        b.push(0);
        assert_eq!(parse_response(&b), Some((42, "no".to_string())));
        assert_eq!(parse_response(&b[..5]), None);
    }
}
