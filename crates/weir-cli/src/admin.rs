//! The commands that talk to a running instance's admin endpoint
//! (`--admin http://host:port`, or `WEIR_ADMIN_URL`): `weir query`,
//! `weir topology`, and `weir dlq …` / `weir schema …` when `--admin` is
//! given. Any instance will do: key queries are forwarded to the owner.
//! `--output json` prints the endpoint's JSON; `table` (the default) a
//! table for people.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use weir_admin::client::{AdminClient, Answer};

pub use weir::Output;

/// Where the endpoint is.
#[derive(Args, Debug, Clone)]
pub struct Endpoint {
    /// The admin endpoint of any instance (`http://host:port`).
    #[arg(long, env = "WEIR_ADMIN_URL")]
    pub admin: String,
    /// The bearer token of mutating routes.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Endpoint {
    fn client(&self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(&self.admin)?.with_token(self.token.clone()))
    }
}

/// `weir query`.
#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The store.
    store: String,
    /// The key (JSON for the key type, or text for a string key): its
    /// value, or its windows or sessions in a window or session store;
    /// without it, a range over every partition (the answering instance
    /// asks the others).
    key: Option<String>,
    /// The range's lowest key; with a key of a window or session store,
    /// the earliest time (ms since the epoch) of its windows or sessions.
    #[arg(long)]
    from: Option<String>,
    /// The range's highest key; with a key of a window or session store,
    /// the latest time (ms since the epoch).
    #[arg(long)]
    to: Option<String>,
    /// The most entries of a range, or windows or sessions of a key
    /// (default 100).
    #[arg(long)]
    limit: Option<usize>,
    /// A range of these partitions only (comma-separated).
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<u32>,
    /// A range of the asked instance's partitions only.
    #[arg(long)]
    local: bool,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `weir topology`.
#[derive(Args, Debug, Clone)]
pub struct TopologyArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// How to print it (`mermaid`: a Mermaid flowchart).
    #[arg(long, value_enum, default_value_t = TopologyOutput::Table)]
    output: TopologyOutput,
}

/// `weir topology --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopologyOutput {
    /// The endpoint's JSON.
    Json,
    /// Sub-topologies and their nodes.
    Table,
    /// A Mermaid flowchart.
    Mermaid,
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answer's JSON, or its error as the command's.
fn ok_json(a: &Answer) -> anyhow::Result<serde_json::Value> {
    if let Some(e) = a.error_message() {
        bail!("{e}");
    }
    a.json().context("the endpoint's answer is not JSON")
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows under a header, columns aligned (the last one free).
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let out: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Entries, windows or sessions asked for when `--limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// Runs `weir query`.
///
/// # Errors
/// No answer, or an error answer (its message).
pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    let store = enc(&args.store);
    if args.key.is_some() && (args.local || !args.partitions.is_empty()) {
        bail!("--partitions and --local apply to a range (no key)");
    }
    if let Some(key) = &args.key {
        let answer = client.get(&format!("/stores/{store}/keys/{}", enc(key)))?;
        // A window or session store: the key's windows or sessions (the
        // answer's `kind`; an older endpoint only hints at it in the message).
        let over_time = answer
            .json()
            .ok()
            .filter(|j| j["error"] == "WRONG_STORE_KIND")
            .and_then(|j| match j["kind"].as_str() {
                Some("window") => Some("windows"),
                Some("session") => Some("sessions"),
                Some(_) => None,
                None => {
                    let hint = j["message"].as_str()?.to_string();
                    ["windows", "sessions"]
                        .into_iter()
                        .find(|r| hint.contains(&format!("/{r}?key=")))
                }
            });
        if let Some(route) = over_time {
            return over_time_of(&client, &store, key, route, &args);
        }
        // Not a window or session store: a key-value store, or the key's
        // store cannot say (not found, unavailable) — the flags never apply.
        if args.limit.is_some() {
            bail!("--limit applies to a range, or to a key of a window or session store; {} is a key-value store (or did not answer)", args.store);
        }
        if args.from.is_some() || args.to.is_some() {
            bail!("--from and --to with a key apply to a window or session store (times in ms); {} is a key-value store (or did not answer)", args.store);
        }
        let v = ok_json(&answer)?;
        return match args.output {
            Output::Json => print_json(&v),
            Output::Table => {
                table(
                    &["key", "partition", "served_by", "value"],
                    &[vec![
                        text(&v["key"]),
                        text(&v["partition"]),
                        text(&v["served_by"]),
                        text(&v["value"]),
                    ]],
                );
                Ok(())
            }
        };
    }
    let mut q = vec![format!("limit={}", args.limit.unwrap_or(DEFAULT_LIMIT))];
    if let Some(f) = &args.from {
        q.push(format!("from={}", enc(f)));
    }
    if let Some(t) = &args.to {
        q.push(format!("to={}", enc(t)));
    }
    if !args.partitions.is_empty() {
        let list: Vec<String> = args.partitions.iter().map(u32::to_string).collect();
        q.push(format!("partitions={}", list.join(",")));
    }
    if args.local {
        q.push("scope=local".into());
    }
    let v = ok_json(&client.get(&format!("/stores/{store}/range?{}", q.join("&")))?)?;
    match args.output {
        Output::Json => print_json(&v),
        Output::Table => {
            let rows: Vec<Vec<String>> = v["entries"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    vec![
                        text(&e["key"]),
                        text(&e["partition"]),
                        text(&e["served_by"]),
                        text(&e["value"]),
                    ]
                })
                .collect();
            table(&["key", "partition", "served_by", "value"], &rows);
            eprintln!(
                "{} entries of partitions {} (asked {})",
                rows.len(),
                v["partitions"],
                text(&v["served_by"])
            );
            Ok(())
        }
    }
}

/// `weir query` of a window or session store: the key's windows or
/// sessions (`route`), oldest first.
fn over_time_of(
    client: &AdminClient,
    store: &str,
    key: &str,
    route: &str,
    args: &QueryArgs,
) -> anyhow::Result<()> {
    let mut path = format!(
        "/stores/{store}/{route}?key={}&limit={}",
        enc(key),
        args.limit.unwrap_or(DEFAULT_LIMIT)
    );
    for (name, time) in [("from", &args.from), ("to", &args.to)] {
        if let Some(t) = time {
            if t.trim().parse::<i64>().is_err() {
                bail!("--{name} {t:?}: with a key of a window or session store, a time in ms since the epoch");
            }
            path.push_str(&format!("&{name}={}", t.trim()));
        }
    }
    let v = ok_json(&client.get(&path)?)?;
    match args.output {
        Output::Json => print_json(&v),
        Output::Table => {
            let rows: Vec<Vec<String>> = v[route]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let second = if route == "sessions" {
                        &e["end"]
                    } else {
                        &e["latest_timestamp"]
                    };
                    vec![text(&e["start"]), text(second), text(&e["value"])]
                })
                .collect();
            let second = if route == "sessions" {
                "end"
            } else {
                "latest_timestamp"
            };
            table(&["start", second, "value"], &rows);
            eprintln!(
                "{} {route} of key {} (partition {}, served by {})",
                rows.len(),
                text(&v["key"]),
                v["partition"],
                text(&v["served_by"])
            );
            Ok(())
        }
    }
}

/// Runs `weir topology`.
///
/// # Errors
/// No answer, or an error answer.
pub fn topology(args: TopologyArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    if args.output == TopologyOutput::Mermaid {
        let a = client.get("/topology?format=mermaid")?;
        if let Some(e) = a.error_message() {
            bail!("{e}");
        }
        print!("{}", a.body);
        return Ok(());
    }
    let v = ok_json(&client.get("/topology")?)?;
    if args.output == TopologyOutput::Json {
        return print_json(&v);
    }
    let mut rows = Vec::new();
    for st in v["subtopologies"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for n in st["nodes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let next: Vec<String> = n["children"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect();
            rows.push(vec![
                text(&st["id"]),
                text(&n["name"]),
                text(&n["kind"]),
                next.join(", "),
            ]);
        }
    }
    table(&["subtopology", "node", "kind", "next"], &rows);
    Ok(())
}

/// `weir dlq list|replay` through the endpoint.
///
/// # Errors
/// Options the endpoint does not take; no answer, or an error answer.
pub fn dlq(endpoint: &Endpoint, output: Output, cmd: weir::dlq::DlqCommand) -> anyhow::Result<()> {
    let client = endpoint.client()?;
    match cmd {
        weir::dlq::DlqCommand::List { limit, topic } => {
            if topic.is_some() {
                bail!("--topic: the endpoint lists its application's dead-letter topic");
            }
            let v = ok_json(&client.get(&format!("/dlq?limit={limit}"))?)?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!(
                "dead-letter topic {}: {} record(s), {} not replayed",
                text(&v["topic"]),
                v["total"],
                v["pending"]
            );
            if let Some(kinds) = v["by_kind"].as_object() {
                for (k, n) in kinds {
                    println!("  {k}: {n}");
                }
            }
            let rows: Vec<Vec<String>> = v["entries"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    vec![
                        text(&e["partition"]),
                        text(&e["offset"]),
                        text(&e["kind"]),
                        text(&e["attempts"]),
                        format!(
                            "{}/{}/{}",
                            text(&e["source"]["topic"]),
                            e["source"]["partition"],
                            e["source"]["offset"]
                        ),
                        text(&e["node"]),
                        e["replayed_to"].as_str().unwrap_or("-").to_string(),
                        text(&e["message"]),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                table(
                    &[
                        "partition",
                        "offset",
                        "kind",
                        "attempts",
                        "source",
                        "node",
                        "replayed_to",
                        "message",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        weir::dlq::DlqCommand::Replay(r) => {
            if r.topic.is_some() || r.max_per_sec.is_some() {
                bail!("--topic and --max-per-sec need the Kafka path (leave out --admin)");
            }
            // The instance's own topology has the fix-ups.
            let body = serde_json::json!({
                "kinds": r.kinds,
                "from_offset": r.from_offset,
                "to_offset": r.to_offset,
                "partition": r.partition,
                "to": r.to,
                "group": r.group,
                "fix": r.fix,
            });
            let v = ok_json(&client.send("POST", "/dlq/replay", &[], &body.to_string())?)?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!(
                "replayed {} dead letter(s) from {}; left out: {} by the options, {} without a source topic ({} read)",
                v["replayed"], text(&v["topic"]), v["filtered"], v["no_target"], v["read"]
            );
            Ok(())
        }
    }
}

/// `weir schema register|get|list` through the endpoint.
///
/// # Errors
/// An unreadable file; no answer, or an error answer.
pub fn schema(
    endpoint: &Endpoint,
    output: Output,
    cmd: weir::schema::SchemaCommand,
) -> anyhow::Result<()> {
    use weir::schema::{CompatArg, SchemaCommand};
    let client = endpoint.client()?;
    match cmd {
        SchemaCommand::Register {
            file,
            compatibility,
        } => {
            let body = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let def: serde_json::Value =
                serde_json::from_str(&body).context("the definition is not JSON")?;
            let ty = def["event_type"]
                .as_str()
                .context("the definition has no event_type")?;
            let compat = match compatibility {
                CompatArg::None => "none",
                CompatArg::Backward => "backward",
            };
            let v = ok_json(&client.send(
                "PUT",
                &format!("/schemas/{}?compatibility={compat}", enc(ty)),
                &[],
                &body,
            )?)?;
            match output {
                Output::Json => print_json(&v),
                Output::Table => {
                    println!(
                        "registered {} version {}",
                        text(&v["event_type"]),
                        v["version"]
                    );
                    Ok(())
                }
            }
        }
        SchemaCommand::Get {
            event_type,
            version,
            all,
        } => {
            if all {
                bail!("--all needs the Kafka path (leave out --admin)");
            }
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            print_json(&ok_json(
                &client.get(&format!("/schemas/{}{q}", enc(&event_type)))?,
            )?)
        }
        SchemaCommand::List { json } => {
            let v = ok_json(&client.get("/schemas")?)?;
            // `--json`: the definitions themselves; `--output json`: the
            // endpoint's answer, as for every command.
            if output == Output::Json {
                return print_json(&v);
            }
            if json {
                return print_json(&v["definitions"]);
            }
            let rows: Vec<Vec<String>> = v["definitions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    vec![
                        text(&d["event_type"]),
                        text(&d["version"]),
                        text(&d["owner"]),
                        text(&d["description"]),
                    ]
                })
                .collect();
            table(&["event type", "version", "owner", "description"], &rows);
            Ok(())
        }
    }
}
