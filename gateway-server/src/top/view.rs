//! Drawing `top`: a title line, the tab bar, the tab's panels and a key line.
//! Laid out for 80×24; wider screens show the audit tail beside the top tools.

use gatehouse_tui::format::{ago, clock, millis, percent, rate, truncate};
use gatehouse_tui::widgets::{
    badge, header_style, help_line, help_overlay, key_line, panel, selectable_table, series, stat_tile, status_panel, tab_bar, tail_range,
};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::api::AuditRow;
use super::app::{App, Tab};

/// Unix ms of an optional timestamp (0 when absent).
pub(crate) fn ms(t: Option<chrono::DateTime<chrono::Utc>>) -> u64 {
    t.and_then(|t| u64::try_from(t.timestamp_millis()).ok()).unwrap_or(0)
}

/// Draws everything.
pub fn render(app: &App, f: &mut Frame<'_>) {
    let area = f.area();
    let [title, tabs, body, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    render_title(app, f, title);
    let titles: Vec<&str> = Tab::ALL.iter().map(|t| t.title()).collect();
    f.render_widget(tab_bar(&titles, app.tab.index()), tabs);
    match app.tab {
        Tab::Overview => render_overview(app, f, body),
        Tab::Backends => render_backends(app, f, body),
        Tab::Agents => render_agents(app, f, body),
        Tab::Audit => render_audit(app, f, body, true),
    }
    render_footer(app, f, footer);
    if app.help {
        render_help(f, area);
    }
}

fn render_title(app: &App, f: &mut Frame<'_>, area: Rect) {
    let version = app.data.as_ref().map_or("?", |d| d.info.version.as_str());
    let state = match (&app.error, &app.data) {
        (Some(_), _) => Span::styled("✖ error", Style::new().fg(Color::Red)),
        (None, None) => Span::styled("◌ connecting", Style::new().fg(Color::Yellow)),
        (None, Some(_)) => Span::styled("● connected", Style::new().fg(Color::Green)),
    };
    let updated = app.data.as_ref().map_or_else(|| "never".to_owned(), |d| ago(d.at_ms, app.now_ms));
    let url = truncate(&app.url, usize::from(area.width).saturating_sub(52).max(12));
    let line = Line::from(vec![
        badge("gatehouse top"),
        Span::raw(format!(" {url} · v{version} · ")),
        state,
        Span::raw(format!(" · updated {updated}")),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn render_footer(app: &App, f: &mut Frame<'_>, area: Rect) {
    let mut extra = Vec::new();
    if app.paused {
        let held = if app.held.is_empty() { String::new() } else { format!(" +{}", app.held.len()) };
        extra.push(Span::styled(format!(" · paused{held}"), Style::new().fg(Color::Yellow)));
    }
    let problem = app.error.as_ref().or(app.stream_error.as_ref().map(|e| e as &String));
    let hints = if problem.is_some() {
        "q quit · ? help"
    } else if app.tab == Tab::Audit {
        "q quit · ? help · / filter · d decision · p pause · r refresh"
    } else {
        "q quit · ? help · / filter · p pause · r refresh · tab next"
    };
    if let Some(e) = problem {
        let which = if app.error.is_some() { "" } else { "audit stream: " };
        extra.push(Span::styled(format!(" · ✖ {which}{e}"), Style::new().fg(Color::Red)));
    }
    f.render_widget(Paragraph::new(key_line(hints, app.filter(), extra)), area);
}

fn render_help(f: &mut Frame<'_>, area: Rect) {
    let lines = vec![
        help_line("tab / shift-tab, ← →", "switch tabs (or 1-4)"),
        help_line("↑ ↓, home / end", "select a row, scroll the tail"),
        help_line("/", "filter this tab's table"),
        help_line("esc", "clear the filter"),
        help_line("d", "audit: allow / deny / all"),
        help_line("p", "pause the audit tail"),
        help_line("r", "refresh now"),
        help_line("?", "this help"),
        help_line("q, ctrl-c", "quit"),
    ];
    help_overlay(f, area, lines);
}

fn count_title(name: &str, shown: usize, app: &App) -> String {
    if app.filter().is_active() { format!("{name} ({shown}, filtered)") } else { format!("{name} ({shown})") }
}

fn waiting(app: &App, f: &mut Frame<'_>, area: Rect, title: &str) -> bool {
    if app.data.is_some() {
        return false;
    }
    f.render_widget(Paragraph::new("waiting for the hub…").block(panel(title, true)), area);
    true
}

fn render_overview(app: &App, f: &mut Frame<'_>, area: Rect) {
    if waiting(app, f, area, "Overview") {
        return;
    }
    let Some(d) = &app.data else { return };
    let o = &d.overview;
    let [tiles, charts, rest] = Layout::vertical([Constraint::Length(4), Constraint::Length(5), Constraint::Fill(1)]).areas(area);

    let online = d.agents.iter().filter(|a| a.online).count();
    let err_color = if o.errors > 0 { Color::Red } else { Color::Green };
    // (value, caption, caption when the tile is narrow, colour)
    let values = [
        (rate(app.calls_per_sec()).trim_end_matches("/s").to_owned(), "calls/s", "calls/s", Color::Cyan),
        (percent(o.errors, o.requests), "errors", "errors", err_color),
        (millis(o.p50_ms), "p50", "p50", Color::Cyan),
        (millis(o.p99_ms), "p99", "p99", Color::Cyan),
        (format!("{online}/{}", d.agents.len()), "agents online", "agents", Color::Green),
        (format!("${:.2}", o.ai_spend_today_usd), "AI spend today", "AI today", Color::Magenta),
    ];
    let cells = Layout::horizontal([Constraint::Fill(1); 6]).split(tiles);
    for ((value, caption, short, color), cell) in values.iter().zip(cells.iter()) {
        let caption = if caption.len() + 2 > usize::from(cell.width) { short } else { caption };
        stat_tile(f, *cell, value, caption, *color);
    }

    let [req, err] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts);
    let requests: Vec<u64> = o.series.iter().map(|p| p.requests).collect();
    let errors: Vec<u64> = o.series.iter().map(|p| p.errors).collect();
    series(f, req, &format!("requests/{}", step_label(o.step_secs)), &requests, Color::Green);
    series(f, err, &format!("errors/{}", step_label(o.step_secs)), &errors, Color::Red);

    if area.width >= 110 {
        let [tools, audit] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(rest);
        render_top_tools(app, f, tools);
        render_audit(app, f, audit, false);
    } else {
        render_top_tools(app, f, rest);
    }
}

/// `1m`, `30s`: the width of a series step.
fn step_label(step_secs: u64) -> String {
    if step_secs >= 60 && step_secs.is_multiple_of(60) { format!("{}m", step_secs / 60) } else { format!("{step_secs}s") }
}

fn render_top_tools(app: &App, f: &mut Frame<'_>, area: Rect) {
    let tools = app.top_tools();
    let block = panel(&format!("{} · last {}m", count_title("Top tools", tools.len(), app), app.minutes), true);
    if tools.is_empty() {
        let text = if app.filter().is_active() { "no tool matches the filter" } else { "no calls in this window" };
        f.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let rows: Vec<Row<'_>> = tools
        .iter()
        .map(|t| {
            let errors = if t.errors > 0 { Style::new().fg(Color::Red) } else { Style::new() };
            Row::new(vec![
                Cell::from(t.tool.clone()),
                Cell::from(t.backend.clone().unwrap_or_else(|| "-".into())),
                Cell::from(format!("{:>6}", t.calls)),
                Cell::from(Span::styled(format!("{:>6}", t.errors), errors)),
            ])
        })
        .collect();
    let header = Row::new(["TOOL", "BACKEND", " CALLS", "ERRORS"]).style(header_style());
    let widths = [Constraint::Fill(2), Constraint::Fill(1), Constraint::Length(6), Constraint::Length(6)];
    selectable_table(f, area, Table::new(rows, widths).header(header).block(block), Some(app.selected[Tab::Overview.index()]));
}

fn health_style(health: &str) -> Style {
    Style::new().fg(match health {
        "ready" => Color::Green,
        "starting" | "degraded" => Color::Yellow,
        _ => Color::Red,
    })
}

fn render_backends(app: &App, f: &mut Frame<'_>, area: Rect) {
    if waiting(app, f, area, "Backends") {
        return;
    }
    let backends = app.backends();
    let selected = app.selected[Tab::Backends.index()];
    let (table_area, detail_area) = if area.height >= 16 && !backends.is_empty() {
        let [t, d] = Layout::vertical([Constraint::Fill(1), Constraint::Length(8)]).areas(area);
        (t, Some(d))
    } else {
        (area, None)
    };
    let block = panel(&count_title("Backends", backends.len(), app), true);
    if backends.is_empty() {
        let text = if app.filter().is_active() { "no backend matches the filter" } else { "no backends" };
        f.render_widget(Paragraph::new(text).block(block), table_area);
        return;
    }
    let rows: Vec<Row<'_>> = backends
        .iter()
        .map(|b| {
            let health = if b.enabled { b.health.clone() } else { format!("{} (off)", b.health) };
            Row::new(vec![
                Cell::from(b.name.clone()),
                Cell::from(b.transport.clone()),
                Cell::from(Span::styled(health, health_style(&b.health))),
                Cell::from(format!("{:>5}", b.tools)),
                Cell::from(format!("{:>8}", b.restarts)),
                Cell::from(Span::styled(b.last_error.clone().unwrap_or_default(), Style::new().fg(Color::Red))),
            ])
        })
        .collect();
    let header = Row::new(["NAME", "VIA", "HEALTH", "TOOLS", "RESTARTS", "LAST ERROR"]).style(header_style());
    let widths = [
        Constraint::Length(16),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    selectable_table(f, table_area, Table::new(rows, widths).header(header).block(block), Some(selected));
    if let (Some(area), Some(b)) = (detail_area, backends.get(selected)) {
        let target = b.url.clone().or_else(|| b.command.clone()).unwrap_or_else(|| "-".into());
        let pairs = vec![
            ("health", Span::styled(b.health.clone(), health_style(&b.health))),
            ("from", Span::raw(format!("{} · {}", b.source, if b.enabled { "enabled" } else { "disabled" }))),
            ("reaches", Span::raw(format!("{} {target}", b.transport))),
            ("catalog", Span::raw(format!("{} tools · {} prompts · {} resources", b.tools, b.prompts, b.resources))),
            ("restarts", Span::raw(b.restarts.to_string())),
            ("last error", Span::styled(b.last_error.clone().unwrap_or_else(|| "none".into()), Style::new().fg(Color::Red))),
        ];
        f.render_widget(status_panel(pairs, panel(&b.name, false)), area);
    }
}

fn render_agents(app: &App, f: &mut Frame<'_>, area: Rect) {
    if waiting(app, f, area, "Agents") {
        return;
    }
    let agents = app.agents();
    let block = panel(&count_title("Agents", agents.len(), app), true);
    if agents.is_empty() {
        let text = if app.filter().is_active() {
            "no agent matches the filter"
        } else {
            "no agents enrolled — enroll one with `gateway-server agents enroll`"
        };
        f.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let rows: Vec<Row<'_>> = agents
        .iter()
        .map(|a| {
            let state = if a.revoked_at.is_some() {
                Span::styled("✖ revoked", Style::new().fg(Color::Red))
            } else if a.online {
                Span::styled("● online", Style::new().fg(Color::Green))
            } else {
                Span::styled("○ offline", Style::new().fg(Color::DarkGray))
            };
            let seen = a.last_seen.map_or_else(|| "never".to_owned(), |t| ago(ms(Some(t)), app.now_ms));
            Row::new(vec![
                Cell::from(a.name.clone()),
                Cell::from(state),
                Cell::from(a.owner.clone()),
                Cell::from(a.version.clone().unwrap_or_else(|| "-".into())),
                Cell::from(seen),
            ])
        })
        .collect();
    let header = Row::new(["NAME", "STATE", "OWNER", "VERSION", "LAST SEEN"]).style(header_style());
    let widths = [Constraint::Fill(2), Constraint::Length(9), Constraint::Fill(1), Constraint::Length(9), Constraint::Length(12)];
    selectable_table(f, area, Table::new(rows, widths).header(header).block(block), Some(app.selected[Tab::Agents.index()]));
}

fn audit_row(r: &AuditRow) -> Row<'static> {
    let decision = match r.decision.as_deref() {
        Some("deny") => Span::styled("deny", Style::new().fg(Color::Red)),
        Some(d) => Span::styled(d.to_owned(), Style::new().fg(Color::Green)),
        None => Span::raw("-"),
    };
    let status = match r.status.as_deref() {
        Some("error") => Span::styled("error", Style::new().fg(Color::Red)),
        Some(s) => Span::raw(s.to_owned()),
        None => Span::raw("-"),
    };
    Row::new(vec![
        Cell::from(clock(ms(r.ts))),
        Cell::from(r.who().to_owned()),
        Cell::from(r.what()),
        Cell::from(decision),
        Cell::from(status),
        Cell::from(format!("{:>8}", millis(r.latency_ms))),
    ])
}

/// The audit tail, newest at the bottom; `full` on the Audit tab (filters
/// and scrolling apply, the title says so).
fn render_audit(app: &App, f: &mut Frame<'_>, area: Rect, full: bool) {
    let rows = app.audit_rows();
    let mut title = if full { count_title("Audit", rows.len(), app) } else { format!("Recent audit ({})", rows.len()) };
    if full {
        title.push_str(&format!(" · decision: {}", app.decision.label()));
    }
    if app.paused {
        title.push_str(" · paused");
    }
    let block = panel(&title, full);
    if rows.is_empty() {
        let text = if app.audit.is_empty() { "no audit records yet" } else { "no record matches the filters" };
        f.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let visible = usize::from(area.height.saturating_sub(3));
    let scroll = if full { app.selected[Tab::Audit.index()] } else { 0 };
    let shown: Vec<Row<'_>> = rows[tail_range(rows.len(), visible, scroll)].iter().map(|r| audit_row(r)).collect();
    let header = Row::new(["TIME", "USER", "TOOL", "DECISION", "STATUS", "    TOOK"]).style(header_style());
    let widths = [
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(8),
    ];
    f.render_widget(Table::new(shown, widths).header(header).block(block), area);
}
