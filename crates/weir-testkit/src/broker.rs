//! The broker fixture: [`BrokerProcess`] (one crabka-broker child process)
//! and [`TestBroker`] (what a test binary uses: `WEIR_TEST_BOOTSTRAP` or a
//! broker of its own).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::features::{downgrade_transaction_version, FeatureError};

/// The broker's controller port, fixed by crabka-broker: one broker per IP.
const CONTROLLER_PORT: u16 = 9093;

/// Starting or using the test broker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The crabka-broker binary is not installed.
    #[error("test broker binary not found at {0}: run `make deps` (or set WEIR_TEST_BOOTSTRAP to use a running Kafka)")]
    NotInstalled(PathBuf),
    /// Spawning or talking to the process failed.
    #[error("test broker: {0}")]
    Io(#[from] std::io::Error),
    /// The broker did not accept connections in time.
    #[error("test broker at {addr} not ready after {secs} s; its log is {log}")]
    NotReady {
        /// Its address.
        addr: String,
        /// How long we waited.
        secs: u64,
        /// Where its output went.
        log: String,
    },
    /// The `transaction.version` start-up step failed.
    #[error(transparent)]
    Feature(#[from] FeatureError),
    /// No loopback address was free for another broker.
    #[error("no free loopback address 127.0.0.2-127.0.0.254 with port {CONTROLLER_PORT} free")]
    NoFreeAddress,
    /// An admin request failed.
    #[error("admin request to {bootstrap} failed: {message}")]
    Admin {
        /// The cluster.
        bootstrap: String,
        /// What failed.
        message: String,
    },
}

/// One crabka-broker process with its own data directory.
///
/// Started with [`BrokerProcess::start`]; stopped (SIGTERM, then SIGKILL)
/// and its data directory removed on drop.
pub struct BrokerProcess {
    child: Child,
    bootstrap: String,
    cluster_id: String,
    data_dir: PathBuf,
    _address_lock: Option<File>,
}

impl BrokerProcess {
    /// Where the broker binary is: `WEIR_TEST_BROKER_BIN`, else
    /// `$HOME/.cache/weir/tools/bin/crabka-broker` (where `make deps` puts it).
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("WEIR_TEST_BROKER_BIN") {
            return PathBuf::from(p);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        Path::new(&home).join(".cache/weir/tools/bin/crabka-broker")
    }

    /// Starts a broker listening on `ip:port` (port 0: any free port) with a
    /// fresh data directory `data_dir` (created; must not hold an earlier
    /// broker's data), waits until it accepts connections, and lowers
    /// `transaction.version` to 1.
    ///
    /// # Errors
    /// [`BrokerError`] if the binary is missing, the process cannot start, or
    /// it does not become ready within 30 s.
    pub fn start(ip: Ipv4Addr, port: u16, data_dir: &Path) -> Result<Self, BrokerError> {
        Self::start_with_cluster_id(ip, port, data_dir, &uuid::Uuid::new_v4().to_string())
    }

    /// As [`BrokerProcess::start`], with the given cluster id (a fresh broker
    /// posing as an earlier one that lost its data).
    ///
    /// # Errors
    /// As [`BrokerProcess::start`].
    pub fn start_with_cluster_id(
        ip: Ipv4Addr,
        port: u16,
        data_dir: &Path,
        cluster_id: &str,
    ) -> Result<Self, BrokerError> {
        let bin = Self::binary();
        if !bin.exists() {
            return Err(BrokerError::NotInstalled(bin));
        }
        let port = if port == 0 {
            TcpListener::bind((ip, 0))?.local_addr()?.port()
        } else {
            port
        };
        std::fs::create_dir_all(data_dir)?;
        let meta = serde_json::json!({
            "cluster_id": cluster_id,
            "directory_id": uuid::Uuid::new_v4().to_string(),
            "version": 1,
        });
        std::fs::write(data_dir.join("meta.properties.json"), meta.to_string())?;
        let log = File::create(data_dir.join("broker.log"))?;
        let bootstrap = format!("{ip}:{port}");
        let child = Self::spawn(&bin, &bootstrap, data_dir, cluster_id, log)?;
        let mut broker = BrokerProcess {
            child,
            bootstrap,
            cluster_id: cluster_id.to_string(),
            data_dir: data_dir.to_path_buf(),
            _address_lock: None,
        };
        broker.await_ready()?;
        Ok(broker)
    }

    /// Stops the broker and starts it again on the same address, data
    /// directory and cluster id (a broker restart: what it wrote survives).
    /// Not after transactional offset commits: this broker then fails to
    /// start on its own data.
    ///
    /// # Errors
    /// As [`BrokerProcess::start`].
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop();
        let log = File::options()
            .append(true)
            .create(true)
            .open(self.data_dir.join("broker.log"))?;
        self.child = Self::spawn(
            &Self::binary(),
            &self.bootstrap,
            &self.data_dir,
            &self.cluster_id,
            log,
        )?;
        self.await_ready()
    }

    fn spawn(
        bin: &Path,
        bootstrap: &str,
        data_dir: &Path,
        cluster_id: &str,
        log: File,
    ) -> Result<Child, BrokerError> {
        Ok(Command::new(bin)
            .arg("--listen-addr")
            .arg(bootstrap)
            .arg("--log-dir")
            .arg(data_dir)
            .args(["--metrics-listen-addr", "none", "--cluster-id", cluster_id])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
    }

    /// Waits until the broker accepts connections and its controller
    /// answers, and lowers `transaction.version` to 1.
    fn await_ready(&mut self) -> Result<(), BrokerError> {
        let log_path = self.data_dir.join("broker.log");
        let addr: SocketAddr = self
            .bootstrap
            .parse()
            .map_err(|e| BrokerError::Io(std::io::Error::other(format!("{e}"))))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrokerError::Io(std::io::Error::other(format!(
                    "crabka-broker exited with {status}; see {}",
                    log_path.display()
                ))));
            }
            if Instant::now() > deadline {
                return Err(BrokerError::NotReady {
                    addr: self.bootstrap.clone(),
                    secs: 30,
                    log: log_path.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The listener can be up a moment before the controller answers.
        let mut attempt = 0;
        loop {
            match downgrade_transaction_version(&self.bootstrap) {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= 50 => return Err(e.into()),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Starts a broker on a loopback address of its own (127.0.0.N, N ≥ 2),
    /// so several can run at once despite the fixed controller port.
    ///
    /// # Errors
    /// As [`BrokerProcess::start`], or [`BrokerError::NoFreeAddress`].
    pub fn start_on_free_loopback(data_dir: &Path) -> Result<Self, BrokerError> {
        Self::start_on_free_loopback_as(data_dir, &uuid::Uuid::new_v4().to_string())
    }

    /// As [`BrokerProcess::start_on_free_loopback`], with the given cluster id.
    ///
    /// # Errors
    /// As [`BrokerProcess::start_on_free_loopback`].
    pub fn start_on_free_loopback_as(
        data_dir: &Path,
        cluster_id: &str,
    ) -> Result<Self, BrokerError> {
        for n in 2..=254u8 {
            let ip = Ipv4Addr::new(127, 0, 0, n);
            let lock_path = std::env::temp_dir().join(format!("weir-test-broker-{ip}.lock"));
            let Ok(lock) = File::create(&lock_path) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue;
            }
            if TcpListener::bind((ip, CONTROLLER_PORT)).is_err() {
                continue;
            }
            let mut broker = Self::start_with_cluster_id(ip, 0, data_dir, cluster_id)?;
            broker._address_lock = Some(lock);
            return Ok(broker);
        }
        Err(BrokerError::NoFreeAddress)
    }

    /// `host:port` to bootstrap from.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The cluster id it was started with.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the broker: SIGTERM, then SIGKILL after 3 s.
    pub fn stop(&mut self) {
        crate::terminate(&mut self.child, Duration::from_secs(3));
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The broker a test binary talks to.
///
/// With `WEIR_TEST_BOOTSTRAP` set (by `make test`, or pointing at a real
/// Kafka), it uses that and starts nothing. Otherwise the first call to
/// [`TestBroker::shared`] starts a crabka-broker for this test binary on its
/// own loopback address; a watchdog process stops it when the test binary
/// exits (statics are never dropped).
pub struct TestBroker {
    bootstrap: String,
}

static SHARED: OnceLock<TestBroker> = OnceLock::new();

impl TestBroker {
    /// The broker shared by every test in this binary.
    ///
    /// # Panics
    /// If no broker can be had: the tests that need one cannot run, and the
    /// message says why (`make deps` missing, …).
    pub fn shared() -> &'static TestBroker {
        SHARED.get_or_init(|| match std::env::var("WEIR_TEST_BOOTSTRAP") {
            Ok(b) if !b.trim().is_empty() => TestBroker { bootstrap: b },
            _ => Self::start_own().unwrap_or_else(|e| panic!("cannot start the test broker: {e}")),
        })
    }

    fn start_own() -> Result<TestBroker, BrokerError> {
        let dir = tempfile::Builder::new()
            .prefix("weir-test-broker-")
            .tempdir()?
            .keep();
        let broker = BrokerProcess::start_on_free_loopback(&dir)?;
        // Outlive this struct: the watchdog stops the broker when we exit.
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -TERM {b} 2>/dev/null; sleep 3; kill -KILL {b} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            b = broker.pid(),
            dir = dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let bootstrap = broker.bootstrap().to_string();
        std::mem::forget(broker);
        Ok(TestBroker { bootstrap })
    }

    /// `host:port` of the broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// A name no other test uses: `<prefix>-<uuid>`.
    pub fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// Creates `topic` with `partitions` partitions (replication 1).
    ///
    /// # Errors
    /// [`BrokerError::Admin`] if the broker refuses; an existing topic is an error.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BrokerError> {
        create_topics(&self.bootstrap, &[(topic, partitions)])
    }
}

/// Creates topics on the cluster at `bootstrap` (replication factor 1).
///
/// # Errors
/// [`BrokerError::Admin`] naming the first topic the cluster refused.
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<(), BrokerError> {
    create_topics_with(bootstrap, topics, &[])
}

/// Creates compacted topics (`cleanup.policy=compact`), e.g. a table's,
/// on the cluster at `bootstrap` (replication factor 1).
///
/// # Errors
/// As [`create_topics`].
pub fn create_compacted_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<(), BrokerError> {
    create_topics_with(bootstrap, topics, &[("cleanup.policy", "compact")])
}

fn create_topics_with(
    bootstrap: &str,
    topics: &[(&str, i32)],
    config: &[(&str, &str)],
) -> Result<(), BrokerError> {
    let admin_err = |message: String| BrokerError::Admin {
        bootstrap: bootstrap.to_string(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| admin_err(e.to_string()))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| {
            config.iter().fold(
                NewTopic::new(t, *p, TopicReplication::Fixed(1)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt
        .block_on(admin.create_topics(&new, &opts))
        .map_err(|e| admin_err(e.to_string()))?;
    for r in results {
        if let Err((topic, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(admin_err(format!("create topic {topic}: {code}")));
            }
            return Err(admin_err(format!("topic {topic} already exists")));
        }
    }
    Ok(())
}
