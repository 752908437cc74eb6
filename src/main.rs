//! The `reactor-rpc` command: `serve`, `call` and `bench`.
//!
//! Only the command line lives here: parse flags, set up logging, call the library.

use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::{error, LevelFilter};
use serde_json::value::RawValue;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode, WriteLogger};

use reactor_rpc::client::{Client, Error as ClientError};
use reactor_rpc::service::Service;
use reactor_rpc::{cpus, Config, Limits, Model, Server};

#[derive(Parser)]
#[command(
    name = "reactor-rpc",
    version,
    about = "A length-prefixed JSON RPC server on a hand-written mio reactor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Call one method and print its result as JSON.
    Call(CallArgs),
    /// Load a server and report throughput, latency and server cost.
    Bench(reactor_rpc_bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Server model: reactor, threaded, pool, tokio or tokio-mt (the last two with
    /// the `tokio-model` feature, on by default).
    #[arg(long, default_value_t = Model::Reactor)]
    model: Model,
    /// Largest request body in bytes; a larger length prefix gets frame_too_large and a close.
    #[arg(long, default_value_t = reactor_rpc::protocol::DEFAULT_MAX_FRAME)]
    max_frame: u32,
    /// Most connections served at once; one more gets `overloaded` and is closed.
    #[arg(long, default_value_t = Limits::default().max_conns)]
    max_conns: usize,
    /// Close connections that send nothing for this many seconds (0: never).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Pending output per connection (bytes) above which its requests are no longer read.
    #[arg(long, default_value_t = Limits::default().max_output)]
    max_output: usize,
    /// Threads in the pool model (default: 4 × CPUs).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Worker threads for heavy requests in the reactor and tokio models (default: CPUs).
    #[arg(long)]
    workers: Option<usize>,
    /// Run every request inline on the event loop, heavy or not (for comparison).
    #[arg(long)]
    no_offload: bool,
    /// Log level.
    #[arg(long, default_value = "info", value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
    log_level: String,
    /// Write the log to this file instead of stderr.
    #[arg(long)]
    log_file: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Method name, e.g. ping, fib, set, get, stats.
    method: String,
    /// Params as JSON, e.g. '{"key":"a","value":1}' or -1 (default: null).
    #[arg(allow_hyphen_values = true)]
    params: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Call(args) => call(args),
        Command::Bench(args) => match reactor_rpc_bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_logging(level: &str, file: Option<&std::path::Path>) -> Result<(), String> {
    let level: LevelFilter = level
        .parse()
        .map_err(|_| format!("bad log level {level:?}"))?;
    let config = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    match file {
        Some(path) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            WriteLogger::init(level, config, f).map_err(|e| e.to_string())
        }
        None => {
            let color = if std::io::stderr().is_terminal() {
                ColorChoice::Auto
            } else {
                ColorChoice::Never
            };
            TermLogger::init(level, config, TerminalMode::Stderr, color).map_err(|e| e.to_string())
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    if let Err(e) = init_logging(&args.log_level, args.log_file.as_deref()) {
        eprintln!("reactor-rpc: {e}");
        return ExitCode::from(2);
    }
    let mut config = Config::default();
    config.addr = args.addr;
    config.model = args.model;
    config.limits.max_frame = args.max_frame;
    config.limits.max_conns = args.max_conns;
    config.limits.idle_timeout =
        (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.limits.max_output = args.max_output;
    config.pool_size = args.pool_size.unwrap_or(4 * cpus()).max(1);
    config.workers = args.workers.unwrap_or_else(cpus).max(1);
    config.offload = !args.no_offload;
    config.signals = true;
    let server = match Server::bind(config, Arc::new(Service::new())) {
        Ok(server) => server,
        Err(e) => {
            error!("cannot listen on {}: {e}", args.addr);
            eprintln!("reactor-rpc: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn call(args: CallArgs) -> ExitCode {
    // Params stay raw JSON so that big integers reach the server exactly.
    let params: Box<RawValue> = match serde_json::from_str(args.params.as_deref().unwrap_or("null"))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("reactor-rpc: PARAMS_JSON is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let result = Client::connect(&args.addr)
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
        Err(e) => {
            eprintln!("reactor-rpc: {}: {e}", args.addr);
            ExitCode::from(2)
        }
    }
}
