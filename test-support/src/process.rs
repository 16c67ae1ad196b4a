//! Spawned processes in tests: a guard that kills the child (optionally its
//! whole process group) when dropped, so a failing test never leaks servers,
//! and a helper that starts the fixture binary over HTTP.

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::paths::fixture_bin;

/// A child process the guard can kill.
pub trait Killable {
    /// The OS process id, while the process has not been reaped.
    fn pid(&self) -> Option<u32>;
    /// Sends the kill signal without waiting.
    fn kill_now(&mut self);
    /// Collects the exit status if the process is gone (avoids zombies).
    fn reap(&mut self);
}

impl Killable for std::process::Child {
    fn pid(&self) -> Option<u32> {
        Some(self.id())
    }

    fn kill_now(&mut self) {
        let _ = self.kill();
    }

    fn reap(&mut self) {
        // After SIGKILL the wait is short; bounded polling keeps drop from hanging.
        for _ in 0..50 {
            if !matches!(self.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Killable for tokio::process::Child {
    fn pid(&self) -> Option<u32> {
        self.id()
    }

    fn kill_now(&mut self) {
        let _ = self.start_kill();
    }

    fn reap(&mut self) {
        // tokio reaps orphaned children in the background.
        let _ = self.try_wait();
    }
}

/// Kills the child when dropped. Dereferences to the child.
pub struct ChildGuard<C: Killable> {
    child: Option<C>,
    group: bool,
}

impl<C: Killable> ChildGuard<C> {
    /// Guards `child`.
    pub fn new(child: C) -> Self {
        Self { child: Some(child), group: false }
    }

    /// Guards `child` and its whole process group: use it for children spawned
    /// with `process_group(0)` that start their own children (npx, shells).
    pub fn new_group(child: C) -> Self {
        Self { child: Some(child), group: true }
    }

    /// Gives the child back without killing it.
    pub fn into_inner(mut self) -> C {
        // `child` is only `None` after this method or drop, neither of which
        // can run before this line.
        self.child.take().unwrap_or_else(|| unreachable!("ChildGuard holds its child until consumed"))
    }

    /// Kills the child (and its group) now.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            #[cfg(unix)]
            if self.group
                && let Some(pid) = c.pid().and_then(|p| i32::try_from(p).ok())
            {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            c.kill_now();
            c.reap();
        }
    }
}

impl<C: Killable> Deref for ChildGuard<C> {
    type Target = C;

    fn deref(&self) -> &C {
        // See `into_inner`: the child is present for the guard's whole life.
        self.child.as_ref().unwrap_or_else(|| unreachable!("ChildGuard holds its child until consumed"))
    }
}

impl<C: Killable> DerefMut for ChildGuard<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.child.as_mut().unwrap_or_else(|| unreachable!("ChildGuard holds its child until consumed"))
    }
}

impl<C: Killable> Drop for ChildGuard<C> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the built `gatehouse-fixture --http --listen 127.0.0.1:0 ARGS...` and
/// returns it with its MCP URL, read from its first stdout line. Fails if the
/// binary is missing (build it with `cargo build --workspace --bins`) or does
/// not report its address within 30 seconds.
pub async fn spawn_fixture_http(args: &[&str]) -> io::Result<(ChildGuard<tokio::process::Child>, String)> {
    let bin = fixture_bin();
    if !bin.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is missing: run `cargo build --workspace --bins` first", bin.display()),
        ));
    }
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(["--http", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = ChildGuard::new(cmd.spawn()?);
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("the fixture's stdout was not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the fixture did not report its address within 30 s"))??
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the fixture exited before reporting its address"))?;
    let url = first
        .strip_prefix("listening on ")
        .ok_or_else(|| io::Error::other(format!("unexpected first line from the fixture: {first:?}")))?
        .to_owned();
    // Keep draining stdout so the fixture never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_kills_on_drop() {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(ChildGuard::new(child));
        // The process is gone (reaped), so /proc has no entry for it.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn into_inner_disarms() {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut child = ChildGuard::new(child).into_inner();
        assert!(child.try_wait().unwrap().is_none(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
