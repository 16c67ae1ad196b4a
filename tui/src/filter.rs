//! The `/` filter: a one-line input that, once typed, narrows a table or a
//! tail to the rows containing it (case-insensitive substring).

use crossterm::event::{KeyCode, KeyEvent};

/// Longest filter kept, in characters.
const MAX_LEN: usize = 64;

/// The filter text and whether the input line has the keyboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput {
    pub text: String,
    /// Keys go to the filter (`/` started it; enter or esc end it).
    pub editing: bool,
}

impl FilterInput {
    /// Starts typing (the `/` key).
    pub fn start(&mut self) {
        self.editing = true;
    }

    /// Handles a key while editing: enter keeps the filter, esc clears it,
    /// backspace deletes, characters are typed.
    pub fn key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.editing = false,
            KeyCode::Esc => {
                self.editing = false;
                self.text.clear();
            }
            KeyCode::Backspace => {
                self.text.pop();
            }
            KeyCode::Char(c) if self.text.chars().count() < MAX_LEN => self.text.push(c),
            _ => {}
        }
    }

    /// Whether `haystack` passes: always with an empty filter.
    pub fn matches(&self, haystack: &str) -> bool {
        self.text.is_empty() || haystack.to_lowercase().contains(&self.text.to_lowercase())
    }

    /// Whether a filter is set.
    pub fn is_active(&self) -> bool {
        !self.text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyModifiers;

    use super::*;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn typing_keeping_and_clearing() {
        let mut f = FilterInput::default();
        assert!(f.matches("anything") && !f.is_active());
        f.start();
        for c in "ReAd".chars() {
            f.key(k(KeyCode::Char(c)));
        }
        f.key(k(KeyCode::Backspace));
        assert_eq!(f.text, "ReA");
        f.key(k(KeyCode::Enter));
        assert!(!f.editing && f.is_active());
        assert!(f.matches("fs__read_file") && !f.matches("fs__write"));
        f.start();
        f.key(k(KeyCode::Esc));
        assert!(!f.editing && !f.is_active());
    }

    #[test]
    fn length_is_bounded() {
        let mut f = FilterInput::default();
        f.start();
        for _ in 0..100 {
            f.key(k(KeyCode::Char('x')));
        }
        assert_eq!(f.text.len(), MAX_LEN);
    }
}
