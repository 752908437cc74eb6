//! What every server model does with sockets, apart from reading and
//! writing them: listening, accepting, the limits on connections, and the log
//! lines of a connection's life. Shared so that the models agree on what they
//! do and on what they log; protocol-free (what a refused client is told is
//! the core crate's [`Refusal`], in the listener's protocol).
//!
//! * [`listen`]: the listening sockets, by [`Role`], bound or inherited.
//! * `accept`: accept errors and the back-off after them, turning a
//!   connection away without blocking, `TCP_QUICKACK`.
//! * `limits`: connections per address, the total bound on pending output,
//!   the lingering close, memory back to the OS.
//! * `input`: the total bound on input received and not yet answered.
//! * `log`: the `comes`/`bye` lines under one per-second budget, and
//!   rate-limited warnings.

mod accept;
mod input;
mod limits;
pub mod listen;
mod log;

pub use reactor_rpc_core::session::{CloseReason, Refusal, Role};

pub(crate) use accept::{
    out_of_descriptors, quickack, transient_accept_error, turn_away, ACCEPT_BACKOFF,
};
pub(crate) use input::InputTotal;
pub(crate) use limits::{output_high_water, return_free_memory, PerIp, LINGER, LINGERING_REFUSALS};
pub(crate) use listen::log_listening;
pub use listen::{bind_listener, Listeners, BACKLOG};
pub(crate) use log::{flush_conn_lines, log_bye, log_comes, RateLimitedLog};
