//! The single tracing-subscriber setup.
//!
//! Under systemd (`JOURNAL_STREAM` set) events go to journald with their
//! fields as structured journal fields; elsewhere human-readable text;
//! JSON lines for log shippers. The output sink is a parameter, so tests
//! can capture what an operator would read and check that no secret is in
//! it.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when started by systemd (JOURNAL_STREAM is set), else text.
    #[default]
    Auto,
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log shippers.
    Json,
    /// Straight to the systemd journal, fields as journal fields.
    Journald,
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
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        _ => Box::new(builder.finish()),
    }
}

/// Installs the process-wide subscriber: journald or stderr.
/// `under_systemd` is whether `JOURNAL_STREAM` is set (read by the caller).
pub fn init(format: LogFormat, directives: Option<&str>, under_systemd: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => under_systemd,
        _ => false,
    };
    if journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let sub = tracing_subscriber::registry()
                    .with(filter(directives))
                    .with(layer.with_syslog_identifier("recsched".to_owned()));
                let _ = tracing::subscriber::set_global_default(sub);
                return;
            }
            Err(e) => eprintln!("recsched: cannot log to journald ({e}); logging to stderr"),
        }
    }
    let ansi = std::io::stderr().is_terminal();
    let sub = subscriber(format, directives, std::io::stderr, ansi);
    // A second init (tests calling main twice) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(sub);
}
