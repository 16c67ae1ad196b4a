//! What `top` shows and its UI state; [`App::apply`] is the only way it
//! changes, and is pure: keys, ticks and data from the hub go in, an
//! [`Action`] for the caller comes out.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use gatehouse_tui::FilterInput;

use super::api::{Agent, AuditRow, Backend, Info, Overview, TopTool};

/// Audit records kept for the tail.
pub const TAIL_LEN: usize = 500;

/// The tabs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Backends,
    Agents,
    Audit,
}

impl Tab {
    pub const ALL: [Self; 4] = [Self::Overview, Self::Backends, Self::Agents, Self::Audit];

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Overview => "Overview",
            Self::Backends => "Backends",
            Self::Agents => "Agents",
            Self::Audit => "Audit",
        }
    }

    fn next(self) -> Self {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    fn prev(self) -> Self {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// Which decisions the audit tail shows (`d` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecisionFilter {
    #[default]
    All,
    Allow,
    Deny,
}

impl DecisionFilter {
    fn next(self) -> Self {
        match self {
            Self::All => Self::Allow,
            Self::Allow => Self::Deny,
            Self::Deny => Self::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    fn admits(self, decision: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Allow => decision == Some("allow"),
            Self::Deny => decision == Some("deny"),
        }
    }
}

/// One poll of the hub.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub info: Info,
    pub overview: Overview,
    pub backends: Vec<Backend>,
    pub agents: Vec<Agent>,
    /// When it was fetched (Unix ms).
    pub at_ms: u64,
}

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    /// Time passed: "updated 3s ago" moves.
    Tick(u64),
    /// A poll succeeded.
    Fetched(Box<Fetched>),
    /// A poll failed; the message is one line.
    FetchFailed(String),
    /// New audit records, oldest first.
    Audit(Vec<AuditRow>),
    /// The live audit stream is connected.
    StreamUp,
    /// The live audit stream failed; it is retried.
    StreamDown(String),
}

/// What the caller should do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Poll now.
    Refresh,
}

/// Everything on screen.
#[derive(Debug, Clone)]
pub struct App {
    /// The hub's URL, as given.
    pub url: String,
    /// The overview window.
    pub minutes: u32,
    /// The latest successful poll.
    pub data: Option<Fetched>,
    /// Why the latest poll failed, while it keeps failing.
    pub error: Option<String>,
    /// Why the live audit stream is down, while it is.
    pub stream_error: Option<String>,
    /// The audit tail, oldest first, at most [`TAIL_LEN`].
    pub audit: VecDeque<AuditRow>,
    /// Records that arrived while paused.
    pub held: Vec<AuditRow>,
    pub paused: bool,
    pub tab: Tab,
    /// Per tab.
    pub filters: [FilterInput; 4],
    /// Per tab: the selected row (tables) or lines scrolled up from the newest (audit).
    pub selected: [usize; 4],
    pub decision: DecisionFilter,
    pub help: bool,
    /// "Now" (Unix ms), set by ticks so rendering is deterministic.
    pub now_ms: u64,
}

impl App {
    /// Nothing fetched yet from the hub at `url`.
    pub fn new(url: impl Into<String>, minutes: u32, now_ms: u64) -> Self {
        Self {
            url: url.into(),
            minutes,
            data: None,
            error: None,
            stream_error: None,
            audit: VecDeque::new(),
            held: Vec::new(),
            paused: false,
            tab: Tab::Overview,
            filters: Default::default(),
            selected: [0; 4],
            decision: DecisionFilter::All,
            help: false,
            now_ms,
        }
    }

    /// The filter of the current tab.
    pub fn filter(&self) -> &FilterInput {
        &self.filters[self.tab.index()]
    }

    /// The newest audit record's `seq` (0 before any).
    pub fn last_seq(&self) -> i64 {
        self.held.last().or(self.audit.back()).map_or(0, |r| r.seq)
    }

    /// Top tools passing the Overview filter, busiest first.
    pub fn top_tools(&self) -> Vec<&TopTool> {
        let f = &self.filters[Tab::Overview.index()];
        self.data
            .iter()
            .flat_map(|d| &d.overview.top_tools)
            .filter(|t| f.matches(&format!("{} {}", t.tool, t.backend.as_deref().unwrap_or(""))))
            .collect()
    }

    /// Backends passing the Backends filter.
    pub fn backends(&self) -> Vec<&Backend> {
        let f = &self.filters[Tab::Backends.index()];
        self.data
            .iter()
            .flat_map(|d| &d.backends)
            .filter(|b| f.matches(&format!("{} {} {} {}", b.name, b.transport, b.health, b.last_error.as_deref().unwrap_or(""))))
            .collect()
    }

    /// Agents passing the Agents filter.
    pub fn agents(&self) -> Vec<&Agent> {
        let f = &self.filters[Tab::Agents.index()];
        self.data
            .iter()
            .flat_map(|d| &d.agents)
            .filter(|a| f.matches(&format!("{} {} {}", a.name, a.owner, a.version.as_deref().unwrap_or(""))))
            .collect()
    }

    /// Audit records passing the Audit filter and decision filter, oldest first.
    pub fn audit_rows(&self) -> Vec<&AuditRow> {
        let f = &self.filters[Tab::Audit.index()];
        self.audit
            .iter()
            .filter(|r| self.decision.admits(r.decision.as_deref()))
            .filter(|r| {
                f.matches(&format!(
                    "{} {} {} {} {} {}",
                    r.who(),
                    r.what(),
                    r.backend.as_deref().unwrap_or(""),
                    r.decision.as_deref().unwrap_or(""),
                    r.status.as_deref().unwrap_or(""),
                    r.error_message.as_deref().unwrap_or("")
                ))
            })
            .collect()
    }

    fn rows_in(&self, tab: Tab) -> usize {
        match tab {
            Tab::Overview => self.top_tools().len(),
            Tab::Backends => self.backends().len(),
            Tab::Agents => self.agents().len(),
            Tab::Audit => self.audit_rows().len(),
        }
    }

    /// Calls per second in the newest step of the series: its requests over
    /// the part of the step that has passed.
    pub fn calls_per_sec(&self) -> f64 {
        let Some(d) = &self.data else { return 0.0 };
        let Some(last) = d.overview.series.last() else { return 0.0 };
        let step_ms = d.overview.step_secs.max(1) * 1000;
        let started = last.ts.and_then(|t| u64::try_from(t.timestamp_millis()).ok()).unwrap_or(0);
        let elapsed = d.at_ms.saturating_sub(started).clamp(1000, step_ms);
        #[allow(clippy::cast_precision_loss)]
        let rate = last.requests as f64 * 1000.0 / elapsed as f64;
        rate
    }

    fn add_audit(&mut self, rows: Vec<AuditRow>) {
        let last = self.last_seq();
        let new = rows.into_iter().filter(|r| r.seq > last);
        if self.paused {
            self.held.extend(new);
            let excess = self.held.len().saturating_sub(TAIL_LEN);
            self.held.drain(..excess);
            return;
        }
        let before = self.audit_rows().len();
        self.audit.extend(new);
        let excess = self.audit.len().saturating_sub(TAIL_LEN);
        self.audit.drain(..excess);
        // Scrolled up: stay on the same records while new ones arrive below.
        let i = Tab::Audit.index();
        if self.selected[i] > 0 {
            let added = self.audit_rows().len().saturating_sub(before);
            self.selected[i] = (self.selected[i] + added).min(self.audit_rows().len().saturating_sub(1));
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: Event) -> Action {
        match ev {
            Event::Tick(now) => self.now_ms = now,
            Event::Fetched(f) => {
                self.data = Some(*f);
                self.error = None;
                self.clamp_selection();
            }
            Event::FetchFailed(e) => self.error = Some(e),
            Event::Audit(rows) => self.add_audit(rows),
            Event::StreamUp => self.stream_error = None,
            Event::StreamDown(e) => self.stream_error = Some(e),
            Event::Key(k) => return self.key(k),
        }
        Action::None
    }

    fn clamp_selection(&mut self) {
        for tab in Tab::ALL {
            let n = self.rows_in(tab);
            self.selected[tab.index()] = self.selected[tab.index()].min(n.saturating_sub(1));
        }
    }

    fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        let tab = self.tab.index();
        if self.filters[tab].editing {
            self.filters[tab].key(key);
            self.selected[tab] = 0;
            return Action::None;
        }
        if self.help {
            self.help = false;
            return if key.code == KeyCode::Char('q') { Action::Quit } else { Action::None };
        }
        let rows = self.rows_in(self.tab);
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => self.filters[tab].start(),
            KeyCode::Esc => {
                self.filters[tab].text.clear();
                self.selected[tab] = 0;
            }
            KeyCode::Char('r') => return Action::Refresh,
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                if !self.paused {
                    let held = std::mem::take(&mut self.held);
                    self.add_audit(held);
                }
            }
            KeyCode::Char('d') if self.tab == Tab::Audit => {
                self.decision = self.decision.next();
                self.selected[tab] = 0;
            }
            KeyCode::Tab | KeyCode::Right => self.tab = self.tab.next(),
            KeyCode::BackTab | KeyCode::Left => self.tab = self.tab.prev(),
            KeyCode::Char(c @ '1'..='4') => self.tab = Tab::ALL[usize::from(c as u8 - b'1')],
            // The audit tail scrolls up from the newest; tables move a selection down.
            KeyCode::Up if self.tab == Tab::Audit => self.selected[tab] = (self.selected[tab] + 1).min(rows.saturating_sub(1)),
            KeyCode::Down if self.tab == Tab::Audit => self.selected[tab] = self.selected[tab].saturating_sub(1),
            KeyCode::Up => self.selected[tab] = self.selected[tab].saturating_sub(1),
            KeyCode::Down => self.selected[tab] = (self.selected[tab] + 1).min(rows.saturating_sub(1)),
            KeyCode::Home => self.selected[tab] = if self.tab == Tab::Audit { rows.saturating_sub(1) } else { 0 },
            KeyCode::End => self.selected[tab] = if self.tab == Tab::Audit { 0 } else { rows.saturating_sub(1) },
            _ => {}
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> Event {
        Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn row(seq: i64, decision: &str) -> AuditRow {
        AuditRow { seq, tool: Some(format!("t{seq}")), decision: Some(decision.into()), ..AuditRow::default() }
    }

    #[test]
    fn tabs_cycle_both_ways() {
        let mut app = App::new("u", 60, 0);
        app.apply(key(KeyCode::Tab));
        assert_eq!(app.tab, Tab::Backends);
        app.apply(key(KeyCode::BackTab));
        app.apply(key(KeyCode::Left));
        assert_eq!(app.tab, Tab::Audit);
        app.apply(key(KeyCode::Right));
        assert_eq!(app.tab, Tab::Overview);
        app.apply(key(KeyCode::Char('3')));
        assert_eq!(app.tab, Tab::Agents);
    }

    #[test]
    fn audit_is_deduplicated_paused_and_filtered_by_decision() {
        let mut app = App::new("u", 60, 0);
        app.apply(Event::Audit(vec![row(1, "allow"), row(2, "deny")]));
        app.apply(Event::Audit(vec![row(2, "deny"), row(3, "allow")]));
        assert_eq!(app.audit.len(), 3, "seq 2 came twice");
        app.apply(key(KeyCode::Char('p')));
        app.apply(Event::Audit(vec![row(4, "deny")]));
        assert_eq!((app.audit.len(), app.held.len(), app.last_seq()), (3, 1, 4));
        app.apply(key(KeyCode::Char('p')));
        assert_eq!((app.audit.len(), app.held.len()), (4, 0));
        app.tab = Tab::Audit;
        app.apply(key(KeyCode::Char('d')));
        assert_eq!(app.audit_rows().len(), 2);
        app.apply(key(KeyCode::Char('d')));
        assert_eq!(app.audit_rows().iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 4]);
        app.apply(key(KeyCode::Char('d')));
        assert_eq!(app.decision, DecisionFilter::All);
    }

    #[test]
    fn typing_a_filter_does_not_trigger_commands() {
        let mut app = App::new("u", 60, 0);
        app.apply(key(KeyCode::Char('/')));
        for c in "qrp?".chars() {
            assert_eq!(app.apply(key(KeyCode::Char(c))), Action::None);
        }
        assert!(!app.paused && !app.help);
        assert_eq!(app.filter().text, "qrp?");
        app.apply(key(KeyCode::Enter));
        app.apply(key(KeyCode::Tab));
        assert!(!app.filter().is_active(), "each tab has its own filter");
        assert_eq!(app.apply(key(KeyCode::Char('r'))), Action::Refresh);
        assert_eq!(app.apply(key(KeyCode::Char('q'))), Action::Quit);
        let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(App::new("u", 60, 0).apply(ctrl_c), Action::Quit);
    }

    #[test]
    fn errors_show_until_the_next_success() {
        let mut app = App::new("u", 60, 0);
        app.apply(Event::FetchFailed("down".into()));
        assert_eq!(app.error.as_deref(), Some("down"));
        app.apply(Event::Fetched(Box::default()));
        assert!(app.error.is_none() && app.data.is_some());
    }
}
