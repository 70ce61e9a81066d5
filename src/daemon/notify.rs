//! systemd's notify protocol: READY once migrated and reconciled, a
//! WATCHDOG ping from the scheduling loop itself (so a stuck loop gets the
//! service restarted, not a live process with a dead core), a STATUS line
//! kept current, and RELOADING around a SIGHUP reload.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. The
//! environment is read once, by [`Notifier::from_env`], at the top.

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
        self.send(&[sd_notify::NotifyState::Status(line)]);
    }

    pub fn watchdog(&self) {
        if self.ping_every.is_some() {
            self.send(&[sd_notify::NotifyState::Watchdog]);
        }
    }
}
