//! [`App`]: the entry point of a topology binary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use weir_dsl::Topology;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::identity::InstanceIdentity;
use crate::stats::RuntimeStats;
use crate::stream_thread::{self, ThreadSpec};
use crate::topics::prepare_topics;

#[derive(Parser, Debug)]
#[command(about = "A Weir topology: `run` it (default) or `describe` it.")]
struct Cli {
    /// A TOML config file; `WEIR_*` environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Join the application's group and process records until SIGTERM/Ctrl-C.
    Run,
    /// Print the topology (after topic renames from config).
    Describe {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Mermaid,
}

/// Builds an [`App`] with embedded defaults under the file and environment.
#[derive(Debug, Default)]
pub struct AppBuilder {
    defaults: toml::Table,
}

impl AppBuilder {
    /// An embedded default for a top-level key (below the config file and
    /// `WEIR_*` variables), e.g. `with_default("application_id", "event-router")`.
    pub fn with_default(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.defaults.insert(key.to_string(), value.into());
        self
    }

    /// Reads the command line (`--config`, `run`, `describe`) and the
    /// environment.
    ///
    /// # Errors
    /// A usage error, or a [`crate::ConfigError`] naming the bad key.
    pub fn from_env(self) -> Result<App> {
        let cli = Cli::try_parse().map_err(|e| {
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                let _ = e.print();
                std::process::exit(0);
            }
            Error::Usage(e.to_string())
        })?;
        let config = Config::load(&self.defaults, cli.config.as_deref(), std::env::vars())?;
        Ok(App {
            config,
            command: cli.command.unwrap_or(Command::Run),
        })
    }

    /// An app that runs `config` (no command line).
    pub fn with_config(self, config: Config) -> App {
        App {
            config,
            command: Command::Run,
        }
    }
}

/// A topology binary: configuration plus what to do.
///
/// # Examples
/// ```no_run
/// # fn topology() -> weir_dsl::Topology { unimplemented!() }
/// fn main() -> weir_runtime::Result<()> {
///     weir_runtime::App::from_env()?.run(topology())
/// }
/// ```
pub struct App {
    config: Config,
    command: Command,
}

impl App {
    /// An [`AppBuilder`], for embedded defaults.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// [`AppBuilder::from_env`] with no embedded defaults.
    ///
    /// # Errors
    /// As [`AppBuilder::from_env`].
    pub fn from_env() -> Result<App> {
        Self::builder().from_env()
    }

    /// The loaded configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the command: `describe` prints the topology; `run` processes
    /// records until SIGTERM or Ctrl-C, then commits (or aborts) the open
    /// transactions and leaves the group.
    ///
    /// # Errors
    /// A bad `[topics]` rename, a bad `WEIR_FAILPOINT`, a locked state dir,
    /// missing topics, or a stream thread that failed.
    pub fn run(self, topology: Topology) -> Result<()> {
        let topology = self.renamed(&topology)?;
        match self.command {
            Command::Describe { format } => {
                let d = topology.describe();
                match format {
                    Format::Text => print!("{d}"),
                    Format::Mermaid => print!("{}", d.to_mermaid()),
                }
                Ok(())
            }
            Command::Run => run(Arc::new(self.config), topology),
        }
    }

    fn renamed(&self, topology: &Topology) -> Result<Topology> {
        let mut known = topology.source_topics();
        known.extend(topology.sink_topics());
        known.extend(topology.dead_letter_topic().map(str::to_string));
        let mut rename = std::collections::BTreeMap::new();
        for (logical, physical) in &self.config.topics {
            let found = known
                .iter()
                .find(|t| *t == logical || t.replace('-', "_") == *logical)
                .ok_or_else(|| crate::ConfigError::Invalid {
                    key: format!("topics.{logical}"),
                    message: format!(
                        "the topology has no topic {logical:?}; its topics are {}",
                        known.join(", ")
                    ),
                })?;
            rename.insert(found.clone(), physical.clone());
        }
        let renamed = topology.with_topic_names(&rename);
        // A rename must not merge two sources, nor turn a sink into a source.
        let sources = renamed.source_topics();
        let original_loops: Vec<String> = topology
            .sink_topics()
            .into_iter()
            .filter(|t| topology.source_topics().contains(t))
            .collect();
        if sources.len() != topology.source_topics().len() {
            return Err(crate::ConfigError::Invalid {
                key: "topics".into(),
                message: "two source topics are renamed to the same topic".into(),
            }
            .into());
        }
        if let Some(t) = renamed
            .sink_topics()
            .into_iter()
            .find(|t| sources.contains(t) && !original_loops.contains(t))
        {
            return Err(crate::ConfigError::Invalid {
                key: "topics".into(),
                message: format!("{t} would be both written and read by the topology"),
            }
            .into());
        }
        Ok(renamed)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cfg: Arc<Config>, topology: Topology) -> Result<()> {
    init_logging();
    let failpoints = Arc::new(Failpoints::from_env()?);
    let identity = InstanceIdentity::acquire(
        &cfg.state_dir,
        &cfg.application_id,
        cfg.instance_id.as_deref(),
    )?;
    let dead_letter_topic = cfg.dead_letter_topic(topology.dead_letter_topic());
    tracing::info!(
        application_id = %cfg.application_id,
        instance_id = identity.instance_id(),
        bootstrap = %cfg.bootstrap_servers,
        guarantee = ?cfg.processing_guarantee,
        dead_letter_topic = %dead_letter_topic,
        "starting"
    );
    prepare_topics(&cfg, &topology, &dead_letter_topic)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone())
            .map_err(|e| Error::Usage(format!("cannot install signal handler: {e}")))?;
    }
    let stats = Arc::new(RuntimeStats::default());
    let handles: Vec<_> = (0..cfg.num_stream_threads)
        .map(|index| {
            let spec = ThreadSpec {
                cfg: cfg.clone(),
                topology: topology.clone(),
                index,
                instance_id: identity.instance_id().to_string(),
                dead_letter_topic: dead_letter_topic.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
                failpoints: failpoints.clone(),
            };
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("weir-stream-{index}"))
                .spawn(move || {
                    let result = stream_thread::run(spec);
                    if result.is_err() {
                        // One dead thread stops the instance: its partitions must move.
                        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    result
                })
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::Usage(format!("cannot start stream threads: {e}")))?;
    let mut first_error = None;
    for (index, h) in handles.into_iter().enumerate() {
        let result = h.join().unwrap_or_else(|_| {
            Err(Error::Thread {
                thread: index,
                message: "panicked".into(),
            })
        });
        if let Err(e) = result {
            tracing::error!(thread = index, error = %e, "stream thread failed");
            shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
            first_error.get_or_insert(e);
        }
    }
    tracing::info!("stopped: {}", stats.summary());
    eprintln!("weir: stopped: {}", stats.summary());
    drop(identity);
    first_error.map_or(Ok(()), Err)
}
