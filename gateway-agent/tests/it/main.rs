//! Integration tests of the agent, one binary: the tunnel against channels and
//! an in-test fake hub, the config and its edits, the TUI, service files,
//! self-update and the command line.

mod cli;
mod config;
mod fake_hub;
mod service;
mod support;
mod tui;
mod tunnel;
mod update;
