//! Service files: golden copies of the systemd unit and the launchd plist,
//! an idempotent install in a temporary home (dry run), and a real
//! `systemctl --user` round trip where one is available.

use std::path::PathBuf;

use gateway_agent::service::{Flavor, ServiceSpec, render_launchd, render_systemd, unit_path};

fn spec() -> ServiceSpec {
    ServiceSpec {
        program: PathBuf::from("/opt/gate house/bin/gateway-agent"),
        config: PathBuf::from("/home/alice/.config/gateway-agent/config.toml"),
        system: false,
        user: Some("alice".into()),
        stdio_log: PathBuf::from("/home/alice/.local/state/gateway-agent/service.log"),
    }
}

#[test]
fn systemd_user_unit() {
    let unit = render_systemd(&spec());
    insta::assert_snapshot!(unit);
}

#[test]
fn systemd_system_unit_runs_as_the_user() {
    let unit = render_systemd(&ServiceSpec { system: true, ..spec() });
    assert!(unit.contains("User=alice\n") && unit.contains("WantedBy=multi-user.target"), "{unit}");
}

#[test]
fn launchd_plist() {
    let plist = render_launchd(&spec());
    insta::assert_snapshot!(plist);
}

#[test]
fn paths_per_platform() {
    let home = PathBuf::from("/home/a");
    let cfg = home.join(".config");
    assert_eq!(
        unit_path(Flavor::Systemd, false, &home, &cfg).unwrap(),
        PathBuf::from("/home/a/.config/systemd/user/gateway-agent.service")
    );
    assert_eq!(
        unit_path(Flavor::Launchd, false, &home, &cfg).unwrap(),
        PathBuf::from("/home/a/Library/LaunchAgents/dev.gatehouse.gateway-agent.plist")
    );
    assert_eq!(unit_path(Flavor::Systemd, true, &home, &cfg).unwrap(), PathBuf::from("/etc/systemd/system/gateway-agent.service"));
}

#[cfg(target_os = "linux")]
fn installable_home() -> crate::config::Home {
    let home = crate::config::Home::new();
    home.write_config("[agent]\nname = \"alice\"\nhub_url = \"https://hub.example.com\"\n");
    let secret = gateway_agent::config::Token::new("ga_super_secret_token").unwrap();
    gateway_agent::config::write_token(&home.token(), &secret).unwrap();
    home
}

#[cfg(target_os = "linux")]
#[test]
fn install_is_idempotent_and_never_carries_the_token() {
    use gateway_agent::service::{Plan, plan};

    use crate::config::{stderr, stdout};
    let home = installable_home();
    let unit = home.dir.path().join("xdg-config/systemd/user/gateway-agent.service");

    let o = home.run(&["service", "install", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with(&format!("would create: {}", unit.display())), "{out}");
    assert!(!unit.exists(), "a dry run writes nothing");
    assert!(!out.contains("ga_super_secret_token"), "{out}");
    let rendered = out.split_once('\n').unwrap().1.to_owned();
    assert!(rendered.contains(&format!("--config \"{}\"", home.config().display())), "{rendered}");
    let exe = crate::support::agent_bin().canonicalize().unwrap();
    assert!(rendered.contains(&format!("ExecStart=\"{}\" run --no-tui", exe.display())), "absolute binary path: {rendered}");

    // With the same file in place, installing again changes nothing.
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, &rendered).unwrap();
    assert_eq!(plan(&unit, &rendered), Plan::Unchanged);
    let out = stdout(&home.run(&["service", "install", "--dry-run"]));
    assert!(out.starts_with(&format!("unchanged: {}", unit.display())), "{out}");
    std::fs::write(&unit, "[Unit]\nold\n").unwrap();
    let out = stdout(&home.run(&["service", "install", "--dry-run"]));
    assert!(out.starts_with("would update"), "{out}");

    // Without a token there is nothing to install.
    std::fs::remove_file(home.token()).unwrap();
    let o = home.run(&["service", "install", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no token file"), "{}", stderr(&o));
}

#[cfg(target_os = "linux")]
fn systemctl_user_works() -> bool {
    std::process::Command::new("systemctl").args(["--user", "show-environment"]).output().is_ok_and(|o| o.status.success())
}

#[cfg(target_os = "linux")]
#[test]
fn real_systemd_user_install_start_stop() {
    use crate::config::{stderr, stdout};
    if !systemctl_user_works() {
        eprintln!("\n*** SKIPPED: service::real_systemd_user_install_start_stop: `systemctl --user` is not available here ***\n");
        return;
    }
    // Uses the real user manager: the unit goes to the real ~/.config/systemd/user.
    let home = installable_home();
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(crate::support::agent_bin());
        c.env("GATEHOUSE_AGENT_CONFIG", home.config()).env("GATEHOUSE_AGENT_STATE_DIR", home.state()).args(args);
        c.output().unwrap()
    };
    let o = run(&["service", "install"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["service", "install"]);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    assert!(run(&["service", "start"]).status.success());
    assert!(stdout(&run(&["service", "status"])).contains("running") || stdout(&run(&["service", "status"])).contains("stopped"));
    assert!(run(&["service", "stop"]).status.success());
    assert!(run(&["service", "uninstall"]).status.success());
    assert!(stdout(&run(&["service", "status"])).contains("not installed"));
}
