//! The typed topology DSL and the [`TaskExecutor`] that runs it.
//!
//! A [`TopologyBuilder`] hands out typed [`Stream`] handles; each operator
//! adds a node to a graph whose records are type-erased (`Box<dyn Any>`), so
//! the built [`Topology`] is one plain value that can be shared by every task
//! and thread. The typed handles guarantee that each node only ever sees the
//! types it was built for; a failed downcast is a bug in this crate, not in
//! user input.
//!
//! The same [`TaskExecutor`] runs a task in production (`weir-runtime`) and in
//! unit tests (`weir-testkit`'s `TopologyTestDriver`), so a unit test exercises
//! the real processing path. The executor knows nothing of Kafka clients: it
//! takes a [`weir_core::Record`] and appends output records to a buffer.
//!
//! # Processing contract
//! - A record is processed completely or not at all: its outputs are appended
//!   only if every node succeeded; on a decode/encode error or a panic in user
//!   code, the outputs of that record are discarded and the error is returned
//!   so the caller dead-letters the input.
//! - Outputs keep the input record's timestamp and headers (as in Kafka Streams).
//! - Per-partition order is kept: outputs are appended in processing order.

mod breaker;
mod builder;
mod describe;
mod executor;
mod fallible;
mod graph;
mod grouped;
mod join;
mod ledger;
mod metrics;
mod params;
mod process;
mod retry;
mod session;
mod sliding;
mod store_view;
mod suppress;
mod table;
mod validate;
mod wait;
mod window;
mod wire;

pub use breaker::CircuitBreaker;
pub use builder::{BranchBuilder, Stream, TopologyBuilder};
pub use describe::{NodeDescription, SubtopologyDescription, TopologyDescription};
pub use executor::{TaskExecutor, TimerRun};
pub use graph::{BuildError, DeadLetterFix, Topology};
pub use grouped::{Grouped, Table};
pub use join::{JoinWindows, JoinWith};
pub use ledger::{EventStatus, LedgerEntry, StatusLedger};
pub use metrics::{NodeCounts, TaskMetrics};
pub use params::{Param, ParamDescription, ParamValue};
pub use process::{
    Processor, ProcessorContext, Store, StoreName, TimerFailure, Timers, TypedStore,
};
pub use retry::{RetryPolicy, Retrying};
pub use session::{session, SessionGrouped, SessionTable, SessionWindows};
pub use sliding::{sliding, SlidingGrouped, SlidingWindows};
pub use store_view::{StoreKind, StoreView};
pub use wait::{Outcome, Pending, PendingCodec, Wait, Waited};
pub use weir_state::{Clock, Timer};
pub use window::{
    hopping, tumbling, Suppressed, TimeWindows, Window, Windowed, WindowedCodec, WindowedGrouped,
    WindowedStore, WindowedTable,
};
