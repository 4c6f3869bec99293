//! `weir`: the operator's tool.
//!
//! - `weir demo`: starts a local test broker, runs the event-router on ~1,000
//!   sample events (a few malformed) and prints what arrived where.
//! - `weir dev-broker`: runs a local Kafka-protocol test broker until
//!   stopped (what `make test` uses).

mod demo;
mod dev_broker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir", about = "Weir: operate stream-processing topologies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the event-router end to end on a fresh local broker and show the result.
    Demo(demo::DemoArgs),
    /// Run a local test broker (crabka-broker) until SIGTERM/Ctrl-C.
    DevBroker(dev_broker::DevBrokerArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::DevBroker(args) => dev_broker::run(args),
    }
}
