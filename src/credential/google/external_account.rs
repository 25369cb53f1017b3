//! Google `external_account` credential files (workload identity federation).
//!
//! PLACEHOLDER for the parallel work of issue 17: the public signatures below are the contract
//! between the external-account engineer (who replaces this file) and the default-credentials
//! engineer (who calls it). Never merged as it is.

use std::path::Path;

use crate::error::{Error, Result};
use crate::source::TokenSource;

/// A loaded `external_account` credential file.
#[derive(Debug, Clone)]
pub struct ExternalAccount {
    _private: (),
}

impl ExternalAccount {
    /// Parses an `external_account` file's JSON; refuses any other `type`.
    pub fn from_json(json: &str) -> Result<Self> {
        let _ = json;
        Err(Error::Config("external_account: not built yet".into()))
    }

    /// Reads and parses an `external_account` file (a small blocking read).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let _ = path.as_ref();
        Err(Error::Config("external_account: not built yet".into()))
    }

    /// Whether a `credential_source.executable` may run (off by default).
    pub fn allow_executables(self, allow: bool) -> Self {
        let _ = allow;
        self
    }

    /// A token source for Google APIs with `scopes` (space separated).
    pub fn token_source(&self, scopes: impl Into<String>) -> Result<TokenSource> {
        let _ = scopes.into();
        Err(Error::Config("external_account: not built yet".into()))
    }
}
