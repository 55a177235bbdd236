//! `enclave config`: the effective configuration with where each value came from (`show`),
//! or every setting documented at its default (`example`, the shipped
//! `enclave.example.toml`); and the configuration every other subcommand reads: the file
//! (`--config`, `ENCLAVE_CONFIG`, or `./enclave.toml`), then the environment, then flags.

use std::path::PathBuf;

use anyhow::Context;

use enclave::config::{Config, ConfigFile, Loaded, show};

/// What `enclave config` prints.
#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets masked, each value followed by where
    /// it came from (default, file, env or flag). Checks it as `enclave serve` would.
    Show,
    /// Print every setting, commented out at its default and documented: a starting
    /// enclave.toml.
    Example,
}

/// Which file to read: the one named, or `./enclave.toml` if present.
pub fn file(named: Option<PathBuf>) -> ConfigFile {
    named.map_or(ConfigFile::WorkingDirectory, ConfigFile::Given)
}

/// The configuration in layers; `flags` (setting key, flag, value) override the rest.
pub fn read(
    named: Option<PathBuf>,
    flags: &[(&str, &'static str, Option<String>)],
) -> anyhow::Result<Config> {
    let mut loaded = load(named)?;
    for (key, flag, value) in flags {
        if let Some(value) = value {
            loaded.flag(key, flag, value)?;
        }
    }
    Ok(loaded.finish()?)
}

fn load(named: Option<PathBuf>) -> anyhow::Result<Loaded> {
    Loaded::load(file(named)).context("reading the configuration")
}

/// Runs `enclave config …`.
pub fn run(named: Option<PathBuf>, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Show => {
            let loaded = load(named)?;
            let text = show::effective(&loaded);
            loaded.finish().context("checking the configuration")?;
            print!("{text}");
        }
        ConfigCommand::Example => print!("{}", show::example()),
    }
    Ok(())
}
