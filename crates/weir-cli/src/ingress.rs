//! `weir ingress`: HTTP ingress (`POST /v1/events`) on its own; `weir
//! publish`: publish events through an ingress (`--ingress URL`) or
//! straight to Kafka with the same checks.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use weir::runtime::{Config, ConfigValue};
use weir_admin::ingress::{Accepted, Ingress, Refusal};

/// `weir ingress`.
#[derive(Args, Debug)]
pub struct IngressArgs {
    /// A TOML config file; `WEIR_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to listen (`host:port`; default `admin_listen`, else
    /// `0.0.0.0:8088`).
    #[arg(long)]
    listen: Option<String>,
}

/// `weir publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The event type (with `--data`).
    #[arg(long = "type", required_unless_present = "file")]
    event_type: Option<String>,
    /// The event's `data`, a JSON object.
    #[arg(long, required_unless_present = "file")]
    data: Option<String>,
    /// The event's `source`.
    #[arg(long, default_value = "weir-cli")]
    source: String,
    /// The event's `id` (default: a new UUID).
    #[arg(long)]
    id: Option<String>,
    /// The event's `timestamp`, RFC 3339 (default: now).
    #[arg(long)]
    timestamp: Option<String>,
    /// `metadata.correlationId`.
    #[arg(long)]
    correlation_id: Option<String>,
    /// Whole events instead, one JSON object per line (`-`: standard input).
    #[arg(long, conflicts_with_all = ["event_type", "data", "id", "timestamp", "correlation_id"])]
    file: Option<PathBuf>,
    /// POST to this ingress (`http://host:port`) instead of writing to
    /// Kafka.
    #[arg(long, env = "WEIR_INGRESS_URL")]
    ingress: Option<String>,
    /// The ingress's bearer token.
    #[arg(long, env = "WEIR_INGRESS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Without `--ingress`: a TOML config file; `WEIR_*` environment
    /// variables override it (`ingress_topics`, `bootstrap_servers`, …).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load(config: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let defaults = [(
        "application_id".to_string(),
        ConfigValue::from("weir-ingress"),
    )]
    .into();
    Ok(Config::load(&defaults, config, std::env::vars())?)
}

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Serves `POST /v1/events` until SIGTERM or Ctrl-C.
pub fn serve(args: IngressArgs) -> anyhow::Result<()> {
    init_log();
    let cfg = load(args.config.as_deref())?;
    let listen = args
        .listen
        .or_else(|| cfg.admin_listen.clone())
        .unwrap_or_else(|| "0.0.0.0:8088".into());
    let ingress = Ingress::start(&cfg).context("cannot start the ingress")?;
    let routes = ingress.clone();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = weir_admin::AdminServer::serve_on(&listen, workers, |_| {
        Ok(weir_admin::ingress::standalone(routes))
    })?;
    eprintln!(
        "weir ingress: POST http://{}/v1/events",
        server.local_addr()
    );
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let _ = signals.forever().next();
    drop(server);
    ingress.flush(std::time::Duration::from_secs(5));
    Ok(())
}

/// The events to publish, as JSON text.
fn events(args: &PublishArgs) -> anyhow::Result<Vec<String>> {
    if let Some(path) = &args.file {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("{}", path.display()))?,
            ))
        };
        let mut out = Vec::new();
        for line in reader.lines() {
            let line = line?;
            if !line.trim().is_empty() {
                out.push(line);
            }
        }
        return Ok(out);
    }
    let data: serde_json::Value =
        serde_json::from_str(args.data.as_deref().unwrap_or("{}")).context("--data is not JSON")?;
    let mut event = serde_json::json!({
        "eventType": args.event_type,
        "source": args.source,
        "id": args.id.clone().unwrap_or_else(|| format!("evt-{}", uuid::Uuid::new_v4())),
        "timestamp": args.timestamp.clone().unwrap_or_else(now_rfc3339),
        "data": data,
    });
    if let Some(c) = &args.correlation_id {
        event["metadata"] = serde_json::json!({ "correlationId": c });
    }
    Ok(vec![event.to_string()])
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    weir_admin::ingress::format_timestamp(ms)
}

/// Publishes each event and prints its answer (one JSON line each); fails
/// when any was refused.
pub fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let events = events(&args)?;
    let mut refused = 0usize;
    let mut print = |answer: Result<Accepted, Refusal>| match answer {
        Ok(a) => println!("{}", serde_json::to_string(&a).unwrap_or_default()),
        Err(r) => {
            refused += 1;
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
        }
    };
    if let Some(url) = &args.ingress {
        let client = weir_admin::client::AdminClient::new(url)?.with_token(args.token.clone());
        for e in &events {
            let a = client.send(
                "POST",
                "/v1/events",
                &[("content-type", "application/json")],
                e,
            )?;
            match a.status {
                202 => print(Ok(serde_json::from_str(&a.body)
                    .with_context(|| format!("the ingress answered {}", a.body))?)),
                _ => match serde_json::from_str::<Refusal>(&a.body) {
                    Ok(r) => print(Err(r)),
                    Err(_) => bail!("the ingress answered {}: {}", a.status, a.body),
                },
            }
        }
    } else {
        init_log();
        let cfg = load(args.config.as_deref())?;
        let ingress: Arc<Ingress> = Ingress::start(&cfg).context("cannot reach the cluster")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            for e in &events {
                print(
                    ingress
                        .publish(e.clone().into(), None, None)
                        .await
                        .map(|(a, _)| a),
                );
            }
        });
        ingress.flush(std::time::Duration::from_secs(5));
    }
    if refused > 0 {
        bail!("{refused} of {} event(s) refused", events.len());
    }
    Ok(())
}
