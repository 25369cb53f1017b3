//! What every target shares: splitting one input into fields, and the leak checks.
#![allow(dead_code)]

use base64::Engine;

/// The separator between the fields of one input: a line holding only `~`. Seeds stay readable
/// and libFuzzer finds the separator quickly (it traces comparisons).
pub const SEP: &[u8] = b"\n~\n";

/// Splits `data` into `n` fields on [`SEP`] (missing fields are empty, the last takes the rest).
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    while out.len() < n {
        out.push(&[]);
    }
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The forms a server can echo a secret the client sent in: as it is, form-encoded (`+` for a
/// space), percent-encoded, JSON-escaped.
pub fn encodings(secret: &str) -> Vec<String> {
    let form: String = url_form(secret);
    let json = serde_json::to_string(secret).unwrap_or_default();
    vec![
        secret.to_owned(),
        form.clone(),
        form.replace('+', "%20"),
        json.trim_matches('"').to_owned(),
    ]
}

fn url_form(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The credentials of an HTTP Basic header, as the client sends them.
pub fn basic(client_id: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        url_form(client_id),
        url_form(secret)
    ))
}

/// Panics (a finding) when `output` carries any of `forbidden`.
pub fn assert_no_leak(what: &str, output: &str, forbidden: &[String]) {
    for f in forbidden {
        assert!(
            f.len() < 4 || !output.contains(f.as_str()),
            "{what} leaks {f:?}: {output}"
        );
    }
}

/// `true` for `https` URLs and for `http` URLs to a loopback host.
pub fn secure_or_loopback(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}
