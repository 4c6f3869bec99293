//! `weir run <topology>` and `weir describe <topology>`: the example
//! topologies shipped with Weir, run or printed exactly as their own
//! binaries would (same embedded defaults, `--config`, `WEIR_*`).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use weir::{AppBuilder, Topology};

/// One shipped topology: its name, what it does, its app and its graph.
struct Bundled {
    name: &'static str,
    about: &'static str,
    app: fn() -> AppBuilder,
    topology: fn() -> Topology,
}

const BUNDLED: &[Bundled] = &[
    Bundled {
        name: "event-router",
        about: "filter, enrich, route by type, multicast to an audit topic",
        app: event_router::app,
        topology: event_router::topology,
    },
    Bundled {
        name: "customer-totals",
        about: "count and total of amounts per customer (repartition, aggregate)",
        app: customer_totals::app,
        topology: customer_totals::topology,
    },
    Bundled {
        name: "event-enricher",
        about: "events enriched with their customer's tier (stream-table join)",
        app: event_enricher::app,
        topology: event_enricher::topology,
    },
    Bundled {
        name: "windowed-metrics",
        about: "counts and sums per type and region in tumbling windows",
        app: windowed_metrics::app,
        topology: windowed_metrics::topology,
    },
    Bundled {
        name: "order-workflow",
        about: "each order waits for its payment until a timeout",
        app: order_workflow::app,
        topology: order_workflow::topology,
    },
    Bundled {
        name: "order-payment-join",
        about: "orders joined with their payments within 10 minutes",
        app: order_payment_join::app,
        topology: order_payment_join::topology,
    },
    Bundled {
        name: "refund-fanout",
        about: "validated refund requests fanned out to four departments",
        app: refund_fanout::app,
        topology: refund_fanout::topology,
    },
];

/// `weir run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The topology (`weir describe` lists them).
    topology: String,
    /// A TOML config file; `WEIR_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `weir describe`.
#[derive(Args, Debug, Clone)]
pub struct DescribeArgs {
    /// The topology; without it, the list of shipped topologies.
    topology: Option<String>,
    /// A TOML config file (its topic renames and parameters show).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// `weir describe --format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Mermaid,
}

fn find(name: &str) -> anyhow::Result<&'static Bundled> {
    match BUNDLED.iter().find(|b| b.name == name) {
        Some(b) => Ok(b),
        None => bail!(
            "no topology {name:?} ships with weir; there are {}",
            names().join(", ")
        ),
    }
}

fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|b| b.name).collect()
}

/// The topology binary's command line for `command`.
fn args(b: &Bundled, config: Option<&PathBuf>, command: &[&str]) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![b.name.into()];
    if let Some(c) = config {
        a.push("--config".into());
        a.push(c.into());
    }
    a.extend(command.iter().map(Into::into));
    a
}

/// Runs `weir run`: joins the topology's group and processes records until
/// SIGTERM/Ctrl-C.
///
/// # Errors
/// An unknown topology, bad configuration, or the instance's failure.
pub fn run(args_: RunArgs) -> anyhow::Result<()> {
    let b = find(&args_.topology)?;
    let app = (b.app)().from_args(args(b, args_.config.as_ref(), &["run"]))?;
    app.run((b.topology)())?;
    Ok(())
}

/// Runs `weir describe`: prints the topology (after the configuration's
/// topic renames), or the list of shipped ones.
///
/// # Errors
/// An unknown topology or bad configuration.
pub fn describe(args_: DescribeArgs) -> anyhow::Result<()> {
    let Some(name) = &args_.topology else {
        let width = names().iter().map(|n| n.len()).max().unwrap_or(0);
        for b in BUNDLED {
            println!("{:<width$}  {}", b.name, b.about);
        }
        return Ok(());
    };
    let b = find(name)?;
    let format = match args_.format {
        Format::Text => "text",
        Format::Mermaid => "mermaid",
    };
    let command = ["describe", "--format", format];
    let app = (b.app)().from_args(args(b, args_.config.as_ref(), &command))?;
    app.run((b.topology)())?;
    Ok(())
}
