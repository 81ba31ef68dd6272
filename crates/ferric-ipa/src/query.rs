//! URL query strings (`a=1&b=x%20y`) parsed and written without I/O, for
//! the agent's `?wait=&agent_token=` and the lookup's `?addresses=&node_uuid=`.

/// Splits a query string into decoded `(key, value)` pairs, in order.
/// `+` means a space, as in HTML forms (and in Python's `parse_qs`).
/// Pairs without `=` get an empty value; invalid escapes are kept literally.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// The first value for `key`, as werkzeug's `request.args.get` returns it.
pub fn first(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Percent-decodes one component; bytes that are not valid UTF-8 after
/// decoding become U+FFFD.
pub fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex_pair(bytes[i + 1], bytes[i + 2]).is_some() => {
                out.extend(hex_pair(bytes[i + 1], bytes[i + 2]));
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// Percent-encodes one component: everything except `A-Z a-z 0-9 - . _ ~`.
pub fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for byte in component.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Writes `key=value` pairs as a query string (without the leading `?`).
pub fn build<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs() {
        let pairs = parse("?wait=true&agent_token=a%2Fb+c&flag");
        assert_eq!(first(&pairs, "wait").as_deref(), Some("true"));
        assert_eq!(first(&pairs, "agent_token").as_deref(), Some("a/b c"));
        assert_eq!(first(&pairs, "flag").as_deref(), Some(""));
        assert_eq!(first(&pairs, "nope"), None);
    }

    #[test]
    fn keeps_the_first_value() {
        let pairs = parse("a=1&a=2");
        assert_eq!(first(&pairs, "a").as_deref(), Some("1"));
    }

    #[test]
    fn survives_bad_escapes() {
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%41%42"), "AB");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn encodes_round_trip() {
        let text = "52:54:00:12:34:56,aa:bb";
        let query = build([("addresses", text)]);
        assert_eq!(query, "addresses=52%3A54%3A00%3A12%3A34%3A56%2Caa%3Abb");
        assert_eq!(first(&parse(&query), "addresses").as_deref(), Some(text));
    }
}
