//! How interactive flows reach a person: opening a URL in a browser, reading what the person
//! pastes, and showing the device flow's code with a countdown. Each is a small trait with a real
//! default and a test double, so flows can be driven end to end in tests.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
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

// ---------------------------------------------------------------------------------------------
// The device flow's code, shown to the person
// ---------------------------------------------------------------------------------------------

/// What the person is shown in the device flow (RFC 8628 §3.2, §3.3): the code to enter, where
/// to enter it, and how long it lives. The secret device code is not part of it, so a display
/// can keep or log it freely.
///
/// The flow ([`DeviceCode`](crate::flow::DeviceCode)) hands it to a [`DeviceDisplay`];
/// [`DeviceAuthorization::prompt`](crate::flow::device::DeviceAuthorization::prompt) gives it to
/// applications that run the two steps themselves.
#[derive(Debug, Clone)]
pub struct DevicePrompt {
    pub(crate) user_code: String,
    pub(crate) verification_uri: Url,
    pub(crate) verification_uri_complete: Option<Url>,
    pub(crate) expires_in: Duration,
    pub(crate) interval: Duration,
    pub(crate) extra: Map<String, Value>,
}

impl DevicePrompt {
    /// The code the person enters at the verification URL.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the person enters the code.
    pub fn verification_uri(&self) -> &Url {
        &self.verification_uri
    }

    /// The verification URL with the code already in it, if the server sent one (for a QR code
    /// or a browser).
    pub fn verification_uri_complete(&self) -> Option<&Url> {
        self.verification_uri_complete.as_ref()
    }

    /// How long the code lives, as the server said (or the flow's default).
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// How often the flow asks whether the person has approved, before any `slow_down`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Members of the device authorization response this crate does not interpret, kept as
    /// sent (Microsoft's ready-made `message`, for one). Server text: show it without control
    /// characters.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// Shows the person the code and reports the wait.
///
/// Implement it to show the code in a GUI, as a QR code, or in a log; [`TerminalDisplay`] is the
/// default and [`RecordingDisplay`] the test double.
///
/// ```
/// use oauth_layer::interact::{DeviceDisplay, DevicePrompt};
///
/// #[derive(Debug)]
/// struct Log;
///
/// impl DeviceDisplay for Log {
///     fn show(&self, prompt: &DevicePrompt) {
///         println!("go to {} and enter {}", prompt.verification_uri(), prompt.user_code());
///     }
/// }
/// ```
pub trait DeviceDisplay: fmt::Debug + Send + Sync + 'static {
    /// Shows the user code and where to enter it. Called once, before polling starts.
    fn show(&self, prompt: &DevicePrompt);

    /// Called about once a second while waiting, with the time left before the code expires.
    fn tick(&self, remaining: Duration) {
        let _ = remaining;
    }

    /// Called once when polling ends: `true` when a token was issued, `false` on any error.
    fn finish(&self, outcome: bool) {
        let _ = outcome;
    }
}

/// The default display: the code and URL on stderr, then a countdown that rewrites one line
/// (only when stderr is a terminal, so logs do not fill with it).
///
/// Server-sent text is shown without control characters, so a hostile server cannot send
/// escape sequences to the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalDisplay;

impl DeviceDisplay for TerminalDisplay {
    fn show(&self, prompt: &DevicePrompt) {
        let mut message = format!(
            "To sign in, open {} and enter the code {}",
            prompt.verification_uri(),
            printable(prompt.user_code(), 64)
        );
        if let Some(complete) = prompt.verification_uri_complete() {
            message.push_str(&format!("\n(or open {complete}, which fills in the code)"));
        }
        eprintln!("{message}");
    }

    fn tick(&self, remaining: Duration) {
        let stderr = io::stderr();
        if stderr.is_terminal() {
            let mut out = stderr.lock();
            let _ = write!(
                out,
                "\rWaiting for approval… {} left   ",
                countdown(remaining)
            );
            let _ = out.flush();
        }
    }

    fn finish(&self, outcome: bool) {
        let stderr = io::stderr();
        if stderr.is_terminal() {
            let text = if outcome {
                "Approved."
            } else {
                "Sign-in not completed."
            };
            let _ = writeln!(stderr.lock(), "\r{text:<40}");
        }
    }
}

/// `m:ss`, or `h:mm:ss` from an hour up.
fn countdown(remaining: Duration) -> String {
    let s = remaining.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `text` without control characters, cut to `max` characters.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// What a [`RecordingDisplay`] saw.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisplayEvent {
    /// [`DeviceDisplay::show`] was called with this prompt.
    Shown(Box<DevicePrompt>),
    /// [`DeviceDisplay::tick`] was called with this much time left.
    Tick(Duration),
    /// [`DeviceDisplay::finish`] was called with this outcome.
    Finished(bool),
}

/// A display that records every call: the test double for [`DeviceDisplay`], also handy to hand
/// the code to another part of an application. Clones share the record.
///
/// ```
/// use oauth_layer::flow::DeviceCode;
/// use oauth_layer::interact::RecordingDisplay;
///
/// let display = RecordingDisplay::new();
/// let flow = DeviceCode::new().display(display.clone());
/// // ... run the flow, then:
/// assert!(display.shown().is_none());
/// # let _ = flow;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecordingDisplay {
    log: Arc<Mutex<Vec<DisplayEvent>>>,
}

impl RecordingDisplay {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn events(&self) -> Vec<DisplayEvent> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last prompt shown, if any.
    pub fn shown(&self) -> Option<DevicePrompt> {
        self.events().into_iter().rev().find_map(|e| match e {
            DisplayEvent::Shown(auth) => Some(*auth),
            _ => None,
        })
    }

    /// The time left at each tick, in order.
    pub fn ticks(&self) -> Vec<Duration> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                DisplayEvent::Tick(left) => Some(left),
                _ => None,
            })
            .collect()
    }

    /// The last outcome reported, if polling has ended.
    pub fn outcome(&self) -> Option<bool> {
        self.events().into_iter().rev().find_map(|e| match e {
            DisplayEvent::Finished(ok) => Some(ok),
            _ => None,
        })
    }

    fn record(&self, event: DisplayEvent) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

impl DeviceDisplay for RecordingDisplay {
    fn show(&self, prompt: &DevicePrompt) {
        self.record(DisplayEvent::Shown(Box::new(prompt.clone())));
    }

    fn tick(&self, remaining: Duration) {
        self.record(DisplayEvent::Tick(remaining));
    }

    fn finish(&self, outcome: bool) {
        self.record(DisplayEvent::Finished(outcome));
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

    #[test]
    fn countdown_reads_like_a_clock() {
        assert_eq!(countdown(Duration::from_secs(272)), "4:32");
        assert_eq!(countdown(Duration::from_secs(9)), "0:09");
        assert_eq!(countdown(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("AB\x1b[2JCD\r\n", 64), "AB[2JCD");
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
