//! systemd's notify protocol: READY once migrated and reconciled, a
//! WATCHDOG ping from the scheduling loop itself (so a stuck loop gets the
//! service restarted, not a live process with a dead core), a STATUS line
//! kept current, and RELOADING around a SIGHUP reload.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. The
//! environment is read once, by [`Notifier::from_env`], at the top.
//!
//! The protocol is one `KEY=value` assignment per line, so a newline in a
//! value would let it add assignments of its own (`WATCHDOG=trigger` makes
//! systemd kill the unit). Text sent as a value (the STATUS line, which
//! holds policy names) has its control characters escaped first.

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Notifier {
    enabled: bool,
    /// Half the watchdog period systemd asked for, if it asked.
    ping_every: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (systemd sets both).
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ping_every: sd_notify::watchdog_enabled().map(|d| d / 2),
        }
    }

    /// How often the loop must ping, if systemd watches it.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping_every.filter(|_| self.enabled)
    }

    fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "could not notify systemd");
        }
    }

    pub fn ready(&self) {
        self.send(&[sd_notify::NotifyState::Ready]);
    }

    pub fn reloading(&self) {
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[sd_notify::NotifyState::Reloading, now]),
            Err(_) => self.send(&[sd_notify::NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[sd_notify::NotifyState::Stopping]);
    }

    pub fn status(&self, line: &str) {
        let line = escape_controls(line);
        self.send(&[sd_notify::NotifyState::Status(&line)]);
    }

    pub fn watchdog(&self) {
        if self.ping_every.is_some() {
            self.send(&[sd_notify::NotifyState::Watchdog]);
        }
    }
}

/// `line` with every control character written as a Rust escape (`\n`,
/// `\u{1b}`), so it stays one value on one line.
fn escape_controls(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_cannot_add_an_assignment() {
        assert_eq!(escape_controls("3 recording"), "3 recording");
        let sent = escape_controls("next window (a\nWATCHDOG=trigger\r\u{0}x)");
        assert_eq!(sent, "next window (a\\nWATCHDOG=trigger\\r\\u{0}x)");
        assert!(!sent.chars().any(char::is_control));
    }
}
