//! What every server model does with sockets, apart from reading and
//! writing them: listening, accepting, the limits on connections, and the log
//! lines of a connection's life. Shared so that the models agree on what they
//! do and on what they log; protocol-free (what a refused client is told is
//! the core crate's [`Refusal`], in the listener's protocol).
//!
//! * [`listen`]: the listening sockets, by
//!   [`Endpoint`](reactor_rpc_core::Endpoint) (a [`Role`], plain or TLS),
//!   bound or inherited.
//! * `accept`: accept errors and the back-off after them, turning a
//!   connection away without blocking, `TCP_QUICKACK`, a metrics
//!   connection's capped send buffer.
//! * `limits`: connections per listener and per address, the total bound on
//!   pending output, the lingering close, memory back to the OS.
//! * `input`: the total bound on input received and not yet answered.
//! * `log`: the `comes`/`bye` lines under one per-second budget, and
//!   rate-limited warnings.
//! * `protected`: protected mode, decided at accept.

mod accept;
mod input;
mod limits;
pub mod listen;
mod log;
mod protected;

pub use reactor_rpc_core::session::{CloseReason, Refusal, Role};

pub(crate) use accept::{
    cap_send_buffer, out_of_descriptors, quickack, transient_accept_error, turn_away,
    ACCEPT_BACKOFF,
};
pub(crate) use input::InputTotal;
pub(crate) use limits::{
    counts_per_ip, output_high_water, return_free_memory, PerIp, Slots, LINGER, LINGERING_REFUSALS,
};
pub(crate) use listen::log_listening;
pub use listen::{bind_listener, Listeners, BACKLOG};
pub(crate) use log::{flush_conn_lines, log_bye, log_comes, RateLimitedLog};
pub(crate) use protected::ProtectedMode;
