//! Integration tests of the AI format translation core: golden snapshots over the fixtures
//! in `tests/fixtures/` (`requests`, `responses`, `streams`), one test per rule of the AI
//! proxy (`rules`), and the helpers around the translators (`misc`).

mod misc;
mod requests;
mod responses;
mod rules;
mod streams;
mod support;
