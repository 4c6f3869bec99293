//! The stored form of pending waits and early Bs: [`Pending`] records and
//! their list codec [`PendingCodec`].

use std::sync::Arc;

use weir_core::{Codec, CodecError, Headers, Timestamp};

use crate::wire::{put_bytes, put_headers, Reader};

/// A pending wait (or an early B) as stored: the record's timestamp,
/// source partition and offset, value and headers (its result carries
/// them: see [`crate::Stream::await_event`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Pending<T> {
    pub timestamp: Timestamp,
    pub partition: i32,
    pub offset: i64,
    pub value: T,
    pub headers: Headers,
}

impl<T> Pending<T> {
    pub(super) fn id(&self) -> (Timestamp, i32, i64) {
        (self.timestamp, self.partition, self.offset)
    }
}

/// A list of [`Pending`] records, each value in its own codec:
/// `count (4) | (timestamp (8) | partition (4) | offset (8) | length (4) | value)*`,
/// then, when any record has headers, `'H' | (count (4) | (key length (4) |
/// key | 0 | 1 | value length (4) | value)*)*` — one header list per record
/// (a null value is a 0 and no length). Lists written before headers were
/// kept end after the records, and decode with no headers (so a list cut
/// exactly there would too; a store never holds a cut value).
pub struct PendingCodec<T>(Arc<dyn Codec<T>>);

impl<T> PendingCodec<T> {
    /// Values encoded with `inner`.
    pub fn new(inner: Arc<dyn Codec<T>>) -> Self {
        Self(inner)
    }
}

/// Marks the header section of a [`PendingCodec`] list.
const HEADERS: u8 = b'H';

fn bad(message: impl Into<String>) -> CodecError {
    CodecError::Decode {
        codec: "pending-list",
        message: message.into(),
    }
}

impl<T: 'static> Codec<Vec<Pending<T>>> for PendingCodec<T> {
    fn name(&self) -> &'static str {
        "pending-list"
    }

    fn encode(&self, list: &Vec<Pending<T>>) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(4 + list.len() * 32);
        out.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for p in list {
            let v = self.0.encode(&p.value)?;
            out.extend_from_slice(&p.timestamp.to_be_bytes());
            out.extend_from_slice(&p.partition.to_be_bytes());
            out.extend_from_slice(&p.offset.to_be_bytes());
            put_bytes(&mut out, &v);
        }
        if list.iter().any(|p| !p.headers.is_empty()) {
            out.push(HEADERS);
            for p in list {
                put_headers(&mut out, &p.headers);
            }
        }
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Pending<T>>, CodecError> {
        let mut r = Reader(bytes);
        let truncated =
            |r: &Reader<'_>| bad(format!("truncated at byte {}", bytes.len() - r.0.len()));
        let n = r.u32().ok_or_else(|| truncated(&r))? as usize;
        let mut list = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let (Some(timestamp), Some(partition), Some(offset), Some(value)) = (
                r.i64(),
                r.array().map(i32::from_be_bytes),
                r.i64(),
                r.bytes(),
            ) else {
                return Err(truncated(&r));
            };
            list.push(Pending {
                timestamp,
                partition,
                offset,
                value: self.0.decode(value)?,
                headers: Headers::new(),
            });
        }
        // Nothing more (a list written without headers), or the headers.
        if r.0.first() == Some(&HEADERS) {
            r.take(1);
            for p in &mut list {
                p.headers = r.headers().ok_or_else(|| truncated(&r))?;
            }
        }
        if !r.0.is_empty() {
            return Err(bad(format!("{} bytes after the list", r.0.len())));
        }
        Ok(list)
    }

    /// The list as JSON: `[{"timestamp", "partition", "offset", "value"}]`,
    /// each value through the inner codec's JSON view.
    fn to_json(&self, list: &Vec<Pending<T>>) -> Option<serde_json::Value> {
        Some(serde_json::Value::Array(
            list.iter()
                .map(|p| {
                    serde_json::json!({
                        "timestamp": p.timestamp,
                        "partition": p.partition,
                        "offset": p.offset,
                        "value": self
                            .0
                            .to_json(&p.value)
                            .unwrap_or_else(|| serde_json::json!({ "codec": self.0.name() })),
                    })
                })
                .collect(),
        ))
    }
}

/// A codec that is not there (the build already failed with a
/// `MissingCodec` error, so it is never used).
pub(crate) struct Unavailable;

impl<T: 'static> Codec<T> for Unavailable {
    fn name(&self) -> &'static str {
        "unavailable"
    }
    fn encode(&self, _: &T) -> Result<Vec<u8>, CodecError> {
        Err(CodecError::Encode {
            codec: "unavailable",
            message: "no codec was given".into(),
        })
    }
    fn decode(&self, _: &[u8]) -> Result<T, CodecError> {
        Err(bad("no codec was given"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use weir_core::{Codec, Headers, Str};

    use super::{Pending, PendingCodec};

    fn codec() -> PendingCodec<String> {
        PendingCodec::new(std::sync::Arc::new(Str))
    }

    fn pending() -> impl Strategy<Value = Pending<String>> {
        let header = ("[a-z-]{0,6}", proptest::option::of(any::<Vec<u8>>()));
        (
            any::<i64>(),
            any::<i32>(),
            any::<i64>(),
            ".{0,8}",
            proptest::collection::vec(header, 0..3),
        )
            .prop_map(|(timestamp, partition, offset, value, hs)| {
                let mut headers = Headers::new();
                for (k, v) in hs {
                    headers.push(k, v);
                }
                Pending {
                    timestamp,
                    partition,
                    offset,
                    value,
                    headers,
                }
            })
    }

    proptest! {
        #[test]
        fn a_list_round_trips_and_a_cut_one_is_an_error(
            list in proptest::collection::vec(pending(), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let c = codec();
            let bytes = c.encode(&list).unwrap();
            prop_assert_eq!(c.decode(&bytes).unwrap(), list.clone());
            // Without headers the list is written as before headers were
            // kept: nothing after the records.
            let bare: Vec<_> = list
                .iter()
                .cloned()
                .map(|p| Pending { headers: Headers::new(), ..p })
                .collect();
            let old = c.encode(&bare).unwrap();
            let records: usize = bare.iter().map(|p| 24 + p.value.len()).sum();
            prop_assert_eq!(old.len(), 4 + records);
            prop_assert_eq!(c.decode(&old).unwrap(), bare);
            // Any shorter prefix is refused, never misread (an empty list's
            // only prefix is empty).
            if !bytes.is_empty() {
                let n = cut.index(bytes.len());
                prop_assert!(c.decode(&bytes[..n]).is_err() || (n == old.len() && bytes != old));
            }
        }
    }
}
