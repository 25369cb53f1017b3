//! Turning untrusted server text into something safe to keep in an error or a log line.

use std::marker::PhantomData;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// The longest snippet of a response body kept in an error.
pub(crate) const SNIPPET_CHARS: usize = 200;
/// The longest `error_description` kept.
pub(crate) const DESCRIPTION_CHARS: usize = 300;

const REDACTED: &str = "[redacted]";

/// JSON members whose values are never kept, whatever the server put in them.
fn is_sensitive_member(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "code",
        "assertion",
        "verifier",
        "key",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Values the client itself sent (secret, password, refresh token, code...) that a hostile or
/// careless server might echo back, in whatever spelling it echoes them.
///
/// A server can echo what it received raw, JSON-escaped (`\"`, `\\`, `\/`, `\u0022`, surrogate
/// pairs), HTML-escaped (`&quot;`, `&#34;`, `&#x22;`), percent- or form-encoded (either hex case,
/// `+` for space), inside a Basic header (base64, standard or URL-safe, with or without padding),
/// or two of these stacked (a form body quoted in a JSON string, a percent-encoded value put in a
/// URL again). Rather than listing every combination, each secret is matched character by
/// character, every character in any of those spellings, through two layers of escaping; base64
/// spellings, which do not split by character, are listed for every alignment.
#[derive(Default, Clone)]
pub(crate) struct Secrets<'a> {
    needles: Vec<Needle>,
    _borrowed: PhantomData<&'a str>,
}

impl<'a> Secrets<'a> {
    /// Adds a secret the client sent, with every spelling a server might echo it in.
    pub(crate) fn add(&mut self, value: &'a str) {
        self.add_value(value);
    }

    /// Adds a derived secret (a device code, a client assertion, the credentials of a Basic
    /// header), matched in the same spellings as [`add`](Self::add).
    pub(crate) fn add_owned(&mut self, value: String) {
        self.add_value(&value);
    }

    /// Adds the credentials of a Basic header (`id:secret`, form-encoded, before base64) in their
    /// base64 spellings only: the secret itself is added on its own, and the client id is not
    /// secret.
    pub(crate) fn add_basic_credentials(&mut self, plain: &str) {
        for encoded in base64_spellings(plain.as_bytes()) {
            self.needles.push(Needle::spelled(&encoded));
        }
    }

    fn add_value(&mut self, value: &str) {
        // Very short values would redact ordinary words; they are not worth hiding by text match.
        if value.len() < 4 {
            return;
        }
        self.needles.push(Needle::spelled(value));
        let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let mut plains = vec![value.as_bytes().to_vec()];
        if form != value {
            plains.push(form.into_bytes());
        }
        for plain in plains {
            for encoded in base64_spellings(&plain) {
                self.needles.push(Needle::spelled(&encoded));
            }
        }
    }

    /// `text` with every echoed secret replaced by `[redacted]`, read only as far as it takes to
    /// write `limit` characters and one more (the rest is cut anyway), so that the work is
    /// bounded whatever the server sent.
    fn scrub(&self, text: &str, limit: usize) -> String {
        let bytes = text.as_bytes();
        let mut dead: Vec<Dead> = self
            .needles
            .iter()
            .map(|n| Dead::new(bytes.len(), n.chars.len()))
            .collect();
        let mut out = Vec::with_capacity(bytes.len().min(limit.saturating_mul(4)));
        let mut written = 0usize;
        let mut at = 0;
        while at < bytes.len() && written <= limit {
            // The longest match wins, so a secret that contains another is hidden whole.
            let end = self
                .needles
                .iter()
                .zip(dead.iter_mut())
                .filter(|(needle, _)| needle.may_start_with(bytes[at]))
                .filter_map(|(needle, dead)| needle.match_from(bytes, at, 0, dead))
                .max()
                .filter(|end| *end > at);
            match end {
                Some(end) => {
                    out.extend_from_slice(REDACTED.as_bytes());
                    written += REDACTED.len();
                    at = end;
                }
                None => {
                    out.push(bytes[at]);
                    // Counts characters, not bytes: continuation bytes are not counted.
                    if bytes[at] & 0xC0 != 0x80 {
                        written += 1;
                    }
                    at += 1;
                }
            }
        }
        // Finish the character a cut stopped in.
        while at < bytes.len() && bytes[at] & 0xC0 == 0x80 {
            out.push(bytes[at]);
            at += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The base64 forms of `plain` a server may echo: the whole value (a Basic header's credentials)
/// without padding (padding only follows it), and for each of the three alignments `plain` can
/// have inside longer encoded data, the characters that depend on `plain` alone. Both alphabets.
fn base64_spellings(plain: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(plain));
        for lead in 0..3usize {
            let mut shifted = vec![0u8; lead];
            shifted.extend_from_slice(plain);
            let encoded = engine.encode(&shifted);
            // Characters that mix bits of the lead bytes, or of whatever follows, are dropped.
            let first = (lead * 8).div_ceil(6);
            let last = shifted.len() * 8 / 6;
            if let Some(window) = encoded.get(first..last)
                && window.len() >= 4
            {
                out.push(window.to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One unit of a spelling: a byte, or a hex digit that may be written in either case.
#[derive(Clone, Copy)]
enum Atom {
    Byte(u8),
    Hex(u8),
}

impl Atom {
    fn matches(self, b: u8) -> bool {
        match self {
            Atom::Byte(x) => x == b,
            Atom::Hex(n) => (b as char).to_digit(16) == Some(u32::from(n)),
        }
    }
}

/// A secret as a sequence of characters, each with the spellings a server could write it in.
#[derive(Clone)]
struct Needle {
    chars: Vec<Vec<Vec<Atom>>>,
    /// The bytes a match can start with, one bit each: a cheap test that skips most positions.
    first: [u64; 4],
}

impl Needle {
    fn spelled(value: &str) -> Self {
        let chars: Vec<Vec<Vec<Atom>>> = value.chars().map(spellings).collect();
        let mut first = [0u64; 4];
        let mut set = |b: u8| first[usize::from(b / 64)] |= 1 << (b % 64);
        // Any byte may be escaped by the second layer.
        b"%+\\&".iter().for_each(|b| set(*b));
        for spelling in chars.first().into_iter().flatten() {
            match spelling.first() {
                Some(Atom::Byte(b)) => set(*b),
                Some(Atom::Hex(n)) => {
                    for b in 0..=255u8 {
                        if Atom::Hex(*n).matches(b) {
                            set(b);
                        }
                    }
                }
                None => {}
            }
        }
        Self { chars, first }
    }

    fn may_start_with(&self, b: u8) -> bool {
        self.first[usize::from(b / 64)] & (1 << (b % 64)) != 0
    }

    /// Where a spelling of the needle from its character `index` on, starting at `at` in the
    /// text, ends, if one does.
    fn match_from(&self, text: &[u8], at: usize, index: usize, dead: &mut Dead) -> Option<usize> {
        let Some(spellings) = self.chars.get(index) else {
            return Some(at);
        };
        if dead.contains(at, index) {
            return None;
        }
        for spelling in spellings {
            let found = match_spelling(text, at, spelling, &mut |end| {
                self.match_from(text, end, index + 1, dead)
            });
            if found.is_some() {
                return found;
            }
        }
        dead.insert(at, index);
        None
    }
}

/// The (position, character) pairs already known not to lead to a match: a text built to make
/// the search backtrack then costs a bounded number of steps per position. Allocated on first
/// use, as most needles fail on their first character everywhere.
struct Dead {
    bits: Vec<u64>,
    stride: usize,
    len: usize,
}

impl Dead {
    fn new(text_len: usize, chars: usize) -> Self {
        Self {
            bits: Vec::new(),
            stride: chars,
            len: text_len.saturating_add(1).saturating_mul(chars),
        }
    }

    fn slot(&self, at: usize, index: usize) -> usize {
        at.saturating_mul(self.stride).saturating_add(index)
    }

    fn contains(&self, at: usize, index: usize) -> bool {
        let slot = self.slot(at, index);
        self.bits
            .get(slot / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    fn insert(&mut self, at: usize, index: usize) {
        // The first character is tried once per position: nothing to remember.
        if index == 0 {
            return;
        }
        let slot = self.slot(at, index);
        if self.bits.is_empty() {
            self.bits = vec![0; self.len.div_ceil(64)];
        }
        if let Some(word) = self.bits.get_mut(slot / 64) {
            *word |= 1 << (slot % 64);
        }
    }
}

/// Tries every way `spelling` can be read from `at` on, each of its bytes written in the text as
/// itself or escaped once more (the second layer), and calls `then` with where it ends; the first
/// `Some` from `then` is the answer.
fn match_spelling(
    text: &[u8],
    at: usize,
    spelling: &[Atom],
    then: &mut dyn FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    if spelling.is_empty() {
        return then(at);
    }
    for Decoded { bytes, len, used } in decodings(text, at).into_iter().flatten() {
        let bytes = &bytes[..len];
        if bytes.len() <= spelling.len()
            && spelling.iter().zip(bytes).all(|(atom, b)| atom.matches(*b))
        {
            let found = match_spelling(text, at + used, &spelling[bytes.len()..], then);
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// One escaped unit of text: the bytes it stands for (`bytes[..len]`) and its length in the text.
#[derive(Clone, Copy)]
struct Decoded {
    bytes: [u8; 4],
    len: usize,
    used: usize,
}

impl Decoded {
    fn byte(b: u8, used: usize) -> Self {
        Self {
            bytes: [b, 0, 0, 0],
            len: 1,
            used,
        }
    }

    fn char(c: char, used: usize) -> Self {
        let mut bytes = [0; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Self { bytes, len, used }
    }
}

/// The ways the text at `at` can be read as one escaped unit, escapes first, the raw byte last.
fn decodings(text: &[u8], at: usize) -> [Option<Decoded>; 3] {
    let mut out = [None; 3];
    let Some(&first) = text.get(at) else {
        return out;
    };
    let rest = &text[at + 1..];
    match first {
        b'%' => {
            out[0] = hex_value(rest.get(..2)).map(|b| Decoded::byte(b as u8, 3));
        }
        b'+' => out[0] = Some(Decoded::byte(b' ', 1)),
        b'\\' => {
            let simple = match rest.first() {
                Some(&c @ (b'"' | b'\\' | b'/' | b'\'')) => Some(c),
                Some(b'b') => Some(0x08),
                Some(b'f') => Some(0x0c),
                Some(b'n') => Some(b'\n'),
                Some(b'r') => Some(b'\r'),
                Some(b't') => Some(b'\t'),
                _ => None,
            };
            out[0] = simple.map(|c| Decoded::byte(c, 2));
            out[1] = json_unicode(rest).map(|(c, len)| Decoded::char(c, len + 1));
        }
        b'&' => {
            out[0] = html_entity(rest).map(|(c, len)| Decoded::char(c, len + 1));
        }
        _ => {}
    }
    out[2] = Some(Decoded::byte(first, 1));
    out
}

fn utf8(c: char) -> Vec<u8> {
    c.to_string().into_bytes()
}

fn hex_value(digits: Option<&[u8]>) -> Option<u32> {
    let digits = std::str::from_utf8(digits?).ok()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// `uXXXX` (after the backslash), or a surrogate pair `uD83D\uDE00`: the character and the
/// length read.
fn json_unicode(rest: &[u8]) -> Option<(char, usize)> {
    if rest.first() != Some(&b'u') {
        return None;
    }
    let unit = hex_value(rest.get(1..5))?;
    if (0xD800..0xDC00).contains(&unit) && rest.get(5..7) == Some(b"\\u") {
        let low = hex_value(rest.get(7..11))?;
        if (0xDC00..0xE000).contains(&low) {
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return char::from_u32(c).map(|c| (c, 11));
        }
    }
    char::from_u32(unit).map(|c| (c, 5))
}

/// `name;`, `#NN;` or `#xHH;` (after the ampersand): the character and the length read.
fn html_entity(rest: &[u8]) -> Option<(char, usize)> {
    let end = rest.iter().take(12).position(|b| *b == b';')?;
    let body = std::str::from_utf8(&rest[..end]).ok()?;
    let c = match body {
        "quot" => '"',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "apos" => '\'',
        "sol" => '/',
        "bsol" => '\\',
        "plus" => '+',
        "percnt" => '%',
        "equals" => '=',
        "nbsp" => ' ',
        _ => {
            let number = body.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => hex_value(Some(hex.as_bytes()))?,
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                    number.parse().ok()?
                }
                None => return None,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

/// The spellings of one character a server may write after one layer of escaping: JSON, HTML,
/// percent (either hex case, `+` for space), or itself. Each is matched again through a second
/// layer (see [`decodings`]).
fn spellings(c: char) -> Vec<Vec<Atom>> {
    let bytes = utf8(c);
    let literal = |s: &str| s.bytes().map(Atom::Byte).collect::<Vec<_>>();
    let mut out = Vec::new();
    // JSON
    match c {
        // `\'` is not JSON, but JavaScript string escapers write it.
        '"' | '\\' | '/' | '\'' => out.push(vec![Atom::Byte(b'\\'), Atom::Byte(bytes[0])]),
        '\u{8}' => out.push(literal("\\b")),
        '\u{c}' => out.push(literal("\\f")),
        '\n' => out.push(literal("\\n")),
        '\r' => out.push(literal("\\r")),
        '\t' => out.push(literal("\\t")),
        _ => {}
    }
    let mut units = [0u16; 2];
    let mut json = Vec::new();
    for unit in c.encode_utf16(&mut units) {
        json.extend([Atom::Byte(b'\\'), Atom::Byte(b'u')]);
        json.extend(
            (0..4)
                .rev()
                .map(|i| Atom::Hex(((*unit >> (i * 4)) & 0xf) as u8)),
        );
    }
    out.push(json);
    // HTML
    let named = match c {
        '"' => &["&quot;"][..],
        '&' => &["&amp;"][..],
        '<' => &["&lt;"][..],
        '>' => &["&gt;"][..],
        '\'' => &["&apos;", "&#039;"][..],
        _ => &[][..],
    };
    out.extend(named.iter().map(|n| literal(n)));
    out.push(literal(&format!("&#{};", u32::from(c))));
    let mut hex_entity = literal("&#x");
    hex_entity.extend(hex_digits(u32::from(c)));
    hex_entity.push(Atom::Byte(b';'));
    out.push(hex_entity);
    // Percent and form encoding
    let mut percent = Vec::new();
    for b in &bytes {
        percent.extend([Atom::Byte(b'%'), Atom::Hex(b >> 4), Atom::Hex(b & 0xf)]);
    }
    out.push(percent);
    if c == ' ' {
        out.push(literal("+"));
    }
    out.push(bytes.into_iter().map(Atom::Byte).collect());
    out
}

/// `n` in hex digits, without leading zeros.
fn hex_digits(n: u32) -> Vec<Atom> {
    let mut digits: Vec<Atom> = (0..8)
        .rev()
        .map(|i| ((n >> (i * 4)) & 0xf) as u8)
        .skip_while(|d| *d == 0)
        .map(Atom::Hex)
        .collect();
    if digits.is_empty() {
        digits.push(Atom::Hex(0));
    }
    digits
}

/// A short, printable, redacted excerpt of a response body.
pub(crate) fn snippet(body: &[u8], secrets: &Secrets<'_>) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(mut v) => {
            redact_json(&mut v);
            v.to_string()
        }
        // Broken or cut-off JSON, a form body, `key: value` text: redact by shape instead.
        Err(_) => redact_text(&text),
    };
    clean(&secrets.scrub(&text, SNIPPET_CHARS), SNIPPET_CHARS)
}

/// Server-provided free text (an `error_description`), shortened and redacted.
pub(crate) fn server_text(text: &str, secrets: &Secrets<'_>) -> String {
    clean(&secrets.scrub(text, DESCRIPTION_CHARS), DESCRIPTION_CHARS)
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive_member(k) && !v.is_null() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Redacts the value after every sensitive-looking name followed by `:` or `=` (optionally
/// quoted), for bodies that are not valid JSON: `{"access_token":"..."` cut off, or
/// `access_token=...&...`. Quoted values end at their closing quote, `{...}`/`[...]` at the
/// matching bracket, bare values at a delimiter. Indices only ever stop at ASCII bytes or the
/// end, so every slice is on a character boundary.
fn redact_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let word = is_word(bytes[i]);
        while i < bytes.len() && is_word(bytes[i]) == word {
            i += 1;
        }
        out.push_str(&text[start..i]);
        if !word || !is_sensitive_member(&text[start..i]) {
            continue;
        }
        let mut j = i;
        if j < bytes.len() && matches!(bytes[j], b'"' | b'\'') {
            j += 1;
        }
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        if j >= bytes.len() || !matches!(bytes[j], b':' | b'=') {
            continue;
        }
        j += 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        let (value_start, value_end) = value_span(bytes, j);
        if value_end > value_start {
            out.push_str(&text[i..value_start]);
            out.push_str(REDACTED);
            i = value_end;
        }
    }
    out
}

/// Where the value starting at `at` begins and ends (quotes excluded, brackets included).
fn value_span(bytes: &[u8], at: usize) -> (usize, usize) {
    match bytes.get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let mut k = at + 1;
            while k < bytes.len() && bytes[k] != quote {
                k += if bytes[k] == b'\\' { 2 } else { 1 };
            }
            (at + 1, k.min(bytes.len()))
        }
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            for (k, b) in bytes.iter().enumerate().skip(at) {
                match b {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return (at, k + 1);
                        }
                    }
                    _ => {}
                }
            }
            (at, bytes.len())
        }
        _ => {
            let end = bytes[at..]
                .iter()
                .position(|b| b"&,;}]<>\"' \t\r\n".contains(b))
                .map_or(bytes.len(), |p| at + p);
            (at, end)
        }
    }
}

/// Replaces control characters and cuts to `max` characters on a character boundary.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_that_look_secret_are_redacted() {
        let s = snippet(
            br#"{"access_token":"AT-123","nested":{"refresh_token":"RT"},"ok":1}"#,
            &Secrets::default(),
        );
        assert!(!s.contains("AT-123") && !s.contains("\"RT\""), "{s}");
        assert!(s.contains("\"ok\":1"));
    }

    #[test]
    fn token_values_are_redacted_in_bodies_that_are_not_json() {
        for body in [
            r#"{"access_token": "AT-1 2", "refresh_token":"RT-3\"4", "#,
            "access_token=AT-1%202&token_type=bearer&refresh_token=RT-3",
            "<p>refresh_token: RT-3</p> access_token = {\"v\":\"AT-1\"}",
            "x_api_key='AT-1' ok",
        ] {
            let s = snippet(body.as_bytes(), &Secrets::default());
            assert!(!s.contains("AT-1") && !s.contains("RT-3"), "{s}");
            assert!(s.contains(REDACTED), "{s}");
        }
        let s = snippet("a=1&code=".as_bytes(), &Secrets::default());
        assert_eq!(s, "a=1&code=");
    }

    #[test]
    fn echoed_secrets_are_redacted_in_plain_text() {
        let mut secrets = Secrets::default();
        secrets.add("hunter22");
        let s = snippet(b"<html>bad password hunter22</html>", &secrets);
        assert!(!s.contains("hunter22"));
    }

    /// Every spelling of `secret` a server can plausibly echo.
    fn echoes(secret: &str) -> Vec<String> {
        let json = serde_json::to_string(secret).unwrap();
        let json = json.trim_matches('"').to_owned();
        let ascii_json: String = secret
            .encode_utf16()
            .map(|u| format!("\\u{u:04x}"))
            .collect();
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let lower_percent: String = secret
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02x}"),
            })
            .collect();
        let html = secret
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\'', "&#39;");
        let basic = format!("secrets-test:{form}");
        let mut out = vec![
            secret.to_owned(),
            json.clone(),
            ascii_json
                .replace("\\u00", "\\U00")
                .replace("\\U00", "\\u00"),
            ascii_json.to_uppercase().replace("\\U", "\\u"),
            form.clone(),
            lower_percent.clone(),
            html,
            serde_json::to_string(&form).unwrap(),
            serde_json::to_string(&json).unwrap(),
            form.replace('%', "%25"),
            url::form_urlencoded::byte_serialize(json.as_bytes()).collect(),
        ];
        for engine in [&base64::engine::general_purpose::STANDARD, &URL_SAFE_NO_PAD] {
            out.push(engine.encode(&basic));
            out.push(engine.encode(secret));
            out.push(engine.encode(format!("x{secret}y")));
            out.push(engine.encode(format!("xy{secret}")));
        }
        let php = base64::engine::general_purpose::STANDARD
            .encode(&basic)
            .replace('/', "\\/");
        out.push(php);
        out
    }

    #[test]
    fn every_spelling_of_an_echoed_secret_is_redacted() {
        for secret in [
            "a\"b\\c+d%e&f=g h~é<>'",
            "hunter2/\u{1F600}\tx",
            "SENTINEL-0123456789",
        ] {
            let mut secrets = Secrets::default();
            secrets.add(secret);
            for echo in echoes(secret) {
                let text = format!("you sent <{echo}> and {echo}");
                let scrubbed = secrets.scrub(&text, usize::MAX);
                assert_eq!(
                    scrubbed.matches(REDACTED).count(),
                    2,
                    "{echo:?} -> {scrubbed:?}"
                );
                assert!(scrubbed.starts_with("you sent <"), "{scrubbed:?}");
            }
        }
    }

    #[test]
    fn a_text_built_to_make_the_search_backtrack_is_cheap() {
        let mut secrets = Secrets::default();
        secrets.add("\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\!");
        let text = "\\".repeat(64 * 1024);
        let start = std::time::Instant::now();
        let _ = snippet(text.as_bytes(), &secrets);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let text = "lorem ipsum dolor sit amet ".repeat(2400);
        let start = std::time::Instant::now();
        let _ = secrets.scrub(&text, usize::MAX);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn snippets_are_short_and_printable() {
        let body = "é\r\n".repeat(10_000);
        let s = snippet(body.as_bytes(), &Secrets::default());
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
        assert!(!s.contains('\n') && !s.contains('\r'));
    }
}
