//! The metrics port's session: HTTP requests in, the Prometheus page out.
//!
//! The HTTP is read by [`reactor_rpc_protocol::http`]; the page is rendered
//! by an [`Exposition`] the server provides (the ops crate's, which reads
//! `/proc` and the counters); `HEAD /metrics` gets the same head without the
//! body. This session only joins the two, one request at
//! a time: after each response it stops with [`Stop::OutputFull`], so a
//! client that pipelines scrapes and never reads gets one reply and is read
//! no further until it takes it. The page is shared [`Bytes`], spliced into
//! the output by reference: every scraper of the same page holds it once.

use bytes::Bytes;
use reactor_rpc_protocol::http::{
    feed, write_head, write_malformed, write_not_found, write_not_found_head, write_response,
    write_unauthorized, Outcome, Status, CONTENT_TYPE,
};

use super::{CloseReason, Options, Progress, Stop};
use crate::output::Output;
use crate::service::auth::{Auth, AuthError, BearerToken};

/// Renders the metrics page, for the metrics port. A server provides one;
/// it decides how fresh the page is (the ops crate's renders at most once a
/// second and hands the same bytes to every scraper within it).
pub trait Exposition: Send + Sync {
    /// The page for `GET /metrics`, in the Prometheus text format 0.0.4.
    fn page(&self) -> Bytes;
}

/// A metrics connection's session: the client's address, which the token
/// check's brute-force bound counts failures by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSession {
    peer: Option<std::net::IpAddr>,
}

impl MetricsSession {
    /// A new connection from `peer` (`None`: no address).
    pub fn new(peer: Option<std::net::IpAddr>) -> MetricsSession {
        MetricsSession { peer }
    }
}

/// What guards the page: the bearer token (`--metrics-token-file`) and the
/// users' brute-force bound it shares.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    /// The token a scrape must carry, if one is configured.
    pub token: Option<&'a BearerToken>,
    /// The brute-force bound and the failure counters.
    pub auth: &'a Auth,
}

/// Answers the first HTTP request at the front of `input`, then stops: the
/// next one is read only once this reply is taken (see the module docs).
/// With a token in `guard`, `GET /metrics` without it is answered 401 (429
/// while the client's address is locked out).
pub fn process(
    exposition: &dyn Exposition,
    guard: Guard<'_>,
    session: &MetricsSession,
    input: &[u8],
    out: &mut Output,
    _opts: Options,
) -> Progress {
    if out.total_len() > 0 {
        return Progress {
            consumed: 0,
            answered: 0,
            stop: Stop::OutputFull,
        };
    }
    match feed(input) {
        Outcome::Incomplete => Progress {
            consumed: 0,
            answered: 0,
            stop: Stop::NeedMore {
                needed: input.len() + 1,
            },
        },
        Outcome::Request {
            consumed,
            path_ok,
            head,
            keep_alive,
            authorization,
        } => {
            let close = !keep_alive;
            let allowed = match (path_ok, guard.token) {
                (true, Some(token)) => {
                    let header = authorization.and_then(|(a, b)| input.get(a..b));
                    let now = std::time::Instant::now();
                    guard.auth.check_token(token, session.peer, header, now)
                }
                _ => Ok(()),
            };
            match (allowed, path_ok, head) {
                (Err(AuthError::WrongPassword), _, _) => write_unauthorized(out, close),
                (Err(e @ AuthError::TooManyAttempts { .. }), _, _) => write_response(
                    out,
                    Status::TooManyRequests,
                    "text/plain; charset=utf-8",
                    format!("{e}\n").as_bytes(),
                    close,
                ),
                (Ok(()), true, head) => {
                    let page = exposition.page();
                    write_head(out, Status::Ok, CONTENT_TYPE, page.len(), close);
                    // HEAD: the length of the page GET would send, no body.
                    if !head {
                        out.share(&page);
                    }
                }
                (Ok(()), false, false) => write_not_found(out, close),
                (Ok(()), false, true) => write_not_found_head(out, close),
            }
            let stop = if close {
                Stop::Close(CloseReason::Bye)
            } else {
                Stop::OutputFull
            };
            Progress {
                consumed,
                answered: 1,
                stop,
            }
        }
        Outcome::Malformed(why) => {
            write_malformed(out, why);
            Progress {
                consumed: input.len(),
                answered: 1,
                stop: Stop::Close(CloseReason::ProtocolError),
            }
        }
    }
}
