//! The arguments every kind's subcommands share: output formats and the checks of
//! names, holders, messages and durations (each error names what is wrong).

use std::time::Duration;

use clap::ValueEnum;

/// Output formats of `status` and `list`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The full object(s) as JSON.
    Json,
    /// The full object(s) as YAML.
    Yaml,
    /// A table with more columns.
    Wide,
}

/// Output formats of `create`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateFormat {
    /// The created object as JSON.
    Json,
    /// The created object as YAML.
    Yaml,
}

/// The longest name of a barrier or lock: an Arrival's `spec.barrier` and a Permit's
/// lock reference hold at most 63 characters.
pub const MAX_NAME: usize = 63;
/// The longest holder (`spec.holder` of an Arrival).
pub const MAX_HOLDER: usize = 253;
/// The longest failure message (`spec.message` of an Arrival).
pub const MAX_MESSAGE: usize = 1024;

/// An object's name: a DNS-1123 subdomain of at most [`MAX_NAME`] characters.
pub fn parse_name(text: &str) -> Result<String, String> {
    if text.len() > MAX_NAME {
        return Err(format!(
            "must be at most {MAX_NAME} characters (it has {})",
            text.len()
        ));
    }
    if !konductor_api::names::is_dns1123_subdomain(text) {
        return Err("must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit (e.g. 'etl-stage-1')".to_owned());
    }
    Ok(text.to_owned())
}

/// A holder: not empty, at most [`MAX_HOLDER`] characters.
pub fn parse_holder(text: &str) -> Result<String, String> {
    match text.chars().count() {
        0 => Err("must not be empty".to_owned()),
        n if n > MAX_HOLDER => Err(format!(
            "must be at most {MAX_HOLDER} characters (it has {n})"
        )),
        _ => Ok(text.to_owned()),
    }
}

/// A failure message: at most [`MAX_MESSAGE`] characters.
pub fn parse_message(text: &str) -> Result<String, String> {
    match text.chars().count() {
        n if n > MAX_MESSAGE => Err(format!(
            "must be at most {MAX_MESSAGE} characters (it has {n})"
        )),
        _ => Ok(text.to_owned()),
    }
}

/// A Go duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    konductor_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// A Go duration, kept as written (for a spec).
pub fn parse_timeout(text: &str) -> Result<String, String> {
    parse_duration(text).map(|_| text.to_owned())
}

/// Verbs of any kind that take only the object's name (`delete`, `seal`, `open`, …).
#[derive(clap::Args, Debug)]
pub struct NameArgs {
    /// The object's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
}

/// `status` of any kind: the object, and whether to print it whole.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The object's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Print the whole object in this format [default: a summary].
    #[arg(short, long, value_enum)]
    pub output: Option<CreateFormat>,
}

/// `wait` of any kind: the object, how long at most, and whether to show progress.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// The object's name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Give up after this long (a Go duration: 30s, 15m, 1h30m), exiting with code 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// No progress on stderr: print only the final line (done, or why not).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `list` of any kind: the table `kubectl get` shows (the CRD's printer columns), or
/// the objects as JSON or YAML.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// List them in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format [default: a table, as `kubectl get` prints it].
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
}
