//! Parked records of a retrying node: their encoding in `<name>-retries`
//! and the keys that keep a key's records in arrival order.

use weir_core::{Headers, ProcessError, Record, Timestamp};
use weir_state::{KeyRange, KeyValueStore, TaskState};

use crate::wire::{put_bytes, put_headers, Reader};

/// A record's key and value as read from its topic.
pub(super) type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A record waiting for its next try (or behind one of its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Parked {
    /// Tries made so far (0: parked behind its key's head, not tried).
    pub(super) tries: u32,
    pub(super) timestamp: Timestamp,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) headers: Headers,
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
    /// The last failure's message.
    pub(super) error: String,
    /// Its id in the status ledger, if recorded there.
    pub(super) event_id: Option<String>,
    /// The input record's key and value as read, when they differ from
    /// the node's input (operators upstream): what its dead letter carries.
    pub(super) raw: Option<RawRecord>,
}

impl Parked {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.key.len() + self.value.len());
        b.extend_from_slice(&self.tries.to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.partition.to_be_bytes());
        b.extend_from_slice(&self.offset.to_be_bytes());
        put_bytes(&mut b, self.topic.as_bytes());
        put_headers(&mut b, &self.headers);
        put_bytes(&mut b, &self.key);
        put_bytes(&mut b, &self.value);
        put_bytes(&mut b, self.error.as_bytes());
        match &self.event_id {
            Some(id) => {
                b.push(1);
                put_bytes(&mut b, id.as_bytes());
            }
            None => b.push(0),
        }
        match &self.raw {
            Some((k, v)) => {
                b.push(1);
                for part in [k, v] {
                    match part {
                        Some(p) => {
                            b.push(1);
                            put_bytes(&mut b, p);
                        }
                        None => b.push(0),
                    }
                }
            }
            None => b.push(0),
        }
        b
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let tries = r.u32()?;
        let timestamp = r.i64()?;
        let partition = i32::from_be_bytes(r.array()?);
        let offset = r.i64()?;
        let topic = r.string()?;
        let headers = r.headers()?;
        let key = r.bytes()?.to_vec();
        let value = r.bytes()?.to_vec();
        let error = r.string()?;
        let event_id = match r.u8()? {
            0 => None,
            _ => Some(r.string()?),
        };
        let raw = match r.u8()? {
            0 => None,
            _ => {
                let mut part = || -> Option<Option<Vec<u8>>> {
                    Some(match r.u8()? {
                        0 => None,
                        _ => Some(r.bytes()?.to_vec()),
                    })
                };
                let k = part()?;
                let v = part()?;
                Some((k, v))
            }
        };
        r.0.is_empty().then_some(Self {
            tries,
            timestamp,
            topic,
            partition,
            offset,
            headers,
            key,
            value,
            error,
            event_id,
            raw,
        })
    }

    /// The record as read, for its dead letter.
    pub(super) fn source(&self) -> Record {
        Record {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            key: self
                .raw
                .as_ref()
                .map_or(Some(self.key.clone()), |(k, _)| k.clone()),
            value: self
                .raw
                .as_ref()
                .map_or(Some(self.value.clone()), |(_, v)| v.clone()),
            headers: self.headers.clone(),
            timestamp: self.timestamp,
        }
    }
}

/// The entries of one key share the prefix `len(key) | key`; each ends
/// with an 8-byte big-endian sequence number, in arrival order.
pub(super) fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + key.len() + 8);
    p.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    p.extend_from_slice(key);
    p
}

pub(super) fn entry_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix and sequence number of an entry key.
pub(super) fn split_entry(key: &[u8]) -> Option<(&[u8], u64)> {
    let at = key.len().checked_sub(8)?;
    let seq = u64::from_be_bytes(key[at..].try_into().ok()?);
    Some((&key[..at], seq))
}

pub(super) fn store_err(node: &str, store: &str, e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Store {
        node: node.to_string(),
        store: store.to_string(),
        message: e.to_string(),
    }
}

/// The parked entries of a key, in order.
pub(super) fn entries_of(
    state: &mut TaskState,
    node: &str,
    store: &str,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, Parked)>, ProcessError> {
    let id = state
        .store_id(store)
        .map_err(|e| store_err(node, store, e))?;
    let s = state.store(id);
    let mut out = Vec::new();
    for entry in s
        .range(KeyRange::prefix(prefix))
        .map_err(|e| store_err(node, store, e))?
    {
        let (k, v) = entry.map_err(|e| store_err(node, store, e))?;
        // Another key's entries may share the prefix bytes only if their
        // length differs, which the length prefix rules out; the suffix is
        // exactly the sequence number.
        if k.len() != prefix.len() + 8 {
            continue;
        }
        let p = Parked::decode(&v)
            .ok_or_else(|| store_err(node, store, "a parked record does not decode"))?;
        out.push((k, p));
    }
    Ok(out)
}

pub(super) fn write(
    state: &mut TaskState,
    node: &str,
    store: &str,
    key: &[u8],
    value: Option<&Parked>,
) -> Result<(), ProcessError> {
    let id = state
        .store_id(store)
        .map_err(|e| store_err(node, store, e))?;
    let mut s = state.store(id);
    match value {
        Some(p) => s.put(key, &p.encode()),
        None => s.delete(key),
    }
    .map_err(|e| store_err(node, store, e))
}
