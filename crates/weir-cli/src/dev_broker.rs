//! `weir dev-broker`: a local test broker for `make test` and experiments.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use weir_testkit::BrokerProcess;

/// Arguments of `weir dev-broker`.
#[derive(clap::Args)]
pub struct DevBrokerArgs {
    /// IPv4 address to listen on (the controller port is always 9093 on
    /// it), or `auto`: a free loopback address 127.0.0.N of its own.
    #[arg(long, default_value = "127.0.0.1")]
    ip: String,
    /// Port for clients (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Data directory (must not exist or be empty; removed at exit).
    /// Default: a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write `host:port` here once the broker is ready for transactions.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// Runs the broker until SIGTERM or Ctrl-C.
pub fn run(args: DevBrokerArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("weir-dev-broker-")
            .tempdir()?
            .keep(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let broker = if args.ip == "auto" {
        BrokerProcess::start_on_free_loopback(&data_dir)
    } else {
        let ip: Ipv4Addr = args
            .ip
            .parse()
            .with_context(|| format!("--ip {:?} is not an IPv4 address or auto", args.ip))?;
        BrokerProcess::start(ip, args.port, &data_dir)
    }
    .with_context(|| format!("starting the test broker on {}", args.ip))?;
    println!("{}", broker.bootstrap());
    if let Some(f) = &args.ready_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, broker.bootstrap())?;
        std::fs::rename(&tmp, f)?;
    }
    eprintln!(
        "weir dev-broker: ready at {} (data {}); stop with Ctrl-C",
        broker.bootstrap(),
        data_dir.display()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(broker);
    Ok(())
}
