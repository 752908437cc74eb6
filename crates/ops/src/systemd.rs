//! Living under systemd: readiness notification and socket activation.
//!
//! With `Type=notify`, systemd holds back units ordered after the server (and
//! `systemctl start` itself) until the server says `READY=1`, which it should
//! do once it is listening and its snapshot is loaded: [`notify_ready`]. On
//! shutdown it says `STOPPING=1` ([`notify_stopping`]). Without systemd
//! (`NOTIFY_SOCKET` unset) both do nothing.
//!
//! With socket activation (`reactor-rpc.socket`), systemd binds the ports and
//! hands them over as file descriptors 3, 4, … with `LISTEN_FDS` (how many),
//! `LISTEN_PID` (which process they are for) and `LISTEN_FDNAMES` (the
//! sockets' `FileDescriptorName=`). [`inherited_listeners`] returns them as
//! std `TcpListener`s by [`Role`]: the rpc, resp and metrics ports. Binding
//! stays with systemd, so the server can restart without refusing a single
//! connection, and can run without the privilege to bind.
//!
//! Both use the `sd-notify` crate. (For descriptors it is used rather than
//! `listenfd`, which accepts descriptors when `LISTEN_PID` is absent, ignores
//! `LISTEN_FDNAMES`, and edits the environment, a data race in a threaded
//! process; `sd-notify` requires `LISTEN_PID` to be this process and leaves
//! the environment alone.)

use std::fmt;
use std::io;
use std::mem;
use std::net::TcpListener;
use std::os::unix::io::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use reactor_rpc_core::{Endpoint, Role};
use sd_notify::NotifyState;

/// Tells the service manager that the server is ready (`READY=1`).
pub fn notify_ready() -> io::Result<()> {
    sd_notify::notify(&[NotifyState::Ready])
}

/// Tells the service manager that the server is shutting down (`STOPPING=1`).
pub fn notify_stopping() -> io::Result<()> {
    sd_notify::notify(&[NotifyState::Stopping])
}

/// A one-line status shown by `systemctl status` (`STATUS=…`).
pub fn notify_status(status: &str) -> io::Result<()> {
    sd_notify::notify(&[NotifyState::Status(status)])
}

/// An endpoint's slot in [`Inherited`]: its place in [`Endpoint::ALL`].
fn index(endpoint: Endpoint) -> usize {
    Endpoint::ALL
        .iter()
        .position(|e| *e == endpoint)
        .unwrap_or(0)
}

/// Why the inherited descriptors cannot be used.
#[derive(Debug)]
pub enum ActivationError {
    /// `LISTEN_PID`, `LISTEN_FDS` or `LISTEN_FDNAMES` is malformed.
    Environment(io::Error),
    /// Several descriptors, and one's name is not a role.
    UnknownName {
        /// The descriptor.
        fd: RawFd,
        /// Its name in `LISTEN_FDNAMES`.
        name: String,
    },
    /// Two descriptors for one role.
    DuplicateRole {
        /// The endpoint named twice.
        role: Endpoint,
        /// The two descriptors.
        fds: [RawFd; 2],
    },
    /// A descriptor is not a listening TCP socket.
    NotTcpListener {
        /// The descriptor.
        fd: RawFd,
        /// The endpoint it was meant for.
        role: Endpoint,
        /// What checking it said.
        error: io::Error,
    },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::Environment(e) => write!(f, "socket activation: {e}"),
            ActivationError::UnknownName { fd, name } => write!(
                f,
                "socket activation: fd {fd} is named {name:?}; with several sockets each needs \
                 FileDescriptorName=rpc, rpc-tls, resp, resp-tls, metrics or metrics-tls"
            ),
            ActivationError::DuplicateRole { role, fds } => write!(
                f,
                "socket activation: fds {} and {} are both named {role:?}",
                fds[0], fds[1]
            ),
            ActivationError::NotTcpListener { fd, role, error } => write!(
                f,
                "socket activation: fd {fd} ({role}) is not a listening TCP socket: {error}"
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

/// Which endpoint each inherited descriptor is. Pure: the rule, apart from
/// the descriptors.
///
/// - One descriptor: its endpoint if its name is one's, else `rpc` (systemd
///   names a socket after its unit when `FileDescriptorName=` is not set,
///   and no `LISTEN_FDNAMES` at all means plain fd 3 = rpc).
/// - Several: each must be named after an endpoint (`rpc`, `rpc-tls`,
///   `resp`, `resp-tls`, `metrics`, `metrics-tls`), each at most once.
pub fn assign_roles(fds: &[(RawFd, &str)]) -> Result<Vec<(Endpoint, RawFd)>, ActivationError> {
    if let [(fd, name)] = fds {
        let endpoint = Endpoint::from_name(name).unwrap_or(Endpoint::plain(Role::Rpc));
        return Ok(vec![(endpoint, *fd)]);
    }
    let mut taken: [Option<RawFd>; Endpoint::ALL.len()] = [None; Endpoint::ALL.len()];
    let mut out = Vec::with_capacity(fds.len());
    for &(fd, name) in fds {
        let endpoint = Endpoint::from_name(name).ok_or_else(|| ActivationError::UnknownName {
            fd,
            name: name.to_string(),
        })?;
        if let Some(first) = taken[index(endpoint)] {
            return Err(ActivationError::DuplicateRole {
                role: endpoint,
                fds: [first, fd],
            });
        }
        taken[index(endpoint)] = Some(fd);
        out.push((endpoint, fd));
    }
    Ok(out)
}

/// Listening sockets handed over by the service manager, by endpoint.
#[derive(Debug, Default)]
pub struct Inherited {
    listeners: [Option<TcpListener>; Endpoint::ALL.len()],
}

impl Inherited {
    /// The listener for `endpoint`, if one was inherited (each is taken once).
    pub fn take(&mut self, endpoint: Endpoint) -> Option<TcpListener> {
        self.listeners[index(endpoint)].take()
    }

    /// Whether nothing (more) was inherited: bind the configured addresses.
    pub fn is_empty(&self) -> bool {
        self.listeners.iter().all(Option::is_none)
    }

    /// Hands over `socket` as the listener for `endpoint` (a test, or an
    /// embedding program that binds its own sockets, does what systemd does).
    pub fn insert(&mut self, endpoint: Endpoint, socket: TcpListener) {
        self.listeners[index(endpoint)] = Some(socket);
    }

    /// Each inherited listener's endpoint and address.
    pub fn addrs(&self) -> Vec<(Endpoint, std::net::SocketAddr)> {
        Endpoint::ALL
            .into_iter()
            .filter_map(|endpoint| {
                let socket = self.listeners[index(endpoint)].as_ref()?;
                Some((endpoint, socket.local_addr().ok()?))
            })
            .collect()
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The listening sockets systemd passed to this process, by role; empty when
/// the process was not socket-activated (`LISTEN_PID` unset or naming
/// another process, e.g. a parent that was). Call it once, at startup: the
/// descriptors then belong to the returned listeners (a second call returns
/// nothing), and are marked close-on-exec. The listeners are blocking, as
/// systemd made them; a reactor sets them non-blocking itself. The
/// environment is left as it is.
pub fn inherited_listeners() -> Result<Inherited, ActivationError> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(ActivationError::Environment)?
        .collect();
    if fds.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Inherited::default());
    }
    let named: Vec<(RawFd, &str)> = fds.iter().map(|(fd, n)| (*fd, n.as_str())).collect();
    let mut inherited = Inherited::default();
    for (endpoint, fd) in assign_roles(&named)? {
        check_tcp_listener(fd).map_err(|error| ActivationError::NotTcpListener {
            fd,
            role: endpoint,
            error,
        })?;
        // SAFETY: systemd passed `fd` to this process for it to own; TAKEN
        // makes sure it is wrapped once, and assign_roles once per fd.
        inherited.listeners[index(endpoint)] = Some(unsafe { TcpListener::from_raw_fd(fd) });
    }
    Ok(inherited)
}

fn sockopt(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writing an int, as getsockopt needs.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Checks that `fd` is an IPv4 or IPv6 stream socket in the listening state.
pub fn check_tcp_listener(fd: RawFd) -> io::Result<()> {
    let invalid = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            what.to_string(),
        ))
    };
    let domain = sockopt(fd, libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return invalid("not an IPv4 or IPv6 socket");
    }
    if sockopt(fd, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return invalid("not a stream socket");
    }
    if sockopt(fd, libc::SO_ACCEPTCONN)? == 0 {
        return invalid("not listening");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    fn roles(fds: &[(RawFd, &str)]) -> Vec<(Role, RawFd)> {
        assign_roles(fds)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(e, fd)| {
                assert!(!e.tls);
                (e.role, fd)
            })
            .collect()
    }

    #[test]
    fn one_descriptor_is_rpc_unless_named() {
        assert_eq!(roles(&[(3, "unknown")]), [(Role::Rpc, 3)]);
        assert_eq!(roles(&[(3, "reactor-rpc.socket")]), [(Role::Rpc, 3)]);
        assert_eq!(roles(&[(3, "")]), [(Role::Rpc, 3)]);
        assert_eq!(roles(&[(3, "metrics")]), [(Role::Metrics, 3)]);
        assert_eq!(roles(&[(3, "resp")]), [(Role::Resp, 3)]);
    }

    #[test]
    fn several_descriptors_go_by_name() {
        assert_eq!(
            roles(&[(3, "metrics"), (4, "rpc"), (5, "resp")]),
            [(Role::Metrics, 3), (Role::Rpc, 4), (Role::Resp, 5)]
        );
        assert!(matches!(
            assign_roles(&[(3, "rpc"), (4, "reactor-rpc.socket")]),
            Err(ActivationError::UnknownName { fd: 4, .. })
        ));
        assert!(matches!(
            assign_roles(&[(3, "rpc"), (4, "rpc")]),
            Err(ActivationError::DuplicateRole {
                role: Endpoint {
                    role: Role::Rpc,
                    tls: false
                },
                fds: [3, 4]
            })
        ));
        assert!(roles(&[]).is_empty());
        assert_eq!(
            assign_roles(&[(3, "rpc"), (4, "rpc-tls"), (5, "resp-tls")]).expect("names"),
            [
                (Endpoint::plain(Role::Rpc), 3),
                (Endpoint::tls(Role::Rpc), 4),
                (Endpoint::tls(Role::Resp), 5)
            ]
        );
    }

    #[test]
    fn only_listening_tcp_sockets_pass() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        check_tcp_listener(listener.as_raw_fd()).expect("a listener");
        let addr = listener.local_addr().expect("addr");
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        assert!(check_tcp_listener(stream.as_raw_fd()).is_err());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        assert!(check_tcp_listener(udp.as_raw_fd()).is_err());
        let (unix, _peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert!(check_tcp_listener(unix.as_raw_fd()).is_err());
        let file = std::fs::File::open("/proc/self/stat").expect("open");
        assert!(check_tcp_listener(file.as_raw_fd()).is_err());
    }
}
