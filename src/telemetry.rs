//! The single tracing-subscriber setup.
//!
//! Human-readable text by default, JSON lines for log shippers. The output
//! sink is a parameter, so tests can capture what an operator would read
//! and check that no secret is in it.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// The filter: `RUST_LOG` syntax, default `info` for recsched and `warn`
/// for libraries.
pub fn filter(directives: Option<&str>) -> EnvFilter {
    EnvFilter::try_new(directives.unwrap_or("warn,recsched=info"))
        .unwrap_or_else(|_| EnvFilter::new("warn,recsched=info"))
}

/// Builds a subscriber writing to `writer`; `ansi` colours text lines
/// (for a terminal, not for files and the journal).
pub fn subscriber<W>(
    format: LogFormat,
    directives: Option<&str>,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(directives))
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// Installs the process-wide subscriber, writing to stderr.
pub fn init(format: LogFormat, directives: Option<&str>) {
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    let sub = subscriber(format, directives, std::io::stderr, ansi);
    // A second init (tests calling main twice) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(sub);
}
