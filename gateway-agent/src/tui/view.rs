//! Drawing the dashboard. Laid out for 80×24 and up: a title line, the
//! connection, the servers, the recent calls, the logs and a key line.

use gatehouse_tui::format::{clock, human_duration};
use gatehouse_tui::widgets::{badge, header_style, help_line, help_overlay, key_line, panel, tail_range};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::{App, Focus};
use crate::state::ConnState;

fn block(app: &App, title: &str, focus: Focus) -> Block<'static> {
    panel(title, app.focus == focus)
}

fn state_span(state: &ConnState, now: u64) -> Span<'static> {
    match state {
        ConnState::Connected => Span::styled("● connected", Style::new().fg(Color::Green)),
        ConnState::Connecting => Span::styled("◌ connecting", Style::new().fg(Color::Yellow)),
        ConnState::Backoff { retry_at_ms } => {
            let left = retry_at_ms.saturating_sub(now);
            let when = if left < 1000 { "<1s".to_owned() } else { human_duration(left) };
            Span::styled(format!("◌ retry in {when}"), Style::new().fg(Color::Yellow))
        }
        ConnState::Failed { .. } => Span::styled("✖ failed", Style::new().fg(Color::Red)),
        ConnState::Stopped => Span::styled("■ stopped", Style::new().fg(Color::DarkGray)),
    }
}

/// Draws everything.
pub fn render(app: &App, f: &mut Frame<'_>) {
    let area = f.area();
    let servers = app.snapshot.as_ref().map_or(0, |s| s.servers.len());
    let server_rows = u16::try_from(servers.clamp(1, 5)).unwrap_or(5);
    let [title, conn, srv, calls, logs, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Length(server_rows + 3),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_title(app, f, title);
    render_connection(app, f, conn);
    render_servers(app, f, srv);
    render_calls(app, f, calls);
    render_logs(app, f, logs);
    render_footer(app, f, footer);
    if app.help {
        render_help(f, area);
    }
}

fn render_title(app: &App, f: &mut Frame<'_>, area: Rect) {
    let (agent, version) = app.snapshot.as_ref().map_or(("?", "?"), |s| (s.connection.agent.as_str(), s.version.as_str()));
    let line = Line::from(vec![badge("gateway-agent"), Span::raw(format!(" {agent} · v{version} · {}", app.source))]);
    f.render_widget(Paragraph::new(line), area);
}

fn render_connection(app: &App, f: &mut Frame<'_>, area: Rect) {
    let b = block(app, "Connection", Focus::Connection);
    let Some(s) = &app.snapshot else {
        f.render_widget(Paragraph::new("waiting for the agent…").block(b), area);
        return;
    };
    let c = &s.connection;
    let rtt = c.rtt_ms.map_or_else(|| "–".to_owned(), |r| format!("{r} ms"));
    let uptime = c.connected_since_ms.map_or_else(|| "–".to_owned(), |t| human_duration(app.now_ms.saturating_sub(t)));
    let first =
        Line::from(vec![state_span(&c.state, app.now_ms), Span::raw(format!("   RTT {rtt}   up {uptime}   reconnects {}", c.reconnects))]);
    let second = match (&c.state, &c.last_error) {
        (ConnState::Failed { reason }, _) => Line::from(Span::styled(reason.clone(), Style::new().fg(Color::Red))),
        (ConnState::Connected, _) | (_, None) => Line::from(format!("hub {}", c.hub)),
        (_, Some(e)) => Line::from(Span::styled(format!("last error: {e}"), Style::new().fg(Color::Red))),
    };
    f.render_widget(Paragraph::new(vec![first, second]).block(b), area);
}

fn render_servers(app: &App, f: &mut Frame<'_>, area: Rect) {
    let b = block(app, "Servers", Focus::Servers);
    let rows: Vec<Row<'_>> = app
        .snapshot
        .iter()
        .flat_map(|s| s.servers.iter())
        .skip(app.scroll[Focus::Servers.index()])
        .map(|s| {
            let color = match s.status.as_str() {
                "ready" => Color::Green,
                "starting" | "degraded" => Color::Yellow,
                _ => Color::Red,
            };
            Row::new(vec![
                Cell::from(s.name.clone()),
                Cell::from(s.transport.clone()),
                Cell::from(Span::styled(s.status.clone(), Style::new().fg(color))),
                Cell::from(s.tools.to_string()),
                Cell::from(s.restarts.to_string()),
                Cell::from(s.last_error.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let header = Row::new(["NAME", "VIA", "STATUS", "TOOLS", "RESTARTS", "LAST ERROR"]).style(header_style());
    let widths = [
        Constraint::Length(14),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    if empty {
        let p = Paragraph::new("no local servers — add one with `gateway-agent servers add`").block(b);
        f.render_widget(p, area);
    } else {
        f.render_widget(Table::new(rows, widths).header(header).block(b), area);
    }
}

fn render_calls(app: &App, f: &mut Frame<'_>, area: Rect) {
    let calls = app.filtered_calls();
    let title = if !app.filter.is_active() {
        format!("Recent calls ({})", calls.len())
    } else {
        format!("Recent calls ({}, filtered)", calls.len())
    };
    let b = block(app, &title, Focus::Calls);
    let rows: Vec<Row<'_>> = calls
        .iter()
        .rev()
        .skip(app.scroll[Focus::Calls.index()])
        .map(|c| {
            let what = match &c.target {
                Some(t) => format!("{}/{t}", c.server),
                None => format!("{} {}", c.server, c.method),
            };
            let result = if c.ok {
                Span::styled("ok", Style::new().fg(Color::Green))
            } else {
                Span::styled(format!("error: {}", c.error.as_deref().unwrap_or("")), Style::new().fg(Color::Red))
            };
            Row::new(vec![Cell::from(clock(c.at_ms)), Cell::from(what), Cell::from(format!("{} ms", c.duration_ms)), Cell::from(result)])
        })
        .collect();
    let header = Row::new(["TIME", "CALL", "TOOK", "RESULT"]).style(header_style());
    let widths = [Constraint::Length(8), Constraint::Length(30), Constraint::Length(9), Constraint::Fill(1)];
    f.render_widget(Table::new(rows, widths).header(header).block(b), area);
}

fn render_logs(app: &App, f: &mut Frame<'_>, area: Rect) {
    let logs = app.filtered_logs();
    let b = block(app, "Logs", Focus::Logs);
    let visible = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line<'_>> = logs[tail_range(logs.len(), visible, app.scroll[Focus::Logs.index()])]
        .iter()
        .map(|l| {
            let color = match l.level.as_str() {
                "ERROR" => Color::Red,
                "WARN" => Color::Yellow,
                "INFO" => Color::Green,
                _ => Color::DarkGray,
            };
            Line::from(vec![
                Span::raw(format!("{} ", clock(l.at_ms))),
                Span::styled(format!("{:<5} ", l.level), Style::new().fg(color)),
                Span::raw(l.message.clone()),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(b), area);
}

fn render_footer(app: &App, f: &mut Frame<'_>, area: Rect) {
    let notice = app.notice.iter().map(|n| Span::styled(format!(" · {n}"), Style::new().fg(Color::Cyan))).collect();
    let line = key_line("q quit · ? help · / filter · r reconnect · tab focus", &app.filter, notice);
    f.render_widget(Paragraph::new(line), area);
}

fn render_help(f: &mut Frame<'_>, area: Rect) {
    let lines = vec![
        help_line("tab / shift-tab, ← →", "move between panels"),
        help_line("↑ ↓, home / end", "scroll the focused panel"),
        help_line("/", "filter calls and logs"),
        help_line("esc", "clear the filter"),
        help_line("r", "reconnect to the hub now"),
        help_line("?", "this help"),
        help_line("q, ctrl-c", "quit; an agent started by"),
        help_line("", "`gateway-agent run` stops too"),
    ];
    help_overlay(f, area, lines);
}
