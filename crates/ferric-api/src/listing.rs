//! What list endpoints share: `limit`, `marker`, `sort_key`, `sort_dir`,
//! `fields`, `detail`, and the `next` link.

use ferric_db::{Page, SortDir};

use crate::context::{Ctx, Params};
use crate::error::ApiError;
use crate::version::at;

/// Ironic's `[api]max_limit`.
pub const MAX_LIMIT: u32 = 1000;

/// A list request's page, before the marker is resolved to a row.
#[derive(Debug, Clone)]
pub struct ListArgs {
    pub limit: u32,
    pub sort_key: String,
    pub sort_dir: SortDir,
    pub marker: Option<String>,
    pub fields: Option<Vec<String>>,
    pub detail: Option<bool>,
}

impl ListArgs {
    /// Takes the common list parameters. `sortable` is the resource's
    /// sortable columns, `refused` the ones Ironic refuses by name;
    /// `versioned` says at which version a field appears.
    pub fn take(
        ctx: &Ctx,
        p: &mut Params,
        sortable: &[&str],
        refused: &[&str],
        versioned: impl Fn(&str) -> Option<u32>,
    ) -> Result<ListArgs, ApiError> {
        let fields = take_fields(ctx, p)?;
        let detail = match p.take("detail") {
            None => None,
            Some(v) => {
                let d = crate::context::parse_bool("detail", &v)?;
                if !ctx.version.at_least(at::DETAIL_QUERY) {
                    let shown = if d { "True" } else { "False" };
                    return Err(ApiError::bad_request(format!(
                        "Invalid query parameter ?detail={shown} received."
                    )));
                }
                Some(d)
            }
        };
        if detail == Some(true) && fields.is_some() {
            return Err(ApiError::bad_request(
                "Can not specify ?detail=True and fields in the same request.",
            ));
        }
        let sort_key = p.take("sort_key").unwrap_or_else(|| "id".into());
        if versioned(&sort_key).is_some_and(|min| !ctx.version.at_least(min)) {
            return Err(ApiError::not_acceptable());
        }
        let limit = parse_limit(p.take("limit"))?;
        let sort_dir = match p.take("sort_dir").as_deref() {
            None | Some("asc") => SortDir::Asc,
            Some("desc") => SortDir::Desc,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
                )))
            }
        };
        if refused.contains(&sort_key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "The sort_key value {sort_key} is an invalid field for sorting"
            )));
        }
        if !sortable.contains(&sort_key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "The sort_key value \"{sort_key}\" is an invalid field for sorting"
            )));
        }
        let marker = p.take("marker");
        Ok(ListArgs {
            limit,
            sort_key,
            sort_dir,
            marker,
            fields,
            detail,
        })
    }

    pub fn page(&self, marker: Option<i64>) -> Page {
        Page {
            sort_key: self.sort_key.clone(),
            sort_dir: self.sort_dir,
            marker,
            limit: Some(self.limit),
        }
    }

    /// The `next` link: present when the page is full, carrying the query
    /// that produced it (`extra` are the filters to keep).
    pub fn next_link(
        &self,
        ctx: &Ctx,
        resource: &str,
        extra: &[(String, String)],
        count: usize,
        last: &str,
    ) -> Option<String> {
        if count == 0 || count < usize::try_from(self.limit).unwrap_or(usize::MAX) {
            return None;
        }
        let dir = match self.sort_dir {
            SortDir::Asc => "asc",
            SortDir::Desc => "desc",
        };
        let mut query = format!("sort_key={}&sort_dir={dir}&", self.sort_key);
        for (k, v) in extra {
            query.push_str(&format!("{k}={}&", encode(v)));
        }
        if let Some(d) = self.detail {
            query.push_str(if d { "detail=True&" } else { "detail=False&" });
        }
        if let Some(fields) = &self.fields {
            query.push_str(&format!("fields={}&", fields.join(",")));
        }
        Some(format!(
            "{}/v1/{resource}?{query}limit={}&marker={}",
            ctx.base,
            self.limit,
            encode(last)
        ))
    }

    /// Whether objects show every field (detail) rather than the default
    /// few.
    pub fn wants_detail(&self, detail_path: bool) -> bool {
        detail_path || self.detail == Some(true)
    }
}

/// An object of the fields in `table` (name, minor version it appeared
/// in) that the request's version shows and `fields` picks; `links`
/// always stays. `value_of` gives a field's value (`None`: leave it out).
pub fn render_fields<'a>(
    ctx: &Ctx,
    fields: Option<&[String]>,
    table: impl IntoIterator<Item = (&'a str, u32)>,
    value_of: impl Fn(&str) -> Option<serde_json::Value>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, min) in table {
        let chosen = fields.is_none_or(|f| name == "links" || f.iter().any(|c| c == name));
        if !ctx.version.at_least(min) || !chosen {
            continue;
        }
        if let Some(value) = value_of(name) {
            out.insert(name.to_owned(), value);
        }
    }
    serde_json::Value::Object(out)
}

/// Percent-encodes what would break a query string.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:,".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn parse_limit(raw: Option<String>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(MAX_LIMIT);
    };
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Expected an integer for limit: {raw}")))?;
    if n <= 0 {
        return Err(ApiError::bad_request("Limit must be positive"));
    }
    Ok(u32::try_from(n.min(i64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT))
}

/// `fields=a,B, c` → `["a", "b", "c"]`; needs 1.8.
pub fn take_fields(ctx: &Ctx, p: &mut Params) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = p.take("fields") else {
        return Ok(None);
    };
    if !ctx.version.at_least(at::FIELDS) {
        return Err(ApiError::not_acceptable());
    }
    let mut fields: Vec<String> = Vec::new();
    for f in raw
        .split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
    {
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    Ok(Some(fields))
}

/// Ironic's 400 for a `fields` entry outside the resource's schema; the
/// names are listed as Python prints them, in the order given.
pub fn unknown_field<'a>(bad: &str, allowed: impl IntoIterator<Item = &'a str>) -> ApiError {
    let names: Vec<String> = allowed.into_iter().map(|n| format!("'{n}'")).collect();
    ApiError::bad_request(format!(
        "Schema error: '{bad}' is not one of [{}]",
        names.join(", ")
    ))
}

/// [`unknown_field`] for schemas whose names Ironic lists sorted.
pub fn unknown_field_sorted(bad: &str, allowed: &[&str]) -> ApiError {
    let mut names = allowed.to_vec();
    names.sort_unstable();
    unknown_field(bad, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_as_ironic_does() {
        assert_eq!(
            unknown_field_sorted("bogus", &["uuid", "extra", "created_at"]).message,
            "Schema error: 'bogus' is not one of ['created_at', 'extra', 'uuid']"
        );
    }

    #[test]
    fn limits_follow_ironic() {
        assert_eq!(parse_limit(None), Ok(1000));
        assert_eq!(parse_limit(Some("5000".into())), Ok(1000));
        assert_eq!(
            parse_limit(Some("0".into())).unwrap_err().message,
            "Limit must be positive"
        );
        assert_eq!(
            parse_limit(Some("abc".into())).unwrap_err().message,
            "Expected an integer for limit: abc"
        );
    }

    #[test]
    fn next_link_matches_the_reference_capture() {
        let ctx = Ctx {
            version: crate::version::MAX,
            base: "http://127.0.0.1:6385".into(),
        };
        let args = ListArgs {
            limit: 2,
            sort_key: "id".into(),
            sort_dir: SortDir::Asc,
            marker: None,
            fields: Some(vec!["uuid".into(), "name".into()]),
            detail: None,
        };
        let uuid = "77512175-6280-4a92-aff1-c4d99c03cda6";
        assert_eq!(
            args.next_link(&ctx, "nodes", &[], 2, uuid).unwrap(),
            format!("http://127.0.0.1:6385/v1/nodes?sort_key=id&sort_dir=asc&fields=uuid,name&limit=2&marker={uuid}")
        );
        assert_eq!(args.next_link(&ctx, "nodes", &[], 1, uuid), None);
    }
}
