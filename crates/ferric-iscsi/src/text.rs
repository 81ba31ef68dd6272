//! `key=value` text (RFC 7143 sections 5.1 and 6.1), as carried in the data segment of
//! Login and Text PDUs: each pair ends with a NUL byte, keys are at most 63 bytes of
//! letters, digits and `.-+@_`, values are UTF-8 without NUL.
//!
//! [`TextList`] keeps the pairs in order (SendTargets answers repeat keys, so duplicates
//! are kept; [`TextList::check_unique`] refuses them where a key may appear once). A text
//! split across PDUs with the C bit is put back together by [`TextAccumulator`], which
//! caps the total.

use thiserror::Error;

/// The longest key name (RFC 7143 section 6.1).
pub const MAX_KEY_LEN: usize = 63;
/// The longest value this parser takes (the long binary values, CHAP_C and CHAP_R, fit).
pub const MAX_VALUE_LEN: usize = 8192;
/// The longest value of most keys (RFC 7143 section 6.1); the negotiation refuses longer.
pub const MAX_SHORT_VALUE_LEN: usize = 255;
/// The default cap on a whole text, across continued PDUs.
pub const DEFAULT_MAX_TEXT_LEN: usize = 64 * 1024;

/// The value answering a key whose offer is refused.
pub const REJECT: &str = "Reject";
/// The value answering a key that does not apply here.
pub const IRRELEVANT: &str = "Irrelevant";
/// The value answering a key this end does not know.
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// Why a text could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TextError {
    /// The last pair has no terminating NUL.
    #[error("text does not end with a NUL byte")]
    Unterminated,
    /// A pair has no `=`.
    #[error("text pair without '=' at byte {offset}")]
    NoEquals {
        /// Where the pair starts.
        offset: usize,
    },
    /// A key is empty, too long or has a character keys cannot have.
    #[error("invalid key {key:?}")]
    BadKey {
        /// The key (lossily decoded).
        key: String,
    },
    /// A value is longer than [`MAX_VALUE_LEN`].
    #[error("value of {key} is {len} bytes, more than {max}")]
    ValueTooLong {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value is not UTF-8.
    #[error("value of {key} is not UTF-8")]
    NotUtf8 {
        /// The key.
        key: String,
    },
    /// A key appears twice where it may appear once.
    #[error("key {key} appears more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// The whole text is longer than the cap.
    #[error("text of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Bytes so far.
        len: usize,
        /// The cap.
        max: usize,
    },
}

/// An ordered list of `key=value` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextList {
    pairs: Vec<(String, String)>,
}

impl TextList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a data segment. Empty strings between NULs are skipped (some senders pad
    /// with NULs); duplicates are kept.
    pub fn parse(data: &[u8]) -> Result<Self, TextError> {
        let mut pairs = Vec::new();
        let mut offset = 0;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                return Err(TextError::Unterminated);
            };
            let (item, tail) = rest.split_at(end);
            if !item.is_empty() {
                pairs.push(parse_pair(item, offset)?);
            }
            rest = tail.get(1..).unwrap_or_default();
            offset += end + 1;
        }
        Ok(Self { pairs })
    }

    /// Fails on the first key that appears twice.
    pub fn check_unique(&self) -> Result<(), TextError> {
        for (i, (key, _)) in self.pairs.iter().enumerate() {
            if self.pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(TextError::DuplicateKey { key: key.clone() });
            }
        }
        Ok(())
    }

    /// Appends a pair.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// Appends every pair of `other`.
    pub fn extend(&mut self, other: TextList) {
        self.pairs.extend(other.pairs);
    }

    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a pair has this key.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The data segment: `key=value\0` for each pair.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for TextList {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            pairs: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

fn parse_pair(item: &[u8], offset: usize) -> Result<(String, String), TextError> {
    let Some(eq) = item.iter().position(|&b| b == b'=') else {
        return Err(TextError::NoEquals { offset });
    };
    let (key, value) = item.split_at(eq);
    let value = value.get(1..).unwrap_or_default();
    if !valid_key(key) {
        return Err(TextError::BadKey {
            key: String::from_utf8_lossy(key).into_owned(),
        });
    }
    // Valid keys are ASCII.
    let key = String::from_utf8_lossy(key).into_owned();
    if value.len() > MAX_VALUE_LEN {
        return Err(TextError::ValueTooLong {
            key,
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    let Ok(value) = std::str::from_utf8(value) else {
        return Err(TextError::NotUtf8 { key });
    };
    Ok((key, value.to_owned()))
}

/// Whether `key` is a key name: 1 to 63 letters, digits and `.-+@_` (`X-` and `X#`
/// extension keys included).
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b".-+@_#".contains(&b))
}

/// Puts together a text sent in several PDUs with the C bit, up to a cap.
#[derive(Clone, Debug)]
pub struct TextAccumulator {
    buf: Vec<u8>,
    max: usize,
}

impl Default for TextAccumulator {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TEXT_LEN)
    }
}

impl TextAccumulator {
    /// An accumulator refusing texts longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds one PDU's data. `continued` is the PDU's C bit: with it, the text goes on in
    /// the next PDU and `Ok(None)` is returned; without it the whole text is parsed and
    /// the accumulator is emptied for the next one.
    pub fn push(&mut self, data: &[u8], continued: bool) -> Result<Option<TextList>, TextError> {
        let len = self.buf.len().saturating_add(data.len());
        if len > self.max {
            self.buf.clear();
            return Err(TextError::TooLong { len, max: self.max });
        }
        self.buf.extend_from_slice(data);
        if continued {
            return Ok(None);
        }
        let text = std::mem::take(&mut self.buf);
        TextList::parse(&text).map(Some)
    }

    /// Whether part of a text is waiting for its continuation.
    pub fn is_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Drops any partial text.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_order_and_encodes_back() {
        let data = b"InitiatorName=iqn.2005-03.org.open-iscsi:abc\0AuthMethod=CHAP,None\0X-com.example_k=\0";
        let list = TextList::parse(data).unwrap();
        let pairs: Vec<_> = list.iter().collect();
        assert_eq!(
            pairs,
            vec![
                ("InitiatorName", "iqn.2005-03.org.open-iscsi:abc"),
                ("AuthMethod", "CHAP,None"),
                ("X-com.example_k", ""),
            ]
        );
        assert_eq!(list.encode(), data.to_vec());
        assert_eq!(list.get("AuthMethod"), Some("CHAP,None"));
        assert_eq!(list.get("authmethod"), None, "keys are case-sensitive");
    }

    #[test]
    fn values_may_contain_equals_and_utf8() {
        let list = TextList::parse("InitiatorAlias=büro=1\0".as_bytes()).unwrap();
        assert_eq!(list.get("InitiatorAlias"), Some("büro=1"));
    }

    #[test]
    fn malformed_texts() {
        assert_eq!(TextList::parse(b"A=1\0B=2"), Err(TextError::Unterminated));
        assert_eq!(
            TextList::parse(b"A=1\0B\0"),
            Err(TextError::NoEquals { offset: 4 })
        );
        assert!(matches!(
            TextList::parse(b"=1\0"),
            Err(TextError::BadKey { .. })
        ));
        assert!(matches!(
            TextList::parse(b"A B=1\0"),
            Err(TextError::BadKey { .. })
        ));
        let long_key = format!("{}=1\0", "K".repeat(64));
        assert!(matches!(
            TextList::parse(long_key.as_bytes()),
            Err(TextError::BadKey { .. })
        ));
        let ok_key = format!("{}=1\0", "K".repeat(63));
        assert!(TextList::parse(ok_key.as_bytes()).is_ok());
        let long_value = format!("CHAP_C=0x{}\0", "a".repeat(MAX_VALUE_LEN));
        assert!(matches!(
            TextList::parse(long_value.as_bytes()),
            Err(TextError::ValueTooLong { max: 8192, .. })
        ));
        assert_eq!(
            TextList::parse(b"A=\xff\0"),
            Err(TextError::NotUtf8 { key: "A".into() })
        );
    }

    #[test]
    fn empty_strings_are_skipped() {
        let list = TextList::parse(b"A=1\0\0\0B=2\0\0").unwrap();
        assert_eq!(list.len(), 2);
        assert!(TextList::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_kept_until_checked() {
        let list = TextList::parse(b"TargetName=a\0TargetAddress=x\0TargetName=b\0").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list.check_unique(),
            Err(TextError::DuplicateKey {
                key: "TargetName".into()
            })
        );
    }

    #[test]
    fn accumulator_joins_a_pair_split_across_pdus() {
        let mut acc = TextAccumulator::new(64);
        assert_eq!(acc.push(b"MaxBurstLe", true), Ok(None));
        assert!(acc.is_pending());
        assert_eq!(acc.push(b"ngth=262144\0A=", true), Ok(None));
        let list = acc.push(b"1\0", false).unwrap().unwrap();
        assert_eq!(list.get("MaxBurstLength"), Some("262144"));
        assert_eq!(list.get("A"), Some("1"));
        assert!(!acc.is_pending());
        assert!(matches!(
            acc.push(&[b'a'; 65], true),
            Err(TextError::TooLong { len: 65, max: 64 })
        ));
        assert!(!acc.is_pending());
    }
}
