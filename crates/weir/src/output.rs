//! [`Output`]: how the command lines print an answer.

use clap::ValueEnum;

/// How to print an answer: `--output json|table`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// JSON, pretty-printed (the admin endpoint's shape).
    Json,
    /// Text for people.
    #[default]
    Table,
}

/// Prints `v` pretty-printed.
pub(crate) fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("a JSON value serializes")
    );
}
