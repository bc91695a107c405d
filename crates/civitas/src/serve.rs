//! `civitas serve`: runs a node in this process until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use civitas_node::{Config, ConfigOverrides};

/// Arguments of `civitas serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # A node with its state in ./civitas-data, listening on 127.0.0.1:7070
  civitas serve

  # Another data directory and listener
  civitas serve --data-dir /var/lib/civitas --listen 0.0.0.0:7070

  # Settings from a file (flags win over it, CIVITAS_<SECTION>_<KEY> variables sit between)
  civitas serve --config /etc/civitas/civitas.toml
  CIVITAS_HTTP_LISTEN=127.0.0.1:8080 civitas serve")]
pub struct ServeArgs {
    /// Directory holding the node's state; created if missing (`storage.data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (`http.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A `civitas.toml` configuration file.
    #[arg(long, value_name = "FILE", env = "CIVITAS_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Loads the configuration, installs logging and serves on a multi-thread runtime.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = ConfigOverrides { listen: args.listen, data_dir: args.data_dir };
    let config = Config::load(args.config.as_deref(), overrides)?;
    civitas_node::init_logging(&config);
    let runtime = civitas_node::build_runtime(&config, "civitas")
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(civitas_node::run(config))?)
}
