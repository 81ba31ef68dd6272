//! Image checksums as IPA and Ironic give them: which field wins, which algorithm a bare
//! value means, checksum files fetched by URL, and the hashers that run while the image
//! streams.

use std::fmt;

use md5::Digest;

use crate::error::ImageError;

/// A hash algorithm an image can be verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The algorithm named as Glance's `os_hash_algo` (hashlib's names) names it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "md5" => Some(Algorithm::Md5),
            "sha256" | "sha-256" => Some(Algorithm::Sha256),
            "sha512" | "sha-512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The SHA-2 algorithm (or md5) whose hex digest has this length, as IPA guesses it.
    pub fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Algorithm::Md5),
            64 => Some(Algorithm::Sha256),
            128 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Length of the hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the image must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedChecksum {
    /// A value given inline (lower-case hex).
    Hash { algorithm: Algorithm, hex: String },
    /// A checksum file to fetch; the line for the image's file name gives the value.
    /// Without an algorithm, the value's length chooses it.
    FileUrl {
        url: String,
        algorithm: Option<Algorithm>,
    },
}

impl ExpectedChecksum {
    /// From IPA's image_info / Ironic's instance_info fields, with Ironic's precedence rules.
    ///
    /// `os_hash_algo`/`os_hash_value` win when the algorithm is one supported here; otherwise
    /// `checksum` is used: a URL of a checksum file, `algo:value` (Ironic's form), or a bare
    /// value whose length names the algorithm (32 = md5, 64 = sha256, 128 = sha512).
    /// `Ok(None)` when no field is given at all.
    pub fn from_image_info(
        checksum: Option<&str>,
        os_hash_algo: Option<&str>,
        os_hash_value: Option<&str>,
    ) -> Result<Option<Self>, ImageError> {
        let checksum = checksum.map(str::trim).filter(|c| !c.is_empty());
        let algo_name = os_hash_algo.map(str::trim).filter(|a| !a.is_empty());
        let os_value = os_hash_value.map(str::trim).filter(|v| !v.is_empty());
        if algo_name.is_some() != os_value.is_some() {
            return Err(ImageError::InvalidChecksum(
                "os_hash_algo and os_hash_value must be given together".into(),
            ));
        }
        let os_algo = algo_name.and_then(Algorithm::from_name);
        if let (Some(algorithm), Some(value)) = (os_algo, os_value) {
            return Ok(Some(Self::from_value(value, Some(algorithm))?));
        }
        match checksum {
            Some(value) => Ok(Some(Self::from_value(value, os_algo)?)),
            None => match algo_name {
                Some(name) => Err(ImageError::InvalidChecksum(format!(
                    "os_hash_algo {name} is not supported (md5, sha256, sha512) and no \
                     checksum field was given"
                ))),
                None => Ok(None),
            },
        }
    }

    fn from_value(value: &str, algorithm: Option<Algorithm>) -> Result<Self, ImageError> {
        if is_checksum_url(value) {
            return Ok(ExpectedChecksum::FileUrl {
                url: value.to_string(),
                algorithm,
            });
        }
        let (algorithm, hex) = match value.split_once(':') {
            Some((name, hex)) => {
                let algorithm = Algorithm::from_name(name).ok_or_else(|| {
                    ImageError::InvalidChecksum(format!("unknown algorithm {name:?}"))
                })?;
                (Some(algorithm), hex)
            }
            None => (algorithm, value),
        };
        Ok(ExpectedChecksum::Hash {
            algorithm: checked_algorithm(hex, algorithm)?,
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// The algorithm, when it is known before any checksum file is fetched.
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self {
            ExpectedChecksum::Hash { algorithm, .. } => Some(*algorithm),
            ExpectedChecksum::FileUrl { algorithm, .. } => *algorithm,
        }
    }
}

/// IPA's test: only `http://` and `https://` values are checksum files.
pub fn is_checksum_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

/// Checks `hex` is a hex digest of the given algorithm (or of the one its length names).
fn checked_algorithm(hex: &str, algorithm: Option<Algorithm>) -> Result<Algorithm, ImageError> {
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ImageError::InvalidChecksum(format!(
            "{hex:?} is not a hex digest"
        )));
    }
    match algorithm {
        Some(a) if a.hex_len() == hex.len() => Ok(a),
        Some(a) => Err(ImageError::InvalidChecksum(format!(
            "a {a} digest has {} hex digits, the value given has {}",
            a.hex_len(),
            hex.len()
        ))),
        None => Algorithm::from_hex_len(hex.len()).ok_or_else(|| {
            ImageError::InvalidChecksum(format!(
                "cannot tell the algorithm of a {}-digit checksum; give os_hash_algo",
                hex.len()
            ))
        }),
    }
}

/// The last path segment of a URL: the name a checksum file lists the image under.
pub fn file_name_of_url(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/').next().unwrap_or("")
}

/// Finds the checksum for `file_name` in a checksum file (`sha256sum` output, BSD-style
/// `SHA256 (name) = value`, or a file holding only the value), as IPA does.
pub fn parse_checksum_file(text: &str, file_name: &str) -> Result<String, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => return Err("empty checksum file".into()),
        [only] if !only.contains(' ') => {
            return hex_digest_len(only)
                .filter(|len| *len == only.len())
                .map(|_| only.to_ascii_lowercase())
                .ok_or_else(|| "invalid checksum file (no valid checksum found)".into());
        }
        _ => {}
    }
    lines
        .iter()
        .filter(|line| !line.starts_with('#') && names_file(line, file_name))
        .find_map(|line| digest_in_line(line))
        .ok_or_else(|| format!("checksum file does not contain name {file_name}"))
}

fn names_file(line: &str, file_name: &str) -> bool {
    if file_name.is_empty() {
        return false;
    }
    let ends_with_name = line.strip_suffix(file_name).is_some_and(|head| {
        let head = head.strip_suffix('*').unwrap_or(head);
        head.ends_with(char::is_whitespace)
    });
    ends_with_name
        || line
            .split_whitespace()
            .any(|w| w == format!("({file_name})"))
}

/// A digest at the start of the line followed by a space, or at its end after one.
fn digest_in_line(line: &str) -> Option<String> {
    let first = line.split_whitespace().next()?;
    let last = line.split_whitespace().last()?;
    [first, last]
        .into_iter()
        .find(|word| hex_digest_len(word) == Some(word.len()))
        .map(str::to_ascii_lowercase)
}

fn hex_digest_len(word: &str) -> Option<usize> {
    let all_hex = word.bytes().all(|b| b.is_ascii_hexdigit());
    (all_hex && Algorithm::from_hex_len(word.len()).is_some()).then_some(word.len())
}

/// A running hash of one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The lower-case hex digest.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => to_hex(&h.finalize()),
            Hasher::Sha256(h) => to_hex(&h.finalize()),
            Hasher::Sha512(h) => to_hex(&h.finalize()),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a finished hash with the expected value, naming both on a mismatch.
pub fn verify(hasher: Hasher, expected_hex: &str) -> Result<Algorithm, ImageError> {
    let algorithm = hasher.algorithm();
    let actual = hasher.finish_hex();
    if actual.eq_ignore_ascii_case(expected_hex) {
        Ok(algorithm)
    } else {
        Err(ImageError::ChecksumMismatch {
            algorithm,
            expected: expected_hex.to_ascii_lowercase(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const MD5_EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";

    fn hash(algorithm: Algorithm, hex: &str) -> Option<ExpectedChecksum> {
        Some(ExpectedChecksum::Hash {
            algorithm,
            hex: hex.into(),
        })
    }

    #[test]
    fn os_hash_fields_win_over_checksum() {
        let sha512 = "a".repeat(128);
        let got = ExpectedChecksum::from_image_info(Some(MD5_EMPTY), Some("sha512"), Some(&sha512));
        assert_eq!(got.unwrap(), hash(Algorithm::Sha512, &sha512));
    }

    #[test]
    fn unsupported_os_hash_algo_falls_back_to_checksum() {
        let got = ExpectedChecksum::from_image_info(Some(MD5_EMPTY), Some("sha3_256"), Some("ab"));
        assert_eq!(got.unwrap(), hash(Algorithm::Md5, MD5_EMPTY));
        let err = ExpectedChecksum::from_image_info(None, Some("sha3_256"), Some("ab"));
        assert!(err.unwrap_err().to_string().contains("sha3_256"));
    }

    #[test]
    fn bare_checksum_length_names_the_algorithm() {
        let got = ExpectedChecksum::from_image_info(Some(SHA256_EMPTY), None, None).unwrap();
        assert_eq!(got, hash(Algorithm::Sha256, SHA256_EMPTY));
        let upper = MD5_EMPTY.to_ascii_uppercase();
        let got = ExpectedChecksum::from_image_info(Some(&upper), None, None).unwrap();
        assert_eq!(got, hash(Algorithm::Md5, MD5_EMPTY));
        let err = ExpectedChecksum::from_image_info(Some("abcd"), None, None).unwrap_err();
        assert!(err.to_string().contains("4-digit"), "{err}");
        let err = ExpectedChecksum::from_image_info(Some(&"z".repeat(64)), None, None);
        assert!(err.unwrap_err().to_string().contains("not a hex digest"));
    }

    #[test]
    fn ironic_prefixed_form_is_accepted() {
        let value = format!("sha256:{SHA256_EMPTY}");
        let got = ExpectedChecksum::from_image_info(Some(&value), None, None).unwrap();
        assert_eq!(got, hash(Algorithm::Sha256, SHA256_EMPTY));
        let value = format!("sha512:{SHA256_EMPTY}");
        assert!(ExpectedChecksum::from_image_info(Some(&value), None, None).is_err());
        assert!(ExpectedChecksum::from_image_info(Some("crc32:00"), None, None).is_err());
    }

    #[test]
    fn urls_become_checksum_files() {
        let url = "http://host/images/SHA256SUMS";
        let got = ExpectedChecksum::from_image_info(Some(url), None, None).unwrap();
        let want = ExpectedChecksum::FileUrl {
            url: url.into(),
            algorithm: None,
        };
        assert_eq!(got, Some(want));
        let got = ExpectedChecksum::from_image_info(None, Some("sha256"), Some(url)).unwrap();
        let want = ExpectedChecksum::FileUrl {
            url: url.into(),
            algorithm: Some(Algorithm::Sha256),
        };
        assert_eq!(got, Some(want));
    }

    #[test]
    fn nothing_given_is_none_and_half_a_pair_is_an_error() {
        assert_eq!(
            ExpectedChecksum::from_image_info(None, None, None).unwrap(),
            None
        );
        assert!(ExpectedChecksum::from_image_info(None, Some("sha256"), None).is_err());
        assert!(ExpectedChecksum::from_image_info(None, None, Some(SHA256_EMPTY)).is_err());
    }

    #[test]
    fn file_name_is_the_last_path_segment() {
        assert_eq!(
            file_name_of_url("http://h:80/a/b/disk.qcow2?x=1#f"),
            "disk.qcow2"
        );
        assert_eq!(file_name_of_url("https://h/disk.img"), "disk.img");
        assert_eq!(file_name_of_url("https://h"), "");
    }

    #[test]
    fn checksum_files_in_the_usual_shapes() {
        let other = "b".repeat(64);
        let gnu = format!("{other}  other.img\n{SHA256_EMPTY} *disk.img\n");
        assert_eq!(parse_checksum_file(&gnu, "disk.img").unwrap(), SHA256_EMPTY);
        let bsd = format!("# comment\nSHA256 (disk.img) = {SHA256_EMPTY}\n");
        assert_eq!(parse_checksum_file(&bsd, "disk.img").unwrap(), SHA256_EMPTY);
        let only = format!("\n  {MD5_EMPTY}  \n");
        assert_eq!(parse_checksum_file(&only, "anything").unwrap(), MD5_EMPTY);
        let err = parse_checksum_file(&gnu, "missing.img").unwrap_err();
        assert_eq!(err, "checksum file does not contain name missing.img");
        assert!(parse_checksum_file("  \n", "x")
            .unwrap_err()
            .contains("empty"));
        assert!(parse_checksum_file("nothex", "x")
            .unwrap_err()
            .contains("no valid"));
        let prefixed = format!("{SHA256_EMPTY}  my-disk.img\n{other}  x\n");
        assert!(parse_checksum_file(&prefixed, "disk.img").is_err());
    }

    #[test]
    fn hashers_match_known_digests_and_mismatch_names_both() {
        assert_eq!(Hasher::new(Algorithm::Md5).finish_hex(), MD5_EMPTY);
        assert_eq!(Hasher::new(Algorithm::Sha256).finish_hex(), SHA256_EMPTY);
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"abc");
        assert!(h.finish_hex().starts_with("ddaf35a193617aba"));
        let err = verify(Hasher::new(Algorithm::Sha256), &"0".repeat(64)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sha256") && text.contains(SHA256_EMPTY) && text.contains("0000"));
        assert_eq!(
            verify(Hasher::new(Algorithm::Md5), MD5_EMPTY).unwrap(),
            Algorithm::Md5
        );
    }
}
