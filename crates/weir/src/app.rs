//! [`App`]: the entry point of a topology binary — its command line
//! (`--config`, `run`, `describe`), logging, and the configuration, around
//! [`weir_runtime::run`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use weir_dsl::Topology;
use weir_runtime::{Config, ConfigValue, Error, Result};

#[derive(Parser, Debug)]
#[command(
    about = "A Weir topology: `run` it (default), `describe` it, work on its dead letters (`dlq`) or event definitions (`schema`)."
)]
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
    /// Inspect or replay the dead-letter topic (replay can apply the
    /// topology's fix-ups: `dlq replay --fix NAME`).
    Dlq {
        /// How to print (`json`: the admin endpoint's JSON).
        #[arg(long, value_enum, default_value_t = crate::Output::Table, global = true)]
        output: crate::Output,
        #[command(subcommand)]
        command: crate::dlq::DlqCommand,
    },
    /// Register, get or list event definitions (`_weir_event_definitions`).
    Schema {
        /// How to print (`json`: the admin endpoint's JSON).
        #[arg(long, value_enum, default_value_t = crate::Output::Table, global = true)]
        output: crate::Output,
        #[command(subcommand)]
        command: crate::schema::SchemaCommand,
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
    defaults: BTreeMap<String, ConfigValue>,
    definitions: Vec<weir_schema::NewDefinition>,
}

impl AppBuilder {
    /// An embedded default for a top-level key (below the config file and
    /// `WEIR_*` variables), e.g. `with_default("application_id", "event-router")`.
    pub fn with_default(mut self, key: &str, value: impl Into<ConfigValue>) -> Self {
        self.defaults.insert(key.to_string(), value.into());
        self
    }

    /// An event definition the topology ships: registered when the
    /// instance starts (`run`, [`App::start`]) if the cluster has no
    /// definition of its type yet. A registered one is never replaced —
    /// update it with `weir schema register`.
    pub fn with_event_definition(mut self, definition: weir_schema::NewDefinition) -> Self {
        self.definitions.push(definition);
        self
    }

    /// Reads the command line (`--config`, `run`, `describe`) and the
    /// environment. `--help` and `--version` print and exit the process.
    ///
    /// # Errors
    /// A usage error, or a [`weir_runtime::ConfigError`] naming the bad key.
    pub fn from_env(self) -> Result<App> {
        self.from_args(std::env::args_os())
    }

    /// As [`AppBuilder::from_env`], with `args` for the command line (the
    /// first is the program's name), e.g. `["weir", "--config", "f.toml",
    /// "describe"]`.
    ///
    /// # Errors
    /// As [`AppBuilder::from_env`].
    pub fn from_args<I, T>(self, args: I) -> Result<App>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| {
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
            definitions: self.definitions,
        })
    }

    /// An app that runs `config` (no command line).
    pub fn with_config(self, config: Config) -> App {
        App {
            config,
            command: Command::Run,
            definitions: self.definitions,
        }
    }
}

/// A topology binary: configuration plus what to do.
///
/// # Examples
/// ```no_run
/// # fn topology() -> weir::Topology { unimplemented!() }
/// fn main() -> weir::Result<()> {
///     weir::App::from_env()?.run(topology())
/// }
/// ```
pub struct App {
    config: Config,
    command: Command,
    definitions: Vec<weir_schema::NewDefinition>,
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
    /// records until SIGTERM or Ctrl-C (see [`weir_runtime::run`]).
    ///
    /// # Errors
    /// As [`weir_runtime::run`]; `describe` fails only on a bad `[topics]`
    /// rename.
    pub fn run(self, topology: Topology) -> Result<()> {
        match self.command {
            Command::Describe { format } => {
                let d = weir_runtime::configured_topology(&self.config, &topology)?.describe();
                match format {
                    Format::Text => print!("{d}"),
                    Format::Mermaid => print!("{}", d.to_mermaid()),
                }
                Ok(())
            }
            Command::Run => {
                let telemetry = init_telemetry(&self.config)?;
                seed_definitions(&self.config, &self.definitions)?;
                let instance = weir_runtime::start(self.config.clone(), topology)?;
                let admin = start_admin(&self.config, &instance)?;
                instance.stop_on_signals()?;
                let result = instance.wait();
                drop(admin);
                // The last spans (the final commit's) leave before exit.
                telemetry.shutdown();
                result
            }
            Command::Dlq { command, output } => {
                let _telemetry =
                    crate::telemetry::init(&self.config, self.config.instance_id.as_deref())?;
                let t = weir_runtime::configured_topology(&self.config, &topology)?;
                crate::dlq::run_dlq(&self.config, Some(&t), command, output)
            }
            Command::Schema { command, output } => {
                let _telemetry =
                    crate::telemetry::init(&self.config, self.config.instance_id.as_deref())?;
                crate::schema::run_schema(&self.config, command, output)
            }
        }
    }
}

impl App {
    /// Starts the topology in this process and returns at once with the
    /// [`crate::Running`] instance: query its stores from any thread, then
    /// `stop` and `wait`. Ignores the command line's `describe`; installs
    /// no signal handler. Installs the process's log and, with
    /// `otlp_endpoint`, trace export (see [`crate::telemetry`]) unless a
    /// subscriber is installed already; `wait` flushes the export.
    ///
    /// # Errors
    /// As [`weir_runtime::start`]; [`Error::Usage`] for a bad
    /// `otlp_endpoint`.
    pub fn start(self, topology: Topology) -> Result<crate::Running> {
        let telemetry = init_telemetry(&self.config)?;
        seed_definitions(&self.config, &self.definitions)?;
        let instance = weir_runtime::start(self.config.clone(), topology)?;
        let admin = start_admin(&self.config, &instance)?;
        Ok(crate::Running::new(instance, admin, telemetry))
    }
}

/// Starts the admin endpoint beside `instance` when `admin_listen` is set.
fn start_admin(
    config: &Config,
    instance: &weir_runtime::Instance,
) -> Result<Option<weir_admin::AdminServer>> {
    let Some(listen) = &config.admin_listen else {
        return Ok(None);
    };
    let stats = instance.stats();
    let threads = config.num_stream_threads;
    let started = weir_admin::AdminServer::start_with(listen, |addr| {
        let url = advertised_url(config, addr);
        let directory = weir_runtime::Directory::start(
            config,
            instance.instance_id(),
            Some(url),
            instance.stores(),
        )
        .map_err(|e| e.to_string())?;
        Ok(weir_admin::AdminState {
            instance_id: instance.instance_id().to_string(),
            stats: stats.clone(),
            topology: instance.topology().clone(),
            ready: std::sync::Arc::new(move || stats.is_ready(threads)),
            stores: instance.stores(),
            directory: Some(std::sync::Arc::new(directory)),
            ops: Some(std::sync::Arc::new(weir_admin::ops::Operations::new(
                config.clone(),
                config.dead_letter_topic(instance.topology().dead_letter_topic()),
            ))),
            token: config.admin_token.clone().filter(|t| !t.is_empty()),
            forwarder: Default::default(),
            ingress: if config.ingress_enabled {
                let set = |t: &Option<String>| t.as_deref().is_some_and(|t| !t.is_empty());
                if set(&config.admin_token) && !set(&config.ingress_token) {
                    tracing::warn!("admin_token is set but ingress_token is not: POST /v1/events takes events without a token");
                }
                Some(weir_admin::ingress::Ingress::start(config).map_err(|e| e.to_string())?)
            } else {
                None
            },
        })
    });
    match started {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            // The instance started: stop it before reporting.
            instance.stop();
            Err(Error::Usage(e.to_string()))
        }
    }
}

/// `admin_advertised_url`, or `http://` + the bound address (an unspecified
/// IP — `0.0.0.0` — becomes `127.0.0.1`: set `admin_advertised_url` when
/// instances run on several hosts).
fn advertised_url(config: &Config, addr: std::net::SocketAddr) -> String {
    if let Some(url) = &config.admin_advertised_url {
        return url.trim_end_matches('/').to_string();
    }
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        tracing::warn!(%addr, "admin_listen binds every address and admin_advertised_url is unset: other instances are told 127.0.0.1");
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Registers each shipped definition whose type the cluster does not know.
fn seed_definitions(config: &Config, definitions: &[weir_schema::NewDefinition]) -> Result<()> {
    if definitions.is_empty() {
        return Ok(());
    }
    let registry = weir_runtime::schema_registry(config)?;
    for d in definitions {
        let have = registry.register_if_absent(d.clone())?;
        tracing::debug!(event_type = %have.event_type, version = have.version, "event definition");
    }
    Ok(())
}

/// The log, and trace export when `otlp_endpoint` is set, for an instance
/// about to start: its spans carry `service.instance.id` — the configured
/// id, else the one persisted in the state dir (created now if new, as
/// [`weir_runtime::start`] would). If the state dir is locked, start
/// reports that; the id is then left out.
fn init_telemetry(config: &Config) -> Result<crate::telemetry::Telemetry> {
    let instance_id = match (&config.otlp_endpoint, &config.instance_id) {
        (None, _) => None,
        (Some(_), Some(id)) => Some(id.clone()),
        (Some(_), None) => {
            weir_runtime::InstanceIdentity::acquire(&config.state_dir, &config.application_id, None)
                .ok()
                .map(|identity| identity.instance_id().to_string())
        }
    };
    crate::telemetry::init(config, instance_id.as_deref())
}
