//! Calling a server from Rust: one call at a time, then a pipelined batch.
//!
//! Start a server first (`cargo run --release -- serve`), then:
//! `cargo run --example client [ADDR]`.

use reactor_rpc::client::{Client, Error};
use serde_json::json;

fn main() -> Result<(), Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let mut client = Client::connect(&addr)?;

    println!("ping  -> {}", client.call("ping", &json!("ireader 0"))?);
    println!(
        "set   -> {}",
        client.call("set", &json!({"key": "visits", "value": 41}))?
    );
    println!(
        "incr  -> {}",
        client.call("incr", &json!({"key": "visits"}))?
    );
    // F(1000) has 209 digits: keep it as raw JSON to stay exact.
    println!("fib   -> {}", client.call_raw("fib", &json!(1000))?.get());

    // An error response is a typed error carrying the code and message.
    match client.call("fib", &json!(-1)) {
        Err(Error::Rpc(e)) => println!("error -> {}: {}", e.code, e.message),
        other => println!("unexpected: {other:?}"),
    }

    // Pipelining: ten requests in one write, answers read back in order.
    let calls: Vec<(&str, serde_json::Value)> = (0..10).map(|i| ("ping", json!(i))).collect();
    let answers = client.pipeline(&calls)?;
    let answers: Vec<String> = answers
        .into_iter()
        .map(|r| r.map_or_else(|e| e.to_string(), |v| v.get().to_string()))
        .collect();
    println!("pipeline -> {}", answers.join(" "));
    Ok(())
}
