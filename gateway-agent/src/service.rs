//! Running the agent as a background service: a per-user systemd unit on
//! Linux, a LaunchAgent on macOS, a logon task on Windows (`--system` for a
//! system-wide systemd unit / LaunchDaemon instead).
//!
//! The unit files are rendered here ([`render_systemd`], [`render_launchd`])
//! so they can be checked without touching the system, then handed to the
//! `service-manager` crate to install. Installing is idempotent: an
//! identical file already in place is left alone. The service runs
//! `gateway-agent run --no-tui --config <absolute path>` from the binary's
//! absolute path with `GATEHOUSE_AGENT_SERVICE=1`, restarts on failure (exit
//! code 75 after a self-update counts as one), and is not restarted after
//! exit codes 3 and 4 (token refused, fatal hub error) where systemd allows
//! saying so. The token never appears in any of it: the agent reads it from
//! the token file next to the config.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use service_manager::{
    RestartPolicy, ServiceInstallCtx, ServiceLabel, ServiceLevel, ServiceStartCtx, ServiceStatus, ServiceStatusCtx, ServiceStopCtx,
    ServiceUninstallCtx,
};

/// launchd label, also the base of the other names.
pub const LABEL: &str = "dev.gatehouse.gateway-agent";
/// systemd unit / Windows task name.
pub const UNIT_NAME: &str = "gateway-agent";

/// Problems installing or driving the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Unsupported(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
    let what = what.into();
    move |source| ServiceError::Io { what, source }
}

/// What the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Absolute path of the `gateway-agent` binary.
    pub program: PathBuf,
    /// Absolute path of the config file.
    pub config: PathBuf,
    /// System-wide instead of per-user.
    pub system: bool,
    /// For a system-wide service: the user it runs as.
    pub user: Option<String>,
    /// Where launchd writes the process's stdout/stderr.
    pub stdio_log: PathBuf,
}

impl ServiceSpec {
    /// The service's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        vec!["run".into(), "--no-tui".into(), "--config".into(), self.config.display().to_string()]
    }
}

/// Quotes one word for a systemd `ExecStart=` line.
fn systemd_quote(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The systemd unit file.
pub fn render_systemd(spec: &ServiceSpec) -> String {
    let mut exec = vec![systemd_quote(&spec.program.display().to_string())];
    exec.extend(spec.args().iter().map(|a| {
        if a.contains(|c: char| c.is_whitespace() || "\"\\%$'".contains(c)) || a.contains('/') { systemd_quote(a) } else { a.clone() }
    }));
    let user = match (&spec.user, spec.system) {
        (Some(u), true) => format!("User={u}\n"),
        _ => String::new(),
    };
    let wanted_by = if spec.system { "multi-user.target" } else { "default.target" };
    format!(
        "# Installed by `gateway-agent service install`; reinstall rather than edit.\n\
[Unit]\n\
Description=Gatehouse agent: local MCP servers behind the hub\n\
Wants=network-online.target\n\
After=network-online.target\n\
\n\
[Service]\n\
Type=simple\n\
{user}ExecStart={exec}\n\
Environment=GATEHOUSE_AGENT_SERVICE=1\n\
Restart=on-failure\n\
RestartSec=5\n\
# 3: the hub refused the token; 4: a fatal hub error. Restarting cannot fix either.\n\
RestartPreventExitStatus=3 4\n\
\n\
[Install]\n\
WantedBy={wanted_by}\n",
        exec = exec.join(" "),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The launchd property list.
pub fn render_launchd(spec: &ServiceSpec) -> String {
    let mut args = format!("        <string>{}</string>\n", xml_escape(&spec.program.display().to_string()));
    for a in spec.args() {
        args.push_str(&format!("        <string>{}</string>\n", xml_escape(&a)));
    }
    let user = match (&spec.user, spec.system) {
        (Some(u), true) => format!("    <key>UserName</key>\n    <string>{}</string>\n", xml_escape(u)),
        _ => String::new(),
    };
    let log = xml_escape(&spec.stdio_log.display().to_string());
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Installed by `gateway-agent service install`; reinstall rather than edit. -->
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{args}    </array>
{user}    <key>EnvironmentVariables</key>
    <dict>
        <key>GATEHOUSE_AGENT_SERVICE</key>
        <string>1</string>
    </dict>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>ThrottleInterval</key>
    <integer>5</integer>
    <key>ProcessType</key>
    <string>Background</string>
    <key>StandardOutPath</key>
    <string>{log}</string>
    <key>StandardErrorPath</key>
    <string>{log}</string>
</dict>
</plist>
"#
    )
}

/// Which kind of service file this platform uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Systemd,
    Launchd,
    WindowsTask,
}

impl Flavor {
    /// This platform's.
    pub fn native() -> Self {
        if cfg!(target_os = "macos") {
            Self::Launchd
        } else if cfg!(windows) {
            Self::WindowsTask
        } else {
            Self::Systemd
        }
    }
}

/// Where the service file goes, for a user whose config directory is
/// `config_dir` (`~/.config` on Linux) and home is `home`.
pub fn unit_path(flavor: Flavor, system: bool, home: &Path, config_dir: &Path) -> Option<PathBuf> {
    match (flavor, system) {
        (Flavor::Systemd, false) => Some(config_dir.join("systemd/user").join(format!("{UNIT_NAME}.service"))),
        (Flavor::Systemd, true) => Some(PathBuf::from(format!("/etc/systemd/system/{UNIT_NAME}.service"))),
        (Flavor::Launchd, false) => Some(home.join("Library/LaunchAgents").join(format!("{LABEL}.plist"))),
        (Flavor::Launchd, true) => Some(PathBuf::from(format!("/Library/LaunchDaemons/{LABEL}.plist"))),
        (Flavor::WindowsTask, _) => None,
    }
}

/// The service file for `flavor`.
pub fn render(flavor: Flavor, spec: &ServiceSpec) -> Option<String> {
    match flavor {
        Flavor::Systemd => Some(render_systemd(spec)),
        Flavor::Launchd => Some(render_launchd(spec)),
        Flavor::WindowsTask => None,
    }
}

/// What installing would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// No service file yet.
    Create,
    /// A different service file is in place.
    Update,
    /// The same file is already installed.
    Unchanged,
}

/// Compares the file at `path` with `contents`.
pub fn plan(path: &Path, contents: &str) -> Plan {
    match std::fs::read_to_string(path) {
        Ok(existing) if existing == contents => Plan::Unchanged,
        Ok(_) => Plan::Update,
        Err(_) => Plan::Create,
    }
}

fn label() -> ServiceLabel {
    ServiceLabel { qualifier: Some("dev.gatehouse".into()), organization: None, application: UNIT_NAME.into() }
}

fn manager(system: bool) -> Result<Box<dyn service_manager::ServiceManager>, ServiceError> {
    let mut m = <dyn service_manager::ServiceManager>::native().map_err(io("no supported service manager found"))?;
    m.set_level(if system { ServiceLevel::System } else { ServiceLevel::User }).map_err(io("this service manager cannot do that level"))?;
    Ok(m)
}

fn systemctl(system: bool, args: &[&str]) -> Result<(), ServiceError> {
    let mut cmd = std::process::Command::new("systemctl");
    if !system {
        cmd.arg("--user");
    }
    let out = cmd.args(args).output().map_err(io("cannot run systemctl"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServiceError::Io {
            what: format!("systemctl {}", args.join(" ")),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        })
    }
}

/// Installs (or updates) the service and enables it at login/boot. Returns what changed.
pub fn install(spec: &ServiceSpec, path: Option<&Path>) -> Result<Plan, ServiceError> {
    let flavor = Flavor::native();
    if flavor == Flavor::WindowsTask {
        windows_task(&["/Create", "/F", "/SC", "ONLOGON", "/RL", "LIMITED", "/TN", UNIT_NAME, "/TR", &windows_command(spec)])?;
        return Ok(Plan::Create);
    }
    let contents = render(flavor, spec).unwrap_or_default();
    let plan = path.map_or(Plan::Create, |p| plan(p, &contents));
    if plan == Plan::Unchanged {
        return Ok(plan);
    }
    let ctx = ServiceInstallCtx {
        label: label(),
        program: spec.program.clone(),
        args: spec.args().into_iter().map(OsString::from).collect(),
        contents: Some(contents),
        username: spec.user.clone().filter(|_| spec.system),
        working_directory: None,
        environment: Some(vec![("GATEHOUSE_AGENT_SERVICE".into(), "1".into())]),
        autostart: true,
        restart_policy: RestartPolicy::OnFailure { delay_secs: Some(5), max_retries: None, reset_after_secs: None },
    };
    manager(spec.system)?.install(ctx).map_err(io("installing the service failed"))?;
    if flavor == Flavor::Systemd {
        systemctl(spec.system, &["daemon-reload"])?;
    }
    Ok(plan)
}

/// Removes the service (stopping it first).
pub fn uninstall(system: bool) -> Result<(), ServiceError> {
    if Flavor::native() == Flavor::WindowsTask {
        let _ = windows_task(&["/End", "/TN", UNIT_NAME]);
        return windows_task(&["/Delete", "/F", "/TN", UNIT_NAME]);
    }
    let m = manager(system)?;
    let _ = m.stop(ServiceStopCtx { label: label() });
    m.uninstall(ServiceUninstallCtx { label: label() }).map_err(io("removing the service failed"))?;
    if Flavor::native() == Flavor::Systemd {
        let _ = systemctl(system, &["daemon-reload"]);
    }
    Ok(())
}

/// Starts the installed service.
pub fn start(system: bool) -> Result<(), ServiceError> {
    if Flavor::native() == Flavor::WindowsTask {
        return windows_task(&["/Run", "/TN", UNIT_NAME]);
    }
    manager(system)?.start(ServiceStartCtx { label: label() }).map_err(io("starting the service failed"))
}

/// Stops the running service.
pub fn stop(system: bool) -> Result<(), ServiceError> {
    if Flavor::native() == Flavor::WindowsTask {
        return windows_task(&["/End", "/TN", UNIT_NAME]);
    }
    manager(system)?.stop(ServiceStopCtx { label: label() }).map_err(io("stopping the service failed"))
}

/// Whether the service is installed and running.
pub fn status(system: bool) -> Result<String, ServiceError> {
    if Flavor::native() == Flavor::WindowsTask {
        return windows_task(&["/Query", "/TN", UNIT_NAME]).map(|()| "installed".into());
    }
    let st = manager(system)?.status(ServiceStatusCtx { label: label() }).map_err(io("asking the service manager failed"))?;
    Ok(match st {
        ServiceStatus::NotInstalled => "not installed".into(),
        ServiceStatus::Running => "running".into(),
        ServiceStatus::Stopped(None) => "stopped".into(),
        ServiceStatus::Stopped(Some(why)) => format!("stopped ({why})"),
    })
}

fn windows_command(spec: &ServiceSpec) -> String {
    let mut parts = vec![format!("\"{}\"", spec.program.display())];
    parts.extend(spec.args().into_iter().map(|a| if a.contains(' ') { format!("\"{a}\"") } else { a }));
    parts.join(" ")
}

fn windows_task(args: &[&str]) -> Result<(), ServiceError> {
    let out = std::process::Command::new("schtasks").args(args).output().map_err(io("cannot run schtasks"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServiceError::Unsupported(format!("schtasks {}: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_quotes_paths_with_spaces_and_specials() {
        assert_eq!(systemd_quote("/a b/c"), "\"/a b/c\"");
        assert_eq!(systemd_quote("100%$"), "\"100%%$$\"");
    }

    #[test]
    fn plan_compares_contents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.service");
        assert_eq!(plan(&p, "x"), Plan::Create);
        std::fs::write(&p, "x").unwrap();
        assert_eq!(plan(&p, "x"), Plan::Unchanged);
        assert_eq!(plan(&p, "y"), Plan::Update);
    }
}
