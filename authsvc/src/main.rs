//! `meshmux-authsvc`: serve, mint a bot token, or rotate the signing key.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use authsvc::config::{IdpSettings, Settings};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshmux-authsvc",
    about = "meshmux's OAuth authorization server and bot-token UI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OAuth endpoints, the token UI, JWKS, health and metrics.
    Serve {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Accept http://127.0.0.1 / localhost client ID metadata documents (tests only).
        #[arg(long, hide = true)]
        allow_loopback_client_metadata: bool,
    },
    /// Mint a bot token, print it once, and record it (listed and revocable in the UI).
    Mint {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        /// Comma-separated roles, each defined in auth.roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Move the signing key to <file>.previous (still published) and write a new one.
    RotateKey {
        #[arg(long)]
        config: PathBuf,
    },
    /// Stop publishing the previous signing key (delete <file>.previous): tokens it signed
    /// stop working once every replica restarts. Run it when they have expired.
    RetireKey {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke tokens: one by its jti (user or bot), or every token of a subject (`sub`,
    /// e.g. `alice` or `bot:ci`), whose refresh tokens stop working too.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, conflicts_with = "subject", required_unless_present = "subject")]
        jti: Option<String>,
        #[arg(long)]
        subject: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let env_pem = std::env::var("MCP_ENV_MUX_SIGNING_KEY_PEM").ok();
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            allow_loopback_client_metadata,
        } => {
            let mut settings = Settings::load(&config)?;
            settings.allow_loopback_client_metadata = allow_loopback_client_metadata;
            settings.check_listen(listen)?;
            if let IdpSettings::Dev { .. } = settings.idp {
                for _ in 0..3 {
                    tracing::warn!("{}", authsvc::idp::dev::WARNING);
                }
            }
            let (keys, source) =
                authsvc::keys::resolve(&settings.signing_key_file, env_pem.as_deref())?;
            source.log(&settings.signing_key_file);
            let db = authsvc::App::store_for(&settings)?;
            let app = authsvc::App::new(settings, keys, db)?;
            if let Err(e) = app.idp.ready(&app.http).await {
                tracing::warn!(error = %e, "identity provider not reachable yet; /readyz will say so");
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(%listen, issuer = %app.settings.issuer, audience = %app.settings.audience, store = app.db.0.kind(), idp = app.idp.label(), "authsvc listening");
            // The peer address feeds the per-source registration limit.
            axum::serve(
                listener,
                authsvc::router(app).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
        Command::Mint {
            config,
            name,
            roles,
            days,
        } => {
            let settings = Settings::load(&config)?;
            let text = std::fs::read_to_string(&config)?;
            let authsvc_url = authsvc_url(&text, &config);
            let token = authsvc::mint::cli_mint(
                &settings,
                env_pem.as_deref(),
                &name,
                roles,
                days,
                &authsvc_url,
            )
            .await?;
            println!("{token}");
            Ok(())
        }
        Command::RetireKey { config } => {
            let settings = Settings::load(&config)?;
            let kid = authsvc::keys::retire(&settings.signing_key_file)?;
            eprintln!(
                "retired signing key {kid} ({} deleted). Restart every replica: tokens it signed stop working.",
                authsvc::keys::previous_path(&settings.signing_key_file).display()
            );
            Ok(())
        }
        Command::Revoke {
            config,
            jti,
            subject,
        } => {
            let settings = Settings::load(&config)?;
            let text = std::fs::read_to_string(&config)?;
            let target = match (jti, subject) {
                (Some(jti), _) => authsvc::revoke::Target::Jti(jti),
                (None, Some(sub)) => authsvc::revoke::Target::Subject(sub),
                (None, None) => anyhow::bail!("name a --jti or a --subject"),
            };
            let outcome = authsvc::revoke::cli_revoke(
                &settings,
                env_pem.as_deref(),
                &target,
                &authsvc_url(&text, &config),
            )
            .await?;
            println!("{}", serde_json::to_string(&outcome)?);
            Ok(())
        }
        Command::RotateKey { config } => {
            let settings = Settings::load(&config)?;
            let kid = authsvc::keys::rotate(&settings.signing_key_file)?;
            eprintln!(
                "new signing key {kid} written to {}; the previous key stays published. Restart every replica with the new file.",
                settings.signing_key_file.display()
            );
            Ok(())
        }
    }
}

fn authsvc_url(text: &str, config: &std::path::Path) -> String {
    let name = config.display().to_string();
    policy::config::Config::parse(
        text,
        policy::config::Format::from_name(&name),
        &name,
        &|v| std::env::var(v).ok(),
    )
    .ok()
    .and_then(|c| c.auth.map(|a| a.authsvc_url))
    .unwrap_or_else(|| "http://127.0.0.1:8090".into())
}
