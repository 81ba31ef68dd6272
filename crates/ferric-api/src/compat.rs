//! Ironic's request quirks that sit in front of its routing: the `.json`
//! suffix older clients may put on a URL, and paths that are not UTF-8.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::version::LEGACY_HEADER;

/// From 1.91 on, `.json` at the end of a URL is part of the name.
pub const DOT_JSON_REMOVED: u32 = 91;

const SUFFIX: &str = ".json";

/// Whether the request's path ended with `.json` and the suffix was taken
/// off (Ironic's `HAS_JSON_SUFFIX`): a node looked up without it and not
/// found is looked up again with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonSuffix(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for JsonSuffix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<JsonSuffix>()
            .copied()
            .unwrap_or_default())
    }
}

/// Takes `.json` off the path when the legacy version header asks for a
/// version below 1.91, as Ironic's JSON-extension middleware does. Only
/// that header counts, and no header (or one Ironic cannot read as `M.N`)
/// leaves the path alone.
pub fn strip_json_suffix(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(stripped) = path.strip_suffix(SUFFIX) else {
        return req;
    };
    if !legacy_minor(&req).is_some_and(|m| m > 0 && m < DOT_JSON_REMOVED) {
        return req;
    }
    let stripped = stripped.to_owned();
    if replace_path(&mut req, &stripped) {
        req.extensions_mut().insert(JsonSuffix(true));
    }
    req
}

/// Gives the request another path, keeping its query; false if that makes
/// no valid URI (the request is left alone).
pub(crate) fn replace_path(req: &mut Request, path: &str) -> bool {
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *req.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

fn legacy_minor(req: &Request) -> Option<u32> {
    let raw = req.headers().get(LEGACY_HEADER)?.to_str().ok()?;
    let (major, minor) = raw.trim().split_once('.')?;
    major.trim().parse::<u32>().ok()?;
    minor.trim().parse().ok()
}

/// A path whose percent-escapes do not decode to UTF-8 cannot name
/// anything: Ironic's framework answers 400 before routing.
pub async fn reject_undecodable_path(req: Request, next: Next) -> Response {
    if decodes_to_utf8(req.uri().path()) {
        next.run(req).await
    } else {
        ApiError::routing(StatusCode::BAD_REQUEST, "").into_response()
    }
}

fn decodes_to_utf8(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&out).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, version: Option<&str>) -> Request {
        let mut b = Request::builder().uri(path);
        if let Some(v) = version {
            b = b.header(LEGACY_HEADER, v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn suffix_is_stripped_only_below_1_91_with_the_legacy_header() {
        let r = strip_json_suffix(request("/v1/nodes/n1.json?fields=uuid", Some("1.90")));
        assert_eq!(r.uri(), "/v1/nodes/n1?fields=uuid");
        assert_eq!(r.extensions().get::<JsonSuffix>(), Some(&JsonSuffix(true)));
        for version in [None, Some("1.91"), Some("latest"), Some("1.0")] {
            let r = strip_json_suffix(request("/v1/nodes/n1.json", version));
            assert_eq!(r.uri(), "/v1/nodes/n1.json", "{version:?}");
            assert!(r.extensions().get::<JsonSuffix>().is_none());
        }
    }

    #[test]
    fn paths_must_decode_to_utf8() {
        assert!(decodes_to_utf8("/v1/nodes/caf%C3%A9"));
        assert!(decodes_to_utf8("/v1/nodes/100%"));
        assert!(!decodes_to_utf8("/v1/nodes/%00%ff"));
        assert!(!decodes_to_utf8("/v1/nodes/%C3"));
    }
}
