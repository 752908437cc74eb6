//! `--max-input-total`: the input every connection has received and not yet
//! answered, counted together, and who is closed when it is too much.
//!
//! A connection's unconsumed input is at most one incomplete request (a JSON
//! frame under `--max-frame`, a RESP command under `--max-command`) plus one
//! read; that is the per-client bound, as Redis's `client-query-buffer-limit`.
//! Many clients each within it can still hold too much together, so every
//! model reports, after each batch it answers, how much input each
//! connection still holds ([`InputTotal::hold`]), and above the bound the
//! connection holding the most is closed ([`InputTotal::evict`]), until the
//! total is within it again: Redis 7's client eviction (`maxmemory-clients`),
//! applied to input.
//!
//! Not backpressure, as for output: held output drains when its client
//! reads, but held input drains only by reading *more* of it, until a request
//! is whole. Connections that stop being read at the bound hold what they
//! have, so a few clients uploading large requests at once would wait on one
//! another until their frame timeouts closed them all, and an attacker
//! holding the total would stall every large request for as long as it
//! cared to. Closing the largest holder always frees memory, and costs the
//! attacker the bytes it sent; a client within a fair share is never the
//! largest.
//!
//! Each model keeps one [`InputTotal`] (the reactor on its thread, the
//! threaded and tokio models under a lock) and reports only changes, so a
//! client whose reads end on a request boundary (nearly every one) never
//! touches it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::RateLimitedLog;

/// The unconsumed input of every connection that holds some, and the bound
/// on their total. `K` names a connection, `H` is what the model needs to
/// close it from elsewhere (the reactor needs nothing).
pub(crate) struct InputTotal<K, H> {
    bound: usize,
    bytes: usize,
    held: HashMap<K, Holder<H>>,
    /// Connections closed for the total whose end is not yet reported
    /// ([`InputTotal::release`]): what they report meanwhile is ignored, so
    /// one eviction is not followed by another for the same bytes.
    evicted: HashSet<K>,
    log: RateLimitedLog,
}

struct Holder<H> {
    bytes: usize,
    peer: SocketAddr,
    handle: H,
}

/// A connection closed for the total: who, how much it held, and its handle.
pub(crate) struct Evicted<K, H> {
    pub(crate) key: K,
    /// What the model closes the connection through (the tokio models'
    /// task handle; the others find the connection by `key`).
    #[cfg_attr(not(feature = "tokio-model"), allow(dead_code))]
    pub(crate) handle: H,
}

impl<K: Copy + Eq + Hash, H> InputTotal<K, H> {
    /// No input held yet; `bound` is `--max-input-total`.
    pub(crate) fn new(bound: usize) -> InputTotal<K, H> {
        InputTotal {
            bound,
            bytes: 0,
            held: HashMap::new(),
            evicted: HashSet::new(),
            log: RateLimitedLog::new(Duration::from_secs(1)),
        }
    }

    /// Input held by every connection together.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records that connection `key` (from `peer`) now holds `bytes` of input
    /// not yet answered; `handle` makes what closes it, the first time it
    /// holds any.
    pub(crate) fn hold(
        &mut self,
        key: K,
        bytes: usize,
        peer: SocketAddr,
        handle: impl FnOnce() -> H,
    ) {
        if self.evicted.contains(&key) {
            return;
        }
        let was = if bytes == 0 {
            self.held.remove(&key).map_or(0, |h| h.bytes)
        } else {
            match self.held.get_mut(&key) {
                Some(h) => std::mem::replace(&mut h.bytes, bytes),
                None => {
                    let handle = handle();
                    self.held.insert(
                        key,
                        Holder {
                            bytes,
                            peer,
                            handle,
                        },
                    );
                    0
                }
            }
        };
        self.bytes = self.bytes - was + bytes;
    }

    /// Connection `key` is closed: it holds nothing any more.
    pub(crate) fn release(&mut self, key: K) {
        if let Some(h) = self.held.remove(&key) {
            self.bytes -= h.bytes;
        }
        self.evicted.remove(&key);
    }

    /// While the total is over the bound: the connection holding the most,
    /// which the caller must close (its bytes no longer count). Logged at
    /// warn, at most once a second.
    pub(crate) fn evict(&mut self, now: Instant) -> Option<Evicted<K, H>> {
        if self.bytes <= self.bound {
            return None;
        }
        let key = self
            .held
            .iter()
            .max_by_key(|(_, h)| h.bytes)
            .map(|(&key, _)| key)?;
        let holder = self.held.remove(&key)?;
        let total = self.bytes;
        self.bytes -= holder.bytes;
        self.evicted.insert(key);
        if let Some(held_back) = self.log.allow(now) {
            log::warn!(
                "closing {}: it holds {} bytes of input not yet answered, and all \
                 connections together {total}, over --max-input-total {} \
                 ({held_back} more closed since last report)",
                holder.peer,
                holder.bytes,
                self.bound
            );
        }
        Some(Evicted {
            key,
            handle: holder.handle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn the_largest_holder_goes_until_the_total_is_within_the_bound() {
        let mut t: InputTotal<u32, &str> = InputTotal::new(100);
        t.hold(1, 40, peer(), || "one");
        t.hold(2, 50, peer(), || "two");
        assert!(t.evict(Instant::now()).is_none(), "90 is within 100");
        t.hold(3, 30, peer(), || "three");
        let gone = t.evict(Instant::now()).map(|e| (e.key, e.handle));
        assert_eq!(gone, Some((2, "two")));
        assert_eq!(t.bytes(), 70);
        assert!(t.evict(Instant::now()).is_none());
        // What an evicted connection reports before it is closed is ignored.
        t.hold(2, 80, peer(), || "again");
        assert_eq!(t.bytes(), 70);
        t.release(2);
        // Changes replace, zero forgets, a release takes the rest.
        t.hold(1, 10, peer(), || unreachable!("held already"));
        assert_eq!(t.bytes(), 40);
        t.hold(1, 0, peer(), || "one");
        t.release(3);
        assert_eq!(t.bytes(), 0);
        assert!(t.held.is_empty() && t.evicted.is_empty());
    }
}
