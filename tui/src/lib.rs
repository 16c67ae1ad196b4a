//! Terminal widgets shared by Gatehouse's terminal views: the agent's
//! dashboard (`gateway-agent run` / `dashboard`) and the hub's ops view
//! (`gateway-server top`).
//!
//! Everything here is stateless drawing or pure formatting, so views built on
//! it render the same on ratatui's `TestBackend` as in a real terminal:
//! - [`terminal`]: raw mode and the alternate screen, restored on drop and on panic;
//! - [`format`]: durations, clocks, rates, relative times, truncation to a width;
//! - [`filter`]: the `/` filter input line and its matching;
//! - [`widgets`]: titled panels, tab bar, key line, help overlay, key-value
//!   status panel, tables with a selection, log tails, labelled sparklines
//!   and stat tiles.

pub mod filter;
pub mod format;
pub mod terminal;
pub mod widgets;

pub use filter::FilterInput;
pub use terminal::{TerminalGuard, install_panic_hook};
