//! Form bodies and query parameters as RFC 6749 §3.1 reads them, and the scopes in them
//! (§3.3).

use std::collections::HashMap;

use http::HeaderMap;
use http::StatusCode;
use http::header::CONTENT_TYPE;

use super::reply::OAuthError;

/// The parameters a request may repeat: the targets of a token exchange (RFC 8693 §2.1,
/// RFC 8707 §2).
const REPEATABLE: [&str; 2] = ["audience", "resource"];

/// The form parameters, each at most once except the [`REPEATABLE`] ones; empty values count as
/// absent (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub(super) struct Form {
    params: HashMap<String, String>,
    repeatable: HashMap<String, Vec<String>>,
}

impl Form {
    #[cfg(test)]
    pub(super) fn new(params: HashMap<String, String>) -> Self {
        Self {
            params,
            repeatable: HashMap::new(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The names of the parameters present.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.params
            .keys()
            .chain(self.repeatable.keys())
            .map(String::as_str)
    }

    /// Every value of a repeatable parameter, in the order sent.
    pub(super) fn get_all(&self, name: &str) -> &[String] {
        self.repeatable.get(name).map_or(&[], Vec::as_slice)
    }
}

pub(super) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let mut form = Form::default();
    for (name, value) in url::form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        if REPEATABLE.contains(&name.as_ref()) {
            form.repeatable
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
            continue;
        }
        if form
            .params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name:?} is repeated"
            )));
        }
    }
    Ok(form)
}

/// A `scope` parameter, normalised to single spaces; `None` when absent.
pub(super) fn requested_scope(form: &Form) -> Result<Option<String>, OAuthError> {
    let Some(raw) = form.get("scope") else {
        return Ok(None);
    };
    let scopes: Vec<&str> = raw.split(' ').filter(|s| !s.is_empty()).collect();
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let valid = |c: char| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
    if scopes.iter().any(|s| !s.chars().all(valid)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope contains characters RFC 6749 §3.3 forbids",
        ));
    }
    Ok((!scopes.is_empty()).then(|| scopes.join(" ")))
}

pub(super) fn has_scope(granted: Option<&str>, wanted: &str) -> bool {
    granted.is_some_and(|g| g.split(' ').any(|s| s == wanted))
}

/// Undoes `application/x-www-form-urlencoded` for one component: `+` is a space, `%XX` a byte.
pub(super) fn form_decode(input: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = tail.get(..2)?;
                let hex = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
                continue;
            }
            other => bytes.push(other),
        }
        rest = tail;
    }
    String::from_utf8(bytes).ok()
}

/// A query string: each parameter once (empty values count as absent, RFC 6749 §3.1), and the
/// names of those that came more than once.
pub(super) struct Query {
    pub(super) params: Form,
    pub(super) repeated: Vec<String>,
}

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Self {
        let mut params = HashMap::new();
        let mut repeatable: HashMap<String, Vec<String>> = HashMap::new();
        let mut repeated = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if REPEATABLE.contains(&name.as_ref()) {
                repeatable
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                repeated.push(name.into_owned());
            }
        }
        Self {
            params: Form { params, repeatable },
            repeated,
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    pub(super) fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_undoes_the_basic_encoding() {
        let encoded: String =
            url::form_urlencoded::byte_serialize("a:b/c+d%e&f=g h~".as_bytes()).collect();
        assert_eq!(form_decode(&encoded).as_deref(), Some("a:b/c+d%e&f=g h~"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn scopes_are_normalised_and_checked() {
        let form = Form::new(HashMap::from([("scope".into(), " a  b ".into())]));
        assert_eq!(
            requested_scope(&form).ok().flatten().as_deref(),
            Some("a b")
        );
        let form = Form::new(HashMap::from([("scope".into(), "a\"b".into())]));
        assert!(requested_scope(&form).is_err());
    }

    #[test]
    fn repeated_query_parameters_are_noticed() {
        let query = Query::parse(Some("a=1&b=&a=2&c=3"));
        assert!(query.is_repeated("a"));
        assert_eq!(query.get("b"), None);
        assert_eq!(query.get("c"), Some("3"));
        let query = Query::parse(Some("resource=a&resource=b"));
        assert!(query.repeated.is_empty());
        assert_eq!(query.params.get_all("resource"), ["a", "b"]);
    }
}
