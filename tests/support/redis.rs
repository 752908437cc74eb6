//! A live `redis-server` to compare with, and a raw RESP connection that
//! reads whole replies: shared by the differential suite and the property
//! test against Redis.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Model, TestServer, TIMEOUT};

/// A `redis-server` on a Unix socket in a directory of its own; killed on drop.
pub struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no", "--databases", "1"])
            // Our defaults, so that CONFIG GET agrees.
            .args([
                "--maxmemory",
                "1073741824",
                "--maxmemory-policy",
                "allkeys-lru",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let redis = Redis {
            child,
            _dir: dir,
            socket,
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(mut c) = UnixStream::connect(&redis.socket) {
                c.set_read_timeout(Some(TIMEOUT)).unwrap();
                c.write_all(b"PING\r\n").unwrap();
                let mut buf = [0u8; 7];
                if c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        redis
    }

    pub fn connect(&self) -> Conn {
        let s = UnixStream::connect(&self.socket).expect("connect to redis-server");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Conn::new(Box::new(s))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One connection that sends commands and reads whole replies, raw.
pub struct Conn {
    reader: BufReader<Box<dyn Stream>>,
}

impl Conn {
    fn new(s: Box<dyn Stream>) -> Conn {
        Conn {
            reader: BufReader::new(s),
        }
    }

    pub fn tcp(addr: std::net::SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Conn::new(Box::new(s))
    }

    /// Sends one command, returns its raw reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&[args]);
        self.reply()
    }

    /// Sends several commands in one write (a pipeline), reading nothing.
    pub fn send(&mut self, commands: &[&[&[u8]]]) {
        let mut b = Vec::new();
        for args in commands {
            b.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in *args {
                b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                b.extend_from_slice(a);
                b.extend_from_slice(b"\r\n");
            }
        }
        self.reader.get_mut().write_all(&b).expect("send");
    }

    /// The next whole reply, raw.
    pub fn reply(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_reply(&mut out);
        out
    }

    /// Whether the server closed the connection: a read finds its end (or
    /// a reset) within the read timeout, with nothing left to read.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    fn read_reply(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.reader.read_until(b'\n', out).expect("read a reply");
        assert!(out.len() > start, "connection closed");
        let line = String::from_utf8_lossy(&out[start + 1..out.len() - 2]).into_owned();
        let n = || line.parse::<i64>().expect("a length");
        match out[start] {
            b'$' | b'=' | b'!' => {
                let len = n();
                if len >= 0 {
                    let mut body = vec![0u8; len as usize + 2];
                    self.reader.read_exact(&mut body).expect("bulk body");
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..n().max(0) {
                    self.read_reply(out);
                }
            }
            b'%' => {
                for _ in 0..2 * n() {
                    self.read_reply(out);
                }
            }
            _ => {}
        }
    }
}

/// How two replies are compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Byte for byte.
    Exact,
    /// The reply type only (the first byte).
    Kind,
    /// Integers within this much of each other.
    Near(i64),
    /// The same elements, in any order (KEYS; a map's pairs for CONFIG GET).
    Unordered,
}

/// The top-level elements of an aggregate reply, raw (pairs for a map or
/// a RESP2 map-as-array when `pairs`).
fn elements(raw: &[u8], pairs: bool) -> Vec<Vec<u8>> {
    let mut conn = Conn::new(Box::new(std::io::Cursor::new(raw.to_vec())));
    let mut header = Vec::new();
    conn.reader.read_until(b'\n', &mut header).unwrap();
    let n: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap_or(0);
    let count = if header[0] == b'%' { 2 * n } else { n };
    let mut items = Vec::new();
    for _ in 0..count {
        let mut item = Vec::new();
        conn.read_reply(&mut item);
        items.push(item);
    }
    if pairs {
        items = items.chunks(2).map(|c| c.concat()).collect();
    }
    items.sort();
    items
}

fn int_of(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    s.strip_prefix(':')?.trim_end().parse().ok()
}

/// Whether `ours` matches `theirs` under `mode`; a message if not.
pub fn compare(args: &[&[u8]], mode: Mode, theirs: &[u8], ours: &[u8]) -> Result<(), String> {
    let same = match mode {
        Mode::Exact => theirs == ours,
        Mode::Kind => theirs.first() == ours.first(),
        Mode::Near(d) => match (int_of(theirs), int_of(ours)) {
            (Some(a), Some(b)) => (a - b).abs() <= d,
            _ => theirs == ours,
        },
        Mode::Unordered => {
            if theirs.first() != ours.first() {
                false
            } else if matches!(theirs.first(), Some(b'*' | b'%')) {
                let pairs = args
                    .first()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"config"));
                elements(theirs, pairs) == elements(ours, pairs)
            } else {
                theirs == ours
            }
        }
    };
    if same {
        Ok(())
    } else {
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cut = |b: &[u8]| {
            let s = format!("{:?}", String::from_utf8_lossy(b));
            s.chars().take(400).collect::<String>()
        };
        Err(format!(
            "{shown:?} ({mode:?})\n  redis: {}\n  ours:  {}",
            cut(theirs),
            cut(ours)
        ))
    }
}

/// The set of keys a full SCAN iteration returns.
pub fn scan_all(conn: &mut Conn, opts: &[Vec<u8>]) -> std::collections::BTreeSet<Vec<u8>> {
    let mut keys = std::collections::BTreeSet::new();
    let mut cursor = b"0".to_vec();
    for _ in 0..100_000 {
        let mut args: Vec<&[u8]> = vec![b"SCAN", &cursor];
        args.extend(opts.iter().map(Vec::as_slice));
        let reply = conn.call(&args);
        let parts = elements_in_order(&reply);
        assert_eq!(parts.len(), 2, "{:?}", String::from_utf8_lossy(&reply));
        cursor = bulk_body(&parts[0]);
        for key in elements_in_order(&parts[1]) {
            keys.insert(bulk_body(&key));
        }
        if cursor == b"0" {
            return keys;
        }
    }
    panic!("SCAN did not finish");
}

/// The top-level elements of an aggregate reply, in order.
pub fn elements_in_order(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut conn = Conn::new(Box::new(std::io::Cursor::new(raw.to_vec())));
    let mut header = Vec::new();
    conn.reader.read_until(b'\n', &mut header).unwrap();
    let n: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    (0..n)
        .map(|_| {
            let mut item = Vec::new();
            conn.read_reply(&mut item);
            item
        })
        .collect()
}

/// The body of a raw bulk string reply.
pub fn bulk_body(raw: &[u8]) -> Vec<u8> {
    let at = raw.iter().position(|&b| b == b'\n').unwrap() + 1;
    raw[at..raw.len() - 2].to_vec()
}

/// Our server, in process, with a RESP listener on 127.0.0.1:0.
pub fn start_ours(model: Model) -> TestServer {
    TestServer::with(model, |c| {
        c.resp_addr = Some("127.0.0.1:0".parse().unwrap());
    })
}
