//! How interactive flows reach a person: opening a URL in a browser and reading what the person
//! pastes. Each is a small trait with a real default and a test double, so flows can be driven
//! end to end in tests.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use url::Url;

use crate::error::{Error, Result};
use crate::transport::is_loopback_host;

/// Opens a URL for the person signing in.
pub trait Browser: fmt::Debug + Send + Sync + 'static {
    /// Opens `url`. An error means no browser could be opened; the flow then shows the URL for
    /// the person to open by hand (or, in automatic mode, falls back to pasting the code).
    fn open(&self, url: &Url) -> io::Result<()>;
}

/// The system's browser, through the `webbrowser` crate: it honours `$BROWSER`, and never runs
/// a shell command line.
#[cfg(feature = "browser")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

#[cfg(feature = "browser")]
impl Browser for SystemBrowser {
    fn open(&self, url: &Url) -> io::Result<()> {
        webbrowser::open(url.as_str())
    }
}

/// No browser: every `open` fails, so the URL is shown instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBrowser;

impl Browser for NoBrowser {
    fn open(&self, _url: &Url) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no browser"))
    }
}

/// Any closure can stand in for a browser (in tests, one that follows the URL with an HTTP
/// client).
pub struct BrowserFn<F>(pub F);

impl<F> fmt::Debug for BrowserFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrowserFn")
    }
}

impl<F> Browser for BrowserFn<F>
where
    F: Fn(&Url) -> io::Result<()> + Send + Sync + 'static,
{
    fn open(&self, url: &Url) -> io::Result<()> {
        (self.0)(url)
    }
}

/// Starts opening `url` on a blocking thread, only if it is `https` or `http` to a loopback host
/// (SECURITY.md rule 11). It runs in the background because some browsers (text browsers run by
/// `$BROWSER`) only return once they exit, which may be after the sign-in they are part of.
pub(crate) fn open_in_background(
    browser: Arc<dyn Browser>,
    url: &Url,
) -> Result<tokio::task::JoinHandle<io::Result<()>>> {
    let allowed = match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(is_loopback_host),
        _ => false,
    };
    if !allowed {
        return Err(Error::config(format!(
            "refusing to open a {} URL in the browser: only https (or http to loopback) is opened",
            url.scheme()
        )));
    }
    let url = url.clone();
    Ok(tokio::task::spawn_blocking(move || browser.open(&url)))
}

/// Talks to the person in a terminal-like way: shows messages, reads a line they type or paste.
#[async_trait]
pub trait Prompt: fmt::Debug + Send + Sync + 'static {
    /// Shows `message` (by default on stderr).
    fn show(&self, message: &str);

    /// Shows `message` and reads one line, without its line ending. Input longer than `max_len`
    /// bytes is an error (`InvalidData`), whatever follows.
    async fn read_line(&self, message: &str, max_len: usize) -> io::Result<String>;
}

/// The process's terminal: messages on stderr, lines from stdin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

#[async_trait]
impl Prompt for Terminal {
    fn show(&self, message: &str) {
        eprintln!("{message}");
    }

    async fn read_line(&self, message: &str, max_len: usize) -> io::Result<String> {
        eprint!("{message}");
        let line =
            tokio::task::spawn_blocking(move || read_capped_line(&mut io::stdin().lock(), max_len))
                .await
                .map_err(io::Error::other)?;
        if !io::IsTerminal::is_terminal(&io::stdin()) {
            // Typed input ends the prompt's line; piped input does not.
            eprintln!();
        }
        line
    }
}

/// Reads up to a newline, failing once more than `max_len` bytes have come without one.
fn read_capped_line(input: &mut impl io::BufRead, max_len: usize) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the input ended",
                ));
            }
            break;
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > max_len + 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("input longer than {max_len} bytes"),
            ));
        }
        line.extend_from_slice(chunk);
        let used = chunk.len();
        input.consume(used);
        if done {
            break;
        }
    }
    let text = String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "input is not UTF-8"))?;
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    if text.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("input longer than {max_len} bytes"),
        ));
    }
    Ok(text)
}

/// A prompt that answers from a script and records what it was shown: the test double for
/// [`Prompt`]. Clones share the script and the record.
#[derive(Debug, Clone, Default)]
pub struct ScriptedPrompt {
    inner: Arc<Mutex<Script>>,
}

#[derive(Debug, Default)]
struct Script {
    lines: VecDeque<String>,
    shown: Vec<String>,
}

impl ScriptedPrompt {
    /// A prompt that will answer these lines, in order.
    pub fn new<I, S>(lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            inner: Arc::new(Mutex::new(Script {
                lines: lines.into_iter().map(Into::into).collect(),
                shown: Vec::new(),
            })),
        }
    }

    /// Everything shown so far, prompts included.
    pub fn shown(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shown
            .clone()
    }
}

#[async_trait]
impl Prompt for ScriptedPrompt {
    fn show(&self, message: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shown
            .push(message.to_owned());
    }

    async fn read_line(&self, message: &str, max_len: usize) -> io::Result<String> {
        let mut script = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        script.shown.push(message.to_owned());
        let line = script
            .lines
            .pop_front()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "script exhausted"))?;
        let mut reader = io::Cursor::new(format!("{line}\n").into_bytes());
        read_capped_line(&mut reader, max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_capped_and_trimmed() {
        let mut input = io::Cursor::new(b"  code-123 \r\nrest".to_vec());
        assert_eq!(read_capped_line(&mut input, 100).unwrap(), "  code-123 ");
        let mut long = io::Cursor::new(vec![b'a'; 1_000_000]);
        assert_eq!(
            read_capped_line(&mut long, 4096).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[tokio::test]
    async fn only_https_and_loopback_http_are_opened() {
        let ok = |u: &str| open_in_background(Arc::new(NoBrowser), &Url::parse(u).unwrap()).is_ok();
        assert!(ok("https://idp.example/authorize"));
        assert!(ok("http://127.0.0.1:8080/authorize"));
        assert!(!ok("http://idp.example/authorize"));
        assert!(!ok("file:///etc/passwd"));
        assert!(!ok("javascript:alert(1)"));
    }
}
