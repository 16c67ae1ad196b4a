//! The terminal dashboard: connection, local servers, recent calls and logs.
//!
//! [`App`] holds what is on screen. [`App::handle_event`] is a pure state
//! update (keys, ticks, new snapshots) returning an [`Action`] for the
//! caller; [`App::render`] draws the current state; [`App::run`] loops over
//! ticks, terminal events and snapshots. Snapshots come from the agent's
//! state in-process (`gateway-agent run`) or from a running agent's control
//! socket (`gateway-agent dashboard`).
//!
//! Keys: tab / shift-tab / ← → move the focus, ↑ ↓ scroll the focused panel,
//! `/` filters calls and logs (enter keeps it, esc clears it), `r`
//! reconnects the tunnel, `?` shows help, `q` quits.

mod view;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use gatehouse_tui::FilterInput;
pub use gatehouse_tui::{TerminalGuard, install_panic_hook};

use crate::state::{AgentState, CallRecord, LogLine, Snapshot, now_ms};

/// The panels, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Connection,
    Servers,
    Calls,
    Logs,
}

impl Focus {
    const ALL: [Self; 4] = [Self::Connection, Self::Servers, Self::Calls, Self::Logs];

    fn index(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    fn next(self) -> Self {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    fn prev(self) -> Self {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// Something that happened.
#[derive(Debug, Clone)]
pub enum AppEvent {
    /// A key was pressed.
    Key(KeyEvent),
    /// Time passed (uptime and "retry in" move).
    Tick(u64),
    /// The agent's state changed.
    Snapshot(Box<Snapshot>),
    /// The snapshot source went away.
    SourceClosed,
}

/// What the caller should do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Reconnect,
}

/// What the dashboard sends back to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiCommand {
    Reconnect,
}

/// The dashboard's state.
#[derive(Debug, Clone)]
pub struct App {
    pub snapshot: Option<Snapshot>,
    pub focus: Focus,
    /// Applies to calls and logs (case-insensitive substring).
    pub filter: FilterInput,
    pub help: bool,
    /// Lines scrolled up from the newest, per panel.
    pub scroll: [usize; 4],
    /// "Now" for uptimes; set by ticks so rendering is deterministic.
    pub now_ms: u64,
    /// A short note in the footer (e.g. "reconnect requested").
    pub notice: Option<String>,
    /// Where the data comes from, shown in the title.
    pub source: String,
}

impl App {
    /// An empty dashboard for data from `source`.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            snapshot: None,
            focus: Focus::Calls,
            filter: FilterInput::default(),
            help: false,
            scroll: [0; 4],
            now_ms: now_ms(),
            notice: None,
            source: source.into(),
        }
    }

    fn matches(&self, text: &str) -> bool {
        self.filter.matches(text)
    }

    /// Calls that pass the filter, oldest first.
    pub fn filtered_calls(&self) -> Vec<&CallRecord> {
        let Some(s) = &self.snapshot else { return Vec::new() };
        s.calls
            .iter()
            .filter(|c| {
                let hay = format!("{} {} {} {}", c.server, c.method, c.target.as_deref().unwrap_or(""), c.error.as_deref().unwrap_or(""));
                self.matches(&hay)
            })
            .collect()
    }

    /// Log lines that pass the filter, oldest first.
    pub fn filtered_logs(&self) -> Vec<&LogLine> {
        let Some(s) = &self.snapshot else { return Vec::new() };
        s.logs.iter().filter(|l| self.matches(&format!("{} {}", l.level, l.message))).collect()
    }

    /// Applies one event; pure apart from the returned action.
    pub fn handle_event(&mut self, ev: AppEvent) -> Action {
        match ev {
            AppEvent::Tick(now) => {
                self.now_ms = now;
                Action::None
            }
            AppEvent::Snapshot(s) => {
                self.snapshot = Some(*s);
                Action::None
            }
            AppEvent::SourceClosed => {
                self.notice = Some("lost contact with the agent".into());
                Action::None
            }
            AppEvent::Key(key) => self.key(key),
        }
    }

    fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        if self.filter.editing {
            self.filter.key(key);
            self.scroll[Focus::Calls.index()] = 0;
            self.scroll[Focus::Logs.index()] = 0;
            return Action::None;
        }
        if self.help {
            // Any key closes help; q still quits.
            self.help = false;
            return if key.code == KeyCode::Char('q') { Action::Quit } else { Action::None };
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Esc => self.filter.text.clear(),
            KeyCode::Char('r') => {
                self.notice = Some("reconnect requested".into());
                return Action::Reconnect;
            }
            KeyCode::Tab | KeyCode::Right => self.focus = self.focus.next(),
            KeyCode::BackTab | KeyCode::Left => self.focus = self.focus.prev(),
            KeyCode::Up => {
                let i = self.focus.index();
                self.scroll[i] = self.scroll[i].saturating_add(1).min(self.scroll_limit());
            }
            KeyCode::Down => {
                let i = self.focus.index();
                self.scroll[i] = self.scroll[i].saturating_sub(1);
            }
            KeyCode::Home => {
                let i = self.focus.index();
                self.scroll[i] = self.scroll_limit();
            }
            KeyCode::End => self.scroll[self.focus.index()] = 0,
            _ => {}
        }
        Action::None
    }

    fn scroll_limit(&self) -> usize {
        match self.focus {
            Focus::Calls => self.filtered_calls().len().saturating_sub(1),
            Focus::Logs => self.filtered_logs().len().saturating_sub(1),
            Focus::Servers => self.snapshot.as_ref().map_or(0, |s| s.servers.len().saturating_sub(1)),
            Focus::Connection => 0,
        }
    }

    /// Draws the dashboard.
    pub fn render(&self, frame: &mut ratatui::Frame<'_>) {
        view::render(self, frame);
    }

    /// Runs the dashboard until `q`: redraws on every tick, key and snapshot;
    /// `r` goes out on `commands`.
    pub async fn run<B: Backend>(
        mut self,
        terminal: &mut Terminal<B>,
        mut snapshots: mpsc::Receiver<Snapshot>,
        commands: mpsc::UnboundedSender<UiCommand>,
    ) -> std::io::Result<()> {
        let mut keys = crossterm::event::EventStream::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut source_open = true;
        loop {
            terminal.draw(|f| self.render(f))?;
            let ev = tokio::select! {
                _ = tick.tick() => AppEvent::Tick(now_ms()),
                s = snapshots.recv(), if source_open => match s {
                    Some(s) => AppEvent::Snapshot(Box::new(s)),
                    None => {
                        source_open = false;
                        AppEvent::SourceClosed
                    }
                },
                k = keys.next() => match k {
                    Some(Ok(crossterm::event::Event::Key(k))) => AppEvent::Key(k),
                    Some(Ok(_)) => continue, // resize and the like: just redraw
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            };
            match self.handle_event(ev) {
                Action::Quit => return Ok(()),
                Action::Reconnect => {
                    let _ = commands.send(UiCommand::Reconnect);
                }
                Action::None => {}
            }
        }
    }
}

/// Snapshots of an in-process agent's state, one per change (at most 10 a second).
pub fn state_feed(state: AgentState) -> mpsc::Receiver<Snapshot> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut changes = state.subscribe();
        loop {
            changes.mark_unchanged();
            if tx.send(state.snapshot()).await.is_err() {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> AppEvent {
        AppEvent::Key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    #[test]
    fn focus_cycles_both_ways() {
        let mut app = App::new("t");
        assert_eq!(app.focus, Focus::Calls);
        app.handle_event(key(KeyCode::Tab));
        assert_eq!(app.focus, Focus::Logs);
        app.handle_event(key(KeyCode::Right));
        assert_eq!(app.focus, Focus::Connection);
        app.handle_event(key(KeyCode::BackTab));
        assert_eq!(app.focus, Focus::Logs);
        app.handle_event(key(KeyCode::Left));
        assert_eq!(app.focus, Focus::Calls);
    }

    #[test]
    fn quit_reconnect_help() {
        let mut app = App::new("t");
        assert_eq!(app.handle_event(key(KeyCode::Char('r'))), Action::Reconnect);
        assert_eq!(app.handle_event(key(KeyCode::Char('?'))), Action::None);
        assert!(app.help);
        assert_eq!(app.handle_event(key(KeyCode::Esc)), Action::None);
        assert!(!app.help);
        assert_eq!(app.handle_event(key(KeyCode::Char('q'))), Action::Quit);
        let ctrl_c = AppEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(App::new("t").handle_event(ctrl_c), Action::Quit);
    }

    #[test]
    fn typing_a_filter_does_not_trigger_commands() {
        let mut app = App::new("t");
        app.handle_event(key(KeyCode::Char('/')));
        for c in "rq?".chars() {
            assert_eq!(app.handle_event(key(KeyCode::Char(c))), Action::None);
        }
        assert_eq!(app.filter.text, "rq?");
        app.handle_event(key(KeyCode::Backspace));
        app.handle_event(key(KeyCode::Enter));
        assert_eq!(app.filter.text, "rq");
        assert!(!app.filter.editing);
        app.handle_event(key(KeyCode::Char('/')));
        app.handle_event(key(KeyCode::Esc));
        assert_eq!(app.filter.text, "");
    }
}
