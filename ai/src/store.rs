//! The hook that makes OpenAI Responses' `previous_response_id` work.
//!
//! With `previous_response_id` the client sends only the new input and expects the server to
//! remember the conversation. Without a store the Responses parser refuses such requests with
//! [`crate::ParseError::Unsupported`], which the hub answers with a clear 400, instead of
//! silently answering without the earlier turns.

use crate::model::Message;

/// Remembers conversations by response id.
pub trait ResponseStore: Send + Sync {
    /// The whole conversation up to and including the answer `response_id` (no system prompt:
    /// Responses' `instructions` do not carry over between responses).
    fn get(&self, response_id: &str) -> Option<Vec<Message>>;
    /// Remember the conversation ending with the answer `response_id`; see
    /// [`crate::openai_responses::conversation_after`].
    fn put(&self, response_id: &str, conversation: Vec<Message>);
}
