//! The binary's subcommands that need more than a few lines: each module parses its flags
//! and calls the library. Part of the `enclave` binary only, not of the library.

pub mod backup;
pub mod cluster_status;
pub mod config;
pub mod load_test;
pub mod token;
