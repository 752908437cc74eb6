//! Load generator and reporting (placeholder; see issue 4).

/// Flags of `reactor-rpc bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Runs a benchmark.
pub fn run(_args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("bench is not built yet".into())
}
