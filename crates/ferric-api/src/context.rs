//! What every handler needs from the request: its microversion, the base
//! URL for links, its query parameters and its JSON body, each validated
//! the way Ironic does.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde_json::Value;

use crate::error::ApiError;
use crate::version::Version;
use crate::AppState;

/// The request's microversion and the URL its links start with.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub version: Version,
    pub base: String,
}

impl Ctx {
    /// 406 unless the request's version is at least `1.minor`.
    pub fn require(&self, minor: u32) -> Result<(), ApiError> {
        if self.version.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError::not_acceptable())
        }
    }

    /// `{base}/v1/{path}` and `{base}/{path}`: Ironic's self and bookmark.
    pub fn links(&self, path: &str) -> Value {
        serde_json::json!([
            {"href": format!("{}/v1/{path}", self.base), "rel": "self"},
            {"href": format!("{}/{path}", self.base), "rel": "bookmark"},
        ])
    }
}

impl<S> FromRequestParts<S> for Ctx
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let version = parts
            .extensions
            .get::<Version>()
            .copied()
            .unwrap_or(crate::version::MIN);
        let base = match &app.public_endpoint {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(axum::http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        Ok(Ctx { version, base })
    }
}

/// Query parameters, taken one by one; whatever is left is refused as
/// Ironic does ("Unexpected arguments").
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        Ok(Params(pairs))
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("Malformed query string"))?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::bad_request("Malformed query string"))
}

impl Params {
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs)
    }

    /// The last value of `name`, removing every occurrence.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        self.0.retain(|(k, v)| {
            if k == name {
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The parameters that select what a list holds (not how it is paged
    /// or shown): what a `next` link must carry over.
    pub fn filters(&self) -> Vec<(String, String)> {
        const PAGING: &[&str] = &[
            "limit", "marker", "sort_key", "sort_dir", "fields", "detail",
        ];
        self.0
            .iter()
            .filter(|(k, _)| !PAGING.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        self.take(name).map(|v| parse_bool(name, &v)).transpose()
    }

    /// Refuses any parameter no one took.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        Err(ApiError::bad_request(format!(
            "Unexpected arguments: {}",
            names.join(", ")
        )))
    }
}

/// Ironic's (oslo's) boolean strings.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid {name}: Unrecognized value '{value}', acceptable values are: '0', '1', 'f', 'false', 'n', \
             'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        ))),
    }
}

/// A JSON request body (an empty body is `{}`), parsed whatever the
/// content type, as Ironic does.
#[derive(Debug)]
pub struct JsonBody(pub Value);

/// Bodies larger than this are refused (Ironic's limit for most calls).
const MAX_BODY: usize = 1 << 20;
/// Ironic refuses JSON nested deeper than this.
const MAX_DEPTH: usize = 25;

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Config drives travel in deploy requests, the agent's logs in its
        // inspection data.
        let path = req.uri().path();
        let limit = if path.ends_with("/states/provision") || path.ends_with("/continue_inspection")
        {
            64 * MAX_BODY
        } else {
            MAX_BODY
        };
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body is too large. Please contact the service administrator.",
                )
            })?;
        let _ = state;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    if nesting(bytes) > MAX_DEPTH {
        return Err(ApiError::bad_request(
            "Request body JSON is nested too deeply. Please contact the service administrator.",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON body: {e}")))
}

/// The deepest nesting of brackets, ignoring brackets inside strings.
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_strings() {
        assert_eq!(nesting(br#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(nesting(br#""\"{""#), 0);
    }

    #[test]
    fn unknown_params_are_refused() {
        let mut p = Params(vec![
            ("limit".into(), "5".into()),
            ("foo".into(), "1".into()),
        ]);
        assert_eq!(p.take("limit").as_deref(), Some("5"));
        assert_eq!(p.finish().unwrap_err().message, "Unexpected arguments: foo");
    }

    #[test]
    fn booleans_parse_like_oslo() {
        assert_eq!(parse_bool("x", " YES "), Ok(true));
        assert_eq!(parse_bool("x", "off"), Ok(false));
        assert!(parse_bool("maintenance", "maybe")
            .unwrap_err()
            .message
            .starts_with("Invalid maintenance:"));
    }
}
