//! `reactor-rpc call METHOD [PARAMS_JSON]`: one request, its result on stdout.
//!
//! Exit status: 0 with a result, 1 with an error response (`error: CODE:
//! MESSAGE` on stderr), 2 when the server cannot be reached or answer in
//! `--timeout`, or PARAMS_JSON is not JSON.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::value::RawValue;

use reactor_rpc::client::{Client, Error as ClientError};

/// Flags of `reactor-rpc call`.
#[derive(clap::Args)]
pub struct CallArgs {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Give up after this many seconds without an answer (exit status 2).
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    timeout: f64,
    /// Method name, e.g. ping, fib, set, get, stats.
    method: String,
    /// Params as JSON, e.g. '{"key":"a","value":1}' or -1 (default: null).
    #[arg(allow_hyphen_values = true)]
    params: Option<String>,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(x),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Runs `call`.
pub fn run(args: CallArgs) -> ExitCode {
    // Params stay raw JSON so that big integers reach the server exactly.
    let params: Box<RawValue> = match serde_json::from_str(args.params.as_deref().unwrap_or("null"))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("reactor-rpc: PARAMS_JSON is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let result = Client::connect_timeout(&args.addr, timeout)
        .map_err(ClientError::Io)
        .and_then(|mut client| client.call_raw(&args.method, &params));
    match result {
        Ok(result) => {
            println!("{}", result.get());
            ExitCode::SUCCESS
        }
        Err(ClientError::Rpc(e)) => {
            eprintln!("error: {}: {}", e.code, e.message);
            ExitCode::FAILURE
        }
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            eprintln!(
                "reactor-rpc: {}: no answer within {}s (--timeout)",
                args.addr, args.timeout
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("reactor-rpc: {}: {e}", args.addr);
            ExitCode::from(2)
        }
    }
}
