//! `stockroom`: the one binary. Parses the command line, wires the crates together
//! and runs them until SIGINT/SIGTERM.

mod admin;
mod auth;
mod cli;
mod export;
mod ingest;
mod ingest_cli;
mod limits;
mod metrics;
mod ops;
mod replay;
mod serve;
mod views;

use clap::Parser;

/// mimalloc instead of glibc's malloc: malloc and free were about 35% of the node's
/// CPU samples during ingestion and a large share on the write path (BENCHMARKS.md,
/// "Catalog ingestion"), from the many small allocations of HTTP, JSON, events and
/// records on many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
