//! Resumable SSE streams of the streamable HTTP front door (2025-11-25, SEP-1699).
//!
//! Every message written to a stream gets an event id `{stream}_{seq}` and is
//! kept in a bounded replay log, so a client whose connection dropped (or that
//! the hub asked to come back later by closing it) resumes with `GET` and
//! `Last-Event-ID` and receives what it missed. Stream 0 of a session is its
//! standalone stream (opened by `GET`); streams 1, 2, ... carry the answer of
//! one POST each and finish with it. A stream may open with a priming event (an
//! id, a `retry` hint and empty data) so the client can resume even before the
//! first real message. One connection reads a stream at a time: a newer one
//! takes over (a client that reconnects before the hub noticed the old TCP
//! connection died must not be locked out).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use gatehouse_proto::Message;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames buffered per connection beyond the replayed ones; a reader slower
/// than this loses the connection (not the messages: they stay in the log).
const CONNECTION_BUFFER: usize = 256;

/// How often an idle connection gets an SSE comment, so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Why a connection could not be attached to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The stream has ended for good (its session ended).
    #[error("the stream is closed")]
    Closed,
    /// Events after the given id have already left the replay buffer.
    #[error("the events after that id are no longer kept (the replay buffer holds the last {0})")]
    Expired(usize),
}

struct Inner {
    log: VecDeque<(u64, Arc<str>)>,
    next_seq: u64,
    /// The highest sequence number handed to a live connection.
    sent_upto: u64,
    live: Option<mpsc::Sender<Bytes>>,
    /// A request stream is finished once its response was written.
    finished: bool,
    /// The response went out on a live connection: nothing is left to resume.
    delivered: bool,
    closed: bool,
}

/// One SSE stream of a session.
pub struct EventStream {
    number: u64,
    is_request: bool,
    capacity: usize,
    inner: Mutex<Inner>,
}

/// The event id of message `seq` of stream `number`.
pub fn event_id(number: u64, seq: u64) -> String {
    format!("{number}_{seq}")
}

/// Parses a `Last-Event-ID` made by [`event_id`]: `(stream, seq)`.
pub fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('_')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl EventStream {
    /// A new stream keeping at most `capacity` messages for replay.
    /// `is_request` streams finish with the first response written.
    pub fn new(number: u64, is_request: bool, capacity: usize) -> Self {
        let inner = Inner { log: VecDeque::new(), next_seq: 1, sent_upto: 0, live: None, finished: false, delivered: false, closed: false };
        Self { number, is_request, capacity: capacity.max(1), inner: Mutex::new(inner) }
    }

    /// The stream's number, unique within its session.
    pub fn number(&self) -> u64 {
        self.number
    }

    fn frame(&self, seq: u64, data: &str) -> Bytes {
        Bytes::from(format!("id: {}\ndata: {data}\n\n", event_id(self.number, seq)))
    }

    /// Attaches a new connection (ending the previous one) and returns its
    /// frames. With `after`, the messages logged after that sequence number
    /// are replayed first; without, those no connection was handed yet are.
    /// With `priming`, the connection opens with an event that has an id, that
    /// `retry` hint and empty data.
    pub fn attach(&self, after: Option<u64>, priming: Option<Duration>) -> Result<mpsc::Receiver<Bytes>, AttachError> {
        let mut g = self.inner.lock();
        if g.closed {
            return Err(AttachError::Closed);
        }
        let from = match after {
            Some(after) => {
                let first_kept = g.log.front().map_or(g.next_seq, |(seq, _)| *seq);
                if after.saturating_add(1) < first_kept {
                    return Err(AttachError::Expired(self.capacity));
                }
                after
            }
            None => g.sent_upto,
        };
        let replay: Vec<Bytes> = g.log.iter().filter(|(seq, _)| *seq > from).map(|(seq, d)| self.frame(*seq, d)).collect();
        let (tx, rx) = mpsc::channel(replay.len() + CONNECTION_BUFFER + 1);
        if let Some(retry) = priming {
            let seq = g.next_seq;
            g.next_seq += 1;
            let frame = format!("id: {}\nretry: {}\ndata: \n\n", event_id(self.number, seq), retry.as_millis());
            // Capacity was reserved above: these sends cannot fail.
            let _ = tx.try_send(Bytes::from(frame));
        }
        if let Some((last, _)) = g.log.back() {
            g.sent_upto = g.sent_upto.max(*last);
        }
        for f in replay {
            let _ = tx.try_send(f);
        }
        if g.finished {
            // Everything there is has been replayed; dropping `tx` ends the
            // connection once the client has read it.
            g.delivered = true;
            g.live = None;
        } else {
            g.live = Some(tx);
        }
        Ok(rx)
    }

    /// Writes a message; false when the stream is closed.
    pub fn send(&self, msg: &Message) -> bool {
        let is_final = self.is_request && matches!(msg, Message::Response(_));
        let data: Arc<str> = msg.to_json().into();
        let mut g = self.inner.lock();
        if g.closed {
            return false;
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        if g.log.len() >= self.capacity {
            g.log.pop_front();
        }
        g.log.push_back((seq, data.clone()));
        let mut sent = false;
        if let Some(tx) = &g.live {
            sent = tx.try_send(self.frame(seq, &data)).is_ok();
            if sent {
                g.sent_upto = seq;
            } else {
                // Gone or too slow: the message stays in the log for a resume.
                g.live = None;
            }
        }
        if is_final {
            g.finished = true;
            g.delivered = sent;
            // Dropping the sender ends the response body after the last frame.
            g.live = None;
        }
        true
    }

    /// Ends the current connection, keeping the stream: the client resumes it
    /// with `Last-Event-ID`.
    pub fn close_connection(&self) {
        self.inner.lock().live = None;
    }

    /// Marks a request stream finished without a response and ends its connection.
    pub fn finish(&self) {
        let mut g = self.inner.lock();
        g.finished = true;
        g.delivered = true;
        g.live = None;
    }

    /// True once a request stream's response went out on a live connection
    /// (or the stream closed): nothing is left to resume.
    pub fn is_done(&self) -> bool {
        let g = self.inner.lock();
        g.closed || (g.finished && g.delivered)
    }

    /// True once a request stream's response was written, delivered or not.
    pub fn is_finished(&self) -> bool {
        self.inner.lock().finished
    }

    /// Ends the stream for good (its session ended).
    pub fn close(&self) {
        let mut g = self.inner.lock();
        g.closed = true;
        g.live = None;
        g.log.clear();
    }
}

/// An HTTP body carrying the frames of `rx`; it ends when the stream drops the
/// connection or `closed` fires, and idle periods get keep-alive comments.
pub fn sse_body(rx: mpsc::Receiver<Bytes>, closed: CancellationToken) -> Body {
    let stream = futures::stream::unfold((rx, closed), |(mut rx, closed)| async move {
        tokio::select! {
            () = closed.cancelled() => None,
            next = tokio::time::timeout(KEEPALIVE, rx.recv()) => match next {
                Ok(Some(frame)) => Some((Ok::<_, Infallible>(frame), (rx, closed))),
                Ok(None) => None,
                Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, closed))),
            },
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use gatehouse_proto::jsonrpc::to_raw;
    use gatehouse_proto::{Notification, Response};

    use super::*;

    fn note(n: i64) -> Message {
        Message::Notification(Notification::new("n", Some(to_raw(&n))))
    }

    fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(b) = rx.try_recv() {
            v.push(String::from_utf8(b.to_vec()).unwrap());
        }
        v
    }

    #[test]
    fn priming_then_messages_then_resume_after_the_connection_closed() {
        let s = EventStream::new(3, true, 16);
        let mut rx = s.attach(None, Some(Duration::from_millis(500))).unwrap();
        s.send(&note(1));
        let frames = drain(&mut rx);
        assert_eq!(frames[0], "id: 3_1\nretry: 500\ndata: \n\n");
        assert!(frames[1].starts_with("id: 3_2\ndata: {"), "{frames:?}");
        // The hub ends the connection; later messages wait in the log.
        s.close_connection();
        assert!(rx.try_recv().is_err());
        s.send(&note(2));
        s.send(&Message::Response(Response::ok(1.into(), to_raw(&1))));
        assert!(s.is_finished() && !s.is_done(), "the response was not delivered yet");
        let (stream, seq) = parse_event_id("3_2").unwrap();
        assert_eq!(stream, 3);
        let mut rx = s.attach(Some(seq), None).unwrap();
        let frames = drain(&mut rx);
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(frames[0].starts_with("id: 3_3\n") && frames[1].contains("\"result\":1"));
        assert!(s.is_done());
        // A finished stream's connection ends after the replay.
        assert!(rx.try_recv().is_err() && rx.is_closed());
    }

    #[test]
    fn expired_ids_closed_streams_and_takeover() {
        let s = EventStream::new(0, false, 2);
        let mut first = s.attach(None, None).unwrap();
        for n in 1..=4 {
            s.send(&note(n));
        }
        assert_eq!(drain(&mut first).len(), 4);
        // Only seq 3 and 4 are kept: resuming after 1 would miss seq 2.
        assert_eq!(s.attach(Some(1), None).unwrap_err(), AttachError::Expired(2));
        let mut second = s.attach(Some(2), None).unwrap();
        assert_eq!(drain(&mut second).len(), 2);
        // The newer connection took over.
        assert!(first.is_closed());
        s.close();
        assert!(!s.send(&note(5)));
        assert_eq!(s.attach(None, None).unwrap_err(), AttachError::Closed);
        assert_eq!(parse_event_id("x_1"), None);
        assert_eq!(parse_event_id(&event_id(7, 9)), Some((7, 9)));
    }

    #[test]
    fn a_fresh_connection_gets_what_no_connection_was_handed() {
        let s = EventStream::new(0, false, 8);
        s.send(&note(1));
        let mut rx = s.attach(None, None).unwrap();
        assert_eq!(drain(&mut rx).len(), 1);
        drop(rx);
        s.send(&note(2));
        let mut rx = s.attach(None, None).unwrap();
        let frames = drain(&mut rx);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(frames[0].starts_with("id: 0_2\n"));
    }
}
