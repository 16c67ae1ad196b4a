//! Makes sure `dashboard/dist` exists before the hub embeds it.
//!
//! When the build is missing or older than the dashboard's sources and `npm`
//! is on `PATH`, installs the locked packages (`npm ci`) when needed and runs
//! `npm run build`. Without `npm` (or when the build fails) it writes a small
//! placeholder page saying how to build the dashboard, and warns: the hub
//! always compiles. `GATEHOUSE_DASHBOARD_BUILD=skip` uses whatever
//! `dashboard/dist` holds (e.g. built by an earlier Docker stage).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// What the dashboard's build reads: a change to any of these rebuilds it.
const SOURCES: &[&str] = &["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json", "public"];

/// Marks a placeholder `dist`, so a later build with `npm` replaces it.
const PLACEHOLDER_MARK: &str = ".placeholder";

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse</title></head>
<body>
<h1>Gatehouse</h1>
<p>The dashboard was not built into this hub: Node.js and npm were not found when it was compiled.</p>
<p>Install Node.js 20.19 or later, then rebuild the hub (<code>cargo build --release -p gateway-server</code>),
or build the dashboard by hand: <code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p>
<p>The admin API at <code>/api/v1</code> and the MCP endpoint at <code>/mcp</code> work without it;
create the first admin with <code>gateway-server admin create --username you --password-stdin</code>.</p>
</body></html>
"#;

fn main() {
    let dashboard = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../dashboard");
    for s in SOURCES {
        println!("cargo:rerun-if-changed={}", dashboard.join(s).display());
    }
    println!("cargo:rerun-if-env-changed=GATEHOUSE_DASHBOARD_BUILD");
    let dist = dashboard.join("dist");
    let index = dist.join("index.html");
    if std::env::var("GATEHOUSE_DASHBOARD_BUILD").is_ok_and(|v| v == "skip") {
        if !index.is_file() {
            placeholder(&dist, "GATEHOUSE_DASHBOARD_BUILD=skip and dashboard/dist is empty");
        }
        return;
    }
    let built = modified(&index);
    let placeholder_now = dist.join(PLACEHOLDER_MARK).exists();
    let newest_source = SOURCES.iter().filter_map(|s| newest(&dashboard.join(s))).max();
    let fresh = !placeholder_now && built.is_some_and(|b| newest_source.is_none_or(|s| b >= s));
    if fresh {
        return;
    }
    if !npm_available() {
        if built.is_none() {
            placeholder(&dist, "npm was not found");
        } else if !placeholder_now {
            println!("cargo:warning=npm was not found: embedding the dashboard built earlier, which is older than its sources");
        }
        return;
    }
    if let Err(why) = build(&dashboard) {
        if built.is_some() && !placeholder_now {
            println!("cargo:warning=the dashboard build failed ({why}); embedding the one built earlier");
        } else {
            placeholder(&dist, &format!("the dashboard build failed: {why}"));
        }
    }
}

/// `npm ci` when the installed packages are missing or older than the lock file, then `npm run build`.
fn build(dashboard: &Path) -> Result<(), String> {
    let installed = modified(&dashboard.join("node_modules/.package-lock.json"));
    let locked = modified(&dashboard.join("package-lock.json"));
    if installed.is_none() || installed < locked {
        npm(dashboard, &["ci", "--no-audit", "--no-fund"])?;
    }
    npm(dashboard, &["run", "build"])
}

fn npm(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("npm").args(args).current_dir(dir).output().map_err(|e| format!("npm {}: {e}", args.join(" ")))?;
    if out.status.success() {
        return Ok(());
    }
    // Cargo shows build-script stderr only on failure; warnings carry the gist.
    let text = String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}\n{}", String::from_utf8_lossy(&out.stdout));
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
    Err(format!("`npm {}` exited with {}: {last}", args.join(" "), out.status))
}

fn npm_available() -> bool {
    Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn placeholder(dist: &Path, why: &str) {
    println!("cargo:warning={why}: the hub serves a placeholder page at / instead of the dashboard (see dashboard/dist/index.html)");
    std::fs::create_dir_all(dist).expect("can create dashboard/dist");
    std::fs::write(dist.join("index.html"), PLACEHOLDER).expect("can write dashboard/dist/index.html");
    std::fs::write(dist.join(PLACEHOLDER_MARK), "").expect("can write the placeholder mark");
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` or anything under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|e| newest(&e.path())).chain(own).max()
}
