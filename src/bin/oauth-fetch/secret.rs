//! The options that carry a secret, and the ways their values come in: on the command line
//! (which every user of the machine can read in `ps` or `/proc/PID/cmdline`), or, without
//! touching the command line, from a file (`@FILE`), from standard input (`-`), or from an
//! environment variable (`OAUTH_` and the option's name in capitals). Key and certificate
//! files are read here too, size-capped into memory that is wiped.

use std::io::Read;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::options::{Stop, usage};

/// Each option whose value is a secret, and the environment variable that gives it when the
/// option is left out. `--redis` is one: its URL may hold a password.
pub(crate) const SECRET_OPTIONS: &[(&str, &str)] = &[
    ("--client-secret", "OAUTH_CLIENT_SECRET"),
    ("--password", "OAUTH_PASSWORD"),
    ("--refresh-token", "OAUTH_REFRESH_TOKEN"),
    ("--subject-token", "OAUTH_SUBJECT_TOKEN"),
    ("--actor-token", "OAUTH_ACTOR_TOKEN"),
    ("--token", "OAUTH_TOKEN"),
    ("--redis", "OAUTH_REDIS"),
];

/// The most a secret file (or standard input) may hold: far more than any token or URL, and
/// little enough that `@/dev/zero` stops at once.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// How a secret option's value was given on the command line.
pub(crate) enum Given {
    /// The value itself, visible to every user of the machine.
    Inline(String),
    /// `@FILE`: read from FILE.
    File(PathBuf),
    /// `-`: read from standard input.
    Stdin,
}

impl Given {
    /// `-` is standard input, `@FILE` a file, anything else the value itself.
    pub(crate) fn from_arg(arg: String) -> Self {
        if arg == "-" {
            Given::Stdin
        } else if let Some(path) = arg.strip_prefix('@') {
            Given::File(PathBuf::from(path))
        } else {
            Given::Inline(arg)
        }
    }

    /// The value, read now from its file or standard input where it comes from one. Errors
    /// name the option only: neither the contents nor the file's name (which may be a secret
    /// that happens to start with `@`) are echoed.
    pub(crate) fn read(self, option: &str) -> Result<String, Stop> {
        let (what, bytes) = match self {
            Given::Inline(value) => return Ok(value),
            Given::File(path) => {
                let bytes = std::fs::File::open(&path)
                    .and_then(read_capped)
                    .map_err(|e| usage(format!("{option} @FILE: cannot read the file: {e}")))?;
                ("the file", bytes)
            }
            Given::Stdin => {
                let bytes = read_capped(std::io::stdin().lock())
                    .map_err(|e| usage(format!("{option} -: cannot read standard input: {e}")))?;
                ("standard input", bytes)
            }
        };
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(usage(format!(
                "{option}: {what} holds more than {MAX_SECRET_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| usage(format!("{option}: {what} is not UTF-8 text")))?;
        let text = text
            .strip_suffix('\n')
            .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
        if text.is_empty() {
            return Err(usage(format!("{option}: {what} is empty")));
        }
        Ok(text.to_owned())
    }
}

/// Up to one byte more than [`MAX_SECRET_BYTES`] from `source`, in a buffer wiped when
/// dropped.
fn read_capped(source: impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    source.take(MAX_SECRET_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The value of the environment variable `name`, unless it is unset, empty or not Unicode.
pub(crate) fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The largest key or certificate file read (a service account file is a few KiB, a PEM key
/// or certificate chain less).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The contents of the key or certificate file at `path` given to `option`, at most
/// [`MAX_KEY_FILE_BYTES`], in a buffer wiped when dropped. Messages name the option and the
/// file, never what it holds.
pub(crate) fn read_key_file(
    path: &std::path::Path,
    option: &str,
) -> Result<Zeroizing<Vec<u8>>, Stop> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| usage(format!("{option}: cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(usage(format!(
            "{option}: {} is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}
