//! TLS on every listener, in every model: the JSON protocol on `--tls-addr`,
//! RESP on `--resp-tls-addr`, the metrics port with `--metrics-tls`; mutual
//! TLS; a handshake that never finishes, plaintext and garbage sent to a TLS
//! port; large values through rustls's bounded buffers.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reactor_rpc::client::{Client, TlsConnector};
use reactor_rpc::protocol::frame::encode;
use reactor_rpc::tls::TlsSource;
use reactor_rpc::{Config, Model};
use serde_json::json;

use crate::support::{raw_connect, tls_client_config, tls_connect, Pki, TestServer, TIMEOUT};

model_tests! {
    every_model: [
        json_resp_and_metrics_over_tls,
        mutual_tls_wants_a_client_certificate,
        plaintext_or_garbage_on_a_tls_port_is_closed_and_the_server_goes_on,
        a_handshake_that_never_finishes_is_closed_at_the_frame_timeout,
        large_values_cross_tls_whole_and_in_order,
        the_clients_people_use_log_in_over_tls,
    ],
    not_pool: [],
}

/// Every listener of a server, its plaintext and TLS ports on 127.0.0.1:0.
struct Ports {
    server: TestServer,
    tls: SocketAddr,
    resp_tls: SocketAddr,
    metrics: SocketAddr,
}

fn tls_server(model: Model, pki: &Pki, mutual: bool, tweak: impl FnOnce(&mut Config)) -> Ports {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let source = TlsSource::load(pki.server_files(mutual)).expect("certificates");
    let server = TestServer::with(model, |config| {
        config.security.tls = Some(Arc::new(source));
        config.security.tls_addr = Some(any);
        config.security.resp_tls_addr = Some(any);
        config.metrics_addr = Some(any);
        config.security.metrics_tls = true;
        tweak(config);
    });
    let tls = server.tls_addr();
    let resp_tls = server.resp_tls_addr();
    let metrics = server.metrics_addr();
    Ports {
        server,
        tls,
        resp_tls,
        metrics,
    }
}

fn tls_client(addr: SocketAddr, pki: &Pki, mutual: bool) -> Client {
    let connector = TlsConnector::from_config(tls_client_config(pki, mutual));
    let client = Client::connect_tls(addr, "localhost", &connector).expect("TLS connect");
    client.set_timeout(Some(TIMEOUT)).expect("timeout");
    client
}

/// Reads until the peer closes (EOF, a reset, or a TLS alert), and says so;
/// panics if it stays open past [`TIMEOUT`].
fn closes(mut stream: impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn json_resp_and_metrics_over_tls(model: Model) {
    let pki = Pki::new();
    let ports = tls_server(model, &pki, false, |_| {});
    // JSON over TLS, pipelined, and the plaintext port beside it.
    let mut client = tls_client(ports.tls, &pki, false);
    assert_eq!(
        client.call("ping", "secret").expect("ping"),
        json!("secret")
    );
    client
        .call("set", &json!({"key": "k", "value": [1, 2]}))
        .expect("set");
    let results = client
        .pipeline(&[("get", json!({"key": "k"})), ("fib", json!(90))])
        .expect("pipeline");
    assert_eq!(results[0].as_ref().expect("get").get(), "[1,2]");
    assert_eq!(
        results[1].as_ref().expect("fib").get(),
        "2880067194370816120"
    );
    assert_eq!(
        ports
            .server
            .client()
            .call("get", &json!({"key": "k"}))
            .expect("plain"),
        json!([1, 2])
    );

    // RESP over TLS: the same keyspace.
    let mut resp = tls_connect(ports.resp_tls, tls_client_config(&pki, false));
    resp.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nQUIT\r\n")
        .expect("write");
    let got = closes(&mut resp);
    assert_eq!(String::from_utf8_lossy(&got), "$5\r\n[1,2]\r\n+OK\r\n");

    // The metrics port speaks HTTPS.
    let mut http = tls_connect(ports.metrics, tls_client_config(&pki, false));
    http.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let page = String::from_utf8(closes(&mut http)).expect("utf-8");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("reactor_rpc_build_info"), "{page}");
}

fn mutual_tls_wants_a_client_certificate(model: Model) {
    let pki = Pki::new();
    let ports = tls_server(model, &pki, true, |_| {});
    let mut with = tls_client(ports.tls, &pki, true);
    assert_eq!(with.call("ping", &1).expect("ping"), json!(1));
    // Without a certificate the handshake fails (the client may learn it at
    // the handshake or at its first read, by TLS 1.3's ordering).
    let connector = TlsConnector::from_config(tls_client_config(&pki, false));
    let refused = Client::connect_tls(ports.tls, "localhost", &connector).and_then(|mut c| {
        c.set_timeout(Some(TIMEOUT))?;
        c.call("ping", &1)
            .map(|_| ())
            .map_err(std::io::Error::other)
    });
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    // The server goes on.
    assert_eq!(with.call("ping", &2).expect("ping"), json!(2));
}

fn plaintext_or_garbage_on_a_tls_port_is_closed_and_the_server_goes_on(model: Model) {
    let pki = Pki::new();
    let ports = tls_server(model, &pki, false, |_| {});
    // A JSON frame in plaintext: the server answers with an alert at most.
    let mut plain = raw_connect(ports.tls);
    let mut frame = Vec::new();
    encode(&mut frame, br#"{"in":"ping","params":1}"#);
    plain.write_all(&frame).expect("write");
    let got = closes(&mut plain);
    assert!(
        !String::from_utf8_lossy(&got).contains("ping"),
        "a plaintext request was answered: {got:?}"
    );
    // Bytes that look like a TLS record but are not a ClientHello.
    let mut garbage = raw_connect(ports.resp_tls);
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello\r\n*1\r\n$4\r\nPING\r\n")
        .expect("write");
    let got = closes(&mut garbage);
    assert!(!String::from_utf8_lossy(&got).contains("PONG"), "{got:?}");
    // Every port still serves.
    assert_eq!(
        tls_client(ports.tls, &pki, false)
            .call("ping", &3)
            .expect("ping"),
        json!(3)
    );
    assert_eq!(
        ports.server.client().call("ping", &4).expect("ping"),
        json!(4)
    );
}

fn a_handshake_that_never_finishes_is_closed_at_the_frame_timeout(model: Model) {
    let pki = Pki::new();
    let ports = tls_server(model, &pki, false, |config| {
        config.limits.frame_timeout = Duration::from_secs(1);
    });
    let start = Instant::now();
    // Connected, then silent: no ClientHello ever comes.
    let silent = raw_connect(ports.tls);
    closes(&silent);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the frame timeout"
    );
    // Half a ClientHello, then silence: the same.
    let mut half = raw_connect(ports.resp_tls);
    half.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .expect("write");
    closes(&mut half);
    assert_eq!(
        tls_client(ports.tls, &pki, false)
            .call("ping", &5)
            .expect("ping"),
        json!(5)
    );
}

fn large_values_cross_tls_whole_and_in_order(model: Model) {
    let pki = Pki::new();
    let ports = tls_server(model, &pki, false, |_| {});
    let mut client = tls_client(ports.tls, &pki, false);
    // 900 KiB values: shared by reference in the cache, written through
    // rustls's 32 KiB outgoing buffer in many records.
    let big: String = "x".repeat(900 << 10);
    client
        .call("set", &json!({"key": "big", "value": big}))
        .expect("set");
    for i in 0..4 {
        client
            .send_with_id("get", &json!({"key": "big"}), &i)
            .expect("send");
    }
    client.flush().expect("flush");
    for i in 0..4 {
        let response = client.recv().expect("recv");
        assert_eq!(response.id.as_ref().expect("id").get(), i.to_string());
        let value = response.into_result().expect("result");
        assert_eq!(value.get().len(), big.len() + 2, "the whole value");
    }
}

/// A client configuration that trusts both `a`'s and `b`'s CAs.
fn trusting(a: &Pki, b: &Pki) -> Arc<rustls::ClientConfig> {
    use reactor_rpc::tls::pem;
    let mut roots = rustls::RootCertStore::empty();
    for pki in [a, b] {
        for cert in pem::read_certs(&pki.path("ca.crt")).expect("CA") {
            roots.add(cert).expect("a root");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(pem::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The certificate the server at `addr` presents in a new handshake.
fn presented(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let mut tls = tls_connect(addr, config);
    let mut frame = Vec::new();
    encode(&mut frame, br#"{"in":"ping","params":0}"#);
    tls.write_all(&frame).expect("handshake and write");
    let mut answer = [0u8; 4];
    tls.read_exact(&mut answer).expect("an answer");
    tls.conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a certificate")
        .to_vec()
}

/// `path`'s certificate, as DER.
fn der(path: &std::path::Path) -> Vec<u8> {
    reactor_rpc::tls::pem::read_certs(path).expect("certificate")[0].to_vec()
}

/// Replaces `to` with a copy of `from` in one rename, as a deploy tool would.
fn replace(from: &std::path::Path, to: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let next = to.with_extension("next");
    std::fs::copy(from, &next).expect("copy");
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::fs::rename(&next, to).expect("rename");
}

#[test]
fn certificates_rotate_on_sighup_and_bad_files_keep_the_old_ones() {
    use crate::support::ServerProcess;
    let (a, b) = (Pki::new(), Pki::new());
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    replace(&a.path("server.crt"), &cert, 0o644);
    replace(&a.path("server.key"), &key, 0o600);
    let mut server = ServerProcess::spawn(&[
        "--tls-addr",
        "127.0.0.1:0",
        "--tls-cert-file",
        &cert.display().to_string(),
        "--tls-key-file",
        &key.display().to_string(),
    ]);
    let addr = server.listener_addr("rpc-tls");
    let config = trusting(&a, &b);
    assert_eq!(presented(addr, config.clone()), der(&a.path("server.crt")));
    let connector = TlsConnector::from_config(config.clone());
    let mut open = Client::connect_tls(addr, "localhost", &connector).expect("connect");
    open.set_timeout(Some(TIMEOUT)).expect("timeout");
    assert_eq!(open.call("ping", &1).expect("ping"), json!(1));

    // New files, then SIGHUP: the next handshake presents them.
    replace(&b.path("server.crt"), &cert, 0o644);
    replace(&b.path("server.key"), &key, 0o600);
    let pid = libc::pid_t::try_from(server.pid()).expect("pid");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    server.wait_for_line("the reload", |l| l.contains("reloaded the TLS certificate"));
    assert_eq!(presented(addr, config.clone()), der(&b.path("server.crt")));
    // A connection made before keeps going.
    assert_eq!(open.call("ping", &2).expect("ping"), json!(2));

    // A bad certificate: logged and counted, the current one stays.
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    server.wait_for_line("the failed reload", |l| {
        l.contains("cannot reload the TLS certificate, keeping the old one")
    });
    assert_eq!(presented(addr, config), der(&b.path("server.crt")));
    let stats = open.call("stats", &json!(null)).expect("stats");
    assert_eq!(stats["tls_reload_failures"], 1, "{stats}");
    drop(open);
    server.terminate();
}

#[test]
fn redis_cli_speaks_tls_to_the_resp_tls_port() {
    use crate::support::ServerProcess;
    let pki = Pki::new();
    let mut server = ServerProcess::spawn(&[
        "--resp-tls-addr",
        "127.0.0.1:0",
        "--tls-cert-file",
        &pki.s("server.crt"),
        "--tls-key-file",
        &pki.s("server.key"),
    ]);
    let addr = server.listener_addr("resp-tls");
    let cli = |args: &[&str]| {
        let port = addr.port().to_string();
        let mut cmd = std::process::Command::new("redis-cli");
        cmd.args([
            "--tls",
            "--cacert",
            &pki.s("ca.crt"),
            "-h",
            "127.0.0.1",
            "-p",
            &port,
        ]);
        let out = cmd
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    assert_eq!(cli(&["SET", "k", "over tls"]), "OK\n");
    assert_eq!(cli(&["GET", "k"]), "over tls\n");
    assert_eq!(cli(&["PING"]), "PONG\n");
    server.terminate();
}

/// The daemon with users (`alice`, role write) and every TLS port: redis-cli
/// with `--tls --cacert --user --pass`, redis-py with `ssl=True` and a
/// password, and `reactor-rpc call --tls --user --password-file` log in and
/// work; without the password each is refused.
fn the_clients_people_use_log_in_over_tls(model: Model) {
    use crate::support::{ServerProcess, PKI_PASSWORD};
    use reactor_rpc::service::auth::hash_password;
    let pki = Pki::new();
    let users = pki.path("users");
    std::fs::write(
        &users,
        format!("alice {} write\n", hash_password(PKI_PASSWORD.as_bytes())),
    )
    .expect("users file");
    let mut perms = std::fs::metadata(&users).expect("users").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&users, perms).expect("chmod");
    let mut server = ServerProcess::spawn(&[
        "--model",
        &model.to_string(),
        "--addr",
        "none",
        "--tls-addr",
        "127.0.0.1:0",
        "--resp-tls-addr",
        "127.0.0.1:0",
        "--tls-cert-file",
        &pki.s("server.crt"),
        "--tls-key-file",
        &pki.s("server.key"),
        "--users-file",
        &users.display().to_string(),
    ]);
    let resp = server.listener_addr("resp-tls");
    let json = server.addr; // with --addr none, the first `listening on` line is the TLS port's

    let cli = |auth: bool, args: &[&str]| {
        let port = resp.port().to_string();
        let mut cmd = std::process::Command::new("redis-cli");
        cmd.args([
            "--tls",
            "--cacert",
            &pki.s("ca.crt"),
            "-h",
            "127.0.0.1",
            "-p",
            &port,
        ]);
        if auth {
            cmd.args([
                "--user",
                "alice",
                "--pass",
                PKI_PASSWORD,
                "--no-auth-warning",
            ]);
        }
        let out = cmd
            .args(args)
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    assert_eq!(cli(true, &["SET", "k", "over tls"]), "OK\n");
    assert_eq!(cli(true, &["GET", "k"]), "over tls\n");
    assert_eq!(cli(true, &["ACL", "WHOAMI"]), "alice\n");
    assert_eq!(
        cli(false, &["GET", "k"]).trim_end(),
        "NOAUTH Authentication required."
    );

    let py = |password: &str| {
        // No retries: a refused login is not retried into a lockout.
        let script = "import sys, redis\n\
            from redis.retry import Retry\n\
            from redis.backoff import NoBackoff\n\
            r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True,\n\
                ssl_ca_certs=sys.argv[2], username='alice', password=sys.argv[3],\n\
                retry=Retry(NoBackoff(), 0))\n\
            r.set('py', 'ok')\n\
            print(r.get('py').decode(), r.get('k').decode())\n";
        std::process::Command::new("python3")
            .args([
                "-c",
                script,
                &resp.port().to_string(),
                &pki.s("ca.crt"),
                password,
            ])
            .output()
            .expect("python3 with redis-py (pip install redis)")
    };
    let out = py(PKI_PASSWORD);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok over tls\n");
    let out = py("wrong");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid username-password pair"),
        "{out:?}"
    );

    let call = |password_file: &str, method: &str, params: &str| {
        std::process::Command::new(crate::support::binary())
            .args([
                "call",
                "--addr",
                &json.to_string(),
                "--tls",
                "--cacert",
                &pki.s("ca.crt"),
            ])
            .args([
                "--user",
                "alice",
                "--password-file",
                password_file,
                method,
                params,
            ])
            .output()
            .expect("reactor-rpc call")
    };
    let out = call(&pki.s("password"), "get", r#"{"key":"py"}"#);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"ok\"\n");
    let out = call(&pki.s("wrong"), "get", r#"{"key":"py"}"#);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: wrong_password"));
    server.terminate();
}
