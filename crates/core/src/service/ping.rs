//! `ping`: the seed's only method. The result is the params, byte for byte.

use super::{Access, Context, Method};
use reactor_rpc_protocol::{Json, RpcError};

/// The `ping` method: answers `pong` with its params, byte for byte.
pub(crate) struct Ping;

impl Method for Ping {
    #[inline]
    fn call(&self, _cx: &Context<'_>, params: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        out.extend_from_slice(params.get().as_bytes());
        Ok(())
    }

    fn access(&self) -> Access {
        Access::Open
    }
}
