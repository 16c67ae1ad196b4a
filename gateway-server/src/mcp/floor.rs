//! One client at a time on a backend connection that cannot tell its calls apart.
//!
//! Over stdio, the legacy SSE transport and agent tunnels, a server's request
//! to the client (sampling, elicitation) and its log messages carry nothing
//! that names the client call that caused them. When calls of two sessions
//! run at once on such a connection, the hub cannot know whose client to ask,
//! and guessing could hand one user's prompt to another. The floor keeps the
//! question answerable: calls of a session that can answer such requests run
//! only while no other session has a call on that connection; calls of
//! sessions that cannot answer them share the floor with each other (such a
//! request gets an error whichever of them caused it). Waiters are admitted in
//! arrival order; a session already holding the floor may add calls at once
//! (its client may call again while answering the server).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Who sits on the floor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A session that can answer server→client requests, by id.
    Session(String),
    /// Sessions that cannot; they share the floor.
    Open,
}

#[derive(Default)]
struct Inner {
    holder: Option<Holder>,
    seated: usize,
    queue: VecDeque<(Holder, oneshot::Sender<()>)>,
}

/// The floor of one backend connection.
#[derive(Default)]
pub struct Floor {
    inner: Mutex<Inner>,
}

/// A place on the floor; leaving is dropping it.
pub struct Seat {
    floor: Arc<Floor>,
    holder: Holder,
    /// Given up for now ([`Seat::suspend`]).
    away: AtomicBool,
}

impl Seat {
    /// Gives the floor up while the call waits on its client (a 2026-07-28
    /// call parked for input: the backend is blocked on that answer, so it
    /// sends nothing more for this call until [`Seat::resume`]).
    pub fn suspend(&self) {
        if !self.away.swap(true, Ordering::SeqCst) {
            self.floor.leave();
        }
    }

    /// Takes the floor back, waiting like a new call would.
    pub async fn resume(&self) {
        if self.away.load(Ordering::SeqCst) {
            self.floor.wait_seat(self.holder.clone()).await;
            self.away.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if !self.away.load(Ordering::SeqCst) {
            self.floor.leave();
        }
    }
}

/// A queued waiter; if it is dropped after being admitted but before it took
/// its seat, the seat is given back.
struct Waiting {
    floor: Arc<Floor>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.floor.leave();
            }
        }
    }
}

impl Floor {
    /// Waits for a seat for `holder`.
    pub async fn enter(self: &Arc<Self>, holder: Holder) -> Seat {
        self.wait_seat(holder.clone()).await;
        Seat { floor: self.clone(), holder, away: AtomicBool::new(false) }
    }

    /// Waits until `holder` is seated (counted in `seated`).
    async fn wait_seat(self: &Arc<Self>, holder: Holder) {
        let rx = {
            let mut g = self.inner.lock();
            let same = g.holder.as_ref() == Some(&holder);
            let reentry = same && matches!(holder, Holder::Session(_));
            if g.holder.is_none() || (same && (g.queue.is_empty() || reentry)) {
                g.holder = Some(holder);
                g.seated += 1;
                return;
            }
            let (tx, rx) = oneshot::channel();
            g.queue.push_back((holder, tx));
            rx
        };
        let mut waiting = Waiting { floor: self.clone(), rx: Some(rx) };
        if let Some(rx) = waiting.rx.as_mut() {
            // The sender goes away unused only with the floor itself, which `self` keeps alive.
            let _ = rx.await;
        }
        waiting.rx = None;
    }

    fn leave(&self) {
        let mut g = self.inner.lock();
        g.seated = g.seated.saturating_sub(1);
        if g.seated == 0 {
            g.holder = None;
            Self::admit(&mut g);
        }
    }

    /// Seats the next waiter, then every waiter right behind it that shares its holder.
    fn admit(g: &mut Inner) {
        while g.seated == 0 {
            let Some((holder, tx)) = g.queue.pop_front() else { return };
            if tx.send(()).is_ok() {
                g.holder = Some(holder);
                g.seated = 1;
            }
        }
        while g.queue.front().is_some_and(|(h, _)| Some(h) == g.holder.as_ref()) {
            if let Some((_, tx)) = g.queue.pop_front()
                && tx.send(()).is_ok()
            {
                g.seated += 1;
            }
        }
    }

    /// Who holds the floor and how many calls sit on it (for tests and status).
    pub fn state(&self) -> (Option<Holder>, usize, usize) {
        let g = self.inner.lock();
        (g.holder.clone(), g.seated, g.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn session(s: &str) -> Holder {
        Holder::Session(s.into())
    }

    #[tokio::test]
    async fn a_suspended_seat_lets_others_in_and_resumes_after_them() {
        let floor = Arc::new(Floor::default());
        let a = floor.enter(session("a")).await;
        a.suspend();
        a.suspend();
        let b = tokio::time::timeout(Duration::from_secs(5), floor.enter(session("b"))).await.expect("b enters while a is away");
        assert_eq!(floor.state().0, Some(session("b")));
        let a = Arc::new(a);
        let back = tokio::spawn({
            let a = a.clone();
            async move { a.resume().await }
        });
        // `a` queues behind `b` (the queue is how the floor shows a waiter).
        while floor.state().2 == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(floor.state().0, Some(session("b")));
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), back).await.expect("a is back once b left").unwrap();
        assert_eq!(floor.state(), (Some(session("a")), 1, 0));
        drop(a);
        assert_eq!(floor.state(), (None, 0, 0));
    }

    #[tokio::test]
    async fn sessions_take_turns_and_open_callers_share() {
        let floor = Arc::new(Floor::default());
        let a1 = floor.enter(session("a")).await;
        // The holder's own second call gets in at once.
        let a2 = floor.enter(session("a")).await;
        assert_eq!(floor.state(), (Some(session("a")), 2, 0));

        let f = floor.clone();
        let b = tokio::spawn(async move { f.enter(session("b")).await });
        let f = floor.clone();
        let open = tokio::spawn(async move { (f.enter(Holder::Open).await, f.enter(Holder::Open).await) });
        tokio::task::yield_now().await;
        while floor.state().2 < 2 {
            tokio::task::yield_now().await;
        }
        drop(a1);
        assert!(!b.is_finished());
        drop(a2);
        let b = tokio::time::timeout(Duration::from_secs(5), b).await.unwrap().unwrap();
        assert_eq!(floor.state().0, Some(session("b")));
        drop(b);
        let (o1, o2) = tokio::time::timeout(Duration::from_secs(5), open).await.unwrap().unwrap();
        assert_eq!(floor.state(), (Some(Holder::Open), 2, 0));
        drop((o1, o2));
        assert_eq!(floor.state(), (None, 0, 0));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_floor() {
        let floor = Arc::new(Floor::default());
        let a = floor.enter(session("a")).await;
        let f = floor.clone();
        let gave_up = tokio::spawn(async move { tokio::time::timeout(Duration::from_millis(1), f.enter(session("b"))).await.is_err() });
        assert!(gave_up.await.unwrap());
        drop(a);
        // Nobody sits on the floor now: a third session gets it at once.
        let c = tokio::time::timeout(Duration::from_secs(5), floor.enter(session("c"))).await.unwrap();
        assert_eq!(floor.state(), (Some(session("c")), 1, 0));
        drop(c);
    }
}
