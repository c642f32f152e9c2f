//! Wall-clock times as operators read them: local time, as pssh prints it
//! on status lines and as a journal's holder is named.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Local time as `HH:MM:SS`.
pub fn time_of_day(at: SystemTime) -> String {
    match local(at) {
        Some(tm) => format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
        None => "??:??:??".into(),
    }
}

/// Local date and time as `YYYY-MM-DD HH:MM:SS`, of seconds since the epoch.
pub fn date_time(epoch_seconds: f64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs_f64(epoch_seconds.max(0.0));
    match local(at) {
        Some(tm) => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        ),
        None => format!("{epoch_seconds:.0} s after the epoch"),
    }
}

fn local(at: SystemTime) -> Option<libc::tm> {
    let seconds = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok()?;
    let seconds = libc::time_t::try_from(seconds).ok()?;
    // SAFETY: localtime_r only writes into the tm we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { libc::localtime_r(&seconds, &mut tm) };
    (!converted.is_null()).then_some(tm)
}
