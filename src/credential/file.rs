//! A credential in a file: a Kubernetes projected service-account token, a SPIFFE JWT-SVID, a
//! token file another agent keeps fresh.

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use zeroize::Zeroize;

use super::{Credential, CredentialSource, ResponseFormat};
use crate::error::{Error, Result};

/// The largest credential file read (64 KiB); a larger one is refused before it is read.
pub const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// A credential read from a file at every token request.
///
/// Kubernetes rotates projected tokens by swapping the `..data` symlink the token's path goes
/// through, so symlinks are followed and each request reads whatever the path names then. What
/// the path names after following links must be a regular file: a FIFO (which would block the
/// reader), a device or a directory is refused, as is a file over [`MAX_CREDENTIAL_BYTES`]
/// (refused from its size, without reading it) or one that is empty after trimming whitespace.
///
/// ```
/// use oauth_layer::credential::FileSource;
///
/// let source = FileSource::new("/var/run/secrets/kubernetes.io/serviceaccount/token");
/// assert!(format!("{source:?}").contains("serviceaccount/token"));
/// ```
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    format: ResponseFormat,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: ResponseFormat::Text,
        }
    }

    /// How the file holds the credential: the whole content (the default), or one string
    /// member of a JSON object (a token file another agent writes with metadata around it).
    pub fn format(mut self, format: ResponseFormat) -> Self {
        self.format = format;
        self
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl CredentialSource for FileSource {
    async fn credential(&self) -> Result<Credential> {
        let path = self.path.clone();
        let origin = self.describe();
        // A small file, but still a blocking read: off the async workers.
        let content = tokio::task::spawn_blocking(move || read_credential_file(&path))
            .await
            .map_err(|e| Error::Internal(format!("reading a credential file panicked: {e}")))?;
        content
            .and_then(|content| match &self.format {
                ResponseFormat::Text => Ok(content),
                ResponseFormat::JsonField(field) => json_member(&content, field),
            })
            .map_err(|reason| Error::Credential { origin, reason })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn identity(&self) -> String {
        // Another member of the same file is another credential.
        match &self.format {
            ResponseFormat::Text => self.describe(),
            ResponseFormat::JsonField(field) => format!("{}\0json {field}", self.describe()),
        }
    }
}

/// The string member `field` of the JSON object `content`, or why not (never the content).
fn json_member(content: &Credential, field: &str) -> std::result::Result<Credential, String> {
    use secrecy::ExposeSecret;
    let json: serde_json::Value = serde_json::from_str(content.secret().expose_secret())
        .map_err(|_| "it is not JSON; a JSON object was expected".to_owned())?;
    json.get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(Credential::new)
        .ok_or_else(|| format!("its JSON has no non-empty string member {field:?}"))
}

/// Reads the credential at `path`, or says why not (never with the content).
fn read_credential_file(path: &Path) -> std::result::Result<Credential, String> {
    // Checked before opening, since opening a FIFO for reading blocks until a writer comes.
    let before = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    check_regular(&before)?;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    // Checked again on the open file: the path may have been swapped in between.
    let opened = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    check_regular(&opened)?;
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        bytes.zeroize();
        return Err(format!("it grew over {MAX_CREDENTIAL_BYTES} bytes"));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            e.into_bytes().zeroize();
            return Err("it is not UTF-8".into());
        }
    };
    let mut text = zeroize::Zeroizing::new(text);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    let credential = Credential::new(trimmed);
    text.zeroize();
    Ok(credential)
}

fn check_regular(metadata: &std::fs::Metadata) -> std::result::Result<(), String> {
    if !metadata.is_file() {
        let kind = if metadata.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(format!("it is {kind}"));
    }
    if metadata.len() > MAX_CREDENTIAL_BYTES {
        return Err(format!(
            "it is {} bytes, over the {MAX_CREDENTIAL_BYTES}-byte limit",
            metadata.len()
        ));
    }
    Ok(())
}
