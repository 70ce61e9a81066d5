//! What every fault run asserts besides its own case: the daemon never
//! panicked, and the users not concerned by the fault were recorded on time.

use chrono::{DateTime, Duration, Utc};
use recsched::simulator::Recording;

/// How late a start may leave and still be "on time": planning, the claim
/// and one HTTP round trip on a loaded 2-core machine take well under it.
pub const ON_TIME: Duration = Duration::seconds(2);

/// The log holds no panic message.
pub fn assert_no_panic(log: &str) {
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}

/// Every user in `users` has exactly one recording, started in
/// `[window, window + ON_TIME)`.
pub fn assert_on_time(sim: &[Recording], users: &[String], window: DateTime<Utc>) {
    for u in users {
        let mine: Vec<_> = sim.iter().filter(|r| &r.user_id == u).collect();
        assert_eq!(mine.len(), 1, "{u}: {mine:?}");
        let late = mine[0].started_at - window;
        assert!(
            late >= Duration::zero() && late < ON_TIME,
            "{u} started {} ms after its window opened at {window}",
            late.num_milliseconds()
        );
    }
}
