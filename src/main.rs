//! The `flowgate` binary: `serve` (the default), `keys create|list|revoke`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowgate::app::{App, register_demo};
use flowgate::auth::Caller;
use flowgate::config::{Config, Overrides};
use flowgate::model::{ErrorCode, KeyId, TenantId};

/// jemalloc instead of the system allocator: about 20 % less server CPU per
/// delivery in the 1,000-chat fan-out, same idle footprint (docs/benchmarks.md,
/// "Issue 11").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A WebSocket-first realtime gateway for FlowGen multi-agent chats.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML config file (default: ./flowgate.toml if present).
    #[arg(long, global = true, env = "FLOWGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the SQLite file lives (FLOWGATE_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Manage API keys directly in the store (bootstrap a tenant's first key).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Args, Default)]
struct ServeArgs {
    /// Address to listen on (FLOWGATE_LISTEN), e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<String>,
    /// `sqlite` (default) or `redis` (FLOWGATE_STORE).
    #[arg(long)]
    store: Option<String>,
    /// Redis URL for store = redis (FLOWGATE_REDIS_URL).
    #[arg(long)]
    redis_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; prints the secret once on stdout.
    Create {
        /// The tenant the key belongs to.
        #[arg(long, default_value = "default", value_parser = parse_tenant)]
        tenant: TenantId,
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// An environment label (development, production, …).
        #[arg(long = "env")]
        environment: Option<String>,
    },
    /// List a tenant's keys (never the secrets).
    List {
        /// The tenant.
        #[arg(long, default_value = "default", value_parser = parse_tenant)]
        tenant: TenantId,
    },
    /// Invalidate a key at once.
    Revoke {
        /// The key id (`key_…`).
        #[arg(value_parser = parse_key_id)]
        key_id: KeyId,
        /// The tenant it belongs to.
        #[arg(long, default_value = "default", value_parser = parse_tenant)]
        tenant: TenantId,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = match &cli.command {
        Some(Command::Serve(args)) => Some(args),
        None => None,
        Some(Command::Keys(_)) => None,
    };
    let overrides = Overrides {
        listen: serve.and_then(|s| s.listen.clone()),
        data_dir: cli.data_dir.clone(),
        store: serve.and_then(|s| s.store.clone()),
        redis_url: serve.and_then(|s| s.redis_url.clone()),
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowgate: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Keys(cmd)) => keys(config, cmd).await,
            _ => serve_forever(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve_forever(config: Config) -> Result<(), BoxError> {
    let listen = config.listen;
    let app = App::build(config).await?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, "flowgate listening");
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("flowgate stopped");
    Ok(())
}

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

/// `--tenant`: 1 to 64 of `[A-Za-z0-9_.-]`.
fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).map_err(|_| "must be 1 to 64 of [A-Za-z0-9_.-]".into())
}

/// A key id as `keys list` prints it (`key_…`).
fn parse_key_id(s: &str) -> Result<KeyId, String> {
    KeyId::parse(s).map_err(|e| e.to_string())
}

async fn keys(config: Config, cmd: KeysCommand) -> Result<(), BoxError> {
    let demo = config.demo;
    let app = App::build(config).await?;
    let (store, keys) = (app.state.store.as_ref(), &app.state.services.keys);
    match cmd {
        KeysCommand::Create { tenant, name, environment } => {
            let operator = Caller::operator(&tenant);
            let (key, secret) = keys.create(&operator, Some(name), environment).await?;
            if demo {
                register_demo(store, &tenant).await?;
            }
            eprintln!("created {} for tenant `{}` (the secret is shown once):", key.id, key.tenant);
            println!("{secret}");
        }
        KeysCommand::List { tenant } => {
            for k in keys.list(&Caller::operator(&tenant)).await? {
                let used = k.last_used_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
                let env = k.environment.unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\tcreated {}\tlast used {}",
                    k.id,
                    k.prefix,
                    k.name,
                    env,
                    k.created_at.to_rfc3339(),
                    used
                );
            }
        }
        KeysCommand::Revoke { key_id, tenant } => {
            match keys.revoke(&Caller::operator(&tenant), &key_id).await {
                Err(e) if e.code == ErrorCode::KeyNotFound => {
                    return Err(format!("no key {key_id} for tenant `{tenant}`").into());
                }
                result => result?,
            }
            eprintln!("revoked {key_id}");
        }
    }
    Ok(())
}
