//! The pages the loopback server shows in the person's browser at the end of a sign-in: what
//! they say, how they look, and the headers that keep them inert (SECURITY.md rule 9).
//!
//! Every page is one self-contained HTML document: the app's name, a heading that says what
//! happened, a sentence on what to do next. It reads on a phone and on a desktop (a viewport
//! meta and a fluid card) and follows the system's light or dark mode (`prefers-color-scheme`).
//! It loads nothing and runs nothing: no script, no font, image or style sheet from anywhere.
//! Its one `<style>` element is allowed by its SHA-256 hash in the `Content-Security-Policy`
//! (`default-src 'none'; style-src 'sha256-…'`), so any other style or script a bug might let
//! in is refused by the browser. Every piece of text put into a page is HTML-escaped, and the
//! only text that comes from the authorization server is its (shortened) `error` code; its
//! `error_description` is never shown (rule 4), since whoever sent the person here could have
//! written it.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode};

/// What the person sees in the browser when the sign-in comes back to the loopback server.
///
/// By default the pages speak of "the application". Name your app, and say where to go next
/// if "return to the application" is not the best advice:
///
/// ```
/// use oauth_layer::flow::{AuthCode, auth_code::LoopbackPages};
///
/// let flow = AuthCode::new().pages(
///     LoopbackPages::new()
///         .app_name("my-tool")
///         .success_text("You can close this tab and return to the terminal.")
///         .failure_text("Run `my-tool login` in the terminal to try again."),
/// );
/// # let _ = flow;
/// ```
///
/// After a successful sign-in the page says "You’re signed in to my-tool" and the success
/// text. A cancelled or refused sign-in says so (with the server's `error` code for
/// support, never its free-text description), followed by the failure text. An answer that
/// does not belong to the sign-in in progress (an old tab, a link used twice) says the link
/// has expired or was already used; the sign-in goes on. All text is plain text: it is
/// HTML-escaped.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LoopbackPages {
    app_name: Option<String>,
    success_text: Option<String>,
    failure_text: Option<String>,
}

impl LoopbackPages {
    /// Pages that speak of "the application", with the default texts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The app's name, shown at the top of every page and in its sentences ("You’re signed in
    /// to my-tool"). Plain text; an empty name is the same as none.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.app_name = (!name.trim().is_empty()).then_some(name);
        self
    }

    /// What to do after a successful sign-in (default: "You can close this tab and return to
    /// the application."). Plain text.
    pub fn success_text(mut self, text: impl Into<String>) -> Self {
        self.success_text = Some(text.into());
        self
    }

    /// What to do after a sign-in that failed: cancelled, refused or unusable (default: "You
    /// can close this tab. To try again, return to the application and sign in again.").
    /// Plain text. The reason is the crate's own sentence above it.
    pub fn failure_text(mut self, text: impl Into<String>) -> Self {
        self.failure_text = Some(text.into());
        self
    }

    /// The app's name as it stands in a sentence.
    fn app(&self) -> &str {
        self.app_name.as_deref().unwrap_or("the application")
    }

    fn failure_next(&self) -> String {
        self.failure_text.clone().unwrap_or_else(|| {
            format!(
                "You can close this tab. To try again, return to {} and sign in again.",
                self.app()
            )
        })
    }

    /// The page for `page`, with its status and every header that keeps it inert.
    pub(crate) fn response(&self, page: Page) -> Response<Full<Bytes>> {
        let (status, text) = self.text(page);
        let body = self.html(&text);
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let set = |name, value| (name, HeaderValue::from_static(value));
        for (name, value) in [
            set(header::CONTENT_TYPE, "text/html; charset=utf-8"),
            set(header::CACHE_CONTROL, "no-store"),
            set(header::REFERRER_POLICY, "no-referrer"),
            set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            set(header::X_FRAME_OPTIONS, "DENY"),
            set(header::CONNECTION, "close"),
        ] {
            headers.insert(name, value);
        }
        headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        response
    }

    /// The status and the words of `page`, not yet escaped.
    fn text(&self, page: Page) -> (StatusCode, Text) {
        let status = match &page {
            Page::SignedIn => StatusCode::OK,
            Page::NotFound => StatusCode::NOT_FOUND,
            Page::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Page::Over => StatusCode::SERVICE_UNAVAILABLE,
            Page::Cancelled
            | Page::Refused(_)
            | Page::Unusable
            | Page::Failed
            | Page::NotThisSignIn
            | Page::BadRequest => StatusCode::BAD_REQUEST,
        };
        let app = self.app();
        let failed = |heading: &str, message: String, detail: Option<String>| Text {
            tone: Tone::Failure,
            title: heading.to_owned(),
            heading: heading.to_owned(),
            message,
            next: self.failure_next(),
            detail,
        };
        let text = match page {
            Page::SignedIn => Text {
                tone: Tone::Success,
                title: "Signed in".to_owned(),
                heading: match &self.app_name {
                    Some(name) => format!("You’re signed in to {name}"),
                    None => "You’re signed in".to_owned(),
                },
                message: format!("{app} has received your sign-in."),
                next: self
                    .success_text
                    .clone()
                    .unwrap_or_else(|| format!("You can close this tab and return to {app}.")),
                detail: None,
            },
            Page::Cancelled => failed(
                "Sign-in was cancelled",
                format!("The sign-in to {app} was cancelled, so {app} has not been given access."),
                None,
            ),
            Page::Refused(code) => failed(
                "Sign-in failed",
                format!("The sign-in server did not let {app} sign you in."),
                Some(code),
            ),
            Page::Unusable => failed(
                "Sign-in failed",
                format!(
                    "The sign-in server sent an answer {app} cannot use, so you are not signed in."
                ),
                None,
            ),
            Page::Failed => failed(
                "Sign-in failed",
                format!("Something went wrong while signing in to {app}."),
                None,
            ),
            Page::NotThisSignIn => Text {
                tone: Tone::Notice,
                title: "Link expired".to_owned(),
                heading: "This sign-in link has expired or was already used".to_owned(),
                message: format!("It does not belong to the sign-in {app} is waiting for."),
                next: format!(
                    "If you are still signing in, finish in the newest tab {app} opened, or \
                     start the sign-in again from {app}."
                ),
                detail: None,
            },
            Page::Over => Text {
                tone: Tone::Notice,
                title: "Sign-in over".to_owned(),
                heading: "This sign-in is over".to_owned(),
                message: format!("{app} is no longer waiting for this sign-in."),
                next: format!("If you still need to sign in, start again from {app}."),
                detail: None,
            },
            Page::NotFound | Page::MethodNotAllowed | Page::BadRequest => Text {
                tone: Tone::Notice,
                title: "Nothing here".to_owned(),
                heading: "Nothing here".to_owned(),
                message: format!("This address only receives the sign-in for {app}."),
                next: "You can close this tab.".to_owned(),
                detail: None,
            },
        };
        (status, text)
    }

    fn html(&self, text: &Text) -> String {
        let label = self.app_name.as_deref().unwrap_or("Sign-in");
        let title = match &self.app_name {
            Some(name) => format!("{} · {name}", text.title),
            None => text.title.clone(),
        };
        let (class, icon) = match text.tone {
            Tone::Success => ("ok", ICON_CHECK),
            Tone::Failure => ("fail", ICON_CROSS),
            Tone::Notice => ("notice", ICON_NOTICE),
        };
        let detail = text.detail.as_deref().map_or(String::new(), |code| {
            format!(
                "<p class=\"detail\">Error code from the sign-in server: <code>{}</code></p>\n",
                escape(code)
            )
        });
        format!(
            "<!DOCTYPE html>\n\
             <html lang=\"en\">\n\
             <head>\n\
             <meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <title>{title}</title>\n\
             <style>{STYLE}</style>\n\
             </head>\n\
             <body>\n\
             <main class=\"{class}\">\n\
             <p class=\"app\">{label}</p>\n\
             <div class=\"mark\">{icon}</div>\n\
             <h1>{heading}</h1>\n\
             <p class=\"message\">{message}</p>\n\
             <p class=\"next\">{next}</p>\n\
             {detail}\
             </main>\n\
             </body>\n\
             </html>\n",
            title = escape(&title),
            label = escape(label),
            heading = escape(&text.heading),
            message = escape(&capitalized(&text.message)),
            next = escape(&text.next),
        )
    }
}

/// Which page to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    /// The code arrived.
    SignedIn,
    /// The person (or the server for them) cancelled: `error=access_denied`.
    Cancelled,
    /// The server refused with this `error` code (as sent, shortened; escaped when shown).
    Refused(String),
    /// The answer was for this sign-in but could not be used (no code, a wrong `iss`).
    Unusable,
    /// Any other failure that ends the sign-in.
    Failed,
    /// An answer that does not belong to the sign-in in progress: a wrong, used or missing
    /// state, or one a provider's own check refused. The sign-in goes on.
    NotThisSignIn,
    /// The sign-in is no longer waiting.
    Over,
    NotFound,
    MethodNotAllowed,
    /// A request that does not name us (DNS rebinding).
    BadRequest,
}

impl Page {
    /// The page for an answer that ended the sign-in with `error`.
    pub(crate) fn failure(error: &Error) -> Self {
        match error {
            Error::AuthorizationDenied(e) if e.code == ErrorCode::AccessDenied => Self::Cancelled,
            Error::AuthorizationDenied(e) => Self::Refused(shortened(e.code.as_str(), 64)),
            Error::MalformedCallback(_) => Self::Unusable,
            _ => Self::Failed,
        }
    }
}

/// How a page feels: its colour and mark.
#[derive(Debug, Clone, Copy)]
enum Tone {
    Success,
    Failure,
    Notice,
}

/// A page's words, before escaping.
struct Text {
    tone: Tone,
    title: String,
    heading: String,
    message: String,
    next: String,
    detail: Option<String>,
}

/// The pages' one style sheet. Its exact text is hashed into the `Content-Security-Policy`:
/// change a byte and the hash follows, since both come from this constant.
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#ffffff;--text:#1f2328;--muted:#59636e;\
--line:#d8dee4;--ok:#1a7f37;--ok-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;\
--notice:#9a6700;--notice-bg:#fff8c5}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--text:#e6edf3;\
--muted:#9198a1;--line:#30363d;--ok:#3fb950;--ok-bg:#12261e;--fail:#f85149;--fail-bg:#2d1214;\
--notice:#d29922;--notice-bg:#272115}}\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
padding:24px 16px;background:var(--bg);color:var(--text);\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
overflow-wrap:anywhere}\
main{width:100%;max-width:480px;padding:36px 32px;background:var(--card);\
border:1px solid var(--line);border-radius:16px;text-align:center;\
box-shadow:0 1px 2px rgba(0,0,0,.04),0 8px 24px rgba(0,0,0,.06)}\
.app{margin:0 0 24px;font-size:13px;font-weight:600;letter-spacing:.06em;\
text-transform:uppercase;color:var(--muted)}\
.mark{display:flex;align-items:center;justify-content:center;width:64px;height:64px;\
margin:0 auto 20px;border-radius:50%}\
.mark svg{width:32px;height:32px;fill:none;stroke:currentColor;stroke-width:2.5;\
stroke-linecap:round;stroke-linejoin:round}\
.ok .mark{color:var(--ok);background:var(--ok-bg)}\
.fail .mark{color:var(--fail);background:var(--fail-bg)}\
.notice .mark{color:var(--notice);background:var(--notice-bg)}\
.notice .mark svg{stroke-width:3}\
h1{margin:0 0 12px;font-size:22px;line-height:1.3;font-weight:650;text-wrap:balance}\
p{margin:0 0 8px;text-wrap:pretty}\
.next{color:var(--muted)}\
.detail{margin:20px 0 0;padding-top:16px;border-top:1px solid var(--line);font-size:13px;\
color:var(--muted)}\
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--text)}\
@media (max-width:480px){body{padding:16px 12px;align-items:flex-start}\
main{margin-top:8vh;padding:28px 20px}h1{font-size:20px}}";

/// The policy every page is sent with: nothing but the one style sheet above.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    // Invariant: base64, quotes, letters and punctuation only, all visible ASCII.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// The marks, drawn inline (no image to load). Their look comes from the style sheet.
const ICON_CHECK: &str =
    "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"M5 12.5l4.5 4.5L19 7.5\"/></svg>";
const ICON_CROSS: &str =
    "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"M7 7l10 10M17 7L7 17\"/></svg>";
const ICON_NOTICE: &str =
    "<svg viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"M12 6v8M12 18.5v.01\"/></svg>";

/// Escapes text for an HTML text node or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A sentence that starts with the app's name ("the application" …) starts with a capital.
fn capitalized(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() && sentence.starts_with("the application") => {
            first.to_uppercase().chain(chars).collect()
        }
        _ => sentence.to_owned(),
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_style_sheet() {
        let csp = CSP.to_str().unwrap();
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
        let page = LoopbackPages::new().html(&LoopbackPages::new().text(Page::SignedIn).1);
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn sentences_that_start_with_the_default_name_are_capitalized() {
        assert_eq!(capitalized("the application is"), "The application is");
        assert_eq!(capitalized("my-tool is"), "my-tool is");
    }

    #[test]
    fn long_codes_are_shortened() {
        assert_eq!(shortened("abcdef", 3), "abc…");
        assert_eq!(shortened("abc", 3), "abc");
    }
}
