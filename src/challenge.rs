//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), parsed into typed values.
//!
//! A protected resource that refuses a request says why in one or more `WWW-Authenticate`
//! header fields, each holding one or more challenges: a scheme (`Bearer`, `DPoP`, `Basic`, …)
//! followed by either a `token68` or a list of `name=value` parameters whose values are tokens or
//! quoted strings with backslash escapes. RFC 6750 §3 (`Bearer`), RFC 9449 §7.1 (`DPoP`),
//! RFC 9470 (step-up), RFC 9728 §5.1 (`resource_metadata`) and Microsoft Entra's continuous
//! access evaluation (`claims`) all speak through these parameters.
//!
//! [`Challenges::from_headers`] reads every challenge of every field. It is lenient (it keeps
//! what it could read from malformed input) and bounded, because the input comes from any server
//! a request was sent to:
//!
//! - at most [`MAX_HEADER_BYTES`] of header values are read, whole fields in order: the field
//!   that would go over the budget, and every field after it, is left unread;
//! - at most [`MAX_CHALLENGES`] challenges, and [`MAX_PARAMS`] parameters per challenge, are kept;
//! - a parameter value or `token68` longer than [`MAX_VALUE_LEN`] is dropped, never truncated
//!   (a cut scope or claims value would mean something else);
//! - fields that are not visible ASCII (what `HeaderValue::to_str` accepts) are skipped;
//! - parsing is one pass over the bytes: linear time, no recursion, never a panic.
//!
//! Scheme and parameter names are compared without regard to case; when a parameter appears
//! twice in one challenge the first one counts. Each field stands alone: parameters at the start
//! of a field, before any scheme, are ignored rather than added to the field before.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::WWW_AUTHENTICATE};
//! use oauth_layer::challenge::Challenges;
//!
//! let mut headers = HeaderMap::new();
//! headers.append(
//!     WWW_AUTHENTICATE,
//!     HeaderValue::from_static(r#"Bearer realm="api", error="insufficient_scope", scope="files:read files:write""#),
//! );
//! headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"DPoP algs="ES256 PS256""#));
//!
//! let challenges = Challenges::from_headers(&headers);
//! assert_eq!(challenges.len(), 2);
//! let bearer = challenges.iter().find(|c| c.is_bearer()).unwrap();
//! assert_eq!(bearer.error(), Some("insufficient_scope"));
//! assert_eq!(bearer.scopes().collect::<Vec<_>>(), ["files:read", "files:write"]);
//! let dpop = challenges.iter().find(|c| c.is_dpop()).unwrap();
//! assert_eq!(dpop.algs().collect::<Vec<_>>(), ["ES256", "PS256"]);
//! ```

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// The most bytes of `WWW-Authenticate` values read from one response (16 KiB). Real challenges
/// are a few hundred bytes; a claims challenge a few kilobytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most challenges kept from one response; the rest are ignored.
pub const MAX_CHALLENGES: usize = 32;
/// The most parameters kept per challenge; the rest are ignored.
pub const MAX_PARAMS: usize = 32;
/// The longest parameter value or `token68` kept (4 KiB); a longer one is dropped.
pub const MAX_VALUE_LEN: usize = 4 * 1024;

/// One challenge: a scheme with its parameters or its `token68`.
///
/// Parameter names are kept in lower case, at most once each (the first occurrence), in the
/// order they came. Build one with [`Challenge::new`] to render it with `Display` (as a
/// `WWW-Authenticate` value), or get them from a response with [`Challenges::from_headers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
    token68: Option<String>,
}

impl Challenge {
    /// A challenge for `scheme` (a token such as `Bearer`) without parameters.
    ///
    /// ```
    /// use oauth_layer::challenge::Challenge;
    ///
    /// let c = Challenge::new("Bearer")
    ///     .with_param("error", "invalid_token")
    ///     .with_param("error_description", r#"the "token" expired"#);
    /// assert_eq!(
    ///     c.to_string(),
    ///     r#"Bearer error="invalid_token", error_description="the \"token\" expired""#
    /// );
    /// ```
    pub fn new(scheme: impl Into<String>) -> Self {
        Self {
            scheme: scheme.into(),
            params: Vec::new(),
            token68: None,
        }
    }

    /// Adds the parameter `name` (compared without case, kept in lower case) unless the
    /// challenge already has one of that name: the first value counts, as when parsing.
    pub fn with_param(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.push_param(name.as_ref(), value.into());
        self
    }

    /// Sets the `token68` (for schemes such as `Negotiate` that carry one opaque value).
    pub fn with_token68(mut self, token68: impl Into<String>) -> Self {
        self.token68 = Some(token68.into());
        self
    }

    fn push_param(&mut self, name: &str, value: String) -> bool {
        if self.params.len() >= MAX_PARAMS || self.param(name).is_some() {
            return false;
        }
        self.params.push((name.to_ascii_lowercase(), value));
        true
    }

    /// The scheme as the server spelled it (`Bearer`, `bearer`, `DPoP`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the scheme is `Bearer` (RFC 6750), in any case.
    pub fn is_bearer(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer")
    }

    /// Whether the scheme is `DPoP` (RFC 9449), in any case.
    pub fn is_dpop(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("dpop")
    }

    /// The value of the parameter `name` (compared without case), unescaped.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter as `(name in lower case, value)`, in the order they came.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The `token68` (`Negotiate YIIB…`, `Newauth abc==`), when the challenge has one.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// `error`: `invalid_token`, `insufficient_scope`, `use_dpop_nonce`,
    /// `insufficient_user_authentication`, `insufficient_claims`, …
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// `error_description`: text for a developer, never for display to a person as markup.
    pub fn error_description(&self) -> Option<&str> {
        self.param("error_description")
    }

    /// `scope` as sent: the space-separated scopes the resource requires (RFC 6750 §3).
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// The scopes of [`scope`](Self::scope), one by one (none when it is absent).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope().unwrap_or("").split_ascii_whitespace()
    }

    /// `acr_values`: the authentication context classes a step-up must reach (RFC 9470 §3),
    /// space-separated, in order of preference.
    pub fn acr_values(&self) -> Option<&str> {
        self.param("acr_values")
    }

    /// `max_age`: how many seconds ago the person may at most have signed in (RFC 9470 §3).
    /// Only ASCII digits are a number; a number too large for `u64` saturates.
    pub fn max_age(&self) -> Option<u64> {
        let value = self.param("max_age")?.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(value.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        }))
    }

    /// `claims`: the claims a new token must satisfy, as JSON text (Microsoft Entra continuous
    /// access evaluation, after OIDC Core §5.5). Entra sends the JSON base64-encoded; this
    /// returns the decoded text when the value is base64 or base64url (padded or not) of a JSON
    /// object, else the value itself when it is a JSON object, else `None`.
    pub fn claims(&self) -> Option<String> {
        let value = self.param("claims")?.trim();
        for engine in [&LENIENT_STANDARD, &LENIENT_URL_SAFE] {
            if let Ok(bytes) = engine.decode(value)
                && let Ok(text) = String::from_utf8(bytes)
                && is_json_object(&text)
            {
                return Some(text);
            }
        }
        is_json_object(value).then(|| value.to_owned())
    }

    /// `resource_metadata`: the URL of the resource's metadata (RFC 9728 §5.1).
    pub fn resource_metadata(&self) -> Option<&str> {
        self.param("resource_metadata")
    }

    /// `algs` of a `DPoP` challenge: the proof algorithms the resource accepts (RFC 9449 §7.1),
    /// one by one (none when absent).
    pub fn algs(&self) -> impl Iterator<Item = &str> {
        self.param("algs").unwrap_or("").split_ascii_whitespace()
    }
}

/// Renders the challenge as a `WWW-Authenticate` value: `scheme token68` or
/// `scheme name="value", …` with every value a quoted string (`"` and `\` escaped), which
/// [`Challenges::from_value`] reads back to the same challenge when the scheme, the parameter
/// names and the `token68` are tokens (as they are in every challenge parsed from a response).
/// A parsed challenge may have both a `token68` and parameters after it (`Foo abc, x=y`, which
/// RFC 9110 does not allow); both are rendered then.
impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        let mut separator = " ";
        if let Some(token68) = &self.token68 {
            write!(f, " {token68}")?;
            separator = ", ";
        }
        for (name, value) in &self.params {
            f.write_str(separator)?;
            separator = ", ";
            write!(f, "{name}=\"")?;
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

/// Base64 with either padding or none, and lenient about trailing bits: servers differ.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

fn is_json_object(text: &str) -> bool {
    // serde_json bounds nesting (128 levels), so hostile JSON cannot exhaust the stack.
    matches!(
        serde_json::from_str::<serde_json::Value>(text),
        Ok(serde_json::Value::Object(_))
    )
}

/// Every challenge of a response's `WWW-Authenticate` fields, in order, read within the bounds
/// described in the [module documentation](self).
///
/// Dereferences to a slice of [`Challenge`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenges {
    list: Vec<Challenge>,
}

impl Challenges {
    /// Reads every `WWW-Authenticate` field of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut parser = Parser::default();
        let mut budget = MAX_HEADER_BYTES;
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let Some(left) = budget.checked_sub(value.len()) else {
                break;
            };
            budget = left;
            if let Ok(text) = value.to_str() {
                parser.field(text.as_bytes());
            }
        }
        Self { list: parser.out }
    }

    /// Reads one `WWW-Authenticate` field value (which may hold several challenges); one over
    /// [`MAX_HEADER_BYTES`] is not read at all.
    ///
    /// ```
    /// use oauth_layer::challenge::Challenges;
    ///
    /// let c = Challenges::from_value(r#"Basic realm="x", Bearer error="invalid_token""#);
    /// assert_eq!(c.len(), 2);
    /// assert_eq!(c[1].error(), Some("invalid_token"));
    /// ```
    pub fn from_value(value: &str) -> Self {
        let mut parser = Parser::default();
        if value.len() <= MAX_HEADER_BYTES {
            parser.field(value.as_bytes());
        }
        Self { list: parser.out }
    }

    /// The challenges as a vector.
    pub fn into_vec(self) -> Vec<Challenge> {
        self.list
    }
}

impl std::ops::Deref for Challenges {
    type Target = [Challenge];

    fn deref(&self) -> &[Challenge] {
        &self.list
    }
}

impl IntoIterator for Challenges {
    type Item = Challenge;
    type IntoIter = std::vec::IntoIter<Challenge>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

impl<'a> IntoIterator for &'a Challenges {
    type Item = &'a Challenge;
    type IntoIter = std::slice::Iter<'a, Challenge>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The lenient one-pass parser. It works on bytes, so text that is not ASCII (possible through
/// [`Challenges::from_value`]) is skipped byte by byte without ever slicing inside a character,
/// and every step consumes at least one byte.
#[derive(Default)]
struct Parser {
    out: Vec<Challenge>,
    /// Set once [`MAX_CHALLENGES`] were read: what follows would belong to a challenge that was
    /// not kept, so nothing more is read.
    full: bool,
}

impl Parser {
    fn field(&mut self, bytes: &[u8]) {
        // Each field stands alone: parameters before its first scheme belong to no challenge,
        // not to the last one of the field before.
        let first = self.out.len();
        // Whether the last challenge may still take a token68: right after its scheme, with
        // only whitespace in between. A new field starts no challenge of its own.
        let mut fresh = false;
        let mut at = 0;
        while at < bytes.len() && !self.full {
            let skipped = skip(bytes, at, |b| b == b',' || is_ws(b));
            if bytes[at..skipped].contains(&b',') {
                fresh = false;
            }
            at = skipped;
            if at >= bytes.len() {
                break;
            }
            let word_end = skip(bytes, at, is_token_char);
            if word_end == at {
                // Not the start of anything we read (a stray quote, `=`, a control byte).
                at += 1;
                continue;
            }
            let word = &bytes[at..word_end];
            let after_ws = skip(bytes, word_end, is_ws);
            if bytes.get(after_ws) != Some(&b'=') {
                at = word_end;
                if fresh && is_token68(word) {
                    self.set_token68(word);
                } else {
                    self.start(word);
                }
                fresh = !self.out.is_empty() && !self.full && self.last_is_bare();
                continue;
            }
            let after_eq = after_ws + 1;
            let value_at = skip(bytes, after_eq, is_ws);
            let padding = bytes.get(after_eq) == Some(&b'=')
                || value_at >= bytes.len()
                || bytes[value_at] == b',';
            if padding {
                // `abc==` or `abc=` at the end of a challenge: a token68 with its padding.
                let end = skip(bytes, after_eq, |b| b == b'=');
                if fresh && is_token68(word) {
                    self.set_token68(&bytes[at..end]);
                }
                fresh = false;
                at = end;
                continue;
            }
            let (value, next) = read_value(bytes, value_at);
            if self.out.len() > first {
                self.param(word, value);
            }
            fresh = false;
            at = next;
        }
    }

    fn last_is_bare(&self) -> bool {
        self.out
            .last()
            .is_some_and(|c| c.params.is_empty() && c.token68.is_none())
    }

    fn start(&mut self, scheme: &[u8]) {
        if self.out.len() >= MAX_CHALLENGES {
            self.full = true;
            return;
        }
        self.out.push(Challenge::new(text(scheme)));
    }

    fn set_token68(&mut self, token68: &[u8]) {
        if let Some(last) = self.out.last_mut()
            && token68.len() <= MAX_VALUE_LEN
        {
            last.token68 = Some(text(token68));
        }
    }

    fn param(&mut self, name: &[u8], value: Vec<u8>) {
        if let Some(last) = self.out.last_mut()
            && value.len() <= MAX_VALUE_LEN
        {
            last.push_param(&text(name), text(&value));
        }
    }
}

/// The index of the first byte at or after `at` that is not `what`.
fn skip(bytes: &[u8], at: usize, what: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| !what(b)))
        .map_or(bytes.len(), |n| at + n)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `tchar` (RFC 9110 §5.6.2), plus `/` so that a `token68` reads as one word.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

/// `token68` without its padding (RFC 9110 §11.2).
fn is_token68(word: &[u8]) -> bool {
    word.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A parameter value at `at`: a quoted string (escapes undone; an unterminated one runs to the
/// end) or a token. Returns the value and where reading goes on. Linear in what it reads.
fn read_value(bytes: &[u8], at: usize) -> (Vec<u8>, usize) {
    if bytes.get(at) != Some(&b'"') {
        let end = skip(bytes, at, is_token_char);
        return (bytes[at..end].to_vec(), end);
    }
    let mut value = Vec::new();
    let mut i = at + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return (value, i + 1),
            b'\\' => {
                if let Some(&escaped) = bytes.get(i + 1) {
                    value.push(escaped);
                }
                i += 2;
            }
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    (value, bytes.len())
}

/// Bytes cut only at ASCII delimiters of valid UTF-8 are valid UTF-8; `from_utf8_lossy` keeps
/// this total anyway.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(value: &str) -> Vec<Challenge> {
        Challenges::from_value(value).into_vec()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn quoted_values_with_escapes_and_commas() {
        let c =
            parse(r#"Bearer realm="a \"quoted\", realm", error="invalid_token", Newauth abc=="#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].error(), Some("invalid_token"));
        assert_eq!(c[0].realm(), Some(r#"a "quoted", realm"#));
        assert_eq!(c[1].scheme(), "Newauth");
        assert_eq!(c[1].token68(), Some("abc=="));
        assert_eq!(c[1].params().count(), 0);
    }

    #[test]
    fn several_fields_and_several_challenges_per_field() {
        let c = Challenges::from_headers(&headers(&[
            r#"Basic realm="x", Bearer error="invalid_token""#,
            r#"DPoP algs="ES256", error="use_dpop_nonce""#,
        ]));
        let schemes: Vec<_> = c.iter().map(Challenge::scheme).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "DPoP"]);
        assert_eq!(c[2].error(), Some("use_dpop_nonce"));
        assert!(c[2].is_dpop() && c[1].is_bearer() && !c[0].is_bearer());
    }

    #[test]
    fn names_are_case_insensitive_and_the_first_duplicate_wins() {
        let c = parse(r#"bEaReR ERROR=invalid_token, Error="insufficient_scope", Scope=a"#);
        assert_eq!(c.len(), 1);
        assert!(c[0].is_bearer());
        assert_eq!(c[0].scheme(), "bEaReR");
        assert_eq!(c[0].error(), Some("invalid_token"));
        assert_eq!(c[0].param("SCOPE"), Some("a"));
        let names: Vec<_> = c[0].params().map(|(n, _)| n).collect();
        assert_eq!(names, ["error", "scope"]);
    }

    #[test]
    fn token68_only_right_after_the_scheme() {
        let c = parse("Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag/+x, Basic realm=x");
        assert_eq!(c[0].token68(), Some("YIIBhgYGKwYBBQUCoIIBejCCAXag/+x"));
        assert_eq!(c[1].scheme(), "Basic");
        // After a comma, a bare word is a new scheme, not a token68.
        let c = parse("Negotiate, Kerberos");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].token68(), None);
        // After a parameter, too.
        let c = parse("Basic realm=x Bearer");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].scheme(), "Bearer");
        // `abc=` at the end of a challenge is a padded token68; in the middle, a parameter.
        assert_eq!(parse("Foo abc=")[0].token68(), Some("abc="));
        assert_eq!(parse("Foo abc=def")[0].param("abc"), Some("def"));
        // A token68 does not continue into a new field, nor do parameters.
        let c = Challenges::from_headers(&headers(&["Basic", "abc"]));
        assert_eq!(c.len(), 2);
        let c = Challenges::from_headers(&headers(&[
            r#"Bearer realm="x""#,
            r#"error="invalid_request", DPoP"#,
        ]));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].error(), None);
        assert_eq!(c[1].params().count(), 0);
    }

    #[test]
    fn whitespace_around_equals_and_unterminated_quotes() {
        let c = parse("Bearer error = \"invalid_token\" ,  scope= \"a b");
        assert_eq!(c[0].error(), Some("invalid_token"));
        assert_eq!(c[0].scope(), Some("a b"));
        assert_eq!(c[0].scopes().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn typed_accessors() {
        let c = parse(concat!(
            r#"Bearer error="insufficient_user_authentication", acr_values="urn:mfa phr", "#,
            r#"max_age=300, resource_metadata="https://api.example/.well-known/oauth-protected-resource""#
        ));
        assert_eq!(c[0].acr_values(), Some("urn:mfa phr"));
        assert_eq!(c[0].max_age(), Some(300));
        assert_eq!(
            c[0].resource_metadata(),
            Some("https://api.example/.well-known/oauth-protected-resource")
        );
        for (raw, age) in [
            ("0", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("-1", None),
            ("+5", None),
            ("1.5", None),
            ("", None),
            ("ten", None),
        ] {
            let c = Challenge::new("Bearer").with_param("max_age", raw);
            assert_eq!(c.max_age(), age, "{raw}");
        }
        assert_eq!(Challenge::new("DPoP").algs().count(), 0);
    }

    #[test]
    fn claims_are_decoded_from_base64_or_taken_as_json() {
        let json = r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#;
        let standard = base64::engine::general_purpose::STANDARD.encode(json);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        for value in [standard.as_str(), url.as_str(), json] {
            let c = Challenge::new("Bearer").with_param("claims", value);
            assert_eq!(c.claims().as_deref(), Some(json), "{value}");
        }
        // Entra's example, as it appears in a real header.
        let c = parse(concat!(
            r#"Bearer realm="", error="insufficient_claims", "#,
            r#"claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTYwNDEwNjY1MSJ9fX0=""#
        ));
        assert_eq!(
            c[0].claims().as_deref(),
            Some(r#"{"access_token":{"nbf":{"essential":true, "value":"1604106651"}}}"#)
        );
        let not_json = base64::engine::general_purpose::STANDARD.encode("not json");
        let array = base64::engine::general_purpose::STANDARD.encode("[1]");
        for value in ["", "abc", not_json.as_str(), array.as_str(), "[1]", "{"] {
            let c = Challenge::new("Bearer").with_param("claims", value);
            assert_eq!(c.claims(), None, "{value}");
        }
    }

    #[test]
    fn display_round_trips() {
        let c = Challenge::new("Bearer")
            .with_param("realm", r#"a "b" \ c, d"#)
            .with_param("error", "");
        assert_eq!(Challenges::from_value(&c.to_string()).into_vec(), [c]);
        let n = Challenge::new("Newauth").with_token68("abc==");
        assert_eq!(Challenges::from_value(&n.to_string()).into_vec(), [n]);
        // A token68 with parameters after it (not allowed, but read): both are rendered.
        let both = parse("Foo abc, x=y");
        assert_eq!(both[0].token68(), Some("abc"));
        assert_eq!(both[0].param("x"), Some("y"));
        assert_eq!(both[0].to_string(), r#"Foo abc, x="y""#);
        assert_eq!(parse(&both[0].to_string()), both);
    }

    #[test]
    fn limits_hold() {
        let many = vec!["Bearer"; 1000].join(", ");
        assert_eq!(parse(&many).len(), MAX_CHALLENGES);
        let params: String = (0..100).map(|i| format!(" p{i}=v,")).collect();
        assert_eq!(
            parse(&format!("Bearer{params}"))[0].params().count(),
            MAX_PARAMS
        );
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        let c = parse(&format!(r#"Bearer realm="{long}", error=invalid_token"#));
        assert_eq!(c[0].realm(), None);
        assert_eq!(c[0].error(), Some("invalid_token"));
        // A field over the budget is not read, nor anything after it.
        let huge = format!("Basic realm=\"{}\"", "y".repeat(MAX_HEADER_BYTES));
        let c = Challenges::from_headers(&headers(&["Bearer", &huge, "DPoP"]));
        assert_eq!(c.len(), 1);
        assert!(Challenges::from_value(&huge).is_empty());
    }

    #[test]
    fn unreadable_fields_are_skipped() {
        let mut h = headers(&["Basic"]);
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("DPoP"));
        let schemes: Vec<_> = Challenges::from_headers(&h)
            .iter()
            .map(|c| c.scheme().to_owned())
            .collect();
        assert_eq!(schemes, ["Basic", "DPoP"]);
    }

    #[test]
    fn malformed_challenges_never_panic() {
        for s in [
            "",
            "=",
            "\"",
            "Bearer error=\"",
            "Bearer ,,,, =x",
            "é Bearer",
            "Bearer error",
            "Bearer error=",
            "\\\\\"",
            "Bearer realm=\"\\",
            "Bearer realm=\"é\\é\"",
            "é=é, Bearer é=\"é\"",
            "=====",
            "a=b=c=d",
        ] {
            let _ = parse(s);
        }
        assert_eq!(parse("é Bearer")[0].scheme(), "Bearer");
        assert_eq!(parse("Bearer realm=\"é\\é\"")[0].realm(), Some("éé"));
    }
}
