//! The event status ledger: per event id, what became of it.
//!
//! `source.with_status_ledger(StatusLedger::named("order-status")...)` on
//! a source stream records, in the store `<name>` (key: the event id as
//! text; value: a JSON [`LedgerEntry`]), the status of each record read
//! from that source, in the transaction that processes it — exactly once
//! with the processing:
//!
//! | status | when |
//! |---|---|
//! | `COMPLETED` | processed (`attempts` = the tries it took) |
//! | `RETRY` | failed retryably in a retrying node; waits for its next try |
//! | `UNPROCESSED` | waits behind an earlier record of its key in a retrying node |
//! | `ERROR` | dead-lettered at once (decode, permanent, validation, panic, …) |
//! | `FAILED` | dead-lettered after its tries ran out, or as poison |
//! | `IN_PROGRESS` | never committed: processing a record is atomic |
//!
//! The event id is taken from the record by a function (default: the key
//! as UTF-8; a record without one is not recorded). Entries expire
//! `retention` after their last update (a wall-clock timer per entry in
//! `<name>-expiry`, owned by the ledger's node; firing re-checks the
//! entry). Query the store through the instance's query handles, or
//! [`LedgerEntry::decode`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_core::{ProcessError, Record, Timestamp};
use weir_state::{Clock, KeyValueStore, StoreId, TaskState, Timer};

use crate::builder::Stream;
use crate::process::{Processor, ProcessorContext, StoreRef};

/// An event's status; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Waits behind an earlier record of its key.
    Unprocessed,
    /// Being processed (never committed).
    InProgress,
    /// Processed.
    Completed,
    /// Dead-lettered at once.
    Error,
    /// Waits for another try.
    Retry,
    /// Dead-lettered after its tries ran out, or as poison.
    Failed,
}

/// One event's entry in the ledger (stored as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// What became of it.
    pub status: EventStatus,
    /// Tries so far.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was first recorded (wall clock, ms).
    pub first_seen: Timestamp,
    /// When it was last updated (wall clock, ms).
    pub updated_at: Timestamp,
}

impl LedgerEntry {
    /// An entry as stored.
    ///
    /// # Errors
    /// When the bytes are not a ledger entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

type EventId = Arc<dyn Fn(&Record) -> Option<String> + Send + Sync>;

/// A status ledger's configuration; see the module docs.
#[derive(Clone)]
pub struct StatusLedger {
    name: String,
    id: EventId,
    retention_ms: i64,
}

impl StatusLedger {
    /// A ledger in store `name`, keyed by the record key, kept 7 days.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: Arc::new(|r: &Record| {
                r.key
                    .as_deref()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .map(str::to_string)
            }),
            retention_ms: 7 * 24 * 3_600_000,
        }
    }

    /// Takes the event id from each record with `f` (`None`: not recorded).
    pub fn event_id(
        mut self,
        f: impl Fn(&Record) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.id = Arc::new(f);
        self
    }

    /// A typed handle on the ledger's store (event id → entry), for the
    /// test driver's `store_get` and the query handles.
    pub fn store(&self) -> crate::Store<String, LedgerEntry> {
        crate::Store {
            name: self.name.as_str().into(),
            key_codec: Arc::new(weir_core::Str),
            value_codec: Arc::new(weir_core::Json::<LedgerEntry>::new()),
        }
    }

    /// Keeps an entry `d` after its last update.
    pub fn retention(mut self, d: Duration) -> Self {
        self.retention_ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
        self
    }
}

/// The ledger of a topology, as the executor uses it.
#[derive(Clone)]
pub(crate) struct LedgerSpec {
    pub store: String,
    /// The source topic whose records it records.
    pub topic: String,
    /// The ledger's node (owns the expiry timers).
    pub node: usize,
    pub id: EventId,
    pub retention_ms: i64,
}

/// A status change a node asks for (for the record being processed, or
/// for an event id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusUpdate {
    pub status: EventStatus,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Writes `update` for event `id` in ledger store `store` at `now`;
/// whether the entry is new.
pub(crate) fn record_status(
    state: &mut TaskState,
    store: StoreId,
    id: &str,
    update: &StatusUpdate,
    now: Timestamp,
) -> Result<bool, weir_state::StoreError> {
    let mut s = state.store(store);
    let old = s
        .get(id.as_bytes())?
        .and_then(|b| LedgerEntry::decode(&b).ok());
    let entry = LedgerEntry {
        status: update.status,
        attempts: update.attempts,
        last_error: update.error.clone().or_else(|| {
            old.as_ref()
                .and_then(|o| o.last_error.clone())
                .filter(|_| update.status != EventStatus::Completed)
        }),
        first_seen: old.as_ref().map_or(now, |o| o.first_seen),
        updated_at: now,
    };
    let bytes = serde_json::to_vec(&entry).expect("a ledger entry serializes");
    s.put(id.as_bytes(), &bytes)?;
    Ok(old.is_none())
}

impl<K, V> Stream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Records the status of every record of this source stream in a
    /// ledger (see the module docs). Call it on a stream returned by
    /// `TopologyBuilder::stream`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use weir_core::Str;
    /// use weir_dsl::{StatusLedger, TopologyBuilder};
    ///
    /// let b = TopologyBuilder::new();
    /// b.stream("orders", Str, Str)
    ///     .with_status_ledger(StatusLedger::named("order-status").retention(Duration::from_secs(86_400)))
    ///     .to("accepted");
    /// assert_eq!(b.build().unwrap().stores(), vec!["order-status", "order-status-expiry"]);
    /// ```
    pub fn with_status_ledger(&self, ledger: StatusLedger) -> Stream<K, V> {
        let topic = {
            let g = self.graph.borrow();
            match &g.nodes[self.node].op {
                crate::graph::Op::Source { topic, .. } => Some(topic.clone()),
                _ => None,
            }
        };
        let Some(topic) = topic else {
            self.graph
                .borrow_mut()
                .errors
                .push(crate::graph::BuildError::InvalidWindows {
                    store: ledger.name.clone(),
                    message: "a status ledger goes on a source stream (TopologyBuilder::stream)"
                        .into(),
                });
            return self.clone();
        };
        let expiry = format!("{}-expiry", ledger.name);
        {
            let mut g = self.graph.borrow_mut();
            g.declare_store(&ledger.name);
            g.declare_timer_store(&expiry);
        }
        let store = ledger.name.clone();
        let node: Stream<K, V> = self.process_with(
            format!("{}-ledger", ledger.name),
            &[&StoreRef(ledger.name.clone()), &StoreRef(expiry.clone())],
            move || LedgerNode {
                store: store.clone(),
                retention_ms: ledger.retention_ms,
            },
        );
        let mut g = self.graph.borrow_mut();
        g.nodes[node.node].kind = "status_ledger";
        g.ledger = Some(LedgerSpec {
            store: ledger.name,
            topic,
            node: node.node,
            id: ledger.id,
            retention_ms: ledger.retention_ms,
        });
        self.clone()
    }
}

/// The ledger's node: forwards nothing; expires entries on its timers.
struct LedgerNode {
    store: String,
    retention_ms: i64,
}

impl<K: Send + 'static, V: Send + 'static> Processor<K, V, K, V> for LedgerNode {
    fn process(
        &mut self,
        _: &mut ProcessorContext<'_, K, V>,
        _: K,
        _: V,
    ) -> Result<(), ProcessError> {
        // The executor records each record's status once it is settled.
        Ok(())
    }

    fn on_timer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        timer: Timer,
    ) -> Result<(), ProcessError> {
        let now = ctx.wall_clock();
        let store = self.store.clone();
        let updated = {
            let (node, state) = ctx.raw();
            let err = |e: weir_state::StoreError| ProcessError::Store {
                node: node.to_string(),
                store: store.clone(),
                message: e.to_string(),
            };
            let id = state.store_id(&store).map_err(err)?;
            let mut s = state.store(id);
            let entry = s
                .get(&timer.key)
                .map_err(err)?
                .and_then(|b| LedgerEntry::decode(&b).ok());
            match entry {
                Some(e) if e.updated_at.saturating_add(self.retention_ms) > now => {
                    Some(e.updated_at)
                }
                Some(_) => {
                    s.delete(&timer.key).map_err(err)?;
                    None
                }
                None => None,
            }
        };
        if let Some(updated_at) = updated {
            ctx.schedule_at(
                Clock::Wall,
                updated_at.saturating_add(self.retention_ms),
                &timer.key,
                &[],
            )?;
        }
        Ok(())
    }
}
