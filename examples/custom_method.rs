//! Extending the service: a server with one more method, `upper`.
//!
//! Methods live in a registry; start from the built-ins and add yours. This one
//! is written as a closure over typed params; see `crates/core/src/service/ping.rs`
//! for a method that implements `Method` directly and allocates nothing.
//!
//! `cargo run --example custom_method`, then in another shell:
//! `cargo run -- call --addr 127.0.0.1:8081 upper '{"text":"hello"}'`.

use std::sync::Arc;

use reactor_rpc::protocol::RpcError;
use reactor_rpc::service::{method_fn, Context};
use reactor_rpc::{Config, Registry, Server, Service};
use serde::Deserialize;

#[derive(Deserialize)]
struct UpperParams {
    text: String,
}

fn main() -> std::io::Result<()> {
    let mut registry = Registry::builtin();
    registry.insert(
        "upper",
        method_fn(|_cx: &Context<'_>, p: UpperParams| {
            if p.text.is_empty() {
                return Err(RpcError::bad_params("text must not be empty"));
            }
            Ok(p.text.to_uppercase())
        }),
    );
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let mut config = Config::default();
    config.addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    config.signals = true;
    let server = Server::bind(config, Arc::new(Service::with_registry(registry)))?;
    println!(
        "serving `upper` (and every built-in) on {}; Ctrl-C stops",
        server.local_addr()
    );
    server.run()
}
