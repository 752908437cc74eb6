//! `reactor-rpc call METHOD [PARAMS_JSON]`: one request, its result on stdout.
//!
//! Exit status: 0 with a result, 1 with an error response (`error: CODE:
//! MESSAGE` on stderr, also for a refused `auth`), 2 when the server cannot
//! be reached or answer in `--timeout`, the TLS handshake fails, a file
//! cannot be read, or PARAMS_JSON is not JSON.
//!
//! `--tls` with `--cacert` (and `--cert`/`--key` for mutual TLS) connects
//! over TLS; `--password-file` (and `--user`) calls `auth` before the method.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::value::RawValue;

use reactor_rpc::client::{host_of, Client, Error as ClientError, TlsConnector};
use reactor_rpc::ops::secrets::read_secret;

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
    #[command(flatten)]
    secure: SecureArgs,
}

/// How to reach a protected server: TLS and a login (`bench` has the same
/// flags, with the same meaning).
#[derive(clap::Args, Debug)]
pub struct SecureArgs {
    /// Connect over TLS (needs --cacert), verifying the server's certificate
    /// against the host of --addr.
    #[arg(long)]
    tls: bool,
    /// CA certificate(s), PEM, that signed the server's certificate.
    #[arg(long, value_name = "PATH")]
    cacert: Option<PathBuf>,
    /// Client certificate chain, PEM, for mutual TLS (with --key).
    #[arg(long, value_name = "PATH")]
    cert: Option<PathBuf>,
    /// The client certificate's private key, PEM (with --cert).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Log in as this user (default: `default`); needs --password-file.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Log in with the password in this file (not readable by every user;
    /// one trailing newline is not part of it) before the call.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
}

impl SecureArgs {
    /// The TLS connector, when `--tls`.
    fn connector(&self) -> Result<Option<TlsConnector>, String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("--cert and --key go together".into());
        }
        if !self.tls {
            if self.cacert.is_some() || self.cert.is_some() {
                return Err("--cacert, --cert and --key need --tls".into());
            }
            return Ok(None);
        }
        let Some(ca) = &self.cacert else {
            return Err(
                "--tls needs --cacert PATH (the CA that signed the server's certificate)".into(),
            );
        };
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        TlsConnector::from_files(ca, identity)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The password, when `--password-file`: UTF-8 (it travels in JSON).
    fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            if self.user.is_some() {
                return Err("--user needs --password-file".into());
            }
            return Ok(None);
        };
        let bytes = read_secret(path).map_err(|e| e.to_string())?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{}: the password is not UTF-8", path.display()))
    }
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
    let (tls, password) = match (args.secure.connector(), args.secure.password()) {
        (Ok(tls), Ok(password)) => (tls, password),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("reactor-rpc: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let connected = match &tls {
        Some(tls) => Client::connect_tls_timeout(&args.addr, host_of(&args.addr), tls, timeout),
        None => Client::connect_timeout(&args.addr, timeout),
    };
    let result = connected.map_err(ClientError::Io).and_then(|mut client| {
        if let Some(password) = &password {
            client.auth(args.secure.user.as_deref(), password)?;
        }
        client.call_raw(&args.method, &params)
    });
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
