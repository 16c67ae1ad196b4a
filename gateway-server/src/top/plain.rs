//! `top` without a terminal: one plain-text snapshot, like `top -b -n 1`.

use std::fmt::Write as _;

use gatehouse_tui::format::{ago, clock, millis, percent, rate};

use super::app::App;
use super::view::ms;

/// Columns padded to their widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, w) in cells.zip(&widths) {
            let _ = write!(s, "{c:<w$}  ");
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out += &line(&mut r.iter().map(String::as_str));
    }
    out
}

/// The snapshot of everything `app` holds.
pub fn snapshot(app: &App) -> String {
    let Some(d) = &app.data else { return format!("gatehouse top · {} · no data\n", app.url) };
    let o = &d.overview;
    let mut out = String::new();
    let at = chrono::DateTime::from_timestamp_millis(i64::try_from(d.at_ms).unwrap_or(0))
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let _ = writeln!(out, "gatehouse top · {} · hub v{} · {at}", app.url, d.info.version);
    let _ = writeln!(
        out,
        "last {}m: requests {} · errors {} ({}) · denials {} · p50 {} · p99 {} · calls/s {} · AI spend today ${:.2}",
        app.minutes,
        o.requests,
        o.errors,
        percent(o.errors, o.requests),
        o.denials,
        millis(o.p50_ms),
        millis(o.p99_ms),
        rate(app.calls_per_sec()).trim_end_matches("/s"),
        o.ai_spend_today_usd
    );
    let online = d.agents.iter().filter(|a| a.online).count();
    let _ = writeln!(out, "agents: {online} online of {}", d.agents.len());

    out.push('\n');
    let rows: Vec<Vec<String>> = o
        .top_tools
        .iter()
        .map(|t| vec![t.tool.clone(), t.backend.clone().unwrap_or_else(|| "-".into()), t.calls.to_string(), t.errors.to_string()])
        .collect();
    out += &table(&["TOP TOOL", "BACKEND", "CALLS", "ERRORS"], &rows);

    out.push('\n');
    let rows: Vec<Vec<String>> = d
        .backends
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.transport.clone(),
                b.health.clone(),
                b.tools.to_string(),
                b.restarts.to_string(),
                b.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out += &table(&["BACKEND", "VIA", "HEALTH", "TOOLS", "RESTARTS", "LAST ERROR"], &rows);

    if !d.agents.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = d
            .agents
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    if a.online { "online" } else { "offline" }.to_owned(),
                    a.owner.clone(),
                    a.version.clone().unwrap_or_else(|| "-".into()),
                    a.last_seen.map_or_else(|| "never".to_owned(), |t| ago(ms(Some(t)), d.at_ms)),
                ]
            })
            .collect();
        out += &table(&["AGENT", "STATE", "OWNER", "VERSION", "LAST SEEN"], &rows);
    }

    if !app.audit.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = app
            .audit
            .iter()
            .map(|r| {
                vec![
                    clock(ms(r.ts)),
                    r.who().to_owned(),
                    r.what(),
                    r.decision.clone().unwrap_or_else(|| "-".into()),
                    r.status.clone().unwrap_or_else(|| "-".into()),
                    millis(r.latency_ms),
                ]
            })
            .collect();
        out += &table(&["TIME", "USER", "TOOL", "DECISION", "STATUS", "TOOK"], &rows);
    }
    out
}
