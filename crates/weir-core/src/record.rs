//! The untyped record that crosses the boundary between Kafka and a topology.

/// Milliseconds since the Unix epoch, as Kafka stores record timestamps.
pub type Timestamp = i64;

/// One record header: Kafka allows repeated keys and null values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value; `None` is Kafka's null header value.
    pub value: Option<Vec<u8>>,
}

/// Record headers, in the order Kafka delivered them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a header, keeping any earlier one with the same key.
    pub fn push(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) {
        self.0.push(Header {
            key: key.into(),
            value,
        });
    }

    /// Replaces every header named `key` with one holding `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        self.0.retain(|h| h.key != key);
        self.push(key, Some(value.into()));
    }

    /// The value of the last header named `key`, if any.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    /// The value of the last header named `key` as UTF-8 text, if it is text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Iterates the headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A record as Kafka holds it: serialized key and value, headers, timestamp,
/// and where it was read from.
///
/// Outputs of a topology carry the topic they are bound for; `partition` and
/// `offset` are then meaningless (`-1`), since the partitioner decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The topic the record was read from, or is bound for.
    pub topic: String,
    /// The partition it was read from (`-1` for outputs).
    pub partition: i32,
    /// Its offset in that partition (`-1` for outputs).
    pub offset: i64,
    /// The serialized key; `None` is Kafka's null key.
    pub key: Option<Vec<u8>>,
    /// The serialized value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// The record's headers.
    pub headers: Headers,
    /// The record's timestamp.
    pub timestamp: Timestamp,
}

impl Record {
    /// A record bound for (or read from) `topic`, with no position yet.
    pub fn new(
        topic: impl Into<String>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition: -1,
            offset: -1,
            key,
            value,
            headers: Headers::new(),
            timestamp,
        }
    }
}
