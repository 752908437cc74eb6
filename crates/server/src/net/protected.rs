//! Protected mode, as Redis has it: with no user and no password
//! configured, a listener bound to a non-loopback address would give anyone
//! who reaches it every key. Loopback clients are served; others get one
//! refusal in their listener's protocol (the core crate's
//! [`Refusal::ProtectedMode`], naming the three ways out), then a close.
//!
//! Decided at accept, in every model, before the connection costs anything
//! (no session, no slot, no TLS handshake: a TLS port closes at once, as for
//! its other refusals). The start logs a warning per listener that is open
//! beyond loopback: refused (protected mode) or served to anyone (protected
//! mode off, no authentication).

use std::net::SocketAddr;

use reactor_rpc_core::service::auth::{is_loopback, protected_mode_refuses};
use reactor_rpc_core::session::{Endpoint, Refusal};
use reactor_rpc_core::Service;

/// Whether protected mode is on (`--protected-mode`, default yes); the
/// verdict also needs the service's users, which may be none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProtectedMode(pub(crate) bool);

impl ProtectedMode {
    /// Admits `peer`, or refuses it with [`Refusal::ProtectedMode`]: on, no
    /// authentication configured, and `peer` not on loopback.
    #[inline]
    pub(crate) fn admit(self, service: &Service, peer: SocketAddr) -> Result<(), Refusal> {
        if protected_mode_refuses(self.0, service.auth(), Some(peer.ip())) {
            Err(Refusal::ProtectedMode)
        } else {
            Ok(())
        }
    }

    /// The start's warnings: one line per listener open beyond loopback
    /// while no user and no password is configured.
    pub(crate) fn warn_open_listeners(self, service: &Service, addrs: &[(Endpoint, SocketAddr)]) {
        if service.auth().is_enabled() {
            return;
        }
        for (endpoint, addr) in addrs {
            if is_loopback(addr.ip()) {
                continue;
            }
            if self.0 {
                log::warn!(
                    "{endpoint} listens on {addr} with no user and no password: protected mode \
                     refuses every client that is not on loopback. Set a password \
                     (--requirepass-file), define users (--users-file), or turn protected mode \
                     off (--protected-mode no) if this network is trusted"
                );
            } else {
                log::warn!(
                    "{endpoint} listens on {addr} with no user, no password and protected mode \
                     off: anyone who reaches it can read and write every key"
                );
            }
        }
    }
}
