//! A credential printed by a program.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use zeroize::Zeroize;

use super::{Credential, CredentialSource};
use crate::error::{Error, Result};

/// The largest output read from the program (64 KiB).
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// The default deadline for the program.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential printed on standard output by a program run at every token request.
///
/// No shell is involved: the program is started with exactly the arguments given. It is killed
/// when it outlives its [`timeout`](Self::timeout) (30 s by default) or prints more than 64 KiB;
/// a non-zero exit is an error naming the program and its status, never its output. Standard
/// input is closed and standard error discarded. The output, trimmed, is the credential.
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::credential::CommandSource;
///
/// let source = CommandSource::new("/usr/local/bin/get-token")
///     .arg("--audience")
///     .arg("api://my-app")
///     .timeout(Duration::from_secs(5));
/// # let _ = source;
/// ```
#[derive(Debug, Clone)]
pub struct CommandSource {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl CommandSource {
    /// A source running `program` (a path, or a name looked up in `PATH`) without arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds an argument, passed as is (no shell, no splitting).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable for the program (added to the inherited environment); how
    /// protocols such as Google's executable-sourced credentials pass the audience.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// How long the program may run before it is killed (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Credential {
            origin: self.describe(),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl CredentialSource for CommandSource {
    async fn credential(&self) -> Result<Credential> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.fail(format!("cannot start it: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(Error::Internal("a piped stdout is missing".into()));
        };
        let run = async {
            let mut output = Vec::new();
            stdout
                .take(MAX_OUTPUT_BYTES + 1)
                .read_to_end(&mut output)
                .await
                .map_err(|e| format!("cannot read its output: {e}"))?;
            if output.len() as u64 > MAX_OUTPUT_BYTES {
                output.zeroize();
                return Err(format!("it printed over {MAX_OUTPUT_BYTES} bytes"));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| format!("cannot wait for it: {e}"))?;
            if !status.success() {
                output.zeroize();
                return Err(format!("it failed ({status})"));
            }
            Ok(output)
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        let output = match outcome {
            Ok(Ok(output)) => output,
            Ok(Err(reason)) => {
                let _ = child.start_kill();
                return Err(self.fail(reason));
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(self.fail(format!(
                    "it did not finish within {:?} and was killed",
                    self.timeout
                )));
            }
        };
        let text = match String::from_utf8(output) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) => {
                e.into_bytes().zeroize();
                return Err(self.fail("its output is not UTF-8"));
            }
        };
        let value = text.trim();
        if value.is_empty() {
            return Err(self.fail("its output is empty"));
        }
        Ok(Credential::new(value))
    }

    fn describe(&self) -> String {
        format!("command {}", self.program.to_string_lossy())
    }

    fn identity(&self) -> String {
        // The arguments decide whose credential is printed (`--user`, `--audience`).
        let mut identity = self.describe();
        for arg in &self.args {
            identity.push('\0');
            identity.push_str(&arg.to_string_lossy());
        }
        // So does the environment it is given (an audience, an account).
        for (name, value) in &self.env {
            identity.push('\0');
            identity.push_str(&name.to_string_lossy());
            identity.push('=');
            identity.push_str(&value.to_string_lossy());
        }
        identity
    }
}
