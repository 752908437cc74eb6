//! Handshakes over real loopback sockets, with certificates made here by
//! rcgen, against a rustls client on plain `std::net` sockets.

use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A CA and its key.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf certificate signed by `ca`, for a server (127.0.0.1, localhost) or a client.
fn leaf(ca: &Ca, name: &str, server: bool) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let sans = if server {
        vec!["127.0.0.1".to_string(), "localhost".to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert, key)
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The server's files in `dir`, for a leaf of `ca`; returns the leaf's DER.
fn server_files(dir: &Path, ca: &Ca, name: &str, client_ca: Option<&Ca>) -> (TlsFiles, Vec<u8>) {
    let (cert, key) = leaf(ca, name, true);
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        client_ca: client_ca.map(|_| dir.join("client-ca.crt")),
    };
    write(&files.cert, &cert.pem(), 0o644);
    write(&files.key, &key.serialize_pem(), 0o600);
    if let (Some(path), Some(client_ca)) = (&files.client_ca, client_ca) {
        write(path, &client_ca.cert.pem(), 0o644);
    }
    (files, cert.der().to_vec())
}

fn client_config(ca: &Ca, identity: Option<(&Certificate, &KeyPair)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection on `listener`: handshake, then echoes 5 bytes.
/// Returns what the handshake or the exchange failed with.
fn serve_one(
    listener: &TcpListener,
    conn: Option<ServerConnection>,
    source: &TlsSource,
) -> Result<(), String> {
    let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut conn = match conn {
        Some(conn) => conn,
        None => source.accept().map_err(|e| e.to_string())?,
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).map_err(|e| e.to_string())?;
    stream.write_all(&buf).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(())
}

/// Connects to `addr` with `config`, sends "hello", reads it back. Returns
/// the server's leaf certificate.
fn talk(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<CertificateDer<'static>, String> {
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    stream.write_all(b"hello").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"hello");
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?
        .clone()
        .into_owned();
    Ok(leaf)
}

/// One exchange: a server thread serving one connection, and `talk`.
fn exchange(
    source: &Arc<TlsSource>,
    config: Arc<ClientConfig>,
) -> (Result<(), String>, Result<CertificateDer<'static>, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let s = source.clone();
    let server = std::thread::spawn(move || serve_one(&listener, None, &s));
    let client = talk(addr, config);
    (server.join().unwrap(), client)
}

#[test]
fn a_handshake_over_loopback_serves_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, der) = server_files(dir.path(), &ca, "server", None);
    let source = Arc::new(TlsSource::load(files).unwrap());
    let (server, client) = exchange(&source, client_config(&ca, None));
    server.unwrap();
    assert_eq!(client.unwrap().as_ref(), &der[..]);
}

#[test]
fn both_tls_13_and_12_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, _) = server_files(dir.path(), &ca, "server", None);
    let source = Arc::new(TlsSource::load(files).unwrap());
    for version in VERSIONS {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (server, client) = exchange(&source, Arc::new(config));
        server.unwrap();
        client.unwrap();
    }
}

#[test]
fn mutual_tls_accepts_a_client_of_the_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    let (files, _) = server_files(dir.path(), &server_ca, "server", Some(&client_ca));
    let source = Arc::new(TlsSource::load(files).unwrap());

    let (cert, key) = leaf(&client_ca, "client", false);
    let (server, client) = exchange(&source, client_config(&server_ca, Some((&cert, &key))));
    server.unwrap();
    client.unwrap();

    // No client certificate.
    let (server, client) = exchange(&source, client_config(&server_ca, None));
    let err = server.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    assert!(client.is_err());

    // A certificate from another CA.
    let stranger = ca("stranger CA");
    let (cert, key) = leaf(&stranger, "mallory", false);
    let (server, client) = exchange(&source, client_config(&server_ca, Some((&cert, &key))));
    let err = server.unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown"),
        "{err}"
    );
    assert!(client.is_err());
}

#[test]
fn a_reload_with_good_files_serves_the_new_certificate_to_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, old) = server_files(dir.path(), &ca, "old", None);
    let source = Arc::new(TlsSource::load(files).unwrap());
    // A connection accepted before the reload, handshaking after it.
    let early = source.accept().unwrap();

    let (_, new) = server_files(dir.path(), &ca, "new", None);
    assert_ne!(old, new);
    source.reload().unwrap();
    assert_eq!((source.reloads(), source.reload_failures()), (1, 0));

    let (server, client) = exchange(&source, client_config(&ca, None));
    server.unwrap();
    assert_eq!(client.unwrap().as_ref(), &new[..]);

    // The connection accepted before keeps the configuration it started with.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let s = source.clone();
    let server = std::thread::spawn(move || serve_one(&listener, Some(early), &s));
    let client = talk(addr, client_config(&ca, None));
    server.join().unwrap().unwrap();
    assert_eq!(client.unwrap().as_ref(), &old[..]);
}

#[test]
fn a_reload_with_bad_files_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, old) = server_files(dir.path(), &ca, "old", None);
    let source = Arc::new(TlsSource::load(files.clone()).unwrap());
    let key_before = std::fs::read_to_string(&files.key).unwrap();

    // A certificate that is not PEM.
    write(&files.cert, "not a certificate\n", 0o644);
    let err = source.reload().unwrap_err().to_string();
    assert!(err.starts_with(&files.cert.display().to_string()), "{err}");
    // A new certificate with the old key: they do not fit.
    let (cert, _) = leaf(&ca, "new", true);
    write(&files.cert, &cert.pem(), 0o644);
    let err = source.reload().unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
    // A key file readable by everyone.
    write(&files.key, &key_before, 0o644);
    let err = source.reload().unwrap_err().to_string();
    assert!(err.contains("readable by every user"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    // A missing CA file.
    let mut with_ca = files.clone();
    with_ca.client_ca = Some(dir.path().join("missing-ca.crt"));
    assert!(TlsSource::load(with_ca).is_err());

    assert_eq!((source.reloads(), source.reload_failures()), (0, 3));
    let (server, client) = exchange(&source, client_config(&ca, None));
    server.unwrap();
    assert_eq!(client.unwrap().as_ref(), &old[..]);
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, _) = server_files(dir.path(), &ca, "s", None);
    let mut missing = files.clone();
    missing.cert = dir.path().join("nope.crt");
    let err = TlsSource::load(missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot open",
            dir.path().join("nope.crt").display()
        )),
        "{err}"
    );
    let mut swapped = files.clone();
    swapped.key = files.cert.clone();
    std::fs::set_permissions(&files.cert, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = TlsSource::load(swapped).unwrap_err().to_string();
    assert!(err.contains("no private key found"), "{err}");
}

/// The server's side of a connection fed raw bytes: reads what the server
/// answers until it closes. Returns (server error, bytes the client got).
fn raw(bytes: &[u8]) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, _) = server_files(dir.path(), &ca, "s", None);
    let source = Arc::new(TlsSource::load(files).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut conn = source.accept().unwrap();
        let mut result = Ok(());
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                result = Err(e.to_string());
                break;
            }
        }
        result
        // The socket is dropped (closed) here.
    });
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.write_all(bytes).unwrap();
    let mut got = Vec::new();
    // Until the server closes (EOF) or resets the connection.
    let _ = sock.read_to_end(&mut got);
    let err = server.join().unwrap().unwrap_err();
    (err, got)
}

/// A TLS record carrying an alert: (level, description).
fn alert(bytes: &[u8]) -> Option<(u8, u8)> {
    match bytes {
        [0x15, 0x03, _, 0x00, 0x02, level, description, ..] => Some((*level, *description)),
        _ => None,
    }
}

#[test]
fn a_tls_1_1_client_hello_is_refused_with_a_fatal_alert() {
    // A TLS 1.1 ClientHello: no supported_versions extension, version 3.2.
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // two RSA-CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);

    let (err, got) = raw(&record);
    assert!(err.contains("incompatible"), "{err}");
    // A fatal (2) handshake_failure (40) alert, then the close.
    assert_eq!(alert(&got), Some((2, 40)), "{got:?}");
}

#[test]
fn garbage_or_plaintext_instead_of_a_client_hello_fails_cleanly() {
    for garbage in [
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"*1\r\n$4\r\nPING\r\n",
        b"\x0e\x00\x00\x00{\"in\":\"ping\"}",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
    ] {
        let (err, got) = raw(garbage);
        assert!(!err.is_empty());
        // At most one alert record, then the close: never application data.
        assert!(
            got.is_empty() || alert(&got).is_some(),
            "{garbage:?}: {got:?}"
        );
        assert!(got.len() <= 7, "{got:?}");
    }
}

#[test]
fn a_connection_has_its_buffers_limited() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (files, _) = server_files(dir.path(), &ca, "s", None);
    let source = TlsSource::load(files).unwrap();
    let mut conn = source.accept().unwrap();
    // Before the handshake, plaintext written is buffered up to the limit only.
    let big = vec![b'x'; 4 * BUFFER_LIMIT];
    let taken = conn.writer().write(&big).unwrap();
    assert_eq!(taken, BUFFER_LIMIT);
    assert_eq!(conn.writer().write(&big).unwrap(), 0);
}
