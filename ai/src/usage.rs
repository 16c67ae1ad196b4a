//! Usage accounting over a stream: [`UsageMeter`] yields the final usage exactly once, so a
//! request is charged once whether the stream ends normally, with an error, or because the
//! client went away.

use crate::model::{StreamEvent, Usage};

/// Follows a stream's usage and hands out the final figure once.
///
/// Anthropic reports input tokens in `message_start` and *cumulative* totals in
/// `message_delta`; parsers turn both into full [`Usage`] values, and the meter assigns the
/// latest (never adds), so a provider that repeats totals is not double-counted.
#[derive(Debug, Default)]
pub struct UsageMeter {
    usage: Usage,
    started: bool,
    taken: bool,
}

impl UsageMeter {
    /// A meter for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observe an event; returns the final usage on [`StreamEvent::MessageStop`] (once).
    pub fn observe(&mut self, event: &StreamEvent) -> Option<Usage> {
        match event {
            StreamEvent::MessageStart { usage, .. } => {
                self.started = true;
                self.usage = usage.clone();
            }
            StreamEvent::MessageDelta { usage, .. } => {
                self.started = true;
                self.usage = usage.clone();
            }
            StreamEvent::MessageStop => return self.take(),
            _ => {}
        }
        None
    }

    /// The stream ended without `MessageStop` (upstream error, client abort): the usage seen
    /// so far, unless it was already handed out or the stream never started.
    pub fn finish(&mut self) -> Option<Usage> {
        if self.started { self.take() } else { None }
    }

    /// Usage seen so far, without consuming it.
    pub fn current(&self) -> &Usage {
        &self.usage
    }

    /// The final usage was handed out.
    pub fn is_settled(&self) -> bool {
        self.taken
    }

    fn take(&mut self) -> Option<Usage> {
        if self.taken {
            return None;
        }
        self.taken = true;
        Some(self.usage.clone())
    }
}
