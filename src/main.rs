//! The `klamm` command: parse flags, set up logging, run the broker until Ctrl-C or SIGTERM.

use clap::Parser;
use klamm::config::LogFormat;
use klamm::{Broker, BrokerConfig};
use tracing_subscriber::EnvFilter;

/// `klamm [FLAGS]` runs the broker; `klamm topics|groups|produce|consume ...` are the admin
/// tools, which talk to `--bootstrap-server` over the Kafka protocol.
#[derive(clap::Parser)]
#[command(
    name = "klamm",
    version,
    about = "A Kafka-compatible broker with a RocksDB log",
    args_conflicts_with_subcommands = true,
    next_line_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<klamm::cli::Command>,
    #[command(flatten)]
    broker: BrokerConfig,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return run_tool(command);
    }
    let config = cli.broker;
    klamm::server::listener::raise_open_file_limit();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        // One JSON object per line, for CI log collectors.
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klamm: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs an admin subcommand on a small runtime; errors go to stderr, as Kafka's tools do.
fn run_tool(command: klamm::cli::Command) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klamm: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(klamm::cli::run(command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let broker = Broker::bind(config).await?;
    broker.run_until(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
