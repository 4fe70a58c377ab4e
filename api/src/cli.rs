//! The `keysmith` command line: serve (the default), migrate, print the
//! schema, create staff accounts, print tokens, move keys in and out and
//! check offline licence files.

use crate::AppState;
use crate::auth::RequestContext;
use crate::config::{Cli, Command, Config, LogFormat, TokenArgs, UserCommand};
use crate::services::users;
mod keys;
mod verify;

use anyhow::{Context, bail};
use clap::Parser;
use entity::Environment;
use std::io::{BufRead, IsTerminal};

/// Runs the command line given to this process.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("keysmith: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keysmith: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => {
            let db = crate::db::connect(&cli.config.database_url, 1).await?;
            crate::db::migrate(&db).await?;
            tracing::info!(database = %crate::db::redact_url(&cli.config.database_url), "migrated");
            Ok(())
        }
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::User(UserCommand::Create { email, role }) => {
            let state = AppState::open(cli.config).await?;
            let password = read_password()?;
            let ctx = RequestContext::system(Environment::Production);
            let user = users::create(&state.db, &ctx, &email, &password, role.into())
                .await
                .map_err(|e| anyhow::anyhow!(e.detail()))?;
            println!("created {} ({:?}) {}", user.email, user.role, user.id);
            Ok(())
        }
        Command::Token(args) => token(cli.config, args).await,
        Command::Keys(command) => keys::run(cli.config, command).await,
        Command::Verify(args) => verify::run(cli.config, args).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let database = crate::db::redact_url(&config.database_url);
    let state = AppState::open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%database, "database ready");
    tracing::info!("serving GraphQL at http://{local}/graphql (GraphiQL in a browser), portal at /portal");
    if state.config.smtp_url.is_some() && state.config.public_url.is_none() {
        tracing::warn!(
            "no KEYSMITH_PUBLIC_URL: portal links in emails point to http://{}, which customers may not reach",
            state.config.listen
        );
    }
    let node = crate::background::node_name(&state.config, local);
    state.jobs.set_node(node.clone());
    let background = crate::background::spawn(state.clone()).await?;
    let served = crate::http::serve(state.clone(), listener, shutdown_signal()).await;
    background.abort();
    if let Err(e) = state.sightings.write(&state.db).await {
        tracing::warn!(error = %e.detail(), "recording when devices were last seen failed");
    }
    // Hand back what this node was running: queued and recurring jobs to
    // the next node, interrupted imports and exports marked FAILED.
    if let Err(e) = crate::services::jobs::recover(&state.db, &node).await {
        tracing::warn!(error = %e.detail(), "handing back this node's jobs failed; its claims lapse in a minute");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn token(config: Config, args: TokenArgs) -> anyhow::Result<()> {
    let environment = args
        .environment
        .as_deref()
        .map(|e| Environment::parse(e).context("--environment must be production or staging"))
        .transpose()?;
    let ttl = config.token_ttl_seconds();
    let state = AppState::open(config).await?;
    let Some(user) = users::find_by_email(&state.db, &args.email).await.map_err(|e| anyhow::anyhow!(e.detail()))?
    else {
        bail!("no staff account with the email {}", args.email);
    };
    if user.disabled {
        bail!("the account {} is disabled", user.email);
    }
    let issued = users::issue_token(&state.jwt, &user, environment, ttl).map_err(|e| anyhow::anyhow!(e.detail()))?;
    println!("{}", issued.token);
    Ok(())
}

/// The new account's password: asked for on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
