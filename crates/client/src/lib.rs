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

/// A blocking connection to a server.
pub struct Client {
    stream: TcpStream,
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
        Ok(Client {
            stream,
            input: ReadBuffer::new(),
            output: Vec::new(),
            max_response: DEFAULT_MAX_RESPONSE,
        })
    }

    /// Fails reads and writes that block longer than `timeout` (`None`: wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)
    }

    /// The underlying socket, e.g. to shut down one direction.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
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
                    return Err(Error::Protocol(format!(
                        "response of {body_len} bytes is too large"
                    )));
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
