//! A node as the API shows it at a microversion: which fields, in Ironic's
//! order, with secrets masked. Serialized straight from the stored node,
//! without building an intermediate JSON tree.

use chrono::{DateTime, Utc};
use ferric_core::{Node, ProvisionState};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::context::Ctx;
use crate::mask;
use crate::version::at;

/// Every field of a node in Ironic's output order, with the minor version
/// it appeared in.
pub const NODE_FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("automated_clean", 47),
    ("bios_interface", 40),
    ("boot_interface", 31),
    ("boot_mode", 75),
    ("clean_step", 7),
    ("conductor_group", 46),
    ("console_enabled", 1),
    ("console_interface", 31),
    ("disable_power_off", 95),
    ("deploy_interface", 31),
    ("deploy_step", 44),
    ("description", 51),
    ("driver", 1),
    ("driver_info", 1),
    ("driver_internal_info", 3),
    ("extra", 1),
    ("fault", 42),
    ("firmware_interface", 86),
    ("health", 109),
    ("inspection_finished_at", 6),
    ("inspection_started_at", 6),
    ("inspect_interface", 31),
    ("instance_info", 1),
    ("instance_name", 104),
    ("instance_uuid", 1),
    ("last_error", 1),
    ("lessee", 65),
    ("maintenance", 1),
    ("maintenance_reason", 1),
    ("management_interface", 31),
    ("name", 5),
    ("network_data", 66),
    ("network_interface", 20),
    ("owner", 50),
    ("parent_node", 83),
    ("power_interface", 31),
    ("power_state", 1),
    ("properties", 1),
    ("protected", 48),
    ("protected_reason", 48),
    ("provision_state", 1),
    ("provision_updated_at", 1),
    ("raid_config", 12),
    ("raid_interface", 31),
    ("rescue_interface", 38),
    ("reservation", 1),
    ("resource_class", 21),
    ("retired", 61),
    ("retired_reason", 61),
    ("secure_boot", 75),
    ("service_step", 87),
    ("shard", 82),
    ("storage_interface", 33),
    ("target_power_state", 1),
    ("target_provision_state", 1),
    ("target_raid_config", 12),
    ("traits", 37),
    ("vendor_interface", 31),
    ("links", 1),
    ("conductor", 49),
    ("allocation_uuid", 52),
    ("chassis_uuid", 1),
    ("ports", 1),
    ("states", at::LINKS_NODESTATES_DRIVERPROPERTIES),
    ("portgroups", at::PORTGROUPS_SUBCONTROLLERS),
    ("volume", 32),
];

/// Fields a client cannot pick with `?fields=`.
const NOT_SELECTABLE: &[&str] = &[
    "created_at",
    "updated_at",
    "links",
    "ports",
    "states",
    "portgroups",
    "volume",
];

/// Sub-resource links, shown only with the whole node.
const SUB_LINKS: &[&str] = &["ports", "states", "portgroups", "volume"];

/// What a default (non-detail) list shows.
const DEFAULT_FIELDS: &[&str] = &[
    "uuid",
    "instance_uuid",
    "maintenance",
    "power_state",
    "provision_state",
    "name",
    "links",
];

/// The minor version a node field appeared in, if it is one.
pub fn field_version(name: &str) -> Option<u32> {
    NODE_FIELDS
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, v)| *v)
}

/// Checks a `fields=` selection: known, selectable, visible at `ctx`.
pub fn check_fields(ctx: &Ctx, fields: &[String]) -> Result<(), crate::error::ApiError> {
    for f in fields {
        match field_version(f) {
            Some(min) if !ctx.version.at_least(min) => {
                return Err(crate::error::ApiError::not_acceptable())
            }
            Some(_) if !NOT_SELECTABLE.contains(&f.as_str()) => {}
            _ => {
                return Err(crate::error::ApiError::bad_request(format!(
                    "Field {f} is not a valid field."
                )))
            }
        }
    }
    Ok(())
}

/// Which fields of a node to show.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    Full,
    Default,
    Fields(&'a [String]),
}

/// How nodes render in one response.
pub struct Render<'a> {
    pub ctx: &'a Ctx,
    pub shape: Shape<'a>,
    /// The conductor serving this group: (group, host).
    pub conductor: (&'a str, &'a str),
}

impl Render<'_> {
    fn shows(&self, name: &str, min: u32) -> bool {
        if !self.ctx.version.at_least(min) {
            return false;
        }
        match self.shape {
            Shape::Full => true,
            Shape::Default => DEFAULT_FIELDS.contains(&name),
            Shape::Fields(chosen) => name == "links" || chosen.iter().any(|c| c == name),
        }
    }

    pub fn node<'n>(&'n self, node: &'n Node) -> NodeView<'n> {
        NodeView { node, render: self }
    }
}

pub struct NodeView<'a> {
    node: &'a Node,
    render: &'a Render<'a>,
}

impl Serialize for NodeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, min) in NODE_FIELDS {
            if self.render.shows(name, *min) {
                emit(&mut map, name, self.node, self.render)?;
            }
        }
        map.end()
    }
}

/// Ironic's timestamps: ISO 8601, microseconds unless zero, `+00:00`.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

pub fn opt_timestamp(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(timestamp)
}

/// The provision state as older clients know it.
pub fn shown_state(state: ProvisionState, ctx: &Ctx) -> Option<&'static str> {
    match state {
        ProvisionState::Available if !ctx.version.at_least(at::AVAILABLE_STATE) => None,
        ProvisionState::InspectWait if !ctx.version.at_least(at::INSPECT_WAIT) => {
            Some("inspecting")
        }
        s => Some(s.as_str()),
    }
}

fn emit<M: SerializeMap>(
    map: &mut M,
    name: &str,
    n: &Node,
    r: &Render<'_>,
) -> Result<(), M::Error> {
    use ferric_core::InterfaceKind;
    if let Some(kind) = InterfaceKind::from_field_name(name) {
        return map.serialize_entry(name, n.interfaces.get(kind));
    }
    let link = |path: &str| r.ctx.links(&format!("nodes/{}{path}", n.uuid));
    match name {
        "uuid" => map.serialize_entry(name, &n.uuid),
        "created_at" => map.serialize_entry(name, &timestamp(&n.created_at)),
        "updated_at" => map.serialize_entry(name, &opt_timestamp(&n.updated_at)),
        "automated_clean" => map.serialize_entry(name, &n.automated_clean),
        "boot_mode" => map.serialize_entry(name, &n.boot_mode),
        "clean_step" => map.serialize_entry(name, &mask::mask_dict(&n.clean_step)),
        "conductor_group" => map.serialize_entry(name, &n.conductor_group),
        "console_enabled" => map.serialize_entry(name, &n.console_enabled),
        "disable_power_off" => map.serialize_entry(name, &n.disable_power_off),
        "deploy_step" => map.serialize_entry(name, &mask::mask_dict(&n.deploy_step)),
        "description" => map.serialize_entry(name, &n.description),
        "driver" => map.serialize_entry(name, &n.driver),
        "driver_info" => map.serialize_entry(name, &mask::driver_info(&n.driver_info)),
        "driver_internal_info" => {
            map.serialize_entry(name, &mask::mask_dict(&n.driver_internal_info))
        }
        "extra" => map.serialize_entry(name, &n.extra),
        "fault" => map.serialize_entry(name, &n.fault),
        "health" => map.serialize_entry(name, &n.health),
        "inspection_finished_at" => {
            map.serialize_entry(name, &opt_timestamp(&n.inspection_finished_at))
        }
        "inspection_started_at" => {
            map.serialize_entry(name, &opt_timestamp(&n.inspection_started_at))
        }
        "instance_info" => map.serialize_entry(name, &mask::instance_info(&n.instance_info)),
        "instance_name" => map.serialize_entry(name, &n.instance_name),
        "instance_uuid" => map.serialize_entry(name, &n.instance_uuid),
        "last_error" => map.serialize_entry(name, &n.last_error),
        "lessee" => map.serialize_entry(name, &n.lessee),
        "maintenance" => map.serialize_entry(name, &n.maintenance),
        "maintenance_reason" => map.serialize_entry(name, &n.maintenance_reason),
        "name" => map.serialize_entry(name, &n.name),
        "network_data" => map.serialize_entry(name, &n.network_data),
        "owner" => map.serialize_entry(name, &n.owner),
        "parent_node" => map.serialize_entry(name, &n.parent_node),
        "power_state" => map.serialize_entry(name, &n.power_state),
        "properties" => map.serialize_entry(name, &n.properties),
        "protected" => map.serialize_entry(name, &n.protected),
        "protected_reason" => map.serialize_entry(name, &n.protected_reason),
        "provision_state" => map.serialize_entry(name, &shown_state(n.provision_state, r.ctx)),
        "provision_updated_at" => {
            map.serialize_entry(name, &opt_timestamp(&n.provision_updated_at))
        }
        "raid_config" => map.serialize_entry(name, &n.raid_config),
        "reservation" => map.serialize_entry(name, &n.reservation),
        "resource_class" => map.serialize_entry(name, &n.resource_class),
        "retired" => map.serialize_entry(name, &n.retired),
        "retired_reason" => map.serialize_entry(name, &n.retired_reason),
        "secure_boot" => map.serialize_entry(name, &n.secure_boot),
        "service_step" => map.serialize_entry(name, &mask::mask_dict(&n.service_step)),
        "shard" => map.serialize_entry(name, &n.shard),
        "target_power_state" => map.serialize_entry(name, &n.target_power_state),
        "target_provision_state" => map.serialize_entry(name, &n.target_provision_state),
        "target_raid_config" => map.serialize_entry(name, &n.target_raid_config),
        "traits" => map.serialize_entry(name, &n.traits),
        "links" => map.serialize_entry(name, &link("")),
        "conductor" => {
            let (group, host) = r.conductor;
            let served = n.conductor_group.eq_ignore_ascii_case(group);
            map.serialize_entry(name, &served.then_some(host))
        }
        "allocation_uuid" => map.serialize_entry(name, &n.allocation_uuid),
        "chassis_uuid" => map.serialize_entry(name, &n.chassis_uuid),
        sub if SUB_LINKS.contains(&sub) => {
            if matches!(r.shape, Shape::Full) {
                map.serialize_entry(name, &link(&format!("/{sub}")))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}
