//! Testing Weir topologies, with and without a broker.
//!
//! - [`TopologyTestDriver`]: pipe records into a topology and read what it
//!   writes, per topic, with no broker and no threads. It drives the same
//!   [`weir_dsl::TaskExecutor`] as the runtime, so a unit test exercises the
//!   production processing path, including dead-lettering.
//! - [`TestBroker`]: the Kafka-protocol broker for integration tests. With
//!   `WEIR_TEST_BOOTSTRAP` set it uses that cluster and starts nothing;
//!   otherwise it starts crabka-broker (see `tools/test-broker/`) as a
//!   separate process on its own loopback address, performs the
//!   `transaction.version` start-up step, and stops it on drop.

mod broker;
mod clients;
mod driver;
mod features;
mod process;

pub use broker::{create_compacted_topics, create_topics, BrokerError, BrokerProcess, TestBroker};
pub use clients::{force_rebalance, publish, publish_at, publish_records, TopicReader};
pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use features::{downgrade_transaction_version, FeatureError};
pub use process::{summary_counter, terminate};
