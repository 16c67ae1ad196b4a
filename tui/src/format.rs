//! Formatting for narrow terminal cells: durations, clock times, rates,
//! relative times and truncation to a display width.

use ratatui::text::Line;

/// `1h02m`, `3m04s`, `12s`, `1d01h`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `HH:MM:SS` (UTC) of a Unix-epoch millisecond time.
pub fn clock(at_ms: u64) -> String {
    let secs = i64::try_from(at_ms / 1000).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(|| "--:--:--".into(), |t| t.format("%H:%M:%S").to_string())
}

/// How long before `now_ms` something happened: `now`, `12s ago`, `3m04s ago`;
/// a time in the future (clock skew) reads `now`.
pub fn ago(at_ms: u64, now_ms: u64) -> String {
    let d = now_ms.saturating_sub(at_ms);
    if d < 1000 { "now".to_owned() } else { format!("{} ago", human_duration(d)) }
}

/// A per-second rate with a precision that fits its size: `0`, `0.05/s`,
/// `3.2/s`, `41/s`, `1.2k/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".to_owned()
    } else if per_sec < 1.0 {
        format!("{per_sec:.2}/s")
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else if per_sec < 1000.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{:.1}k/s", per_sec / 1000.0)
    }
}

/// `part` as a percentage of `whole`: `0%`, `4.2%`, `100%`; `–` when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    #[allow(clippy::cast_precision_loss)]
    let p = part as f64 * 100.0 / whole as f64;
    if p == 0.0 || p >= 99.95 { format!("{p:.0}%") } else { format!("{p:.1}%") }
}

/// A latency in milliseconds: `–` when unknown, `0.4 ms`, `12 ms`, `1.5 s`.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(v) if !v.is_finite() || v < 0.0 => "–".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) if v < 1000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.1} s", v / 1000.0),
    }
}

/// `text` cut to at most `width` display columns, ending in `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if Line::raw(text).width() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = Line::raw(c.to_string()).width();
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_clocks() {
        assert_eq!(human_duration(12_500), "12s");
        assert_eq!(human_duration(184_000), "3m04s");
        assert_eq!(human_duration(3_723_000), "1h02m");
        assert_eq!(human_duration(90_000_000), "1d01h");
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(clock(u64::MAX), "--:--:--");
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(10_000, 10_500), "now");
        assert_eq!(ago(10_000, 22_000), "12s ago");
        assert_eq!(ago(10_000, 194_000), "3m04s ago");
        assert_eq!(ago(20_000, 10_000), "now", "a future time is now");
    }

    #[test]
    fn rates_and_percentages() {
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(0.05), "0.05/s");
        assert_eq!(rate(3.25), "3.2/s");
        assert_eq!(rate(41.4), "41/s");
        assert_eq!(rate(1234.0), "1.2k/s");
        assert_eq!(percent(0, 0), "–");
        assert_eq!(percent(0, 10), "0%");
        assert_eq!(percent(1, 24), "4.2%");
        assert_eq!(percent(5, 5), "100%");
    }

    #[test]
    fn latencies() {
        assert_eq!(millis(None), "–");
        assert_eq!(millis(Some(0.42)), "0.4 ms");
        assert_eq!(millis(Some(12.4)), "12 ms");
        assert_eq!(millis(Some(1500.0)), "1.5 s");
        assert_eq!(millis(Some(-1.0)), "–");
    }

    #[test]
    fn truncation_counts_display_columns() {
        assert_eq!(truncate("read_file", 20), "read_file");
        assert_eq!(truncate("read_file", 9), "read_file");
        assert_eq!(truncate("read_file", 5), "read…");
        assert_eq!(truncate("read_file", 1), "…");
        assert_eq!(truncate("read_file", 0), "");
        // Wide characters take two columns.
        assert_eq!(truncate("日本語のツール", 6), "日本…");
    }
}
