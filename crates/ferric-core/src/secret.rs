//! Secrets held in types that cannot leak through a log line.
//!
//! [`Secret`] wraps one secret value (a BMC password, an agent token, a
//! rescue password): its `Debug` and `Display` print `***`, and the value is
//! reached only through [`Secret::expose`]. [`Fields`] wraps a free-form
//! dictionary that may hold secrets under well-known keys (`driver_info`,
//! `instance_info`, a step's `args`): it derefs to the JSON object, and its
//! `Debug` masks every value whose key names a secret, at any depth.
//! [`mask_dict`] is the same masking for values that leave Ferric (API
//! answers, `last_error`).

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JsonObject;

/// What a masked value shows, as Ironic shows it in API answers.
pub const MASK: &str = "******";

/// What a [`Secret`] prints.
const REDACTED: &str = "***";

/// One secret value.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A dictionary field that may hold secrets.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fields(JsonObject);

impl Fields {
    pub fn new() -> Self {
        Fields(JsonObject::new())
    }

    pub fn into_inner(self) -> JsonObject {
        self.0
    }
}

impl Deref for Fields {
    type Target = JsonObject;
    fn deref(&self) -> &JsonObject {
        &self.0
    }
}

impl DerefMut for Fields {
    fn deref_mut(&mut self) -> &mut JsonObject {
        &mut self.0
    }
}

impl From<JsonObject> for Fields {
    fn from(obj: JsonObject) -> Self {
        Fields(obj)
    }
}

impl From<Fields> for JsonObject {
    fn from(f: Fields) -> Self {
        f.0
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Fields(iter.into_iter().collect())
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&mask_dict(&self.0), f)
    }
}

/// Key fragments that mark a value as secret (oslo.utils' list, which
/// Ironic's `mask_dict_password` uses).
const SECRET_KEYS: &[&str] = &[
    "adminpass",
    "admin_pass",
    "password",
    "admin_password",
    "auth_token",
    "new_pass",
    "auth_password",
    "secret_uuid",
    "secret",
    "sys_pswd",
    "token",
    "configdrive",
    "chappassword",
    "encrypted_key",
    "private_key",
    "fernetkey",
    "sslkey",
    "passphrase",
    "cephclusterfsid",
    "octaviaheartbeatkey",
    "rabbitcookie",
    "cephmanilaclientkey",
    "pacemakerremoteauthkey",
    "designaterndckey",
    "cephadminkey",
    "heatauthencryptionkey",
    "cephclientkey",
    "keystonecredential",
    "barbicansimplecryptokek",
    "cephrgwkey",
    "swifthashsuffix",
    "migrationsshkey",
    "cephmdskey",
    "cephmonkey",
    "chapsecret",
];

/// Whether a dictionary key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// A copy of `obj` with every secret value masked, at any depth.
pub fn mask_dict(obj: &JsonObject) -> JsonObject {
    obj.iter()
        .map(|(k, v)| {
            let masked = match v {
                Value::Object(inner) => Value::Object(mask_dict(inner)),
                _ if is_secret_key(k) => Value::String(MASK.into()),
                Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
                other => other.clone(),
            };
            (k.clone(), masked)
        })
        .collect()
}

/// A copy of any JSON value with the secrets of its objects masked.
pub fn mask_value(v: &Value) -> Value {
    match v {
        Value::Object(inner) => Value::Object(mask_dict(inner)),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn fields_mask_secret_keys_in_debug_only() {
        let f: Fields = json!({"ipmi_password": "hunter2", "nested": {"agent_secret_token": "t0k"},
                               "steps": [{"args": {"password": "p"}}], "ipmi_address": "10.0.0.1"})
        .as_object()
        .cloned()
        .unwrap()
        .into();
        let shown = format!("{f:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("t0k") && !shown.contains("\"p\""));
        assert!(shown.contains("10.0.0.1"), "{shown}");
        assert_eq!(f["ipmi_password"], "hunter2");
    }
}
