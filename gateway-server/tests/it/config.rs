//! Config loading: layering, `${VAR}` expansion, validation messages.

use std::path::Path;
use std::time::Duration;

use gatehouse_upstream::TransportSpec;
use gateway_server::config::{self, BackendTransport, Config, ConfigError, EXAMPLE, MapEnv, ProviderKind};

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse(text, &MapEnv::new())
}

/// The error message for `text`, which must be invalid.
fn error(text: &str, env: &MapEnv) -> String {
    match config::parse(text, env) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
            msg
        }
    }
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let text = r#"
        [server]
        listen = "127.0.0.1:4000"
        max_body_bytes = 1000
        [mcp]
        request_timeout_secs = 5
    "#;
    let c = parse(text).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:4000");
    assert_eq!(c.server.public_url, "http://127.0.0.1:4000", "derived from the file's listen");
    assert_eq!(c.server.max_body_bytes, 1000);
    assert_eq!(c.server.shutdown_grace_secs, 10, "untouched keys keep defaults");
    assert_eq!(c.mcp.request_timeout_secs, 5);

    let env = MapEnv::new()
        .with("GATEHOUSE_SERVER_LISTEN", "0.0.0.0:5000")
        .with("GATEHOUSE_SERVER_MAX_BODY_BYTES", "2048")
        .with("GATEHOUSE_SERVER_ALLOWED_ORIGINS", "https://a.example, https://b.example")
        .with("GATEHOUSE_DATABASE_URL", "postgres://u:p@db/gh")
        .with("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "3")
        .with("GATEHOUSE_AUTH_SECRET_FILE", "/run/secret")
        .with("GATEHOUSE_MCP_REQUEST_TIMEOUT_SECS", "7")
        .with("GATEHOUSE_MCP_SESSION_IDLE_TIMEOUT_SECS", "8")
        .with("GATEHOUSE_MCP_MAX_SESSIONS", "9")
        .with("GATEHOUSE_SERVER_SHUTDOWN_GRACE_SECS", "1")
        .with("GATEHOUSE_SERVER_ALLOWED_HOSTS", "hub.internal")
        .with("GATEHOUSE_LOG_LEVEL", "debug")
        .with("GATEHOUSE_LOG_FORMAT", "json");
    let c = config::parse(text, &env).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:5000");
    assert_eq!(c.server.public_url, "http://0.0.0.0:5000");
    assert_eq!(c.server.max_body_bytes, 2048);
    assert_eq!(c.server.allowed_origins, ["https://a.example", "https://b.example"]);
    assert_eq!(c.server.allowed_hosts, ["hub.internal"]);
    assert_eq!(c.server.shutdown_grace_secs, 1);
    assert_eq!(c.database.url, "postgres://u:p@db/gh");
    assert_eq!(c.database.max_connections, 3);
    assert_eq!(c.auth.secret_file.as_deref(), Some(Path::new("/run/secret")));
    assert_eq!(c.mcp.request_timeout_secs, 7);
    assert_eq!(c.mcp.session_idle_timeout_secs, 8);
    assert_eq!(c.mcp.max_sessions, 9);
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.log.format, "json");
}

#[test]
fn explicit_public_url_is_kept_without_trailing_slash() {
    let c = parse("[server]\npublic_url = \"https://hub.example.com/\"").unwrap();
    assert_eq!(c.server.public_url, "https://hub.example.com");
}

#[test]
fn empty_env_values_count_as_unset() {
    let env = MapEnv::new().with("GATEHOUSE_SERVER_LISTEN", "");
    let c = config::parse("", &env).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:3200");
}

#[test]
fn env_errors_name_the_key_and_the_variable() {
    let env = MapEnv::new().with("GATEHOUSE_SERVER_LISTEN", "not-an-address");
    let msg = error("", &env);
    assert!(msg.starts_with("server.listen: invalid socket address"), "{msg}");
    assert!(msg.contains("GATEHOUSE_SERVER_LISTEN"), "{msg}");

    let env = MapEnv::new().with("GATEHOUSE_MCP_MAX_SESSIONS", "lots");
    let msg = error("", &env);
    assert!(msg.starts_with("mcp.max_sessions: "), "{msg}");
    assert!(msg.contains("GATEHOUSE_MCP_MAX_SESSIONS"), "{msg}");
}

#[test]
fn variables_expand_in_every_string() {
    let text = r#"
        [database]
        url = "sqlite://${DATA}/g.db"
        [[backends]]
        name = "local"
        transport = "stdio"
        command = "${BIN}/server"
        args = ["--token", "${TOKEN}", "cost: $$5"]
        env = { API_KEY = "${TOKEN}" }
        [[backends]]
        name = "remote"
        transport = "http"
        url = "https://${HOST}/mcp"
        headers = { Authorization = "Bearer ${TOKEN}" }
    "#;
    let env = MapEnv::new().with("DATA", "/var/lib/gh").with("BIN", "/opt/bin").with("TOKEN", "s3cr3t").with("HOST", "mcp.example.com");
    let c = config::parse(text, &env).unwrap();
    assert_eq!(c.database.url, "sqlite:///var/lib/gh/g.db");
    let local = &c.backends[0];
    assert_eq!(local.command.as_deref(), Some("/opt/bin/server"));
    assert_eq!(local.args, ["--token", "s3cr3t", "cost: $5"]);
    assert_eq!(local.env["API_KEY"], "s3cr3t");
    let remote = &c.backends[1];
    assert_eq!(remote.url.as_deref(), Some("https://mcp.example.com/mcp"));
    assert_eq!(remote.headers["Authorization"], "Bearer s3cr3t");
}

#[test]
fn unset_variable_names_key_and_variable() {
    let text = r#"
        [[backends]]
        name = "remote"
        transport = "http"
        url = "http://127.0.0.1:3001/mcp"
        headers = { Authorization = "Bearer ${REMOTE_TOKEN}" }
    "#;
    let msg = error(text, &MapEnv::new());
    assert_eq!(msg, "backends[0].headers.Authorization: environment variable REMOTE_TOKEN is not set");
}

#[test]
fn unknown_keys_are_errors_naming_the_path() {
    let msg = error("[server]\nlisen = \"x\"", &MapEnv::new());
    assert!(msg.starts_with("server.lisen: unknown key"), "{msg}");
    assert!(msg.contains("listen"), "suggests the known keys: {msg}");

    let msg = error(
        "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n[[backends]]\nname = \"b\"\ntransport = \"stdio\"\ncomand = \"x\"",
        &MapEnv::new(),
    );
    assert!(msg.starts_with("backends[1].comand: unknown key"), "{msg}");

    let msg = error("[nope]\nx = 1", &MapEnv::new());
    assert!(msg.starts_with("nope: unknown key"), "{msg}");
}

#[test]
fn type_and_enum_errors_name_the_path() {
    let msg = error("[server]\nmax_body_bytes = \"big\"", &MapEnv::new());
    assert!(msg.starts_with("server.max_body_bytes: invalid type"), "{msg}");
    let msg = error("[[backends]]\nname = \"a\"\ntransport = \"grpc\"", &MapEnv::new());
    assert!(msg.starts_with("backends[0].transport: unknown variant `grpc`"), "{msg}");
    let msg = error("[[backends]]\ntransport = \"stdio\"", &MapEnv::new());
    assert!(msg.starts_with("backends[0].name: required key is missing"), "{msg}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let msg = error("[server]\nlisten = ", &MapEnv::new());
    assert!(msg.starts_with("config:2:"), "{msg}");
}

#[test]
fn validation_names_the_offending_key() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nlisten = \"localhost\"", "server.listen: invalid socket address"),
        ("[server]\npublic_url = \"ftp://x\"", "server.public_url: "),
        ("[server]\nallowed_origins = [\"https://ok.example\", \"https://x.example/path\"]", "server.allowed_origins[1]: "),
        ("[server]\nmax_body_bytes = 0", "server.max_body_bytes: "),
        ("[database]\nurl = \"mysql://x/y\"", "database.url: unsupported scheme"),
        ("[database]\nmax_connections = 0", "database.max_connections: "),
        ("[mcp]\nrequest_timeout_secs = 0", "mcp.request_timeout_secs: "),
        ("[log]\nformat = \"xml\"", "log.format: "),
        ("[log]\nlevel = \"info,[bad\"", "log.level: "),
        (
            "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n[[backends]]\nname = \"b\"\ntransport = \"http\"\nurl = \"ftp://x\"",
            "backends[1].url: must be an http:// or https:// URL",
        ),
        ("[[backends]]\nname = \"a\"\ntransport = \"http\"", "backends[0].url: required"),
        ("[[backends]]\nname = \"a\"\ntransport = \"sse\"\nurl = \"not a url\"", "backends[0].url: invalid URL"),
        ("[[backends]]\nname = \"a\"\ntransport = \"stdio\"", "backends[0].command: required"),
        ("[[backends]]\nname = \"a__b\"\ntransport = \"stdio\"\ncommand = \"x\"", "backends[0].name: "),
        ("[[backends]]\nname = \"-a\"\ntransport = \"stdio\"\ncommand = \"x\"", "backends[0].name: "),
        ("[[backends]]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\ntransport = \"stdio\"\ncommand = \"x\"", "backends[0].name: "),
        (
            "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"y\"",
            "backends[1].name: duplicate backend name `a`",
        ),
        (
            "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nurl = \"http://x\"",
            "backends[0].url: not used with transport = \"stdio\"",
        ),
        ("[[backends]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://x\"\ncommand = \"y\"", "backends[0].command: not used"),
        (
            "[[backends]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://x\"\nheaders = { \"bad name\" = \"v\" }",
            "backends[0].headers.bad name: invalid header name",
        ),
        ("[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\ntimeout_secs = 0", "backends[0].timeout_secs: "),
        ("[[ai.providers]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"nope\"", "ai.providers[0].base_url: "),
        ("[[ai.providers]]\nname = \"o\"\nkind = \"cohere\"\nbase_url = \"https://x\"", "ai.providers[0].kind: unknown variant"),
        (
            "[[ai.providers]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"https://x\"\napi_key_env = \"sk-123-abc\"",
            "ai.providers[0].api_key_env: ",
        ),
    ];
    for (text, expected) in cases {
        let msg = error(text, &MapEnv::new());
        assert!(msg.starts_with(expected), "for {text:?}\n  got: {msg}\n  want prefix: {expected}");
    }
}

#[test]
fn header_values_are_never_echoed() {
    let text = "[[backends]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://x\"\nheaders = { Authorization = \"Bearer sec\\nret\" }";
    let msg = error(text, &MapEnv::new());
    assert_eq!(msg, "backends[0].headers.Authorization: invalid header value");
}

#[test]
fn load_reads_the_file_and_resolves_relative_paths_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"sqlite://data/hub.db\"\n[auth]\nsecret_file = \"hub.secret\"\n\
         [[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\ncwd = \"work\"\n",
    )
    .unwrap();
    let c = config::load(Some(&path), &MapEnv::new()).unwrap();
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(c.database.url, format!("sqlite://{}", base.join("data/hub.db").display()));
    assert_eq!(c.auth.secret_file.unwrap(), base.join("hub.secret"));
    assert_eq!(c.backends[0].cwd.as_deref().unwrap(), base.join("work"));

    // The default URL is resolved the same way.
    std::fs::write(&path, "").unwrap();
    let c = config::load(Some(&path), &MapEnv::new()).unwrap();
    assert_eq!(c.database.url, format!("sqlite://{}", base.join("gatehouse.db").display()));
}

#[test]
fn load_of_a_missing_file_names_it() {
    let err = config::load(Some(Path::new("/nonexistent/gh.toml")), &MapEnv::new()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/gh.toml"), "{err}");
}

#[test]
fn example_has_every_section_and_validates() {
    let c = config::parse(EXAMPLE, &MapEnv::new()).unwrap();
    assert_eq!(c.backends[0].transport, BackendTransport::Stdio);
    assert!(!c.backends[0].enabled);
    assert_eq!(c.ai.providers[0].kind, ProviderKind::OpenAi);
    for section in ["[server]", "[database]", "[auth]", "[mcp]", "[log]", "[[backends]]", "[[ai.providers]]"] {
        assert!(EXAMPLE.contains(section), "{section} missing from the example");
    }
    // Every key of every section is mentioned (set or commented out).
    let value = toml::Value::try_from(Config::default()).unwrap();
    for (section, keys) in value.as_table().unwrap() {
        if let toml::Value::Table(keys) = keys
            && section != "ai"
        {
            for key in keys.keys() {
                assert!(EXAMPLE.contains(&format!("{key} =")), "{section}.{key} not explained in the example");
            }
        }
    }
    for key in [
        "secret_file",
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "headers",
        "timeout_secs",
        "enabled",
        "isolation",
        "max_processes",
        "process_idle_secs",
        "api_key_env",
        "models",
    ] {
        assert!(EXAMPLE.contains(&format!("{key} =")), "{key} not in the example");
    }
}

#[test]
fn backend_to_upstream_spec() {
    let text = r#"
        [[backends]]
        name = "fs"
        transport = "stdio"
        command = "npx"
        args = ["-y", "server"]
        env = { DEBUG = "1" }
        [[backends]]
        name = "remote"
        transport = "sse"
        url = "http://127.0.0.1:1/sse"
        headers = { X-Key = "k" }
        timeout_secs = 5
    "#;
    let c = parse(text).unwrap();
    let spec = c.backends[0].to_upstream_spec(Duration::from_secs(60));
    assert_eq!(spec.name, "fs");
    assert_eq!(spec.request_timeout, Duration::from_secs(60));
    assert_eq!(spec.connect_timeout, Duration::from_secs(30));
    match spec.transport {
        TransportSpec::Stdio { command, args, env, cwd } => {
            assert_eq!(command, "npx");
            assert_eq!(args, ["-y", "server"]);
            assert_eq!(env["DEBUG"], "1");
            assert!(cwd.is_none());
        }
        other => panic!("{other:?}"),
    }
    let spec = c.backends[1].to_upstream_spec(Duration::from_secs(60));
    assert_eq!(spec.request_timeout, Duration::from_secs(5));
    match spec.transport {
        TransportSpec::Sse { url, headers } => {
            assert_eq!(url, "http://127.0.0.1:1/sse");
            assert_eq!(headers["X-Key"], "k");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_output_hides_credentials() {
    let text = r#"
        [database]
        url = "postgres://gh:hunter2@db/gh"
        [[backends]]
        name = "remote"
        transport = "http"
        url = "https://mcp.example.com/mcp"
        headers = { Authorization = "Bearer topsecret" }
    "#;
    let c = parse(text).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("topsecret"), "{debug}");
    assert!(debug.contains("Authorization"));
}

#[test]
fn host_and_origin_checks() {
    let c = parse(
        "[server]\npublic_url = \"https://hub.example.com\"\nallowed_hosts = [\"alt.example\", \"pinned.example:8443\"]\nallowed_origins = [\"https://app.example\"]",
    )
    .unwrap();
    let s = &c.server;
    for ok in [
        "localhost:3200",
        "127.0.0.1",
        "127.8.9.10:1",
        "[::1]:3200",
        "hub.example.com",
        "HUB.example.com:443",
        "alt.example:1",
        "pinned.example:8443",
    ] {
        assert!(s.is_host_allowed(ok), "{ok}");
    }
    for bad in ["evil.example", "pinned.example:1", "", "hub.example.com.evil.example", "127.0.0.1.evil.example", "localhost.evil.example"]
    {
        assert!(!s.is_host_allowed(bad), "{bad}");
    }
    for ok in ["https://hub.example.com", "http://localhost:5173", "http://127.0.0.1:9", "https://app.example"] {
        assert!(s.is_origin_allowed(ok), "{ok}");
    }
    for bad in ["https://evil.example", "http://hub.example.com", "null", "https://app.example:444", "http://localhost.evil.example"] {
        assert!(!s.is_origin_allowed(bad), "{bad}");
    }
    let any = parse("[server]\nallowed_origins = [\"*\"]").unwrap();
    assert!(any.server.is_origin_allowed("https://anything.example"));
    let any = parse("[server]\nallowed_hosts = [\"*\"]").unwrap();
    assert!(any.server.is_host_allowed("anything.example"));
}
