//! Node bodies: validating a POST body or a patched document and writing
//! its fields onto a node, with Ironic's rules and messages.

use ferric_core::ids::{is_hostname_safe, is_uuid_like, is_valid_logical_name};
use ferric_core::{InterfaceKind, JsonObject, Node};
use serde_json::{json, Map, Value};

use crate::context::{parse_bool, Ctx};
use crate::error::ApiError;
use crate::version::at;

use super::view::field_version;

/// Keys a POST body may carry.
pub const CREATE_KEYS: &[&str] = &[
    "automated_clean",
    "bios_interface",
    "boot_interface",
    "boot_mode",
    "chassis_uuid",
    "conductor_group",
    "console_enabled",
    "console_interface",
    "deploy_interface",
    "description",
    "disable_power_off",
    "driver",
    "driver_info",
    "extra",
    "firmware_interface",
    "inspect_interface",
    "instance_info",
    "instance_name",
    "instance_uuid",
    "lessee",
    "management_interface",
    "maintenance",
    "name",
    "network_data",
    "network_interface",
    "owner",
    "parent_node",
    "power_interface",
    "properties",
    "raid_interface",
    "rescue_interface",
    "resource_class",
    "retired",
    "retired_reason",
    "secure_boot",
    "shard",
    "storage_interface",
    "uuid",
    "vendor_interface",
];

/// Fields a PATCH may touch, in the order Ironic lists them.
pub const PATCH_FIELDS: &[&str] = &[
    "automated_clean",
    "bios_interface",
    "boot_interface",
    "chassis_uuid",
    "conductor_group",
    "console_interface",
    "deploy_interface",
    "description",
    "disable_power_off",
    "driver",
    "driver_info",
    "extra",
    "inspect_interface",
    "instance_info",
    "instance_name",
    "instance_uuid",
    "lessee",
    "maintenance",
    "management_interface",
    "name",
    "network_data",
    "network_interface",
    "owner",
    "power_interface",
    "properties",
    "protected",
    "protected_reason",
    "raid_interface",
    "rescue_interface",
    "resource_class",
    "retired",
    "retired_reason",
    "shard",
    "storage_interface",
    "vendor_interface",
    "parent_node",
    "firmware_interface",
];

/// Names a node may not take: they are path words of the API.
const RESERVED_NAMES: &[&str] = &[
    "maintenance",
    "management",
    "states",
    "vendor_passthru",
    "detail",
    "validate",
];

/// Why a name is refused, or `None` if it is fine at this version.
pub fn name_problem(ctx: &Ctx, name: &str) -> Option<NameProblem> {
    if RESERVED_NAMES.contains(&name) {
        return Some(NameProblem::Reserved);
    }
    let valid = if ctx.version.at_least(at::UNRESTRICTED_NODE_NAME) {
        is_valid_logical_name(name)
    } else {
        is_hostname_safe(name)
    };
    (!valid || is_uuid_like(name)).then_some(NameProblem::Invalid)
}

pub enum NameProblem {
    Invalid,
    Reserved,
}

pub fn reserved_message(name: &str) -> String {
    format!(
        "The word \"{name}\" is reserved and can not be used as a node name. Reserved words are: {}.",
        RESERVED_NAMES.join(", ")
    )
}

/// The document a PATCH applies to: the node's patchable fields, raw.
pub fn patch_document(node: &Node) -> Value {
    let mut doc = Map::new();
    for field in PATCH_FIELDS {
        let value = match *field {
            "automated_clean" => json!(node.automated_clean),
            "chassis_uuid" => json!(node.chassis_uuid),
            "conductor_group" => json!(node.conductor_group),
            "description" => json!(node.description),
            "disable_power_off" => json!(node.disable_power_off),
            "driver" => json!(node.driver),
            "driver_info" => Value::Object(node.driver_info.clone().into()),
            "extra" => Value::Object(node.extra.clone()),
            "instance_info" => Value::Object(node.instance_info.clone().into()),
            "instance_name" => json!(node.instance_name),
            "instance_uuid" => json!(node.instance_uuid),
            "lessee" => json!(node.lessee),
            "maintenance" => json!(node.maintenance),
            "name" => json!(node.name),
            "network_data" => Value::Object(node.network_data.clone()),
            "owner" => json!(node.owner),
            "properties" => Value::Object(node.properties.clone()),
            "protected" => json!(node.protected),
            "protected_reason" => json!(node.protected_reason),
            "resource_class" => json!(node.resource_class),
            "retired" => json!(node.retired),
            "retired_reason" => json!(node.retired_reason),
            "shard" => json!(node.shard),
            "parent_node" => json!(node.parent_node),
            iface => match InterfaceKind::from_field_name(iface) {
                Some(kind) => json!(node.interfaces.get(kind)),
                None => Value::Null,
            },
        };
        doc.insert((*field).to_owned(), value);
    }
    Value::Object(doc)
}

/// Reads typed values out of a body, naming the body in errors as Ironic
/// does (`Schema error for node: ...`).
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    what: &'static str,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>, what: &'static str) -> Self {
        Fields { obj, what }
    }

    fn schema(&self, msg: String) -> ApiError {
        ApiError::bad_request(format!("Schema error for {}: {msg}", self.what))
    }

    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    pub fn string(&self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(s)) => Err(self.schema(format!("'{s}' is too long"))),
            Some(other) => Err(self.schema(format!("{other} is not of type 'string', 'null'"))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<JsonObject>, ApiError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o.clone())),
            Some(other) => Err(self.schema(format!("{other} is not of type 'object', 'null'"))),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => parse_bool(key, s).map(Some),
            Some(other) => Err(self.schema(format!(
                "{other} is not of type 'boolean', 'string', 'null'"
            ))),
        }
    }

    pub fn uuid(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.string(key, 36)? {
            Some(s) => match ferric_core::ids::parse_uuid(&s) {
                Ok(u) => Ok(Some(u.hyphenated().to_string())),
                Err(_) => Err(ApiError::bad_request(format!(
                    "Expected UUID for {key}: {s}"
                ))),
            },
            None => Ok(None),
        }
    }
}

/// Refuses any field newer than the request that carries a value.
pub fn check_versions(ctx: &Ctx, obj: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in obj {
        let empty = value.is_null() || value.as_str() == Some("");
        if !empty && field_version(key).is_some_and(|min| !ctx.version.at_least(min)) {
            return Err(ApiError::not_acceptable());
        }
    }
    Ok(())
}

/// Writes the body's fields onto `node`. For a PATCH the document holds
/// every patchable field, so absent means removed.
pub fn apply(node: &mut Node, f: &Fields<'_>, patching: bool) -> Result<(), ApiError> {
    let present = |k: &str| patching || f.has(k);
    if present("driver") {
        match f.string("driver", 255)? {
            Some(d) => node.driver = d,
            None => return Err(f.schema("'driver' is a required property".into())),
        }
    }
    for kind in InterfaceKind::ALL {
        let field = kind.field_name();
        if present(field) {
            node.interfaces
                .set(*kind, f.string(field, 255)?.unwrap_or_default());
        }
    }
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if present(stringify!($field)) {
                node.$field = $value;
            }
        };
    }
    set!(automated_clean, f.boolean("automated_clean")?);
    set!(chassis_uuid, f.uuid("chassis_uuid")?);
    set!(
        conductor_group,
        f.string("conductor_group", 255)?.unwrap_or_default()
    );
    set!(description, f.string("description", 4096)?);
    set!(
        disable_power_off,
        f.boolean("disable_power_off")?.unwrap_or(false)
    );
    set!(
        driver_info,
        f.object("driver_info")?.unwrap_or_default().into()
    );
    set!(extra, f.object("extra")?.unwrap_or_default());
    set!(
        instance_info,
        f.object("instance_info")?.unwrap_or_default().into()
    );
    set!(instance_name, f.string("instance_name", 255)?);
    set!(instance_uuid, f.uuid("instance_uuid")?);
    set!(lessee, f.string("lessee", 255)?);
    set!(maintenance, f.boolean("maintenance")?.unwrap_or(false));
    set!(network_data, f.object("network_data")?.unwrap_or_default());
    set!(owner, f.string("owner", 255)?);
    set!(properties, f.object("properties")?.unwrap_or_default());
    set!(resource_class, f.string("resource_class", 80)?);
    set!(retired, f.boolean("retired")?.unwrap_or(false));
    set!(retired_reason, f.string("retired_reason", 255)?);
    set!(shard, f.string("shard", 255)?);
    set!(parent_node, f.string("parent_node", 36)?);
    if patching {
        set!(protected, f.boolean("protected")?.unwrap_or(false));
        set!(protected_reason, f.string("protected_reason", 255)?);
    } else {
        set!(
            console_enabled,
            f.boolean("console_enabled")?.unwrap_or(false)
        );
        set!(secure_boot, f.boolean("secure_boot")?);
        set!(boot_mode, f.string("boot_mode", 255)?);
    }
    if node.instance_name.is_none() {
        if let Some(name) = node
            .instance_info
            .get("display_name")
            .and_then(Value::as_str)
        {
            node.instance_name = Some(name.to_owned());
        }
    }
    Ok(())
}
