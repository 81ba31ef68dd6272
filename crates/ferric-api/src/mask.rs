//! Secrets never leave the API: values under keys that name a secret are
//! shown as `******`, as oslo's `mask_dict_password` does for Ironic (the
//! key list lives in `ferric_core::secret`, shared with the `Debug` of
//! nodes). Steps are masked too: their arguments may carry secrets.

use ferric_core::JsonObject;
use serde_json::Value;

pub use ferric_core::secret::{mask_dict, MASK};

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
