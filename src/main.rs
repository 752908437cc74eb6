//! The `reactor-rpc` command: `serve`, `call`, `bench` and `hash-password`.
//!
//! Only the command line lives here and in its sibling modules: parse flags,
//! set up logging, call the library. A usage error is one line on stderr and
//! exit status 2, before anything is bound.

mod call;
mod final_save;
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
    /// Print the sha256: form of a password read from stdin (one line), for --users-file.
    HashPassword,
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
        Command::HashPassword => hash_password(),
        Command::Bench(args) => match reactor_rpc_bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Longest password `hash-password` reads.
const MAX_PASSWORD: u64 = 64 << 10;

/// `reactor-rpc hash-password`: one line from stdin (its trailing newline,
/// `\n` or `\r\n`, is not part of the password), printed as `sha256:HEX`.
/// An empty password, more than one line, or a read error: exit 2.
fn hash_password() -> ExitCode {
    use std::io::{IsTerminal, Read};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "reactor-rpc: type the password and press Enter (it shows on the screen; \
             pipe it in to avoid that: printf %s \"$PW\" | reactor-rpc hash-password)"
        );
    }
    let mut input = Vec::new();
    let mut handle = stdin.lock();
    // Read up to the first newline only: a terminal sends one line.
    let mut byte = [0u8; 1];
    loop {
        match handle.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                input.push(byte[0]);
                if byte[0] == b'\n' {
                    break;
                }
                if input.len() as u64 > MAX_PASSWORD {
                    eprintln!("reactor-rpc: hash-password: longer than {MAX_PASSWORD} bytes");
                    return ExitCode::from(2);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("reactor-rpc: hash-password: cannot read stdin: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Anything after the first line is a mistake (two passwords?), not ignored.
    let mut rest = [0u8; 1];
    if input.last() == Some(&b'\n') && matches!(handle.read(&mut rest), Ok(n) if n > 0) {
        eprintln!("reactor-rpc: hash-password: stdin has more than one line; give one password");
        return ExitCode::from(2);
    }
    let password = reactor_rpc::ops::secrets::strip_one_newline(&input);
    if password.is_empty() {
        eprintln!("reactor-rpc: hash-password: the password is empty");
        return ExitCode::from(2);
    }
    println!("{}", reactor_rpc::service::auth::hash_password(password));
    ExitCode::SUCCESS
}
