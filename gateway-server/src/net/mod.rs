//! Outbound network safety: checks applied to URLs the hub is asked to
//! connect to at run time (backends added through the admin API).

pub mod ssrf;

pub use ssrf::{SsrfError, SsrfPolicy, check_url};
