//! `gateway-server top`: the live picture of a running hub, in a terminal,
//! from its admin API (`/api/v1`) — the dashboard's Overview and Audit pages
//! for ops on a shell.
//!
//! [`app::App`] holds the data and the UI state and changes only through
//! [`app::App::apply`]; [`view::render`] draws it (pure, snapshot-tested);
//! [`run`] feeds it: a poller (`/info`, `/overview`, `/backends`, `/agents`
//! every interval, or now on `r`), the live audit stream (reconnected with
//! backoff), ticks and keys, all through one channel.

pub mod api;
pub mod app;
pub mod plain;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::{Notify, mpsc};

use self::api::HubClient;
use self::app::{Action, App, Event};

/// Audit records fetched to fill the tail at start.
pub const BACKFILL: u32 = 100;

/// First and longest wait before reconnecting the audit stream.
const STREAM_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Polls the hub every `interval` and whenever `now` is notified.
fn spawn_poller(client: HubClient, minutes: u32, interval: Duration, now: Arc<Notify>, tx: mpsc::Sender<Event>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = now.notified() => tick.reset(),
            }
            let ev = match client.fetch(minutes, now_ms()).await {
                Ok(f) => Event::Fetched(Box::new(f)),
                Err(e) => Event::FetchFailed(e.to_string()),
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
}

/// Follows the audit stream from after `after`, reconnecting with a doubling
/// backoff (reset once connected) from after the newest record seen.
fn spawn_audit(client: HubClient, mut after: i64, tx: mpsc::Sender<Event>) {
    tokio::spawn(async move {
        let (first, longest) = STREAM_BACKOFF;
        let mut wait = first;
        let (seen_tx, mut seen_rx) = mpsc::channel::<Event>(16);
        // Records pass through here so the newest seq is known for reconnects.
        loop {
            let follow = client.follow_audit(after, &seen_tx);
            tokio::pin!(follow);
            let result = loop {
                tokio::select! {
                    r = &mut follow => break r,
                    Some(ev) = seen_rx.recv() => {
                        match &ev {
                            Event::StreamUp => wait = first,
                            Event::Audit(rows) => after = rows.iter().map(|r| r.seq).fold(after, i64::max),
                            _ => {}
                        }
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
            };
            while let Ok(ev) = seen_rx.try_recv() {
                if let Event::Audit(rows) = &ev {
                    after = rows.iter().map(|r| r.seq).fold(after, i64::max);
                }
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            let why = match result {
                Ok(()) => return,
                Err(e) => e.to_string(),
            };
            if tx.send(Event::StreamDown(why)).await.is_err() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(longest);
        }
    });
}

/// Runs the interactive view on `terminal` until `q`, starting from `app`
/// (already holding the first poll and the audit backfill).
pub async fn run<B: Backend>(terminal: &mut Terminal<B>, mut app: App, client: HubClient, interval: Duration) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let refresh = Arc::new(Notify::new());
    spawn_poller(client.clone(), app.minutes, interval, refresh.clone(), tx.clone());
    spawn_audit(client, app.last_seq(), tx);
    let mut keys = crossterm::event::EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        terminal.draw(|f| view::render(&app, f))?;
        let ev = tokio::select! {
            _ = tick.tick() => Event::Tick(now_ms()),
            Some(ev) = rx.recv() => ev,
            k = keys.next() => match k {
                Some(Ok(crossterm::event::Event::Key(k))) => Event::Key(k),
                Some(Ok(_)) => continue, // resize and the like: just redraw
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        };
        match app.apply(ev) {
            Action::Quit => return Ok(()),
            Action::Refresh => refresh.notify_one(),
            Action::None => {}
        }
    }
}
