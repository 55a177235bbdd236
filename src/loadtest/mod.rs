//! `enclave loadtest`: the load client users run against their own deployment. It loads and
//! verifies at once; `verify.rs` holds the verification, fed every frame each socket receives.

pub mod verify;
