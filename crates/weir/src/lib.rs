//! Weir: Kafka-Streams-style stream processing in Rust.
//!
//! Define a topology with the typed DSL, run it with [`App`]:
//!
//! ```no_run
//! use weir::prelude::*;
//!
//! fn topology() -> Topology {
//!     let b = Topology::builder();
//!     let events = b.stream("events", Str, Json::<serde_json::Value>::new());
//!     let kept = events.filter(|_, e| e["amount"].as_f64().unwrap_or(0.0) > 0.0);
//!     kept.to("audit");
//!     kept.branch()
//!         .when(|_, e| e["type"] == "order", |s| s.to("orders"))
//!         .otherwise(|s| s.to("other"));
//!     b.build().expect("valid topology")
//! }
//!
//! fn main() -> weir::Result<()> {
//!     weir::App::from_env()?.run(topology())
//! }
//! ```
//!
//! The crates behind it: [`weir_core`] (records, codecs, errors),
//! [`weir_dsl`] (topology builder and the task executor), [`weir_runtime`]
//! (configuration and the exactly-once commit loop on rdkafka), and
//! [`weir_state`] (the stores under stateful nodes).

mod app;
pub mod dlq;
mod output;
mod query;
pub mod schema;
pub mod telemetry;

pub use app::{App, AppBuilder};
pub use output::Output;
pub use query::{Running, StoreQuery};
pub use weir_core as core;
pub use weir_dsl as dsl;
pub use weir_runtime as runtime;
pub use weir_schema as schemas;
pub use weir_state as state;

pub use weir_core::{Bincode, Bytes, Codec, Json, Record, Str};
pub use weir_dsl::{Clock, Processor, ProcessorContext, Store, Timer, Timers};
pub use weir_dsl::{Stream, Topology, TopologyBuilder};
pub use weir_runtime::{
    Config, ConfigValue, Error, LocalStores, ProcessingGuarantee, QueryError, Result,
    StorePartition,
};

/// What a topology file needs: codecs, the builder, the app.
pub mod prelude {
    pub use crate::App;
    pub use weir_core::{Bincode, Bytes, Codec, Json, Str};
    pub use weir_core::{Failure, OpError, ProcessError};
    pub use weir_dsl::{
        hopping, session, sliding, tumbling, CircuitBreaker, Clock, JoinWindows, Outcome,
        Processor, ProcessorContext, RetryPolicy, StatusLedger, Store, Stream, Suppressed, Table,
        Timer, Timers, Topology, TopologyBuilder, Wait, Waited, Window, Windowed,
    };
}
