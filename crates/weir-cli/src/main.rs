//! `weir`: the operator's tool.
//!
//! - `weir demo`: starts a local test broker, runs the event-router on ~1,000
//!   sample events (a few malformed) and prints what arrived where.
//! - `weir run <topology>` / `weir describe [<topology>]`: a topology that
//!   ships with Weir, run or printed as its own binary would.
//! - `weir dev-broker`: runs a local Kafka-protocol test broker until
//!   stopped (what `make test` uses).
//! - `weir dlq list|replay`: any topology's dead letters, configured by
//!   `WEIR_*` variables or `--config` (fix-ups run from the topology's own
//!   binary).
//! - `weir schema register|get|list`: event definitions on the cluster's
//!   `_weir_event_definitions` topic.
//! - `weir ingress`: HTTP ingress (`POST /v1/events`) on its own; `weir
//!   publish`: events through an ingress or straight to Kafka (see
//!   `ingress.rs`).
//! - `weir query`, `weir topology`, and `weir dlq|schema --admin URL …`:
//!   through a running instance's admin endpoint (see `admin.rs`).

mod admin;
mod bundled;
mod demo;
mod dev_broker;
mod ingress;

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
    /// Run a topology that ships with Weir (as its own binary would) until
    /// SIGTERM/Ctrl-C.
    Run(bundled::RunArgs),
    /// Print a topology that ships with Weir, or list them.
    Describe(bundled::DescribeArgs),
    /// Run a local test broker (crabka-broker) until SIGTERM/Ctrl-C.
    DevBroker(dev_broker::DevBrokerArgs),
    /// Inspect or replay an application's dead-letter topic (through Kafka,
    /// or a running instance with `--admin`).
    Dlq {
        /// A TOML config file; `WEIR_*` environment variables override it.
        #[arg(long, global = true)]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        via: Via,
        #[command(subcommand)]
        command: weir::dlq::DlqCommand,
    },
    /// Register, get or list event definitions (`_weir_event_definitions`;
    /// through Kafka, or a running instance with `--admin`).
    Schema {
        /// A TOML config file; `WEIR_*` environment variables override it.
        #[arg(long, global = true)]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        via: Via,
        #[command(subcommand)]
        command: weir::schema::SchemaCommand,
    },
    /// Read a store of a running topology by key (any instance answers,
    /// forwarding to the owner), or a range over every partition.
    Query(admin::QueryArgs),
    /// Print a running topology (its sub-topologies and nodes).
    Topology(admin::TopologyArgs),
    /// Serve HTTP ingress (`POST /v1/events`: checked against event
    /// definitions, written to the configured topics) until SIGTERM/Ctrl-C.
    Ingress(ingress::IngressArgs),
    /// Publish events through an ingress (`--ingress URL`) or straight to
    /// Kafka, with the same checks; prints each answer.
    Publish(ingress::PublishArgs),
}

/// `--admin` for the commands that can go through an admin endpoint.
#[derive(clap::Args)]
struct Via {
    /// Go through this instance's admin endpoint (`http://host:port`)
    /// instead of Kafka.
    #[arg(long, env = "WEIR_ADMIN_URL", global = true)]
    admin: Option<String>,
    /// The bearer token of mutating routes (with `--admin`).
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// How to print (`json`: the admin endpoint's JSON, either way).
    #[arg(long, value_enum, default_value_t = admin::Output::Table, global = true)]
    output: admin::Output,
}

impl Via {
    fn endpoint(&self) -> Option<admin::Endpoint> {
        self.admin.clone().map(|admin| admin::Endpoint {
            admin,
            token: self.token.clone(),
        })
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => bundled::run(args),
        Command::Describe(args) => bundled::describe(args),
        Command::DevBroker(args) => dev_broker::run(args),
        Command::Query(args) => admin::query(args),
        Command::Topology(args) => admin::topology(args),
        Command::Ingress(args) => ingress::serve(args),
        Command::Publish(args) => ingress::publish(args),
        Command::Dlq { via, command, .. } if via.admin.is_some() => {
            admin::dlq(&via.endpoint().expect("--admin"), via.output, command)
        }
        Command::Schema { via, command, .. } if via.admin.is_some() => {
            admin::schema(&via.endpoint().expect("--admin"), via.output, command)
        }
        Command::Dlq {
            config,
            command,
            via,
        } => {
            // A named dead-letter topic needs no application: the replay's
            // group and transactional id are then named after the topic
            // (`weir-dlq-<topic>-dlq-replay`) unless one is configured.
            let named = match &command {
                weir::dlq::DlqCommand::List { topic, .. } => topic.clone(),
                weir::dlq::DlqCommand::Replay(a) => a.topic.clone(),
            };
            let defaults = match named {
                Some(topic) => [(
                    "application_id".to_string(),
                    weir::runtime::ConfigValue::from(format!("weir-dlq-{topic}").as_str()),
                )]
                .into(),
                None => Default::default(),
            };
            let cfg = weir::runtime::Config::load(&defaults, config.as_deref(), std::env::vars())?;
            weir::dlq::run_dlq(&cfg, None, command, via.output)?;
            Ok(())
        }
        Command::Schema {
            config,
            command,
            via,
        } => {
            // Definitions belong to the cluster, not to an application:
            // only the connection settings matter.
            let defaults = [(
                "application_id".to_string(),
                weir::runtime::ConfigValue::from("weir-schema"),
            )]
            .into();
            let cfg = weir::runtime::Config::load(&defaults, config.as_deref(), std::env::vars())?;
            weir::schema::run_schema(&cfg, command, via.output)?;
            Ok(())
        }
    }
}
