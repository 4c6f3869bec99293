//! `dlq list` and `dlq replay`, for topology binaries (`<topology> dlq …`,
//! with the topology's fix-ups) and the generic `weir dlq …`.

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use weir_dsl::Topology;
use weir_runtime::{list_dead_letters, replay_dead_letters, Config, Error, ReplayOptions, Result};

use crate::output::{print_json, Output};

/// The dead-letter commands.
#[derive(Subcommand, Debug, Clone)]
pub enum DlqCommand {
    /// Counts dead letters by kind and shows the first ones (reason,
    /// source, offset).
    List {
        /// How many dead letters to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The dead-letter topic (default: the configured one).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Writes dead letters back to their source topic (or `--to`), exactly
    /// once, resuming where an interrupted replay stopped.
    Replay(ReplayArgs),
}

/// Options of `dlq replay`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The dead-letter topic (default: the configured one).
    #[arg(long)]
    pub topic: Option<String>,
    /// Write to this topic instead of each record's source topic.
    #[arg(long)]
    pub to: Option<String>,
    /// Only dead letters of this kind (repeatable).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only dead letters at or after this offset.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Only dead letters at or before this offset.
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Only dead letters of this partition of the dead-letter topic.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Pass each dead letter through the topology's fix-up of this name.
    #[arg(long)]
    pub fix: Option<String>,
    /// The replay's consumer group (default `<application_id>-dlq-replay`;
    /// a filtered replay gets a group of its own, named after its filters).
    #[arg(long)]
    pub group: Option<String>,
    /// Records per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// At most this many records per second.
    #[arg(long)]
    pub max_per_sec: Option<u64>,
}

/// Runs `cmd` against the configured cluster; `topology` supplies the
/// dead-letter topic's default and the fix-ups (the generic CLI has none).
/// With [`Output::Json`], prints the admin endpoint's JSON (`GET /dlq`,
/// `POST /dlq/replay`).
///
/// # Errors
/// [`Error::Usage`] for an unknown fix-up or topic; Kafka errors as they
/// come (an interrupted replay resumes when run again).
pub fn run_dlq(
    config: &Config,
    topology: Option<&Topology>,
    cmd: DlqCommand,
    output: Output,
) -> Result<()> {
    let default_topic = config.dead_letter_topic(topology.and_then(Topology::dead_letter_topic));
    match cmd {
        DlqCommand::List { limit, topic } => {
            let topic = topic.unwrap_or(default_topic);
            let l = list_dead_letters(config, &topic, limit)?;
            if output == Output::Json {
                print_json(&l.to_json(&topic));
                return Ok(());
            }
            println!(
                "dead-letter topic {topic}: {} record(s), {} not replayed",
                l.total, l.pending
            );
            for (kind, n) in &l.by_kind {
                println!("  {kind}: {n}");
            }
            if !l.entries.is_empty() {
                println!("partition\toffset\tkind\tattempts\tsource\tnode\treplayed_to\tmessage");
            }
            for e in &l.entries {
                println!(
                    "{}\t{}\t{}\t{}\t{}/{}/{}\t{}\t{}\t{}",
                    e.partition,
                    e.offset,
                    e.kind,
                    e.attempts,
                    e.source_topic,
                    e.source_partition,
                    e.source_offset,
                    e.node,
                    e.replayed_to.as_deref().unwrap_or("-"),
                    e.message
                );
            }
            Ok(())
        }
        DlqCommand::Replay(a) => {
            let fix = match (&a.fix, topology) {
                (None, _) => None,
                (Some(name), Some(t)) => Some(t.dead_letter_fix(name).ok_or_else(|| {
                    Error::Usage(format!(
                        "no fix-up {name:?} in this topology (it has: {})",
                        t.dead_letter_fixes().join(", ")
                    ))
                })?),
                (Some(_), None) => {
                    return Err(Error::Usage(
                        "fix-ups are Rust code: run the replay from the topology's binary (`<topology> dlq replay --fix NAME`)".into(),
                    ))
                }
            };
            let mut opts = ReplayOptions::new(config, a.topic.unwrap_or(default_topic));
            opts.to = a.to;
            opts.kinds = a.kinds;
            opts.from_offset = a.from_offset;
            opts.to_offset = a.to_offset;
            opts.partition = a.partition;
            opts.choose_group(a.group, a.fix.as_deref());
            opts.batch = a.batch_size.max(1);
            opts.max_per_sec = a.max_per_sec;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} dead letters read ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let f = fix.as_deref();
            let s = replay_dead_letters(
                config,
                &opts,
                f.map(|f| f as weir_runtime::FixUp<'_>),
                &mut |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )?;
            bar.finish_and_clear();
            if output == Output::Json {
                print_json(&s.to_json(&opts.topic));
                return Ok(());
            }
            println!(
                "replayed {} dead letter(s) from {}; left out: {} by the options, {} by the fix-up, {} without a source topic, {} replayed before ({} read)",
                s.replayed, opts.topic, s.filtered, s.dropped, s.no_target, s.already_replayed, s.read
            );
            Ok(())
        }
    }
}
