//! The hand-off between a pool's acceptor and its threads, so that a client
//! of a pool whose threads are all held (by idle connections, say) is
//! answered: served by the first thread that comes free within
//! [`Config::pool_wait`](crate::Config::pool_wait), or refused with
//! `overloaded` after it.
//!
//! Why a queue: were each pool thread to block in `accept` itself,
//! connection N+1 would wait in the kernel's backlog, unanswered, until one
//! of the first N left, so N idle clients would starve everyone else until
//! the idle timeout. Instead one acceptor per listener takes every
//! connection at once and queues it here; the pool's threads take them in
//! arrival order; the housekeeping tick refuses those that waited longer
//! than the wait ([`Refusal::PoolBusy`]). The pool still serves at most N
//! connections at once (that is the model); the others hear so.
//!
//! Queued connections are not yet registered (no `comes` line, not counted
//! as live): a thread registers one when it takes it, so `--max-conns` and
//! `--max-conns-per-ip` are checked then, and the acceptor refuses at once
//! when live and queued connections together reach `--max-conns`.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use reactor_rpc_core::session::Endpoint;

use super::{Accepting, Shared};
use crate::net::Refusal;

/// One listener's queue of accepted connections waiting for a thread.
pub(super) struct Handoff {
    endpoint: Endpoint,
    /// The threads serving this listener's connections.
    threads: usize,
    state: Mutex<State>,
    /// Notified when a connection is queued, and when the acceptor stops.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Waiting>,
    /// The acceptor has stopped: threads leave once the queue is empty.
    closed: bool,
}

/// An accepted connection waiting for a thread.
pub(super) struct Waiting {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    since: Instant,
}

impl Handoff {
    pub(super) fn new(endpoint: Endpoint, threads: usize) -> Handoff {
        Handoff {
            endpoint,
            threads,
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections waiting now.
    pub(super) fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Queues an accepted connection for the next free thread.
    fn offer(&self, stream: TcpStream, peer: SocketAddr) {
        let since = Instant::now();
        self.lock().waiting.push_back(Waiting {
            stream,
            peer,
            since,
        });
        self.ready.notify_one();
    }

    /// The connection that has waited longest; blocks until there is one,
    /// `None` once the acceptor has stopped and the queue is empty.
    fn take(&self) -> Option<Waiting> {
        let mut state = self.lock();
        loop {
            if let Some(waiting) = state.waiting.pop_front() {
                return Some(waiting);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The acceptor stops: wakes every thread waiting for a connection.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Takes the connections that have waited `wait` or longer by `now`.
    fn expired(&self, now: Instant, wait: Duration) -> Vec<Waiting> {
        let mut state = self.lock();
        let late = state
            .waiting
            .iter()
            .take_while(|w| now.saturating_duration_since(w.since) >= wait)
            .count();
        state.waiting.drain(..late).collect()
    }
}

/// Closes the listener's hand-off when its acceptor ends, even by a panic,
/// so that its threads do not wait for ever.
pub(super) struct CloseOnDrop<'a>(pub &'a Handoff);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Shared {
    /// The acceptor's side: queues `stream` for a thread, or refuses it at
    /// once when live and waiting connections reach `--max-conns`.
    pub(super) fn hand_off(&self, stream: TcpStream, peer: SocketAddr, at: Accepting) {
        let handoff = &self.handoffs[at.index];
        // Client connections only: scrapers have their own limit.
        let live = self.lock().slots.clients();
        if live + handoff.len() >= self.limits.max_conns {
            let why = Refusal::MaxConns(self.limits.max_conns);
            self.refuse(stream, peer, why, at.endpoint);
            return;
        }
        handoff.offer(stream, peer);
    }

    /// A pool thread: serves the connections of its listener's queue, one
    /// at a time, until the acceptor has stopped and the queue is empty.
    pub(super) fn serve_handed_off(self: &Arc<Self>, at: Accepting) {
        while let Some(Waiting { stream, peer, .. }) = self.handoffs[at.index].take() {
            self.serve_accepted(stream, peer, at);
        }
    }

    /// Refuses, with `overloaded`, every connection that has waited for a
    /// thread for [`Config::pool_wait`](crate::Config::pool_wait) or more
    /// (called by the housekeeping tick).
    pub(super) fn refuse_late(&self, now: Instant) {
        for handoff in &self.handoffs {
            for late in handoff.expired(now, self.pool_wait) {
                let why = Refusal::PoolBusy(handoff.threads);
                self.refuse(late.stream, late.peer, why, handoff.endpoint);
            }
        }
    }
}
