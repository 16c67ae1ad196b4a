//! Users, roles, console sign-in (cookies, CSRF, throttling), the first-admin
//! paths (`admin create`, the setup link) and API keys through the admin API.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use gateway_server::config::{self, MapEnv};
use gateway_server::server::{self, AppState};
use gateway_server::store::{GuardedChange, NewConsoleSession, Role, Store, UserChanges};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Client, TestHub};

const PASSWORD: &str = "correct horse battery";

/// One admin API answer.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Key(&'a str),
    /// Session cookie token and the CSRF header to send (if any).
    Cookie(&'a str, Option<&'a str>),
}

async fn call(base: &str, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>, extra: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::Client::new().request(method, format!("{base}/api/v1{path}"));
    match auth {
        Auth::None => {}
        Auth::Key(k) => req = req.bearer_auth(k),
        Auth::Cookie(token, csrf) => {
            req = req.header("cookie", format!("other=1; gatehouse_session={token}"));
            if let Some(c) = csrf {
                req = req.header("x-csrf-token", c);
            }
        }
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("hub answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status, headers, body }
}

/// A signed-in console session.
struct Session {
    token: String,
    csrf: String,
    set_cookie: String,
}

impl Session {
    fn auth(&self) -> Auth<'_> {
        Auth::Cookie(&self.token, Some(&self.csrf))
    }

    fn without_csrf(&self) -> Auth<'_> {
        Auth::Cookie(&self.token, None)
    }
}

fn session_from(a: &Answer) -> Session {
    assert_eq!(a.status, 200, "{:?}", a.body);
    let set_cookie = a.headers.get("set-cookie").expect("Set-Cookie").to_str().unwrap().to_owned();
    let token = set_cookie.strip_prefix("gatehouse_session=").unwrap().split(';').next().unwrap().to_owned();
    Session { token, csrf: a.body["csrf_token"].as_str().unwrap().to_owned(), set_cookie }
}

async fn login_answer(base: &str, username: &str, password: &str) -> Answer {
    call(base, Method::POST, "/auth/login", Auth::None, Some(json!({ "username": username, "password": password })), &[]).await
}

async fn login(base: &str, username: &str, password: &str) -> Session {
    session_from(&login_answer(base, username, password).await)
}

/// Creates a user through the API with the hub's admin key; returns its id.
async fn add_user(hub: &TestHub, username: &str, role: &str, password: Option<&str>) -> String {
    let mut body = json!({ "username": username, "role": role });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let a = call(&hub.base, Method::POST, "/users", Auth::Key(&hub.key), Some(body), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["has_password"], password.is_some());
    a.body["id"].as_str().unwrap().to_owned()
}

/// Creates a key for `username` through the API with the hub's admin key.
async fn add_key(hub: &TestHub, username: &str) -> (String, String) {
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(json!({ "name": "test", "user": username })), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    (a.body["key"].as_str().unwrap().to_owned(), a.body["record"]["id"].as_str().unwrap().to_owned())
}

async fn user_id(hub: &TestHub, username: &str) -> String {
    hub.state.store.user_by_name(username).await.unwrap().unwrap().id
}

async fn mcp_initialize_status(base: &str, key: &str) -> u16 {
    let mut c = Client::new(format!("{base}/mcp"), Some(key.to_owned()));
    let r = c
        .request(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "it", "version": "1" } }),
        )
        .await;
    r.status
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_failures_look_alike() {
    let hub = TestHub::start("").await;
    add_user(&hub, "bob", "developer", Some(PASSWORD)).await;

    let a = login_answer(&hub.base, "bob", PASSWORD).await;
    let s = session_from(&a);
    let cookie = s.set_cookie.to_ascii_lowercase();
    for attr in ["; httponly", "; samesite=strict", "; path=/", "; max-age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing: {}", s.set_cookie);
    }
    assert!(!cookie.contains("secure"), "plain-http public_url: no Secure: {}", s.set_cookie);
    assert_eq!(s.token.len(), 43);
    assert_eq!(a.body["user"]["username"], "bob");
    assert_eq!(a.body["user"]["role"], "developer");
    assert!(a.body["expires_at"].is_string());
    assert!(!a.body.to_string().contains(&s.token), "the token is only in the cookie");

    let me = call(&hub.base, Method::GET, "/me", s.without_csrf(), None, &[]).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["username"], "bob");
    assert_eq!(me.body["via"], "session");
    assert_eq!(me.body["role"], "developer");
    assert_eq!(me.body["csrf_token"], s.csrf.as_str());
    assert!(me.body["permissions"].as_array().unwrap().contains(&json!("keys:own")));
    // A forged or garbled cookie is no session.
    let forged = "A".repeat(43);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Cookie(&forged, None), None, &[]).await.status, 401);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Cookie("x", None), None, &[]).await.status, 401);
    // Keys do not get a CSRF token.
    let me = call(&hub.base, Method::GET, "/me", Auth::Key(&hub.key), None, &[]).await;
    assert_eq!(me.body["via"], "key");
    assert!(me.body.get("csrf_token").is_none());

    let wrong = login_answer(&hub.base, "bob", "not the password").await;
    let unknown = login_answer(&hub.base, "nobody", PASSWORD).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(wrong.message(), "invalid username or password");
    // An API-key-only account cannot sign in either, with the same answer.
    add_user(&hub, "keyonly", "developer", None).await;
    assert_eq!(login_answer(&hub.base, "keyonly", "").await.message(), wrong.message());
    // Bad bodies are 400s that never echo the password.
    let bad =
        call(&hub.base, Method::POST, "/auth/login", Auth::None, Some(json!({ "username": "bob", "password": 123456789 })), &[]).await;
    assert_eq!(bad.status, 400);
    assert!(!bad.body.to_string().contains("123456789"), "{:?}", bad.body);
}

#[tokio::test]
async fn sixth_failure_is_throttled_even_with_the_right_password() {
    let hub = TestHub::start("").await;
    add_user(&hub, "carol", "developer", Some(PASSWORD)).await;
    for i in 0..5 {
        let a = login_answer(&hub.base, "carol", &format!("wrong password {i}")).await;
        assert_eq!(a.status, 401, "attempt {i}: {:?}", a.body);
    }
    let a = login_answer(&hub.base, "carol", PASSWORD).await;
    assert_eq!(a.status, 429, "{:?}", a.body);
    let retry: u64 = a.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert_eq!(a.body["error"]["code"], "rate_limited");
    // Another username is not locked by carol's failures.
    add_user(&hub, "dave", "developer", Some(PASSWORD)).await;
    login(&hub.base, "dave", PASSWORD).await;
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_keys_do_not() {
    let hub = TestHub::start("").await;
    add_user(&hub, "erin", "developer", Some(PASSWORD)).await;
    let s = login(&hub.base, "erin", PASSWORD).await;
    let body = || Some(json!({ "name": "laptop" }));

    let a = call(&hub.base, Method::POST, "/keys", s.without_csrf(), body(), &[]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    assert_eq!(a.message(), "csrf token missing or wrong");
    let a = call(&hub.base, Method::POST, "/keys", Auth::Cookie(&s.token, Some(&"0".repeat(64))), body(), &[]).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.message(), "csrf token missing or wrong");
    // Another session's token does not fit this session.
    let other = login(&hub.base, "erin", PASSWORD).await;
    assert_eq!(call(&hub.base, Method::POST, "/keys", Auth::Cookie(&s.token, Some(&other.csrf)), body(), &[]).await.status, 403);
    // The right token, but from a foreign page.
    let a = call(&hub.base, Method::POST, "/keys", s.auth(), body(), &[("origin", "https://evil.example")]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    // The right token: created.
    let a = call(&hub.base, Method::POST, "/keys", s.auth(), body(), &[("origin", "http://127.0.0.1")]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    // Reads need no CSRF token.
    assert_eq!(call(&hub.base, Method::GET, "/keys", s.without_csrf(), None, &[]).await.status, 200);
    // A bearer key carries no ambient authority: no CSRF token needed.
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), body(), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
}

#[tokio::test]
async fn logout_and_password_change_end_sessions() {
    let hub = TestHub::start("").await;
    add_user(&hub, "fay", "developer", Some(PASSWORD)).await;
    let a = login(&hub.base, "fay", PASSWORD).await;
    let b = login(&hub.base, "fay", PASSWORD).await;
    let change = |current: &str, new: &str| Some(json!({ "current_password": current, "new_password": new }));
    const NEW: &str = "an even better passphrase";

    let r = call(&hub.base, Method::POST, "/auth/password", a.auth(), change("wrong current password", NEW), &[]).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = call(&hub.base, Method::POST, "/auth/password", a.auth(), change(PASSWORD, "short"), &[]).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = call(&hub.base, Method::POST, "/auth/password", a.auth(), change(PASSWORD, "FAY"), &[]).await;
    assert_eq!(r.status, 400);
    let r = call(&hub.base, Method::POST, "/auth/password", a.without_csrf(), change(PASSWORD, NEW), &[]).await;
    assert_eq!(r.status, 403, "CSRF applies here too");
    let r = call(&hub.base, Method::POST, "/auth/password", a.auth(), change(PASSWORD, NEW), &[]).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // The session that changed it lives on; the other one is over.
    assert_eq!(call(&hub.base, Method::GET, "/me", a.without_csrf(), None, &[]).await.status, 200);
    assert_eq!(call(&hub.base, Method::GET, "/me", b.without_csrf(), None, &[]).await.status, 401);
    assert_eq!(login_answer(&hub.base, "fay", PASSWORD).await.status, 401);
    let c = login(&hub.base, "fay", NEW).await;

    // Logout: clears the cookie and the session.
    let r = call(&hub.base, Method::POST, "/auth/logout", a.auth(), None, &[]).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let cleared = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_ascii_lowercase();
    assert!(cleared.starts_with("gatehouse_session=;") && cleared.contains("max-age=0"), "{cleared}");
    assert_eq!(call(&hub.base, Method::GET, "/me", a.without_csrf(), None, &[]).await.status, 401);
    // Only that session.
    assert_eq!(call(&hub.base, Method::GET, "/me", c.without_csrf(), None, &[]).await.status, 200);
    // Logging out needs the CSRF token too (no cross-site sign-outs), and a key is no session.
    assert_eq!(call(&hub.base, Method::POST, "/auth/logout", c.without_csrf(), None, &[]).await.status, 403);
    assert_eq!(call(&hub.base, Method::POST, "/auth/logout", Auth::Key(&hub.key), None, &[]).await.status, 400);
}

#[tokio::test]
async fn disabling_or_deleting_a_user_ends_sessions_and_keys_at_once() {
    let hub = TestHub::start("").await;
    let id = add_user(&hub, "gil", "developer", Some(PASSWORD)).await;
    let s = login(&hub.base, "gil", PASSWORD).await;
    let (key, _) = add_key(&hub, "gil").await;
    // Cache the key's lookup first: disabling must not wait for the cache.
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 200);

    let a = call(&hub.base, Method::PATCH, &format!("/users/{id}"), Auth::Key(&hub.key), Some(json!({ "disabled": true })), &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["disabled"], true);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 401);
    assert_eq!(mcp_initialize_status(&hub.base, &key).await, 401);
    assert_eq!(call(&hub.base, Method::GET, "/me", s.without_csrf(), None, &[]).await.status, 401);
    assert_eq!(login_answer(&hub.base, "gil", PASSWORD).await.message(), "invalid username or password");

    // Enabled again: the keys work again (they were never revoked); sessions stay ended.
    let a = call(&hub.base, Method::PATCH, &format!("/users/{id}"), Auth::Key(&hub.key), Some(json!({ "disabled": false })), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 200);
    assert_eq!(call(&hub.base, Method::GET, "/me", s.without_csrf(), None, &[]).await.status, 401);

    let s = login(&hub.base, "gil", PASSWORD).await;
    assert_eq!(call(&hub.base, Method::DELETE, &format!("/users/{id}"), Auth::Key(&hub.key), None, &[]).await.status, 204);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 401);
    assert_eq!(call(&hub.base, Method::GET, "/me", s.without_csrf(), None, &[]).await.status, 401);
    assert_eq!(call(&hub.base, Method::GET, &format!("/users/{id}"), Auth::Key(&hub.key), None, &[]).await.status, 404);
}

/// A hub serving the store `config` names.
async fn serve(config: config::Config) -> (String, AppState, CancellationToken) {
    let state = AppState::build(config).await.expect("hub builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(server::serve_on(listener, state.clone(), stop.clone()));
    (base, state, stop)
}

fn admin_create(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-server"))
        .env_clear()
        .args(["admin", "create"])
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn admin_create_through_the_binary_then_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://hub.example.com\"\n[database]\nurl = \"sqlite://hub.db\"\n",
    )
    .unwrap();

    let out = admin_create(&path, &["--username", "root", "--password-stdin"], "too short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = admin_create(&path, &["--username", "root", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, "created admin root\n");
    assert!(!stdout.contains(PASSWORD));

    // Again: refused without --force; with it, the password changes.
    let out = admin_create(&path, &["--username", "root", "--password-stdin"], "another long password\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    let config = config::load(Some(&path), &MapEnv::new()).unwrap();
    let (base, state, stop) = serve(config).await;
    // An admin can sign in: no setup link, no setup needed.
    assert!(state.console.setup_link("https://hub.example.com").is_none());
    let a = call(&base, Method::GET, "/setup", Auth::None, None, &[]).await;
    assert_eq!(a.body, json!({ "needed": false }));
    let a = login_answer(&base, "root", PASSWORD).await;
    let s = session_from(&a);
    assert!(s.set_cookie.contains("; Secure"), "https public_url: Secure cookie: {}", s.set_cookie);
    let me = call(&base, Method::GET, "/me", s.without_csrf(), None, &[]).await;
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["permissions"].as_array().unwrap().len(), 22);
    stop.cancel();
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let hub = TestHub::start("").await;
    // alice has an admin key but no password: nobody can sign in yet.
    let link = hub.state.console.setup_link("http://127.0.0.1/").expect("a setup link while no admin can sign in");
    let token = link.strip_prefix("http://127.0.0.1/setup#token=").expect("link shape").to_owned();
    assert_eq!(call(&hub.base, Method::GET, "/setup", Auth::None, None, &[]).await.body, json!({ "needed": true }));

    let setup = |token: &str, password: &str| Some(json!({ "token": token, "username": "root", "password": password }));
    let a = call(&hub.base, Method::POST, "/setup", Auth::None, setup(&"x".repeat(43), PASSWORD), &[]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    let a = call(&hub.base, Method::POST, "/setup", Auth::None, setup("short", PASSWORD), &[]).await;
    assert_eq!(a.status, 403);
    let a = call(&hub.base, Method::POST, "/setup", Auth::None, setup(&token, "too short"), &[]).await;
    assert_eq!(a.status, 400);
    let a = call(&hub.base, Method::POST, "/setup", Auth::None, setup(&token, PASSWORD), &[]).await;
    let s = session_from(&a);
    assert_eq!(a.body["user"]["username"], "root");
    assert_eq!(a.body["user"]["role"], "admin");
    let me = call(&hub.base, Method::GET, "/me", s.without_csrf(), None, &[]).await;
    assert_eq!(me.body["username"], "root");
    // Used up.
    let again = Some(json!({ "token": token, "username": "root2", "password": PASSWORD }));
    assert_eq!(call(&hub.base, Method::POST, "/setup", Auth::None, again, &[]).await.status, 403);
    assert_eq!(call(&hub.base, Method::GET, "/setup", Auth::None, None, &[]).await.body, json!({ "needed": false }));
    assert!(hub.state.console.setup_link("http://127.0.0.1").is_none());
    login(&hub.base, "root", PASSWORD).await;

    // The dashboard's page posting to it (its form is tested in the browser tests).
    let page = reqwest::get(format!("{}/setup", hub.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Gatehouse</title>"), "{html}");
}

#[tokio::test]
async fn keys_are_shown_once_work_at_once_and_revoke_at_once() {
    let hub = TestHub::start("").await;
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(json!({ "name": "ci", "expires_in_days": 30 })), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let key = a.body["key"].as_str().unwrap().to_owned();
    let id = a.body["record"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("gk_") && key.len() == 46);
    assert_eq!(a.body["record"]["prefix"], &key[..10]);
    assert_eq!(a.body["record"]["surfaces"], json!(["mcp", "ai"]));
    assert_eq!(a.body["record"]["tools"], json!(["*"]));
    assert!(a.body["record"].get("key_hash").is_none());

    let list = call(&hub.base, Method::GET, "/keys", Auth::Key(&hub.key), None, &[]).await;
    assert_eq!(list.status, 200);
    let text = list.body.to_string();
    assert!(!text.contains(&key), "listings never show the key");
    assert!(!text.contains(&hub.key));
    assert!(!text.contains("hash"), "{text}");
    assert!(list.body.as_array().unwrap().iter().any(|k| k["id"] == id.as_str() && k["revoked_at"].is_null()));

    assert_eq!(mcp_initialize_status(&hub.base, &key).await, 200);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 200);

    assert_eq!(call(&hub.base, Method::DELETE, &format!("/keys/{id}"), Auth::Key(&hub.key), None, &[]).await.status, 204);
    assert_eq!(call(&hub.base, Method::GET, "/me", Auth::Key(&key), None, &[]).await.status, 401);
    assert_eq!(mcp_initialize_status(&hub.base, &key).await, 401);
    assert_eq!(call(&hub.base, Method::DELETE, "/keys/no-such-key", Auth::Key(&hub.key), None, &[]).await.status, 404);

    // A key limited to the AI surface cannot use /mcp.
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(json!({ "name": "ai only", "surfaces": ["ai"] })), &[]).await;
    assert_eq!(a.status, 201);
    assert_eq!(mcp_initialize_status(&hub.base, a.body["key"].as_str().unwrap()).await, 403);

    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for bad in [
        json!({ "name": "x", "surfaces": ["web"] }),
        json!({ "name": "x", "surfaces": [] }),
        json!({ "name": "x", "tools": ["fs__["] }),
        json!({ "name": "x", "tools": ["two words"] }),
        json!({ "name": "x", "expires_in_days": 0 }),
        json!({ "name": "x", "expires_at": past }),
        json!({ "name": "x", "expires_at": "tomorrow" }),
        json!({ "name": "x", "expires_in_days": 1, "expires_at": future }),
        json!({ "name": "" }),
        json!({ "name": "x", "colour": "red" }),
    ] {
        let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(bad.clone()), &[]).await;
        assert_eq!(a.status, 400, "{bad}: {:?}", a.body);
        assert_eq!(a.body["error"]["code"], "bad_request");
    }
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(json!({ "name": "x", "expires_at": future })), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let a = call(&hub.base, Method::POST, "/keys", Auth::Key(&hub.key), Some(json!({ "name": "x", "user": "nobody" })), &[]).await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn roles_decide_what_each_caller_may_do() {
    let hub = TestHub::start("").await;
    let alice = user_id(&hub, "alice").await;
    let (_, alice_key_id) = add_key(&hub, "alice").await;

    // A viewer, with a key made for them by the admin.
    let vera = add_user(&hub, "vera", "viewer", None).await;
    let (vkey, _) = add_key(&hub, "vera").await;
    let v = Auth::Key(&vkey);
    let me = call(&hub.base, Method::GET, "/me", v, None, &[]).await;
    assert_eq!(me.body["role"], "viewer");
    assert_eq!(call(&hub.base, Method::GET, "/users", v, None, &[]).await.status, 403);
    assert_eq!(call(&hub.base, Method::GET, &format!("/users/{alice}"), v, None, &[]).await.status, 403);
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/users".into(), Some(json!({ "username": "mallory", "role": "admin" }))),
        (Method::PATCH, format!("/users/{alice}"), Some(json!({ "disabled": true }))),
        (Method::PATCH, format!("/users/{vera}"), Some(json!({ "role": "admin" }))),
        (Method::DELETE, format!("/users/{alice}"), None),
        (Method::POST, "/roles".into(), Some(json!({ "name": "x", "permissions": [] }))),
        (Method::PUT, "/roles/x".into(), Some(json!({ "permissions": [] }))),
        (Method::DELETE, "/roles/x".into(), None),
        (Method::POST, "/keys".into(), Some(json!({ "name": "k", "user": "alice" }))),
        (Method::POST, "/keys".into(), Some(json!({ "name": "k" }))),
        (Method::DELETE, format!("/keys/{alice_key_id}"), None),
    ];
    for (method, path, body) in writes {
        let a = call(&hub.base, method.clone(), &path, v, body, &[]).await;
        assert_eq!(a.status, 403, "{method} {path}: {:?}", a.body);
        assert_eq!(a.body["error"]["code"], "forbidden");
    }
    assert_eq!(call(&hub.base, Method::GET, "/keys?user=alice", v, None, &[]).await.status, 403);
    // A viewer has no mcp:use: refused on /mcp even with an MCP-surface key.
    assert_eq!(mcp_initialize_status(&hub.base, &vkey).await, 403);

    // A custom role with audit:read only gets exactly that.
    let a = call(
        &hub.base,
        Method::POST,
        "/roles",
        Auth::Key(&hub.key),
        Some(json!({ "name": "auditor", "permissions": ["audit:read"] })),
        &[],
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    add_user(&hub, "aud", "auditor", None).await;
    let (akey, _) = add_key(&hub, "aud").await;
    let me = call(&hub.base, Method::GET, "/me", Auth::Key(&akey), None, &[]).await;
    assert_eq!(me.body["role"], "auditor");
    assert_eq!(me.body["permissions"], json!(["audit:read"]));
    assert_eq!(call(&hub.base, Method::GET, "/users", Auth::Key(&akey), None, &[]).await.status, 403);
    assert_eq!(mcp_initialize_status(&hub.base, &akey).await, 403);
    let roles = call(&hub.base, Method::GET, "/roles", Auth::Key(&hub.key), None, &[]).await;
    let names: Vec<&str> = roles.body.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "operator", "developer", "viewer", "auditor"]);
    // Changing the role applies at once.
    let a = call(
        &hub.base,
        Method::PUT,
        "/roles/auditor",
        Auth::Key(&hub.key),
        Some(json!({ "permissions": ["audit:read", "users:read"] })),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(call(&hub.base, Method::GET, "/users", Auth::Key(&akey), None, &[]).await.status, 200);
    // Built-in names cannot be shadowed or changed; a role in use cannot go.
    for (method, path, body) in [
        (Method::POST, "/roles", Some(json!({ "name": "admin", "permissions": [] }))),
        (Method::POST, "/roles", Some(json!({ "name": "auditor", "permissions": [] }))),
        (Method::PUT, "/roles/viewer", Some(json!({ "permissions": [] }))),
        (Method::DELETE, "/roles/admin", None),
        (Method::DELETE, "/roles/auditor", None),
    ] {
        assert_eq!(call(&hub.base, method.clone(), path, Auth::Key(&hub.key), body, &[]).await.status, 409, "{method} {path}");
    }
    let a =
        call(&hub.base, Method::POST, "/roles", Auth::Key(&hub.key), Some(json!({ "name": "x", "permissions": ["nope:nope"] })), &[]).await;
    assert_eq!(a.status, 400);
    let a = call(&hub.base, Method::POST, "/users", Auth::Key(&hub.key), Some(json!({ "username": "y", "role": "ghost" })), &[]).await;
    assert_eq!(a.status, 400, "an unknown role cannot be assigned: {:?}", a.body);
    // One cannot hand out what one does not hold.
    let a = call(
        &hub.base,
        Method::POST,
        "/roles",
        Auth::Key(&hub.key),
        Some(json!({ "name": "hr", "permissions": ["users:write", "users:read"] })),
        &[],
    )
    .await;
    assert_eq!(a.status, 201);
    add_user(&hub, "hank", "hr", None).await;
    let (hkey, _) = add_key(&hub, "hank").await;
    let a = call(&hub.base, Method::POST, "/users", Auth::Key(&hkey), Some(json!({ "username": "boss", "role": "admin" })), &[]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    let a = call(&hub.base, Method::PATCH, &format!("/users/{alice}"), Auth::Key(&hkey), Some(json!({ "password": PASSWORD })), &[]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    // ...but what it holds, it can: a role granting nothing is within reach.
    let a = call(&hub.base, Method::POST, "/roles", Auth::Key(&hub.key), Some(json!({ "name": "blank", "permissions": [] })), &[]).await;
    assert_eq!(a.status, 201);
    let a = call(&hub.base, Method::POST, "/users", Auth::Key(&hkey), Some(json!({ "username": "newbie", "role": "blank" })), &[]).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let a = call(&hub.base, Method::POST, "/users", Auth::Key(&hkey), Some(json!({ "username": "newbie2", "role": "viewer" })), &[]).await;
    assert_eq!(a.status, 403, "viewer holds reads hr lacks: {:?}", a.body);

    // A user whose custom role vanished has no permissions at all.
    let ghost = hub.state.store.create_account("ghost", Role::Custom("ghost".into()), None).await.unwrap();
    let (gkey, _) = add_key(&hub, &ghost.username).await;
    let me = call(&hub.base, Method::GET, "/me", Auth::Key(&gkey), None, &[]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["permissions"], json!([]));

    // The last admin cannot be demoted, disabled or deleted.
    let path = format!("/users/{alice}");
    for (method, body) in
        [(Method::PATCH, Some(json!({ "role": "developer" }))), (Method::PATCH, Some(json!({ "disabled": true }))), (Method::DELETE, None)]
    {
        let a = call(&hub.base, method.clone(), &path, Auth::Key(&hub.key), body, &[]).await;
        assert_eq!(a.status, 409, "{method}: {:?}", a.body);
    }
    // With a second admin, alice can step down.
    add_user(&hub, "second", "admin", None).await;
    let a = call(&hub.base, Method::PATCH, &path, Auth::Key(&hub.key), Some(json!({ "role": "developer" })), &[]).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["role"], "developer");
    // ...and at once lost the admin permissions.
    assert_eq!(call(&hub.base, Method::GET, "/users", Auth::Key(&hub.key), None, &[]).await.status, 403);
}

// ---------------------------------------------------------------------------
// The identity store on both backends
// ---------------------------------------------------------------------------

async fn store_identity_round_trip(store: Store, _url: String) {
    let a = store.create_account("a", Role::Admin, Some("$argon2id$fake")).await.unwrap();
    assert!(a.has_password && !a.disabled);
    assert!(store.active_admin_with_password_exists().await.unwrap());
    let creds = store.credentials_by_name("a").await.unwrap().unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$fake"));
    assert!(!format!("{creds:?}").contains("fake"), "Debug redacts the hash");
    assert_eq!(store.user_account(&a.id).await.unwrap().unwrap(), a);

    // Last-admin guard.
    let demote = UserChanges { role: Some(Role::Viewer), disabled: None };
    assert_eq!(store.update_user(&a.id, &demote).await.unwrap(), GuardedChange::LastAdmin);
    let b = store.create_account("b", Role::Admin, None).await.unwrap();
    assert!(matches!(store.update_user(&a.id, &demote).await.unwrap(), GuardedChange::Done(u) if u.role == Role::Viewer));
    assert_eq!(store.delete_user(&b.id).await.unwrap(), GuardedChange::LastAdmin);
    assert!(!store.active_admin_with_password_exists().await.unwrap());

    // Sessions, read back exactly as written.
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let s = store
        .insert_console_session(NewConsoleSession {
            user_id: a.id.clone(),
            token_hash: "h1".into(),
            expires_at: expires,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
        })
        .await
        .unwrap();
    let (read, who) = store.console_session_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(read, s);
    assert_eq!(who.username, "a");
    let s2 = store
        .insert_console_session(NewConsoleSession {
            user_id: a.id.clone(),
            token_hash: "h2".into(),
            expires_at: expires,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap();
    assert_eq!(store.delete_console_sessions_of(&a.id, Some(&s2.id)).await.unwrap(), 1);
    assert_eq!(store.list_console_sessions(&a.id).await.unwrap(), vec![s2.clone()]);
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    assert_eq!(store.purge_console_sessions(later, chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 1);
    assert!(store.console_session_by_hash("h2").await.unwrap().is_none());

    // Custom roles.
    store.insert_custom_role("auditor", "reads", &["audit:read".into()]).await.unwrap();
    let r = store.update_custom_role("auditor", "reads more", &["audit:read".into(), "users:read".into()]).await.unwrap().unwrap();
    assert_eq!(r.permissions, ["audit:read", "users:read"]);
    assert_eq!(store.list_custom_roles().await.unwrap(), vec![r]);
    assert!(store.update_custom_role("nope", "", &[]).await.unwrap().is_none());

    // A disabled user's keys do not authenticate.
    let key = store
        .insert_api_key(gateway_server::store::NewApiKey {
            user_id: b.id.clone(),
            name: "k".into(),
            prefix: "gk_x".into(),
            key_hash: "kh".into(),
            surfaces: vec![],
            tools: vec![],
            expires_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.api_key_by_id(&key.id).await.unwrap().unwrap(), key);
    assert!(store.api_key_by_hash("kh").await.unwrap().is_some());
    let c = store.create_account("c", Role::Admin, None).await.unwrap();
    store.update_user(&b.id, &UserChanges { role: None, disabled: Some(true) }).await.unwrap();
    assert!(store.api_key_by_hash("kh").await.unwrap().is_none());
    assert!(matches!(store.delete_user(&c.id).await.unwrap(), GuardedChange::LastAdmin));

    // Single-use settings.
    store.put_setting("t", "1").await.unwrap();
    assert!(store.take_setting("t", "1").await.unwrap());
    assert!(!store.take_setting("t", "1").await.unwrap());
}

#[tokio::test]
async fn identity_store_on_sqlite() {
    crate::store::with_sqlite(store_identity_round_trip).await;
}

#[tokio::test]
async fn identity_store_on_postgres() {
    crate::store::with_postgres(store_identity_round_trip).await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_identity_endpoint() {
    let hub = TestHub::start("").await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", hub.base)).await.unwrap().json().await.unwrap();
    let expected = [
        ("/api/v1/me", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/password", "post"),
        ("/api/v1/setup", "get"),
        ("/api/v1/setup", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}", "delete"),
        ("/api/v1/roles", "get"),
        ("/api/v1/roles", "post"),
        ("/api/v1/roles/{name}", "put"),
        ("/api/v1/roles/{name}", "delete"),
        ("/api/v1/keys", "get"),
        ("/api/v1/keys", "post"),
        ("/api/v1/keys/{id}", "delete"),
    ];
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("400") || method == "get", "{method} {path}: 400 undeclared");
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(r.to_string().contains("ErrorBody"), "{method} {path} {status} has no ErrorBody");
            }
        }
    }
    // Sign-in and setup need no credentials.
    for (path, method) in [("/api/v1/auth/login", "post"), ("/api/v1/setup", "post"), ("/api/v1/setup", "get")] {
        assert_eq!(doc["paths"][path][method]["security"], json!([{}]), "{method} {path}");
    }
}
