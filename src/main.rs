//! The `reactor-rpc` command: `serve`, `call` and `bench`.
//!
//! Only the command line lives here and in its sibling modules: parse flags,
//! set up logging, call the library. A usage error is one line on stderr and
//! exit status 2, before anything is bound.

mod call;
mod logging;
mod serve;
mod size;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

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
    Serve(serve::ServeArgs),
    /// Call one method and print its result as JSON.
    Call(call::CallArgs),
    /// Load a server and report throughput, latency and server cost.
    Bench(reactor_rpc_bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // clap's first line names the flag and what is wrong; the usage
            // lines after it would only repeat --help.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!("reactor-rpc: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Call(args) => call::run(args),
        Command::Bench(args) => match reactor_rpc_bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
