//! A blocking client.
//!
//! [`Client::call`] sends one request and waits for its answer; an error
//! response comes back as [`Error::Rpc`] with its code and message. For
//! pipelining, [`Client::send`] queues requests, [`Client::flush`] writes them
//! in one go, and [`Client::recv`] reads the responses back in order.
//!
//! Results are kept as raw JSON ([`RawValue`]) until the caller asks for a
//! [`Value`], because `fib` answers with integers far beyond 64 bits that
//! `serde_json::Value` cannot hold exactly. [`Client::call_raw`] keeps them exact.
//!
//! With the `tls` feature (off in this crate by default; the `reactor-rpc`
//! facade turns it on), `Client::connect_tls` speaks TLS (rustls on
//! *ring*), verifying the server against a CA file and, for mutual TLS,
//! presenting a certificate: see `TlsConnector`. [`Client::auth`] logs in on
//! a server that requires it, over either.
//!
//! # Layout
//!
//! One module, this file: [`Client`] (connect, call, pipeline, log in),
//! [`Error`], [`Response`] (the protocol crate's, re-exported),
//! `TlsConnector` (feature `tls`) and [`host_of`]. Framing and the response
//! reader are `reactor-rpc-protocol`'s, so the client reads a frame exactly
//! as the server writes it.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use reactor_rpc_protocol::buffer::ReadBuffer;
use reactor_rpc_protocol::frame::{begin_frame, decode, end_frame, Decoded, HEADER_LEN};
pub use reactor_rpc_protocol::message::Response;
use reactor_rpc_protocol::message::ResponseError;
use reactor_rpc_protocol::{ErrorCode, RpcError};

/// Largest response the client accepts by default (F(100 000) is ~21 KB; a
/// 1 MiB ping echoes 1 MiB).
pub const DEFAULT_MAX_RESPONSE: u32 = 64 << 20;

/// What can go wrong on a call.
///
/// `#[non_exhaustive]`: later versions may tell more cases apart, so a `match`
/// needs a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed, or the server closed the connection.
    Io(io::Error),
    /// The server answered with an error response.
    Rpc(RpcError),
    /// The server sent something that is not a valid response.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Rpc(e) => write!(f, "{e}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<ResponseError> for Error {
    fn from(e: ResponseError) -> Error {
        match e {
            ResponseError::Rpc(e) => Error::Rpc(e),
            ResponseError::Malformed(m) => Error::Protocol(m),
        }
    }
}

impl Error {
    /// The error code, when the server answered with an error response.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Rpc(e) => Some(e.code),
            _ => None,
        }
    }
}

/// The byte stream under a client: the socket, or TLS over it.
enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(s) => &s.sock,
        }
    }
}

impl io::Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            // Pushes the records rustls still holds onto the socket.
            #[cfg(feature = "tls")]
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// The `auth` method's params.
#[derive(Serialize)]
struct AuthParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    password: &'a str,
}

/// A blocking connection to a server.
pub struct Client {
    stream: Transport,
    input: ReadBuffer,
    output: Vec<u8>,
    max_response: u32,
}

#[derive(Serialize)]
struct Request<'a, P: ?Sized, I: ?Sized> {
    #[serde(rename = "in")]
    method: &'a str,
    params: &'a P,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a I>,
}

impl Client {
    /// Connects, with `TCP_NODELAY` set.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client> {
        Client::from_stream(TcpStream::connect(addr)?)
    }

    /// Connects within `timeout` (trying each address `addr` resolves to),
    /// and fails any later read or write that blocks longer than `timeout`.
    pub fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<Client> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing");
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let client = Client::from_stream(stream)?;
                    client.set_timeout(Some(timeout))?;
                    return Ok(client);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn from_stream(stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        Ok(Client::with_transport(Transport::Plain(stream)))
    }

    fn with_transport(stream: Transport) -> Client {
        Client {
            stream,
            input: ReadBuffer::new(),
            output: Vec::new(),
            max_response: DEFAULT_MAX_RESPONSE,
        }
    }

    /// Connects over TLS, verifying that the server's certificate is valid
    /// for `server_name` (a DNS name, or an IP address written as one) and
    /// chains to the connector's CA. The handshake is finished before this
    /// returns, so a certificate that does not verify fails here.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        tls: &TlsConnector,
    ) -> io::Result<Client> {
        Client::tls_over(TcpStream::connect(addr)?, server_name, tls)
    }

    /// [`Client::connect_tls`] within `timeout` for the connect and the
    /// handshake, and for every later read or write.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn connect_tls_timeout(
        addr: impl ToSocketAddrs,
        server_name: &str,
        tls: &TlsConnector,
        timeout: Duration,
    ) -> io::Result<Client> {
        let plain = Client::connect_timeout(addr, timeout)?;
        let Transport::Plain(stream) = plain.stream else {
            return Err(io::Error::other("connect_timeout gave a TLS stream"));
        };
        Client::tls_over(stream, server_name, tls)
    }

    #[cfg(feature = "tls")]
    fn tls_over(mut sock: TcpStream, server_name: &str, tls: &TlsConnector) -> io::Result<Client> {
        sock.set_nodelay(true)?;
        let name =
            rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{server_name:?} is not a server name: {e}"),
                )
            })?;
        let mut conn =
            rustls::ClientConnection::new(tls.config.clone(), name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(Client::with_transport(Transport::Tls(Box::new(
            rustls::StreamOwned::new(conn, sock),
        ))))
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.stream, Transport::Plain(_))
    }

    /// Logs in as `user` (`None`: the user `default`, whose password
    /// `--requirepass-file` sets) by calling the method `auth`. On success
    /// the connection may call what the user's role allows.
    ///
    /// A wrong user or password is [`Error::Rpc`] with
    /// [`ErrorCode::WrongPassword`]; after too many failures from this
    /// address, [`ErrorCode::TooManyAttempts`].
    pub fn auth(&mut self, user: Option<&str>, password: &str) -> Result<(), Error> {
        let result = self.call_raw("auth", &AuthParams { user, password })?;
        match result.get() {
            "true" => Ok(()),
            other => Err(Error::Protocol(format!(
                "auth answered {} instead of true",
                &other[..other.len().min(80)]
            ))),
        }
    }

    /// Fails reads and writes that block longer than `timeout` (`None`: wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.tcp().set_read_timeout(timeout)?;
        self.stream.tcp().set_write_timeout(timeout)
    }

    /// The underlying socket, e.g. to shut down one direction (under TLS,
    /// the socket the records travel on).
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Calls `method` and returns its result as a `Value`.
    pub fn call<P: Serialize + ?Sized>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<Value, Error> {
        let raw = self.call_raw(method, params)?;
        serde_json::from_str(raw.get())
            .map_err(|e| Error::Protocol(format!("result is not representable: {e}")))
    }

    /// Calls `method` and returns its result as raw JSON text (exact for big integers).
    pub fn call_raw<P: Serialize + ?Sized>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<Box<RawValue>, Error> {
        self.send(method, params)?;
        self.flush()?;
        Ok(self.recv()?.into_result()?)
    }

    /// Queues a request; nothing is sent until [`Client::flush`].
    ///
    /// Queue as many as you like, flush once, then [`Client::recv`] one
    /// response per request, in the order they were sent:
    ///
    /// ```no_run
    /// use reactor_rpc_client::Client;
    ///
    /// let mut client = Client::connect("127.0.0.1:8080")?;
    /// for i in 0..3 {
    ///     client.send_with_id("ping", &format!("hello {i}"), &i)?;
    /// }
    /// client.flush()?; // one write for all three
    /// for i in 0..3 {
    ///     let response = client.recv()?;
    ///     assert_eq!(response.out, "pong");
    ///     assert_eq!(response.id.as_ref().unwrap().get(), i.to_string());
    ///     assert_eq!(response.into_result()?.get(), format!("\"hello {i}\""));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<P: Serialize + ?Sized>(&mut self, method: &str, params: &P) -> io::Result<()> {
        self.queue(&Request::<P, ()> {
            method,
            params,
            id: None,
        })
    }

    /// Queues a request carrying an `id`, which the response echoes.
    pub fn send_with_id<P: Serialize + ?Sized, I: Serialize + ?Sized>(
        &mut self,
        method: &str,
        params: &P,
        id: &I,
    ) -> io::Result<()> {
        self.queue(&Request {
            method,
            params,
            id: Some(id),
        })
    }

    fn queue<T: Serialize>(&mut self, request: &T) -> io::Result<()> {
        let start = begin_frame(&mut self.output);
        serde_json::to_writer(&mut self.output, request)?;
        end_frame(&mut self.output, start);
        Ok(())
    }

    /// Queues raw bytes as they are (a frame body with its prefix, or garbage).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Writes every queued request.
    pub fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.output)?;
        self.stream.flush()?;
        self.output.clear();
        Ok(())
    }

    /// Reads the next response frame's body.
    pub fn recv_frame(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            match decode(self.input.readable(), self.max_response) {
                Decoded::Frame { body_len } => {
                    let body = self.input.readable()[HEADER_LEN..HEADER_LEN + body_len].to_vec();
                    self.input.consume(HEADER_LEN + body_len);
                    return Ok(body);
                }
                Decoded::TooLarge { body_len } => {
                    let readable = self.input.readable();
                    return Err(Error::Protocol(match wrong_port(readable) {
                        Some(why) => why,
                        None => format!("response of {body_len} bytes is too large"),
                    }));
                }
                Decoded::Incomplete { needed } => {
                    let missing = needed.saturating_sub(self.input.readable().len());
                    let (n, _) = self.input.read_from(&mut self.stream, missing.max(4096))?;
                    if n == 0 {
                        return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    /// Reads the next response.
    pub fn recv(&mut self) -> Result<Response, Error> {
        let body = self.recv_frame()?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("malformed response: {e}")))
    }

    /// Sends every call in one write and returns their results in order.
    ///
    /// The outer `Result` fails when the connection does; each inner one is
    /// that call's result or its error response, so one failed call does not
    /// hide the others' results.
    ///
    /// ```no_run
    /// use reactor_rpc_client::Client;
    /// use reactor_rpc_protocol::ErrorCode;
    /// use serde_json::json;
    ///
    /// let mut client = Client::connect("127.0.0.1:8080")?;
    /// let calls = [
    ///     ("set", json!({"key": "hits", "value": 10})),
    ///     ("incr", json!({"key": "hits"})),
    ///     ("incr", json!({"key": "hits", "by": 5})),
    ///     ("fib", json!(-1)),
    ///     ("get", json!({"key": "hits"})),
    /// ];
    /// let results = client.pipeline(&calls)?; // one write, five answers
    /// let ok: Vec<String> = results
    ///     .iter()
    ///     .filter_map(|r| r.as_ref().ok().map(|raw| raw.get().to_string()))
    ///     .collect();
    /// assert_eq!(ok, ["true", "11", "16", "16"]); // in the order sent
    /// assert_eq!(results[3].as_ref().unwrap_err().code(), Some(ErrorCode::BadParams));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pipeline<P: Serialize>(
        &mut self,
        calls: &[(&str, P)],
    ) -> Result<Vec<Result<Box<RawValue>, Error>>, Error> {
        for (method, params) in calls {
            self.send(method, params)?;
        }
        self.flush()?;
        calls
            .iter()
            .map(|_| Ok(self.recv()?.into_result().map_err(Error::from)))
            .collect()
    }
}

/// How a client verifies servers, and what it shows them: the rustls
/// client configuration behind [`Client::connect_tls`]. Build it once and
/// connect as often as needed (it is an `Arc` inside).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Clone)]
pub struct TlsConnector {
    config: std::sync::Arc<rustls::ClientConfig>,
}

#[cfg(feature = "tls")]
impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
impl TlsConnector {
    /// Trusts the CA certificates of the PEM file `ca` (the CA that signed
    /// the server's certificate) and, for mutual TLS, presents the
    /// certificate chain and private key of the PEM files `identity`.
    /// TLS 1.2 and 1.3 only.
    pub fn from_files(
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<TlsConnector, reactor_rpc_tls::pem::PemError> {
        let roots = reactor_rpc_tls::pem::read_roots(ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(reactor_rpc_tls::pem::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| reactor_rpc_tls::pem::PemError::new(ca, e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain = reactor_rpc_tls::pem::read_certs(cert)?;
                let key_der = reactor_rpc_tls::pem::read_private_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    reactor_rpc_tls::pem::PemError::new(
                        key,
                        format!("does not fit {}: {e}", cert.display()),
                    )
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector::from_config(std::sync::Arc::new(config)))
    }

    /// A connector with a configuration built elsewhere.
    pub fn from_config(config: std::sync::Arc<rustls::ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }

    /// The rustls configuration (e.g. for a non-blocking client).
    pub fn config(&self) -> &std::sync::Arc<rustls::ClientConfig> {
        &self.config
    }
}

/// The host part of `HOST:PORT` (`[::1]:8080` gives `::1`): the name a TLS
/// client verifies the server's certificate against when none is given.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Names the protocol a reply speaks when its length prefix cannot be a
/// JSON frame's and its first bytes are another protocol's: a RESP reply
/// (`+OK`, `-ERR ...`, `$5`, `*2`, `:1`, RESP3's `_ % | > ~`) or an HTTP
/// status line. The usual cause is `--addr` (or [`Client::connect`]) given
/// the server's RESP or metrics port; the words say so, with the reply's
/// first line.
fn wrong_port(reply: &[u8]) -> Option<String> {
    const HTTP: &[u8] = b"HTTP/";
    let head = &reply[..reply.len().min(HTTP.len())];
    let protocol = if head.len() >= HEADER_LEN && HTTP.starts_with(head) {
        "HTTP: --addr is an HTTP port (the metrics port?)"
    } else if matches!(
        reply.first(),
        Some(b'+' | b'-' | b'$' | b'*' | b':' | b'_' | b'%' | b'|' | b'>' | b'~')
    ) {
        "the Redis protocol (RESP): --addr is a RESP port"
    } else {
        return None;
    };
    let line = reply
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(&line[..line.len().min(200)]);
    Some(format!(
        "the server answered in {protocol}, not the JSON port (it said {:?})",
        line
    ))
}

#[cfg(test)]
mod tests {
    use super::{host_of, wrong_port};

    #[test]
    fn replies_of_other_protocols_name_the_port() {
        let resp = wrong_port(b"-ERR Protocol error: NUL byte in an inline request\r\n").unwrap();
        assert!(
            resp.starts_with(
                "the server answered in the Redis protocol (RESP): --addr is a RESP port, \
                 not the JSON port"
            ),
            "{resp}"
        );
        assert!(resp.ends_with("(it said \"-ERR Protocol error: NUL byte in an inline request\")"));
        for reply in [
            &b"+OK\r\n"[..],
            b"$5\r\nhello\r\n",
            b"*2\r\n",
            b":1\r\n",
            b"%1\r\n",
        ] {
            assert!(
                wrong_port(reply).is_some_and(|m| m.contains("RESP")),
                "{reply:?}"
            );
        }
        let http = wrong_port(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain").unwrap();
        assert!(
            http.contains("HTTP: --addr is an HTTP port (the metrics port?)"),
            "{http}"
        );
        assert!(
            http.ends_with("(it said \"HTTP/1.1 400 Bad Request\")"),
            "{http}"
        );
        assert!(wrong_port(b"HTTP").is_some_and(|m| m.contains("HTTP")));
        // A JSON frame's prefix, or anything else, is not diagnosed.
        assert_eq!(wrong_port(b"\x00\x00\x00\x10{"), None);
        assert_eq!(wrong_port(b"HTTX/1.1"), None);
        assert_eq!(wrong_port(b""), None);
    }

    #[test]
    fn the_host_of_an_address_is_its_name_or_ip() {
        assert_eq!(host_of("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of("localhost:1"), "localhost");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
