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
    feed, write_head, write_malformed, write_not_found, write_not_found_head, Outcome, Status,
    CONTENT_TYPE,
};

use super::{CloseReason, Options, Progress, Stop};
use crate::output::Output;

/// Renders the metrics page, for the metrics port. A server provides one;
/// it decides how fresh the page is (the ops crate's renders at most once a
/// second and hands the same bytes to every scraper within it).
pub trait Exposition: Send + Sync {
    /// The page for `GET /metrics`, in the Prometheus text format 0.0.4.
    fn page(&self) -> Bytes;
}

/// A metrics connection's session: stateless between requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSession;

/// Answers the first HTTP request at the front of `input`, then stops: the
/// next one is read only once this reply is taken (see the module docs).
pub fn process(
    exposition: &dyn Exposition,
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
        } => {
            let close = !keep_alive;
            match (path_ok, head) {
                (true, head) => {
                    let page = exposition.page();
                    write_head(out, Status::Ok, CONTENT_TYPE, page.len(), close);
                    // HEAD: the length of the page GET would send, no body.
                    if !head {
                        out.share(&page);
                    }
                }
                (false, false) => write_not_found(out, close),
                (false, true) => write_not_found_head(out, close),
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
