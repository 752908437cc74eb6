//! Security as an operator and a client meet it: `serve`'s checks of the
//! security flags and files (one line, exit 2), a server started with users
//! that then serves them, the password kept out of the environment,
//! `hash-password`, and the clients (`Client`, `call`, `bench`,
//! `seed_client.py`) over TLS and with `auth`, against the real server. The
//! rules themselves, in every model, are in `tests/auth.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reactor_rpc::client::{Client, TlsConnector};
use reactor_rpc::protocol::ErrorCode;
use reactor_rpc::service::auth::{hash_password, Auth, Users};
use reactor_rpc::tls::{TlsFiles, TlsSource};
use reactor_rpc::Model;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";

/// A `serve` case: its flags, its environment, and what its one line says.
type Case<'a, W> = (Vec<String>, Vec<(&'a str, &'a str)>, W);

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_reactor-rpc")
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

fn write(path: &Path, text: &[u8], mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

use crate::support::{Pki, ServerProcess, TestServer};

/// A reactor server with the users `default` (admin, from a requirepass)
/// and `alice` (write), both with [`PASSWORD`], and with `tls` on its JSON
/// TLS port only (the plaintext port off); returns it and the JSON address.
fn stand_in(tls: Option<TlsFiles>) -> (TestServer, SocketAddr) {
    let users = Users::parse(&format!(
        "alice {} write\n",
        hash_password(PASSWORD.as_bytes())
    ))
    .unwrap()
    .with_requirepass(PASSWORD.as_bytes())
    .unwrap();
    let server = TestServer::with(Model::Reactor, |c| {
        c.security.auth = Arc::new(Auth::new(users));
        if let Some(files) = tls {
            c.security.tls = Some(Arc::new(TlsSource::load(files).unwrap()));
            c.security.tls_addr = Some("127.0.0.1:0".parse().unwrap());
            c.security.plaintext_rpc = false;
        }
    });
    let addr = server.addr();
    (server, addr)
}

// ---- serve: the flags and files are checked at start ----

#[test]
fn bad_security_configuration_is_one_line_and_exit_2() {
    let pki = Pki::new();
    let users = pki.path("users");
    write(
        &users,
        format!(
            "# ops\nalice {} admin\nbob nothash read\n",
            hash_password(b"x")
        )
        .as_bytes(),
        0o600,
    );
    let open_pw = pki.path("open-password");
    write(&open_pw, b"hunter2\n", 0o644);
    let empty_pw = pki.path("empty-password");
    write(&empty_pw, b"\n", 0o600);
    let (crt, key) = (pki.s("server.crt"), pki.s("server.key"));
    // A certificate where the key should be: private, so the PEM check speaks.
    let ca = pki.path("ca-private.crt");
    std::fs::copy(pki.path("ca.crt"), &ca).unwrap();
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = ca.display().to_string();
    let cases: Vec<Case<String>> = vec![
        (
            vec!["--users-file".into(), users.display().to_string()],
            vec![],
            format!("{}: line 3: the password hash is not", users.display()),
        ),
        (
            vec!["--requirepass-file".into(), open_pw.display().to_string()],
            vec![],
            format!("{}: is readable by every user", open_pw.display()),
        ),
        (
            vec!["--requirepass-file".into(), empty_pw.display().to_string()],
            vec![],
            format!("{}: is empty", empty_pw.display()),
        ),
        (
            vec!["--requirepass-file".into(), pki.s("password")],
            vec![("REACTOR_RPC_REQUIREPASS", "also")],
            "give the password once".into(),
        ),
        (
            vec![],
            vec![("REACTOR_RPC_REQUIREPASS", "")],
            "REACTOR_RPC_REQUIREPASS is empty".into(),
        ),
        (
            vec!["--tls-addr".into(), "127.0.0.1:0".into()],
            vec![],
            "--tls-addr needs --tls-cert-file and --tls-key-file".into(),
        ),
        (
            vec!["--tls-cert-file".into(), crt.clone()],
            vec![],
            "--tls-cert-file and --tls-key-file go together".into(),
        ),
        (
            vec![
                "--tls-cert-file".into(),
                crt.clone(),
                "--tls-key-file".into(),
                key.clone(),
            ],
            vec![],
            "no listener speaks TLS".into(),
        ),
        (
            vec![
                "--tls-addr".into(),
                "127.0.0.1:0".into(),
                "--tls-cert-file".into(),
                key.clone(),
                "--tls-key-file".into(),
                key.clone(),
            ],
            vec![],
            format!("{key}: no certificate found"),
        ),
        (
            vec![
                "--tls-addr".into(),
                "127.0.0.1:0".into(),
                "--tls-cert-file".into(),
                crt.clone(),
                "--tls-key-file".into(),
                ca.clone(),
            ],
            vec![],
            format!("{ca}: no private key found"),
        ),
        (
            vec!["--metrics-tls".into()],
            vec![],
            "--metrics-tls needs --tls-cert-file".into(),
        ),
        (
            vec!["--metrics-token-file".into(), pki.s("password")],
            vec![],
            "--metrics-token-file needs --metrics-addr".into(),
        ),
        (
            vec!["--addr".into(), "none".into()],
            vec![],
            "--addr none leaves nothing to serve".into(),
        ),
        (
            vec!["--protected-mode".into(), "maybe".into()],
            vec![],
            "--protected-mode".into(),
        ),
    ];
    for (flags, env, want) in cases {
        let mut args = vec!["serve".to_string(), "--addr".into(), "127.0.0.1:0".into()];
        if flags.first().is_some_and(|f| f == "--addr") {
            args.truncate(1);
        }
        args.extend(flags.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &env);
        let lines = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{flags:?}: one line, got {lines:?}");
        assert!(lines[0].contains(&want), "{flags:?}: {lines:?}");
        assert!(!lines[0].contains("hunter2"), "{lines:?}");
        // No key material (base64 DER starts "MI").
        assert!(
            !lines[0].contains("MII") && !lines[0].contains("MIG"),
            "{lines:?}"
        );
    }
}

#[test]
fn a_server_started_with_users_serves_them() {
    // Each way of configuring a password starts the server, which then
    // wants it: `ping` is answered, `get` is `unauthenticated` until `auth`.
    let pki = Pki::new();
    let users = pki.path("users");
    write(
        &users,
        format!("alice {} admin\n", hash_password(PASSWORD.as_bytes())).as_bytes(),
        0o600,
    );
    let password = pki.path("pw");
    write(&password, format!("{PASSWORD}\n").as_bytes(), 0o600);
    let users_arg = users.display().to_string();
    let password_arg = password.display().to_string();
    let cases: Vec<Case<Option<&str>>> = vec![
        (
            vec!["--users-file".into(), users_arg],
            vec![],
            Some("alice"),
        ),
        (
            vec!["--requirepass-file".into(), password_arg],
            vec![],
            None,
        ),
        (vec![], vec![("REACTOR_RPC_REQUIREPASS", PASSWORD)], None),
    ];
    for (flags, env, user) in cases {
        let mut args = vec!["--addr", "127.0.0.1:0"];
        args.extend(flags.iter().map(String::as_str));
        let p = ServerProcess::spawn_with_env(&args, &env);
        let mut client = p.client();
        assert_eq!(client.call("ping", &1).unwrap(), 1, "{flags:?}");
        let err = client
            .call("get", &serde_json::json!({"key": "k"}))
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Unauthenticated), "{flags:?}");
        client.auth(user, PASSWORD).unwrap();
        assert_eq!(
            client
                .call("get", &serde_json::json!({"key": "k"}))
                .unwrap(),
            Value::Null
        );
    }
}

#[test]
fn the_requirepass_variable_leaves_the_environment() {
    // `serve` scrubs and removes it before anything else: the running
    // server's environment (as /proc shows it, and so as any child it
    // spawned would inherit it) no longer holds the password, nothing it
    // logs shows it, and the password works.
    let mut p = ServerProcess::spawn_with_env(
        &["--addr", "127.0.0.1:0"],
        &[("REACTOR_RPC_REQUIREPASS", "s3cr3t-in-env")],
    );
    let environ = std::fs::read(format!("/proc/{}/environ", p.pid())).unwrap();
    assert!(
        !environ.windows(13).any(|w| w == b"s3cr3t-in-env"),
        "the password is still in the server's environment"
    );
    let mut client = p.client();
    client.auth(None, "s3cr3t-in-env").unwrap();
    p.terminate();
    let log = p.log.join("\n");
    assert!(!log.contains("s3cr3t-in-env"), "{log}");
}

#[test]
fn hash_password_prints_the_users_file_form() {
    let hash = |input: &[u8]| {
        let mut child = Command::new(binary())
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
    for input in [&b"abc"[..], b"abc\n", b"abc\r\n"] {
        let out = hash(input);
        assert_eq!(out.status.code(), Some(0), "{input:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), abc);
    }
    for input in [&b""[..], b"\n", b"a\nb\n"] {
        let out = hash(input);
        assert_eq!(out.status.code(), Some(2), "{input:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr_lines(&out).len(), 1);
    }
}

// ---- the clients ----

#[test]
fn the_client_speaks_tls_and_logs_in() {
    let pki = Pki::new();
    let (_server, addr) = stand_in(Some(pki.server_files(false)));
    let tls = TlsConnector::from_files(&pki.path("ca.crt"), None).unwrap();
    let mut client = Client::connect_tls_timeout(addr, "127.0.0.1", &tls, TIMEOUT).unwrap();
    assert!(client.is_tls());
    assert_eq!(client.call("ping", "over tls").unwrap(), "over tls");
    client.auth(None, PASSWORD).unwrap();
    client.auth(Some("alice"), PASSWORD).unwrap();
    let err = client.auth(Some("alice"), "wrong").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WrongPassword));
    // A large answer crosses many TLS records.
    let big = "x".repeat(300_000);
    assert_eq!(client.call("ping", &big).unwrap(), Value::String(big));

    // The wrong name, or a CA that did not sign the server, fail the handshake.
    let err = Client::connect_tls_timeout(addr, "example.com", &tls, TIMEOUT)
        .err()
        .unwrap();
    assert!(err.to_string().contains("certificate"), "{err}");
    let other = Pki::new();
    let stranger = TlsConnector::from_files(&other.path("ca.crt"), None).unwrap();
    assert!(Client::connect_tls_timeout(addr, "127.0.0.1", &stranger, TIMEOUT).is_err());
}

#[test]
fn the_client_presents_its_certificate_for_mutual_tls() {
    let pki = Pki::new();
    let (_server, addr) = stand_in(Some(pki.server_files(true)));
    let identity = (pki.path("client.crt"), pki.path("client.key"));
    let tls = TlsConnector::from_files(
        &pki.path("ca.crt"),
        Some((identity.0.as_path(), identity.1.as_path())),
    )
    .unwrap();
    let mut client = Client::connect_tls_timeout(addr, "localhost", &tls, TIMEOUT).unwrap();
    assert_eq!(client.call("ping", &1).unwrap(), 1);
    // Without a certificate the server refuses (in TLS 1.3, at the first read).
    let anonymous = TlsConnector::from_files(&pki.path("ca.crt"), None).unwrap();
    let refused = Client::connect_tls_timeout(addr, "localhost", &anonymous, TIMEOUT)
        .map_err(reactor_rpc::client::Error::Io)
        .and_then(|mut c| c.call("ping", &1));
    assert!(refused.is_err());
}

#[test]
fn call_over_tls_with_a_password_file() {
    let pki = Pki::new();
    let (_server, addr) = stand_in(Some(pki.server_files(true)));
    let addr = addr.to_string();
    let base = [
        "call",
        "--addr",
        &addr,
        "--tls",
        "--cacert",
        &pki.s("ca.crt"),
        "--cert",
        &pki.s("client.crt"),
        "--key",
        &pki.s("client.key"),
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&args, &[])
    };
    let out = with(&["--password-file", &pki.s("password"), "ping", "\"hi\""]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"hi\"\n");
    let out = with(&[
        "--user",
        "alice",
        "--password-file",
        &pki.s("password"),
        "ping",
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let out = with(&[
        "--user",
        "alice",
        "--password-file",
        &pki.s("wrong"),
        "ping",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_lines(&out)[0].starts_with("error: wrong_password: "),
        "{:?}",
        stderr_lines(&out)
    );
    // Plaintext to a TLS port, a missing CA flag, an unusable file: exit 2, one line.
    for args in [
        vec!["call", "--addr", &addr, "--timeout", "5", "ping"],
        vec!["call", "--addr", &addr, "--tls", "ping"],
        vec![
            "call",
            "--addr",
            &addr,
            "--tls",
            "--cacert",
            "/nonexistent.pem",
            "ping",
        ],
    ] {
        let out = run(&args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {:?}",
            stderr_lines(&out)
        );
        assert_eq!(
            stderr_lines(&out).len(),
            1,
            "{args:?}: {:?}",
            stderr_lines(&out)
        );
    }
}

#[test]
fn bench_over_tls_logs_each_connection_in_before_the_timed_requests() {
    let pki = Pki::new();
    let (ca, password) = (pki.s("ca.crt"), pki.s("password"));
    for mutual in [false, true] {
        let (_server, addr) = stand_in(Some(pki.server_files(mutual)));
        let addr = addr.to_string();
        let mut args = vec![
            "bench",
            "--addr",
            &addr,
            "--tls",
            "--cacert",
            &ca,
            "--password-file",
            &password,
            "--conns",
            "4",
            "--pipeline",
            "8",
            "--requests",
            "2000",
            "--warmup",
            "0",
            "--ping-param",
            "over tls",
        ];
        let (crt, key) = (pki.s("client.crt"), pki.s("client.key"));
        if mutual {
            args.extend_from_slice(&["--cert", &crt, "--key", &key]);
        }
        let out = run(&args, &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}{:?}", stderr_lines(&out));
        assert!(text.contains("4 connected of 4"), "{text}");
        assert!(text.contains("2000 sent, 2000 ok, 0 failed"), "{text}");
    }
}

#[test]
fn bench_counts_a_refused_login_as_a_failed_connection() {
    let pki = Pki::new();
    let (_server, addr) = stand_in(None);
    let addr = addr.to_string();
    let out = run(
        &[
            "bench",
            "--addr",
            &addr,
            "--user",
            "alice",
            "--password-file",
            &pki.s("wrong"),
            "--conns",
            "2",
            "--requests",
            "10",
            "--warmup",
            "0",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "nothing was measured: {text}");
    assert!(
        text.contains("0 connected of 2, 2 failed to connect"),
        "{text}"
    );
    assert!(text.contains("auth refused"), "{text}");
    assert!(text.contains("wrong_password"), "{text}");
    // And a right one over plaintext works.
    let out = run(
        &[
            "bench",
            "--addr",
            &addr,
            "--user",
            "alice",
            "--password-file",
            &pki.s("password"),
            "--conns",
            "2",
            "--requests",
            "100",
            "--warmup",
            "0",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn python(args: &[&str], env: &[(&str, &str)]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("python3 runs (CI installs it)")
}

#[test]
fn the_python_client_speaks_tls_and_logs_in() {
    let pki = Pki::new();
    let (_server, addr) = stand_in(Some(pki.server_files(false)));
    let addr = addr.to_string();
    let ca = pki.s("ca.crt");
    let out = python(
        &[
            "--tls",
            "--cacert",
            &ca,
            "--password-file",
            &pki.s("password"),
            &addr,
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{:?}", stderr_lines(&out));
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(text.starts_with("pong ireader 0\n"), "{text}");
    let out = python(
        &[
            "--tls", "--cacert", &ca, "--user", "alice", "--method", "fib", "--params", "10", &addr,
        ],
        &[("REACTOR_RPC_PASSWORD", PASSWORD)],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "55\n",
        "{:?}",
        stderr_lines(&out)
    );
    let out = python(
        &["--tls", "--cacert", &ca, "--password", "wrong", &addr],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("wrong_password"), "{lines:?}");
}

#[test]
fn the_python_client_prints_one_line_when_it_cannot_connect() {
    let pki = Pki::new();
    // A port nobody listens on: bind one, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{port}");
    let (_server, tls_addr) = stand_in(Some(pki.server_files(false)));
    let tls_addr = tls_addr.to_string();
    let other = Pki::new();
    for args in [
        vec![closed.as_str()],
        vec!["--tls", "--cacert", &pki.s("ca.crt"), closed.as_str()],
        // The server's certificate is not from this CA.
        vec!["--tls", "--cacert", &other.s("ca.crt"), tls_addr.as_str()],
    ] {
        let out = python(&args, &[]);
        let lines = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(
            lines[0].starts_with("seed_client: cannot connect to "),
            "{lines:?}"
        );
    }
}

#[test]
fn plaintext_sent_to_the_tls_port_is_closed_cleanly() {
    // The server's TLS layer meets a JSON frame instead of a ClientHello:
    // an alert at most, then the close, and it keeps serving.
    let pki = Pki::new();
    let (_server, addr) = stand_in(Some(pki.server_files(false)));
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.write_all(b"\x0e\x00\x00\x00{\"in\":\"ping\"}")
        .unwrap();
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    assert!(got.len() <= 7, "{got:?}");
    let tls = TlsConnector::from_files(&pki.path("ca.crt"), None).unwrap();
    let mut client = Client::connect_tls_timeout(addr, "127.0.0.1", &tls, TIMEOUT).unwrap();
    assert_eq!(client.call("ping", "still").unwrap(), "still");
}
