//! `schema register|get|list`: event definitions on the cluster's
//! `_weir_event_definitions` topic, for topology binaries (`<topology>
//! schema …`) and the generic `weir schema …`.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use weir_runtime::{schema_registry, Config, Error, Result};
use weir_schema::{Compatibility, EventDefinition, NewDefinition};

use crate::output::{print_json, Output};

/// The event-definition commands.
#[derive(Subcommand, Debug, Clone)]
pub enum SchemaCommand {
    /// Registers a definition from a JSON file — `{"event_type": ..,
    /// "schema": {..}, "description": .., "examples": [..], "owner": ..}` —
    /// as the next version of its type. Refused (with the reason) when the
    /// schema is not a valid JSON Schema, an example does not conform, or
    /// `--compatibility backward` finds a payload the latest version
    /// accepts that the new one would refuse.
    Register {
        /// The definition file (`-` for standard input).
        file: PathBuf,
        /// What the new version must keep accepting.
        #[arg(long, value_enum, default_value_t = CompatArg::None)]
        compatibility: CompatArg,
    },
    /// Prints an event type's definition (JSON): the latest version, or
    /// `--version N`, or `--all` versions.
    Get {
        /// The event type.
        event_type: String,
        /// This version instead of the latest.
        #[arg(long, conflicts_with = "all")]
        version: Option<u32>,
        /// Every version, oldest first (a JSON array).
        #[arg(long)]
        all: bool,
    },
    /// Lists every event type with its latest version, owner and
    /// description (`--json` for the definitions themselves).
    List {
        /// Print the latest definitions as a JSON array (`--output json`:
        /// the admin endpoint's `{"definitions": [..]}`).
        #[arg(long)]
        json: bool,
    },
}

/// `--compatibility` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompatArg {
    /// Any valid schema may follow.
    None,
    /// The new version must accept every payload the latest one accepts.
    Backward,
}

/// Runs `cmd` against the configured cluster. With [`Output::Json`],
/// prints the admin endpoint's JSON (`GET /schemas`, the stored definition).
///
/// # Errors
/// [`Error::Usage`] for an unreadable file or an unknown event type;
/// [`Error::Schema`] for a refused definition (the message says why) or an
/// unreachable broker.
pub fn run_schema(config: &Config, cmd: SchemaCommand, output: Output) -> Result<()> {
    match cmd {
        SchemaCommand::Register {
            file,
            compatibility,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
            let new: NewDefinition = serde_json::from_str(&text).map_err(|e| {
                Error::Usage(format!(
                    "{} is not a definition ({{\"event_type\": .., \"schema\": {{..}}, ..}}): {e}",
                    file.display()
                ))
            })?;
            let compat = match compatibility {
                CompatArg::None => Compatibility::None,
                CompatArg::Backward => Compatibility::Backward,
            };
            let d = schema_registry(config)?.register(new, compat)?;
            if output == Output::Json {
                print_json(&serde_json::to_value(&d).expect("definitions serialize"));
                return Ok(());
            }
            println!("registered {} version {}", d.event_type, d.version);
            Ok(())
        }
        SchemaCommand::Get {
            event_type,
            version,
            all,
        } => {
            let registry = schema_registry(config)?;
            let unknown = || {
                Error::Usage(match version {
                    Some(v) => format!("event type {event_type} has no version {v}"),
                    None => format!("no definition of event type {event_type} is registered"),
                })
            };
            let json = if all {
                let versions = registry.versions(&event_type);
                if versions.is_empty() {
                    return Err(unknown());
                }
                serde_json::to_string_pretty(&versions)
            } else {
                let d = registry.get(&event_type, version).ok_or_else(unknown)?;
                serde_json::to_string_pretty(&d)
            };
            println!("{}", json.expect("definitions serialize"));
            Ok(())
        }
        SchemaCommand::List { json } => {
            let defs = schema_registry(config)?.list();
            if output == Output::Json {
                print_json(&serde_json::json!({ "definitions": defs }));
            } else if json {
                print_json(&serde_json::to_value(&defs).expect("definitions serialize"));
            } else {
                print_table(&defs);
            }
            Ok(())
        }
    }
}

fn print_table(defs: &[EventDefinition]) {
    println!("{} event type(s)", defs.len());
    if !defs.is_empty() {
        println!("event_type\tversion\towner\tdescription");
    }
    for d in defs {
        println!(
            "{}\t{}\t{}\t{}",
            d.event_type, d.version, d.owner, d.description
        );
    }
}
