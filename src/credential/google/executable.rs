//! Google's executable-sourced credentials: a program named by an `external_account` file
//! prints the subject token as a small JSON document.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::credential::{CommandSource, Credential, CredentialSource, MAX_CREDENTIAL_BYTES};
use crate::error::{Error, Result};

/// The shortest and longest `timeout_millis` Google's format allows, and its default.
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(5_000);
pub(super) const MAX_TIMEOUT: Duration = Duration::from_millis(120_000);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(30_000);

/// What a `credential_source.executable` says, before the caller allowed it to run.
#[derive(Clone)]
pub(super) struct ExecutableConfig {
    pub(super) command: String,
    pub(super) timeout: Duration,
    pub(super) output_file: Option<PathBuf>,
}

impl std::fmt::Debug for ExecutableConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The program only: arguments may carry something private (a token, a password).
        f.debug_struct("ExecutableConfig")
            .field("program", &self.command.split_whitespace().next())
            .field("timeout", &self.timeout)
            .field("output_file", &self.output_file)
            .finish_non_exhaustive()
    }
}

/// The program of an [`ExecutableConfig`], run under Google's executable protocol: the command
/// line split on whitespace (no shell), the request described in `GOOGLE_EXTERNAL_ACCOUNT_*`
/// variables (never interactive), and the answer a JSON document of version 1. An unexpired
/// answer cached in the output file is used without running the program.
///
/// Only built once the caller allowed executables
/// ([`ExternalAccount::allow_executables`](super::ExternalAccount::allow_executables)).
#[derive(Debug)]
pub(super) struct Executable {
    command: CommandSource,
    output_file: Option<PathBuf>,
}

impl Executable {
    pub(super) fn new(
        config: &ExecutableConfig,
        audience: &str,
        token_type: &str,
        impersonated_email: Option<&str>,
    ) -> Result<Self> {
        let mut words = config.command.split_whitespace();
        let program = words.next().ok_or_else(|| {
            Error::config("external_account credentials: the executable command is empty")
        })?;
        let mut command = CommandSource::new(program)
            .timeout(config.timeout)
            .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", audience)
            .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", token_type)
            .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0");
        for word in words {
            command = command.arg(word);
        }
        if let Some(email) = impersonated_email {
            command = command.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
        }
        if let Some(file) = &config.output_file {
            command = command.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", file);
        }
        Ok(Self {
            command,
            output_file: config.output_file.clone(),
        })
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Credential {
            origin: self.describe(),
            reason: reason.into(),
        }
    }

    /// The token of an unexpired, successful answer in the output file, if there is one. A
    /// missing, unreadable, failed or expired one just means the program runs.
    async fn cached(&self) -> Option<Credential> {
        let path = self.output_file.clone()?;
        let text = tokio::task::spawn_blocking(move || read_small(&path))
            .await
            .ok()??;
        let answer = parse_answer(text.secret().expose_secret(), true).ok()?;
        Some(answer)
    }
}

#[async_trait]
impl CredentialSource for Executable {
    async fn credential(&self) -> Result<Credential> {
        if let Some(cached) = self.cached().await {
            tracing::debug!(source = %self.describe(), "using the unexpired answer in output_file");
            return Ok(cached);
        }
        tracing::debug!(source = %self.describe(), "running the executable");
        let output = self.command.credential().await?;
        parse_answer(output.secret().expose_secret(), self.output_file.is_some())
            .map_err(|reason| self.fail(reason))
    }

    fn describe(&self) -> String {
        format!("executable ({})", self.command.describe())
    }

    fn identity(&self) -> String {
        self.command.identity()
    }
}

/// The output file's content, when it is a small regular file.
fn read_small(path: &std::path::Path) -> Option<Credential> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_CREDENTIAL_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(Credential::new(text))
}

/// The subject token of a version 1 answer, or why there is none (the program's own `code`
/// and `message` when it reports a failure; never a token).
fn parse_answer(text: &str, needs_expiry: bool) -> std::result::Result<Credential, String> {
    let json: Value =
        serde_json::from_str(text).map_err(|_| "its output is not a JSON document".to_owned())?;
    let version = json.get("version").and_then(Value::as_u64);
    if version != Some(1) {
        return Err("its output is not version 1 of Google's executable format".into());
    }
    match json.get("success").and_then(Value::as_bool) {
        Some(true) => {}
        Some(false) => {
            let text = |name: &str| {
                json.get(name)
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .or_else(|| Some(v.to_string()))
                    })
                    .filter(|v| v != "null")
                    .map(|v| v.chars().take(200).collect::<String>())
            };
            return Err(format!(
                "it reported a failure (code {}: {})",
                text("code").unwrap_or_else(|| "none".into()),
                text("message").unwrap_or_else(|| "no message".into()),
            ));
        }
        None => return Err("its output has no boolean `success`".into()),
    }
    let member = match json.get("token_type").and_then(Value::as_str) {
        Some("urn:ietf:params:oauth:token-type:jwt")
        | Some("urn:ietf:params:oauth:token-type:id_token") => "id_token",
        Some("urn:ietf:params:oauth:token-type:saml2") => "saml_response",
        Some(_) => return Err("its output names an unsupported token_type".into()),
        None => return Err("its output has no token_type".into()),
    };
    match json.get("expiration_time").and_then(Value::as_u64) {
        Some(seconds) => {
            let expires = UNIX_EPOCH + Duration::from_secs(seconds);
            if expires <= SystemTime::now() {
                return Err("its answer has expired (expiration_time has passed)".into());
            }
        }
        None if needs_expiry => {
            return Err("its answer has no expiration_time, which an output_file needs".into());
        }
        None => {}
    }
    json.get(member)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(Credential::new)
        .ok_or_else(|| format!("its output has no {member}"))
}
