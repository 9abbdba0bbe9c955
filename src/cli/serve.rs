//! `knobs serve`: the HTTP ask/tell API (see [`crate::server`]).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::forecast::parse_duration;
use crate::error::{Error, Result};
use crate::server::{self, AppState, ServerConfig, ServerOptions};
use crate::study::Leases;

/// Arguments of `knobs serve` (the option help says what each one does).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Storage: a SQLite file (default ./knobs.db) or a PostgreSQL URL shared with `knobs worker`s.
    #[arg(long)]
    pub storage: Option<String>,
    /// Address to listen on. Keep the default (loopback) unless a proxy or firewall guards the port.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port; 0 picks a free one. The first line on stdout is `listening on http://ADDR`.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// File of accepted bearer tokens, one per line (blank lines and `#` comments skipped). The
    /// KNOBS_TOKEN environment variable adds one more.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve without authentication (only on a trusted network).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Server config (YAML): `evaluators: {NAME: <evaluator section>}`, the evaluators an API
    /// request may name with `{"ref": NAME}`; evaluators that run commands come only from here.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = server::DEFAULT_BODY_LIMIT)]
    pub max_body: usize,
    /// A request that takes longer is abandoned with 503 (e.g. 30s, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: i64,
    /// A trial not heartbeaten for this long is stale and handed to the next asker once.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub grace: i64,
    /// Print the OpenAPI document (as checked in as openapi.json) and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

/// Tokens from `--token-file` and `KNOBS_TOKEN`; never logged.
fn load_tokens(a: &ServeArgs) -> Result<Vec<String>> {
    let mut tokens = Vec::new();
    if let Some(path) = &a.token_file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&shown, e))?;
        tokens.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
        if tokens.is_empty() {
            return Err(Error::Config(format!("--token-file {shown}: holds no token")));
        }
    }
    if let Ok(t) = std::env::var("KNOBS_TOKEN")
        && !t.trim().is_empty()
    {
        tokens.push(t.trim().to_string());
    }
    if let Some(short) = tokens.iter().position(|t| t.len() < 16) {
        return Err(Error::Config(format!(
            "token {} of {} is shorter than 16 characters; use a long random token",
            short + 1,
            tokens.len()
        )));
    }
    Ok(tokens)
}

/// Runs `knobs serve` until SIGINT or SIGTERM, then finishes the requests in flight; returns
/// exit code 0.
pub fn serve_cmd(a: ServeArgs) -> Result<i32> {
    if a.print_openapi {
        print!("{}", server::openapi_json());
        return Ok(0);
    }
    let tokens = load_tokens(&a)?;
    let tokens = match (tokens.is_empty(), a.insecure_no_auth) {
        (false, false) => Some(tokens),
        (true, true) => None,
        (false, true) => {
            return Err(Error::Config("--insecure-no-auth and a token were both given; choose one".into()));
        }
        (true, false) => {
            return Err(Error::Config(
                "no token: set KNOBS_TOKEN or give --token-file (or --insecure-no-auth on a trusted network)".into(),
            ));
        }
    };
    if a.grace <= 0 || a.request_timeout <= 0 {
        return Err(Error::Config("--grace and --request-timeout must be at least 1 s".into()));
    }
    let (evaluators, base_dir) = match &a.config {
        Some(path) => {
            let config = ServerConfig::load(path)?;
            let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            (config.evaluators, if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir })
        }
        None => (Default::default(), PathBuf::from(".")),
    };
    let options = ServerOptions {
        tokens,
        evaluators,
        base_dir,
        body_limit: a.max_body,
        request_timeout: Duration::from_secs(a.request_timeout as u64),
        leases: Leases { grace_s: a.grace as f64, ..Leases::default() },
    };
    // Writes to a closed connection must be errors, not a signal that ends the server.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("knobs-serve")
        .build()
        .map_err(|e| Error::Config(format!("cannot start the server runtime: {e}")))?;
    let location = a.storage.clone().unwrap_or_else(|| "knobs.db".to_string());
    runtime.block_on(run(SocketAddr::new(a.bind, a.port), location, options))
}

async fn run(addr: SocketAddr, location: String, options: ServerOptions) -> Result<i32> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    let local = listener.local_addr().map_err(|e| Error::io(addr.to_string(), e))?;
    let state = AppState::new(options);
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    tracing::info!(%local, auth = state_auth(&state), "serving the knobs API");
    // The storage opens (and migrates) in the background; /readyz says 503 until then.
    let opener = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                let loc = location.clone();
                match tokio::task::spawn_blocking(move || crate::storage::open(&loc)).await {
                    Ok(Ok(storage)) => {
                        state.set_storage(Arc::from(storage));
                        tracing::info!("storage open; ready");
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::error!("cannot open the storage (retrying in {:.1} s): {e}", wait.as_secs_f64())
                    }
                    Err(e) => tracing::error!("cannot open the storage: {e}"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        })
    };
    let app = server::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Error::io(format!("serving on {local}"), e))?;
    opener.abort();
    tracing::info!("stopped");
    Ok(0)
}

fn state_auth(state: &AppState) -> &'static str {
    if state.requires_auth() { "bearer" } else { "none (--insecure-no-auth)" }
}

/// SIGINT or SIGTERM: stop accepting, finish the requests in flight, exit.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
