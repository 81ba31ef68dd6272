//! Values that must never reach a log or an error text: the one-time agent
//! token and other secrets (image server passwords, authorization headers).
//!
//! Both types serialize to their plain value (the wire needs it) but their
//! `Debug` and `Display` print `******`, Ironic's mask.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What Ironic shows in place of a secret, and what a second lookup
/// returns as `agent_token` once the token has been handed out.
pub const MASK: &str = "******";

/// IPA ignores tokens shorter than this ("An invalid token was received").
pub const MIN_TOKEN_LEN: usize = 32;

/// A secret string: serialized as is, printed masked.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// The one-time agent token from lookup (`config.agent_token`), sent back in
/// heartbeats and required as `?agent_token=` on every command call.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentToken(Secret);

impl AgentToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Secret::new(value))
    }

    /// The token itself, for the wire only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// True when lookup returned the mask: the token was already handed out
    /// to an earlier lookup.
    pub fn is_masked(&self) -> bool {
        self.expose() == MASK
    }

    /// True when IPA would record this token: at least 32 characters.
    pub fn is_usable(&self) -> bool {
        self.expose().len() >= MIN_TOKEN_LEN && !self.is_masked()
    }

    /// Compares with a presented token in time independent of where they
    /// differ, so the comparison leaks nothing through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let ours = self.expose().as_bytes();
        let theirs = presented.as_bytes();
        if ours.len() != theirs.len() {
            return false;
        }
        ours.iter()
            .zip(theirs)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentToken({MASK})")
    }
}

impl fmt::Display for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for AgentToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AgentToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Secret::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let token = AgentToken::new("sqY15qmSwFs7MZfTmgUwq_4g6mkGkwWfH2q8lBJM_PQ");
        assert!(!format!("{token:?} {token}").contains("sqY"));
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "****** ******");
    }

    #[test]
    fn serializes_the_value() {
        let token = AgentToken::new("abc");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"abc\"");
        let back: AgentToken = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back, token);
    }

    #[test]
    fn knows_masked_and_short_tokens() {
        assert!(AgentToken::new(MASK).is_masked());
        assert!(!AgentToken::new(MASK).is_usable());
        assert!(!AgentToken::new("short").is_usable());
        assert!(AgentToken::new("x".repeat(32)).is_usable());
    }

    #[test]
    fn matches_only_the_same_token() {
        let token = AgentToken::new("a".repeat(40));
        assert!(token.matches(&"a".repeat(40)));
        assert!(!token.matches(&"a".repeat(39)));
        assert!(!token.matches(&format!("{}b", "a".repeat(39))));
        assert!(!token.matches(""));
    }
}
