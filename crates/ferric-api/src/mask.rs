//! Secrets never leave the API: values under keys that name a secret are
//! shown as `******`, as oslo's `mask_dict_password` does for Ironic.

use ferric_core::JsonObject;
use serde_json::Value;

const MASK: &str = "******";

/// Key fragments that mark a value as secret (oslo.utils' list).
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

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// A copy of `obj` with every secret value masked, recursively.
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

fn mask_value(v: &Value) -> Value {
    match v {
        Value::Object(inner) => Value::Object(mask_dict(inner)),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        other => other.clone(),
    }
}

fn mask_if_set(obj: &mut JsonObject, key: &str) {
    if obj.get(key).is_some_and(truthy) {
        obj.insert(key.into(), Value::String(MASK.into()));
    }
}

/// Python's truth of a JSON value, which Ironic's checks use.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

/// `driver_info` as shown: secrets and SNMP keys masked.
pub fn driver_info(obj: &JsonObject) -> JsonObject {
    let mut out = mask_dict(obj);
    mask_if_set(&mut out, "snmp_auth_key");
    mask_if_set(&mut out, "snmp_priv_key");
    out
}

/// `instance_info` as shown: secrets, the config drive and the image URL
/// (which may carry a temporary credential) masked.
pub fn instance_info(obj: &JsonObject) -> JsonObject {
    let mut out = mask_dict(obj);
    mask_if_set(&mut out, "configdrive");
    mask_if_set(&mut out, "image_url");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let info = json!({
            "ipmi_address": "10.0.0.1",
            "ipmi_username": "admin",
            "ipmi_password": "hunter2",
            "some_token": null,
            "nested": {"redfish_password": "x", "port": 623},
            "snmp_auth_key": "k",
        });
        let masked = driver_info(info.as_object().unwrap());
        assert_eq!(
            Value::Object(masked),
            json!({
                "ipmi_address": "10.0.0.1",
                "ipmi_username": "admin",
                "ipmi_password": "******",
                "some_token": "******",
                "nested": {"redfish_password": "******", "port": 623},
                "snmp_auth_key": "******",
            })
        );
        let inst = json!({"configdrive": {"user_data": "x"}, "image_url": "http://x?temp_url_sig=abc", "image_source": "img"});
        let masked = instance_info(inst.as_object().unwrap());
        assert_eq!(masked["configdrive"], "******");
        assert_eq!(masked["image_url"], "******");
        assert_eq!(masked["image_source"], "img");
    }
}
