//! What one TLS connection costs the server, measured: the heap a
//! `ServerConnection` holds after its handshake and one exchange, and its
//! inline size. `reactor_rpc::tls` documents the bounds; this keeps the
//! figure honest (run with `--nocapture` to see it).
//!
//! A counting global allocator wraps `System`; only the server thread's own
//! allocations and frees are counted, so the client thread and the test
//! harness cannot disturb the figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use reactor_rpc::tls::server::BUFFER_LIMIT;
use reactor_rpc::tls::{TlsFiles, TlsSource};
use rustls::pki_types::ServerName;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: thread-locals may be gone while a thread is being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|n| n.set(n.get() + delta));
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn an_idle_tls_connection_holds_a_bounded_heap() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let files = TlsFiles {
        cert: dir.path().join("s.crt"),
        key: dir.path().join("s.key"),
        client_ca: None,
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = Arc::new(TlsSource::load(files).unwrap());

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        LIVE.with(|n| n.set(0));
        COUNTING.with(|on| on.set(true));
        let mut conn = source.accept().unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        stream.write_all(&buf).unwrap();
        stream.flush().unwrap();
        COUNTING.with(|on| on.set(false));
        let live = LIVE.with(Cell::get);
        // Keep the connection alive until measured.
        drop(conn);
        live
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(reactor_rpc::tls::pem::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    stream.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    let live = server.join().unwrap();
    let inline = std::mem::size_of::<rustls::ServerConnection>();
    eprintln!(
        "one idle TLS 1.3 server connection: {live} bytes of heap (its buffers, keys, \
         and the 2 session tickets it stored in the shared cache), {inline} bytes inline; \
         outgoing buffer limit {BUFFER_LIMIT} bytes"
    );
    assert!(live > 0, "the measurement counted nothing");
    // `reactor_rpc::tls` documents about 6.5 KiB (rustls 0.23.48, an ECDSA
    // P-256 certificate, TLS 1.3); a busy one may hold up to ~100 KiB.
    assert!(live < 16 << 10, "{live} bytes");
    assert!(inline < 4 << 10, "{inline} bytes inline");
}
