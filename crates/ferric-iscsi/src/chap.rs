//! CHAP with MD5 as iSCSI uses it (RFC 1994, RFC 7143 section 12.1.3): the response is
//! `MD5(identifier || secret || challenge)`.
//!
//! The keys: `CHAP_A` (algorithm list; 5 is MD5, the only one here), `CHAP_I`
//! (identifier, 0-255), `CHAP_C` (challenge), `CHAP_N` (name), `CHAP_R` (response).
//! Binary values are accepted in hex (`0x...`) and base64 (`0b...`); we emit hex.
//!
//! Decisions (RFC 7143 section 12.1.3 and RFC 3720 section 8.2.1):
//! - Secrets are at least [`MIN_SECRET_LEN`] (12) bytes: the RFC requires IPsec for
//!   secrets with fewer than 96 random bits, and this crate has no IPsec. At most 255
//!   bytes (what libiscsi and open-iscsi store).
//! - The initiator's and the target's secret of a mutual pair must differ (a secret that
//!   authenticates an initiator must not authenticate a target).
//! - Challenges shorter than [`MIN_CHALLENGE_LEN`] (16) bytes or longer than 1024 are
//!   refused; we send [`CHALLENGE_LEN`] (32) bytes. A challenge equal to the one this
//!   end sent is refused (reflection).
//! - Responses are compared in constant time; secrets are wiped on drop and never
//!   printed.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// CHAP_A value of MD5.
pub const ALGORITHM_MD5: u8 = 5;
/// Shortest accepted secret.
pub const MIN_SECRET_LEN: usize = 12;
/// Longest accepted secret.
pub const MAX_SECRET_LEN: usize = 255;
/// Shortest accepted challenge.
pub const MIN_CHALLENGE_LEN: usize = 16;
/// Longest accepted challenge (RFC 7143: binary values of CHAP at most 1024 bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;
/// Length of the challenges we send.
pub const CHALLENGE_LEN: usize = 32;
/// Length of an MD5 response.
pub const RESPONSE_LEN: usize = 16;

/// What is wrong with a CHAP value or credential.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChapError {
    /// A secret is shorter than [`MIN_SECRET_LEN`].
    #[error("CHAP secret is {len} bytes; at least {MIN_SECRET_LEN} are required")]
    SecretTooShort {
        /// Its length.
        len: usize,
    },
    /// A secret is longer than [`MAX_SECRET_LEN`].
    #[error("CHAP secret is {len} bytes; at most {MAX_SECRET_LEN} are allowed")]
    SecretTooLong {
        /// Its length.
        len: usize,
    },
    /// The two secrets of a mutual pair are the same.
    #[error("the initiator's and the target's CHAP secrets must differ")]
    SameSecrets,
    /// A CHAP user name is empty.
    #[error("CHAP user name is empty")]
    EmptyUser,
    /// A binary value is neither `0x` hex nor `0b` base64, or is malformed.
    #[error("malformed CHAP binary value")]
    BadBinary,
    /// A challenge has a length outside 16..=1024 bytes.
    #[error("CHAP challenge of {len} bytes (must be {MIN_CHALLENGE_LEN} to {MAX_CHALLENGE_LEN})")]
    ChallengeLength {
        /// Its length.
        len: usize,
    },
    /// CHAP_I is not a number from 0 to 255.
    #[error("malformed CHAP_I {0:?}")]
    BadIdentifier(String),
}

/// A CHAP secret: wiped from memory on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// A secret of 12 to 255 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ChapError> {
        let bytes = Zeroizing::new(bytes.into());
        match bytes.len() {
            len if len < MIN_SECRET_LEN => Err(ChapError::SecretTooShort { len }),
            len if len > MAX_SECRET_LEN => Err(ChapError::SecretTooLong { len }),
            _ => Ok(Self(bytes)),
        }
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: secrets are never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A CHAP name and secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapCredentials {
    /// CHAP_N.
    pub user: String,
    /// The shared secret.
    pub secret: Secret,
}

impl ChapCredentials {
    /// Credentials from a user name and a secret of 12 to 255 bytes.
    pub fn new(user: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, ChapError> {
        let user = user.into();
        if user.is_empty() {
            return Err(ChapError::EmptyUser);
        }
        Ok(Self {
            user,
            secret: Secret::new(secret)?,
        })
    }
}

/// The CHAP setup of one session, the same on both ends: the credentials the initiator
/// proves, and optionally those the target proves back (mutual CHAP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapAuth {
    initiator: ChapCredentials,
    target: Option<ChapCredentials>,
}

impl ChapAuth {
    /// One-way (`target` None) or mutual CHAP; the two secrets must differ.
    pub fn new(
        initiator: ChapCredentials,
        target: Option<ChapCredentials>,
    ) -> Result<Self, ChapError> {
        if let Some(t) = &target {
            if bool::from(t.secret.expose().ct_eq(initiator.secret.expose())) {
                return Err(ChapError::SameSecrets);
            }
        }
        Ok(Self { initiator, target })
    }

    /// The credentials the initiator proves.
    pub fn initiator(&self) -> &ChapCredentials {
        &self.initiator
    }

    /// The credentials the target proves in mutual CHAP.
    pub fn target(&self) -> Option<&ChapCredentials> {
        self.target.as_ref()
    }
}

/// The MD5 CHAP response to a challenge.
pub fn response(identifier: u8, secret: &Secret, challenge: &[u8]) -> [u8; RESPONSE_LEN] {
    let mut md5 = Md5::new();
    md5.update([identifier]);
    md5.update(secret.expose());
    md5.update(challenge);
    md5.finalize().into()
}

/// Whether `received` is the right response, compared in constant time.
pub fn verify(identifier: u8, secret: &Secret, challenge: &[u8], received: &[u8]) -> bool {
    let expected = Zeroizing::new(response(identifier, secret, challenge));
    received.len() == RESPONSE_LEN && bool::from(expected.as_slice().ct_eq(received))
}

/// Whether a peer's challenge is acceptable: 16 to 1024 bytes, and not the one we sent.
pub fn check_challenge(challenge: &[u8], ours: Option<&[u8]>) -> Result<(), ChallengeProblem> {
    if !(MIN_CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&challenge.len()) {
        return Err(ChallengeProblem::Length(challenge.len()));
    }
    if ours.is_some_and(|ours| bool::from(ours.ct_eq(challenge))) {
        return Err(ChallengeProblem::Reflected);
    }
    Ok(())
}

/// Why a challenge was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeProblem {
    /// Outside 16..=1024 bytes.
    Length(usize),
    /// The same as the challenge we sent (reflection attack).
    Reflected,
}

/// Picks MD5 from a CHAP_A offer (`"5"`, `"7,6,5"`...); `None` if it is not offered.
pub fn choose_algorithm(offer: &str) -> Option<u8> {
    offer
        .split(',')
        .any(|a| parse_number(a.trim()) == Some(u64::from(ALGORITHM_MD5)))
        .then_some(ALGORITHM_MD5)
}

/// Parses CHAP_I: decimal or `0x` hex, 0 to 255.
pub fn parse_identifier(value: &str) -> Result<u8, ChapError> {
    parse_number(value)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| ChapError::BadIdentifier(value.chars().take(32).collect()))
}

fn parse_number(value: &str) -> Option<u64> {
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        return u64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty());
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Decodes a binary value: `0x`/`0X` hex or `0b`/`0B` base64 (RFC 7143 section 5.1).
pub fn decode_binary(value: &str) -> Result<Vec<u8>, ChapError> {
    let (prefix, body) = value.split_at_checked(2).ok_or(ChapError::BadBinary)?;
    match prefix {
        "0x" | "0X" => decode_hex(body),
        "0b" | "0B" => decode_base64(body),
        _ => Err(ChapError::BadBinary),
    }
}

/// Encodes bytes as a `0x` hex value.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

fn decode_hex(body: &str) -> Result<Vec<u8>, ChapError> {
    let digits = body.as_bytes();
    if digits.is_empty() {
        return Err(ChapError::BadBinary);
    }
    // An odd count means a leading zero nibble was left out (RFC 7143 section 5.1).
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    let (first, rest) = digits.split_at(digits.len() % 2);
    if let Some(&d) = first.first() {
        out.push(hex_value(d)?);
    }
    for pair in rest.chunks_exact(2) {
        out.push((hex_value(pair[0])? << 4) | hex_value(pair[1])?);
    }
    Ok(out)
}

fn hex_value(d: u8) -> Result<u8, ChapError> {
    char::from(d)
        .to_digit(16)
        .map(|v| v as u8)
        .ok_or(ChapError::BadBinary)
}

fn decode_base64(body: &str) -> Result<Vec<u8>, ChapError> {
    let trimmed = body.trim_end_matches('=');
    if trimmed.is_empty() || body.len() - trimmed.len() > 2 || !body.len().is_multiple_of(4) {
        return Err(ChapError::BadBinary);
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in trimmed.bytes() {
        acc = (acc << 6) | u32::from(base64_value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn base64_value(c: u8) -> Result<u8, ChapError> {
    match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        _ => Err(ChapError::BadBinary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn md5_response_vector() {
        // MD5(0x01 || "secretsecret" || 00 01 .. 0f), computed independently with
        // `printf '\x01secretsecret\x00...\x0f' | md5sum`.
        let challenge: Vec<u8> = (0u8..16).collect();
        let r = response(1, &secret("secretsecret"), &challenge);
        assert_eq!(encode_hex(&r), "0x226dc576c33f04ff9c3a200ffe35f442");
    }

    #[test]
    fn verify_accepts_only_the_right_response() {
        let s = secret("0123456789abcdef");
        let c = [7u8; 16];
        let r = response(42, &s, &c);
        assert!(verify(42, &s, &c, &r));
        assert!(!verify(43, &s, &c, &r));
        assert!(!verify(42, &secret("0123456789abcdeX"), &c, &r));
        assert!(!verify(42, &s, &c, &r[..15]));
    }

    #[test]
    fn secrets_are_checked_and_redacted() {
        assert_eq!(
            Secret::new(b"short".to_vec()),
            Err(ChapError::SecretTooShort { len: 5 })
        );
        assert!(Secret::new(vec![b'a'; 256]).is_err());
        let c = ChapCredentials::new("user", b"averylongsecret".to_vec()).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("averylongsecret"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(
            ChapCredentials::new("", b"averylongsecret".to_vec()),
            Err(ChapError::EmptyUser)
        );
    }

    #[test]
    fn mutual_secrets_must_differ() {
        let i = ChapCredentials::new("i", b"samesecret12".to_vec()).unwrap();
        let t = ChapCredentials::new("t", b"samesecret12".to_vec()).unwrap();
        assert_eq!(
            ChapAuth::new(i.clone(), Some(t)),
            Err(ChapError::SameSecrets)
        );
        let t = ChapCredentials::new("t", b"othersecret12".to_vec()).unwrap();
        assert!(ChapAuth::new(i, Some(t)).is_ok());
    }

    #[test]
    fn binary_values_hex_and_base64() {
        assert_eq!(decode_binary("0x0aFf"), Ok(vec![0x0a, 0xff]));
        assert_eq!(decode_binary("0X1"), Ok(vec![0x01]));
        assert_eq!(decode_binary("0xabc"), Ok(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bAQID"), Ok(vec![1, 2, 3]));
        assert_eq!(decode_binary("0bAQI="), Ok(vec![1, 2]));
        assert_eq!(decode_binary("0bAQ=="), Ok(vec![1]));
        assert_eq!(decode_binary("0b/w=="), Ok(vec![0xff]));
        for bad in ["", "0x", "0xzz", "ab", "0bA", "0bA===", "0b@@@@", "12345"] {
            assert_eq!(decode_binary(bad), Err(ChapError::BadBinary), "{bad:?}");
        }
        assert_eq!(encode_hex(&[0, 0xAB, 0x10]), "0x00ab10");
    }

    #[test]
    fn challenges_are_checked() {
        assert_eq!(check_challenge(&[1; 16], None), Ok(()));
        assert_eq!(
            check_challenge(&[1; 15], None),
            Err(ChallengeProblem::Length(15))
        );
        assert_eq!(
            check_challenge(&[1; 1025], None),
            Err(ChallengeProblem::Length(1025))
        );
        assert_eq!(
            check_challenge(&[1; 32], Some(&[1; 32])),
            Err(ChallengeProblem::Reflected)
        );
        assert_eq!(check_challenge(&[1; 32], Some(&[2; 32])), Ok(()));
    }

    #[test]
    fn algorithm_and_identifier() {
        assert_eq!(choose_algorithm("5"), Some(5));
        assert_eq!(choose_algorithm("7,6,5"), Some(5));
        assert_eq!(choose_algorithm("7,6"), None);
        assert_eq!(choose_algorithm("0x5"), Some(5));
        assert_eq!(parse_identifier("200"), Ok(200));
        assert_eq!(parse_identifier("0xff"), Ok(255));
        assert!(parse_identifier("256").is_err());
        assert!(parse_identifier("-1").is_err());
        assert!(parse_identifier("").is_err());
    }
}
