use super::*;
use crate::policy::exclusion::{attach, Span};
use crate::policy::{Exclusion, ExclusionId, PolicyRow};
use chrono::TimeZone;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
}

fn ann() -> UserId {
    UserId::parse("ann").unwrap()
}

/// A 09:00-12:00 policy for ann, with an exclusion from `excluded` on.
fn policies(end_mode: &str, excluded: Option<DateTime<Utc>>) -> Vec<Policy> {
    let mut p = vec![Policy::from_row(&PolicyRow {
        id: 1,
        name: "p".into(),
        enabled: true,
        cron: "0 9 * * *".into(),
        timezone: "UTC".into(),
        window_seconds: 3 * 3600,
        end_mode: end_mode.into(),
        users: vec!["ann".into()],
    })
    .unwrap()];
    if let Some(start) = excluded {
        let e = Exclusion {
            id: ExclusionId::new(1),
            policy: None,
            user: None,
            span: Span::Instants {
                start,
                end: at(23, 0, 0),
            },
            timezone: None,
            reason: Some("shutdown".into()),
        };
        attach(&mut p, &[e]);
    }
    p
}

/// Ann's live 09:00-12:00 recording.
fn live(end_mode: EndMode, end: DateTime<Utc>) -> Tracked {
    Tracked {
        id: 7,
        user: ann(),
        policy_id: Some(1),
        start: at(9, 0, 0),
        end,
        end_mode,
        state: RecordingState::Recording,
        contact: None,
        busy: false,
    }
}

fn decide(policies: &[Policy], t: &Tracked, now: DateTime<Utc>) -> Plan {
    let cov = coverage(policies, now, now, chrono::Duration::hours(4));
    let occupied = by_user(vec![(ann(), t.start, t.end)]);
    plan(&cov, &occupied, [t], now, SegmentLimit::default())
}

#[test]
fn an_exclusion_beginning_mid_recording_wakes_the_loop_when_it_begins_and_ends_it() {
    for mode in [EndMode::Expire, EndMode::Stop] {
        let ps = policies(mode.as_str(), Some(at(10, 0, 0)));
        let t = live(mode, at(12, 0, 0));
        let before = decide(&ps, &t, at(9, 30, 0));
        assert!(before.ends.is_empty());
        assert_eq!(before.next, Some(at(10, 0, 0)), "{mode:?}");
        let then = decide(&ps, &t, at(10, 0, 0));
        assert_eq!(then.ends, [(7, EndReason::Uncovered)], "{mode:?}");
        assert!(then.starts.is_empty());
    }
}

#[test]
fn an_expiring_recording_that_ends_within_5_s_of_the_exclusion_is_left_to_expire() {
    let ps = policies("expire", Some(at(11, 59, 56)));
    let t = live(EndMode::Expire, at(12, 0, 0));
    let covered = decide(&ps, &t, at(11, 0, 0));
    assert_eq!(covered.next, Some(at(12, 0, 0)), "no wake-up for 4 s");
    let uncovered = decide(&ps, &t, at(11, 59, 56));
    assert!(uncovered.ends.is_empty(), "{:?}", uncovered.ends);
    assert_eq!(uncovered.next, Some(at(12, 0, 0)));

    // In stop mode it is stopped all the same.
    let ps = policies("stop", Some(at(11, 59, 56)));
    let t = live(EndMode::Stop, at(12, 0, 0));
    assert_eq!(
        decide(&ps, &t, at(11, 59, 57)).ends,
        [(7, EndReason::Uncovered)]
    );
}

#[test]
fn without_exclusions_a_covered_recording_wakes_the_loop_at_its_end() {
    let ps = policies("stop", None);
    let t = live(EndMode::Stop, at(12, 0, 0));
    let p = decide(&ps, &t, at(10, 0, 0));
    assert!(p.ends.is_empty());
    assert_eq!(p.next, Some(at(12, 0, 0)));
}
