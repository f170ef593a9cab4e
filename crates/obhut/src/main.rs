//! The `obhut` binary: command-line parsing, `serve` (everything in one process), `gateway` and
//! `trustee --config` (the same parts as separate processes), and the admin commands that talk
//! to the admin API. Errors end here as one clear line and a non-zero exit.

mod catalog_location;
mod cli;
mod common;
mod config;
mod front;
mod gateway;
mod serve;
mod tls;
mod trustee_serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "obhut",
    version,
    about = "An S3-compatible object store for data trustees"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct AdminArgs {
    /// Base URL of the admin API.
    #[arg(
        long,
        env = "OBHUT_ADMIN_URL",
        default_value = "http://127.0.0.1:9001",
        global = true
    )]
    pub admin_url: String,
    /// Bearer token of the principal acting.
    #[arg(long, env = "OBHUT_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificates (PEM) to trust, besides the system's, for an https:// admin URL.
    #[arg(long, env = "OBHUT_CA_BUNDLE", value_name = "FILE", global = true)]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run gateway, trustee, catalog and two local sites in one process.
    Serve(ServeArgs),
    /// Run the S3 gateway and the admin API against a trustee in another process.
    Gateway(GatewayArgs),
    /// Maintenance of a data directory's catalog (no server may be running on it).
    Catalog {
        #[command(subcommand)]
        command: cli::catalog::CatalogCommand,
    },
    /// Manage tenants.
    Tenant {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::tenant::TenantCommand,
    },
    /// A tenant's buckets: quotas and usage (the tenant's admin), rollback to a point in time.
    Bucket {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::bucket::BucketCommand,
    },
    /// Enrol, list and revoke principals (officers).
    Principal {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::principal::PrincipalCommand,
    },
    /// Keys of your browser (the web console) that sign your approvals and denials: enrol,
    /// list, revoke (officers and tenant admins).
    SigningKey {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::signing_key::SigningKeyCommand,
    },
    /// Grants: scoped, time-bound access to a tenant's data, approved by a quorum.
    Access {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::access::AccessCommand,
    },
    /// Disclosure requests from authorities.
    Disclosure {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::disclosure::DisclosureCommand,
    },
    /// The transparency log: checkpoint, verification, a tenant's entries.
    Log {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::log::LogCommand,
    },
    /// The site registry (officers change it; operators and auditors list it).
    Site {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::site::SiteCommand,
    },
    /// Restore every object's replicas to its policy (officers, operators), with progress.
    Repair {
        #[command(flatten)]
        admin: AdminArgs,
        /// Only show the progress of the current or last pass.
        #[arg(long)]
        status: bool,
    },
    /// Residency reports, signed by the trustee and logged.
    Residency {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ResidencyCommand,
    },
    /// What a token stands for.
    Token {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: cli::token::TokenCommand,
    },
    /// Key custody: create the sealed keystore and the API's certificates, unseal, see its
    /// state; with --config, run the trustee process.
    Trustee {
        #[command(flatten)]
        admin: AdminArgs,
        /// Run the trustee process: TOML with listen, keystore_dir, [tls] cert, key,
        /// client_ca, and optionally log, log_format, dev_unseal_file, header_read_timeout_secs,
        /// idle_timeout_secs and max_connections.
        #[arg(long)]
        config: Option<PathBuf>,
        /// With --config: the process log as text lines or JSON objects [default: the
        /// config's log_format, else text]
        #[arg(long, value_enum, requires = "config")]
        log_format: Option<common::LogFormat>,
        #[command(subcommand)]
        command: Option<cli::trustee::TrusteeCommand>,
    },
}

#[derive(Subcommand)]
enum ResidencyCommand {
    /// Per bucket: objects by site set, under-replicated objects, replicas outside policy.
    Report {
        #[arg(long)]
        tenant: Option<String>,
        /// Read every replica and check it.
        #[arg(long)]
        verify: bool,
        /// Write the report, its digest and the trustee's signed attestation here (JSON).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// TOML with data_dir, s3_addr, admin_addr, region, log, log_format, access_log, metrics,
    /// key_cache_ttl_secs, lifecycle_day_secs, lifecycle_interval_secs, catalog,
    /// catalog_password_file, s3_tls_cert, s3_tls_key, admin_tls_cert, admin_tls_key, and
    /// [trustee] url, ca, cert, key.
    #[arg(long)]
    pub config: PathBuf,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The process log as text lines or JSON objects [default: the config's log_format, else
    /// text]
    #[arg(long, value_enum)]
    pub log_format: Option<common::LogFormat>,
}

/// Where the catalog is, when not in the data directory.
#[derive(clap::Args, Clone, Default)]
pub struct CatalogArgs {
    /// The catalog on PostgreSQL, postgres://user@host:port/db (TLS: ?sslmode=verify-full&sslrootcert=FILE),
    /// shared by several gateways [default: catalog.db in the data directory]. No password here:
    /// see --catalog-password-file, OBHUT_CATALOG_PASSWORD, PGPASSWORD.
    #[arg(long, value_name = "URL")]
    pub catalog: Option<String>,
    /// A file (mode 0600) holding the PostgreSQL catalog's password.
    #[arg(long, value_name = "FILE")]
    pub catalog_password_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where the catalog, the local sites and the credential files live [default: ./obhut-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the S3 API [default: 127.0.0.1:9000]
    #[arg(long)]
    pub s3_addr: Option<String>,
    /// Address of the admin API [default: 127.0.0.1:9001]
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// TOML file with any of: data_dir, s3_addr, admin_addr, region, log, log_format,
    /// access_log, metrics, catalog, catalog_password_file, s3_tls_cert, s3_tls_key,
    /// admin_tls_cert, admin_tls_key, tls_ca_bundle. Flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TLS on the S3 listener: its certificate chain (PEM) [default: plain HTTP]
    #[arg(long, value_name = "FILE")]
    pub s3_tls_cert: Option<PathBuf>,
    /// TLS on the S3 listener: its private key (PEM, mode 0600); SIGHUP reads both again
    #[arg(long, value_name = "FILE")]
    pub s3_tls_key: Option<PathBuf>,
    /// TLS on the admin listener: its certificate chain (PEM) [default: plain HTTP]
    #[arg(long, value_name = "FILE")]
    pub admin_tls_cert: Option<PathBuf>,
    /// TLS on the admin listener: its private key (PEM, mode 0600); SIGHUP reads both again
    #[arg(long, value_name = "FILE")]
    pub admin_tls_key: Option<PathBuf>,
    /// The CA certificate(s) clients should trust, written into demo.env (AWS_CA_BUNDLE) and
    /// dev-tokens.env (OBHUT_CA_BUNDLE) [default: none, the system's CAs]
    #[arg(long, value_name = "FILE")]
    pub tls_ca_bundle: Option<PathBuf>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The process log as text lines or JSON objects (one a line, with each S3 request's
    /// request_id) [default: text]
    #[arg(long, value_enum)]
    pub log_format: Option<common::LogFormat>,
}

impl Command {
    fn runs_a_server(&self) -> bool {
        match self {
            Self::Serve(_) | Self::Gateway(_) => true,
            Self::Trustee { config, .. } => config.is_some(),
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    obhut_trustee_client::remote::install_crypto_provider();
    let cli = Cli::parse();
    // Admin commands write to pipes (`obhut log show | head`): a reader that goes away ends them
    // quietly, as it ends any Unix tool, instead of a panic on a failed print. Servers keep
    // ignoring SIGPIPE: a client that hangs up must never stop them.
    if !cli.command.runs_a_server() {
        sigpipe::reset();
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Tenant { admin, command } => cli::tenant::run(&admin, command),
        Command::Bucket { admin, command } => cli::bucket::run(&admin, command),
        Command::Gateway(args) => gateway::run(&args.config, &args.catalog, args.log_format),
        Command::Catalog { command } => cli::catalog::run(command),
        Command::Principal { admin, command } => cli::principal::run(&admin, command),
        Command::Access { admin, command } => cli::access::run(&admin, command),
        Command::SigningKey { admin, command } => cli::signing_key::run(&admin, command),
        Command::Disclosure { admin, command } => cli::disclosure::run(&admin, command),
        Command::Log { admin, command } => cli::log::run(&admin, command),
        Command::Token { admin, command } => cli::token::run(&admin, command),
        Command::Site { admin, command } => cli::site::run(&admin, command),
        Command::Repair { admin, status } => cli::repair::run(&admin, status),
        Command::Residency {
            admin,
            command:
                ResidencyCommand::Report {
                    tenant,
                    verify,
                    out,
                },
        } => cli::residency::run(&admin, tenant, verify, out),
        Command::Trustee {
            admin,
            config,
            log_format,
            command,
        } => match (config, command) {
            (Some(config), None) => trustee_serve::run(&config, log_format),
            (None, Some(command)) => cli::trustee::run(&admin, command),
            (Some(_), Some(_)) => Err(anyhow::anyhow!(
                "--config runs the trustee process and takes no subcommand"
            )),
            (None, None) => Err(anyhow::anyhow!(
                "give a subcommand (see `obhut trustee --help`), or --config FILE to run the trustee process"
            )),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("obhut: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
