//! The person pastes the address their browser was sent to (httr2 and gargle's pasted code), for
//! remote shells and machines whose browser cannot reach a loopback server.

use std::io;

use async_trait::async_trait;

use super::callback::{Callback, ReceivedCode};
use super::receiver::{CodeReceiver, PreparedReceiver, ReceiveContext};
use super::request::AuthorizationRequest;
use crate::error::{Error, Result};

/// The longest paste read, in bytes (SECURITY.md rule 10). Redirect URLs are far shorter.
const MAX_PASTE_LEN: usize = 8192;

/// How many times the person may paste something that is not an authorization response at all
/// (an empty line, stray text) before the sign-in fails.
const PASTE_ATTEMPTS: u32 = 3;

/// Receives the code from the person, who pastes the address their browser was sent to after
/// signing in. For remote shells, containers and other machines whose browser cannot reach a
/// loopback server on this one.
///
/// The paste is trimmed, capped at 8 KiB and checked like any callback (SECURITY.md rules 1–5,
/// 10): a foreign or missing `state` is [`Error::StateMismatch`] and ends the sign-in, an
/// over-long paste is [`Error::MalformedCallback`]. Text that is not an authorization response
/// at all (an empty line, a stray word) is refused with a hint and asked for again, up to three
/// times. The pasted text is never echoed back or put in an error.
///
/// The redirect URI is the one configured with
/// [`AuthCode::redirect_uri`](super::AuthCode::redirect_uri), or
/// [`PasteReceiver::DEFAULT_REDIRECT_URI`] (register it with the provider). The wait ends at the flow's
/// timeout with [`Error::Timeout`].
///
/// ```no_run
/// use oauth_layer::flow::{AuthCode, auth_code::PasteReceiver};
///
/// let flow = AuthCode::new()
///     .scope("read")
///     .receiver(PasteReceiver::new());
/// # let _ = flow;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PasteReceiver {
    accept_bare_code: bool,
}

impl PasteReceiver {
    /// The redirect URI named when none is configured: `http://127.0.0.1:1410/callback`.
    /// Nothing listens there; the browser shows an error page, and the person copies the
    /// address from its address bar.
    pub const DEFAULT_REDIRECT_URI: &'static str = "http://127.0.0.1:1410/callback";

    /// A receiver that reads the pasted address from the flow's prompt; bare codes are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accept a bare code (text with no `=` that is not a URL), for providers that show
    /// the code on a page of their own instead of redirecting (Google's "out of band" page did).
    ///
    /// Off by default, because it is weaker: a bare code carries no `state`, so nothing proves
    /// it answers *this* sign-in rather than one an attacker started and tricked the person into
    /// copying (RFC 6749 §10.12). Only PKCE then binds the code to this sign-in: a code issued
    /// for another sign-in does not redeem with this one's verifier. So accepting bare codes
    /// needs PKCE: an [`AuthCode`](super::AuthCode) with `pkce(false)` and this receiver fails
    /// with [`Error::Config`] before any browser opens, and a bare code pasted in answer to a
    /// request without a PKCE verifier is refused the same way. With this off, a bare code is
    /// refused with a request to paste the whole address.
    pub fn accept_bare_code(mut self, accept: bool) -> Self {
        self.accept_bare_code = accept;
        self
    }
}

#[async_trait]
impl CodeReceiver for PasteReceiver {
    async fn prepare(&self, configured: Option<&str>) -> Result<Box<dyn PreparedReceiver>> {
        Ok(Box::new(PreparedPaste {
            redirect_uri: configured.unwrap_or(Self::DEFAULT_REDIRECT_URI).to_owned(),
            accept_bare_code: self.accept_bare_code,
        }))
    }
}

struct PreparedPaste {
    redirect_uri: String,
    accept_bare_code: bool,
}

#[async_trait]
impl PreparedReceiver for PreparedPaste {
    fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    fn shows_url(&self) -> bool {
        true
    }

    fn requires_pkce(&self) -> bool {
        self.accept_bare_code
    }

    async fn receive(
        self: Box<Self>,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode> {
        let timeout = context.timeout();
        // Waiting on a person, so real (tokio) time. A terminal read cannot be interrupted: after
        // a timeout its blocking thread stays parked on stdin until a line comes.
        match tokio::time::timeout(timeout, self.ask(request, context)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(format!(
                "no address was pasted within {timeout:?}"
            ))),
        }
    }
}

impl PreparedPaste {
    async fn ask(
        &self,
        request: &AuthorizationRequest,
        context: &ReceiveContext,
    ) -> Result<ReceivedCode> {
        let prompt = context.prompt();
        prompt.show(&format!(
            "To sign in, open this address in a browser:\n{}\n\n\
             After you approve, the browser is sent to an address starting with {} \
             (the page may fail to load; that is expected). \
             Copy that whole address from the browser's address bar and paste it here.",
            request.url(),
            self.redirect_uri,
        ));
        let mut attempt = 1;
        loop {
            let line = prompt
                .read_line(
                    "Paste the address your browser was sent to: ",
                    MAX_PASTE_LEN,
                )
                .await
                .map_err(read_error)?;
            match self.parse(&line, request) {
                Parsed::Callback(callback) => return request.check(&callback),
                Parsed::Retry(err) if attempt < PASTE_ATTEMPTS => {
                    prompt.show(&format!("{err}. Try again."));
                    attempt += 1;
                }
                Parsed::Retry(err) | Parsed::Fail(err) => return Err(err),
            }
        }
    }

    /// Turns a pasted line into a callback, or says whether asking again may help.
    fn parse(&self, line: &str, request: &AuthorizationRequest) -> Parsed {
        // The prompt caps what it reads; this holds for prompts that do not.
        if line.len() > MAX_PASTE_LEN {
            return Parsed::Fail(too_long());
        }
        let text = line.trim();
        if is_bare_code(text) {
            if !self.accept_bare_code {
                return Parsed::Retry(Error::MalformedCallback(
                    "that looks like a bare code; paste the whole address the browser was sent \
                     to, which carries the state that ties it to this sign-in"
                        .into(),
                ));
            }
            if request.verifier.is_none() {
                return Parsed::Fail(Error::config(
                    "a bare code carries no state, and this sign-in has no PKCE verifier to bind \
                     it: nothing ties it to this sign-in. Turn PKCE on to accept bare codes",
                ));
            }
            // No state came with it (see `accept_bare_code`); ours stands in so the request's
            // other checks (single use, a required `iss`) still apply.
            return Parsed::Callback(Callback::from_pairs([
                ("code", text),
                ("state", request.state()),
            ]));
        }
        match Callback::from_pasted(text) {
            Ok(callback) if answers_something(&callback) => Parsed::Callback(callback),
            Ok(_) => Parsed::Retry(Error::MalformedCallback(
                "the pasted address carries no authorization response (no code, state or error); \
                 paste the address the browser was sent to after signing in"
                    .into(),
            )),
            Err(err) => Parsed::Retry(err),
        }
    }
}

enum Parsed {
    /// Check it against the request: whatever that says ends the sign-in.
    Callback(Callback),
    /// The person pasted something unusable; ask again while attempts remain.
    Retry(Error),
    /// End the sign-in.
    Fail(Error),
}

/// Text with no `=` that is not a URL, made of visible ASCII: what a provider's own "copy this
/// code" page shows.
fn is_bare_code(text: &str) -> bool {
    !text.is_empty()
        && !text.contains('=')
        && url::Url::parse(text).is_err()
        && text.bytes().all(|b| b.is_ascii_graphic())
}

/// `true` when the callback has any of the parameters an authorization response is made of.
fn answers_something(callback: &Callback) -> bool {
    callback
        .params
        .iter()
        // `response`: a signed response (JARM) carries everything inside it.
        .any(|(k, _)| matches!(k.as_str(), "code" | "state" | "error" | "response"))
}

fn too_long() -> Error {
    Error::MalformedCallback(format!(
        "the pasted text is longer than {MAX_PASTE_LEN} bytes; paste only the address the \
         browser was sent to"
    ))
}

/// Maps a failed read. The io error's text comes from the prompt, never from the input.
fn read_error(err: io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::InvalidData => Error::MalformedCallback(format!(
            "the pasted text could not be read ({err}); paste only the address the browser was \
             sent to, at most {MAX_PASTE_LEN} bytes"
        )),
        io::ErrorKind::UnexpectedEof => Error::MalformedCallback(
            "nothing was pasted: the input ended (is anyone at the terminal?)".into(),
        ),
        _ => Error::Internal(format!("reading the pasted address failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_codes_are_told_apart_from_addresses() {
        assert!(is_bare_code("4/0AeanS0abc-def_ghi"));
        assert!(!is_bare_code(
            "http://127.0.0.1:1410/callback?code=a&state=b"
        ));
        assert!(!is_bare_code("code=a&state=b"));
        assert!(!is_bare_code("two words"));
        assert!(!is_bare_code(""));
    }
}
