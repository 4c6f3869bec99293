//! Event definitions for the `validate` nodes: an instance whose topology
//! validates connects a [`SchemaRegistry`] on `_weir_event_definitions`
//! before its threads start (so every definition registered before the
//! start is known), and the registry follows the topic from then on.

use std::sync::Arc;

use weir_dsl::Topology;
use weir_schema::{RegistryOptions, SchemaRegistry};

use crate::config::Config;
use crate::Result;

/// A registry on the cluster `cfg` names (the CLI's `weir schema` and
/// topology binaries use it to register, get and list definitions).
///
/// # Errors
/// [`crate::Error::Schema`] when the definitions topic cannot be created
/// or read.
pub fn schema_registry(cfg: &Config) -> Result<SchemaRegistry> {
    let noise = Arc::new(crate::broker_quirks::FetchNoise::default());
    let opts = RegistryOptions {
        replication_factor: cfg.replication_factor,
        log: Some(Arc::new(move |level, fac: &str, message: &str| {
            crate::rebalance::log_librdkafka(&noise, level, fac, message)
        })),
        ..RegistryOptions::default()
    };
    Ok(SchemaRegistry::connect(
        &crate::kafka::admin_config(cfg),
        opts,
    )?)
}

/// Gives `topology`'s `validate` nodes a registry, when it has any.
pub(crate) fn attach(cfg: &Config, topology: &Topology) -> Result<()> {
    let types = topology.validated_event_types();
    if types.is_empty() {
        return Ok(());
    }
    let registry = schema_registry(cfg)?;
    for t in &types {
        match registry.get(t, None) {
            Some(d) => {
                tracing::info!(event_type = %t, version = d.version, "validating against the latest definition")
            }
            None => {
                tracing::warn!(event_type = %t, "no definition is registered yet: records are dead-lettered (kind validation) until one is; register it with `weir schema register`")
            }
        }
    }
    topology.use_event_schemas(Arc::new(registry));
    Ok(())
}
