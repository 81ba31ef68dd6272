//! The `agent` inspect interface (Ironic's built-in in-band inspection):
//! the node boots the deploy ramdisk, its agent posts its inventory to
//! `POST /v1/continue_inspection`, and the inventory is read into the node
//! as Ironic's inspection hooks do: `ramdisk-error`, `validate-interfaces`,
//! `ports` (with `[inspector] add_ports`), `architecture`, `memory`, `cpus`
//! and `root-device` (`local_gb`).

use async_trait::async_trait;
use chrono::Utc;
use ferric_core::{InterfaceKind, JsonObject, MacAddress, Node, Port, PortUuid, PowerState};
use serde_json::{json, Value};

use crate::error::DriverError;
use crate::interface::*;
use crate::power::power_action;

const GIB: u64 = 1 << 30;

pub struct AgentInspect {
    add_ports: AddPorts,
}

/// Which NICs of the inventory become ports (Ironic's `[inspector]
/// add_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddPorts {
    /// Only the NIC the ramdisk booted from (all with an address if it is
    /// not known).
    Pxe,
    /// NICs that had an IP address in the ramdisk.
    Active,
    All,
    Disabled,
}

impl AgentInspect {
    pub fn new(add_ports: AddPorts) -> Self {
        AgentInspect { add_ports }
    }
}

/// A NIC of the inventory worth a port.
#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    pub name: String,
    pub mac: MacAddress,
    pub pxe: bool,
    pub client_id: Option<String>,
}

/// The inventory's NICs with a valid MAC, and which become ports (the
/// `validate-interfaces` hook).
pub fn interfaces(
    node: &Node,
    inventory: &JsonObject,
    add: AddPorts,
) -> Result<(Vec<Nic>, Vec<Nic>), String> {
    let pxe_mac = inventory
        .get("boot")
        .and_then(|b| b.get("pxe_interface"))
        .and_then(Value::as_str)
        .and_then(|m| m.trim().parse::<MacAddress>().ok());
    let mut all = Vec::new();
    let mut valid = Vec::new();
    for iface in inventory
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = iface.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(mac) = iface
            .get("mac_address")
            .and_then(Value::as_str)
            .and_then(|m| m.parse::<MacAddress>().ok())
        else {
            continue;
        };
        let ip = iface
            .get("ipv4_address")
            .and_then(Value::as_str)
            .or_else(|| iface.get("ipv6_address").and_then(Value::as_str))
            .filter(|ip| !ip.is_empty());
        let nic = Nic {
            name: name.to_owned(),
            pxe: Some(&mac) == pxe_mac.as_ref(),
            mac,
            client_id: iface
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        all.push(nic.clone());
        let loopback = name == "lo" || ip.is_some_and(|ip| ip.starts_with("127.") || ip == "::1");
        let keep = match add {
            AddPorts::Pxe if pxe_mac.is_some() => nic.pxe,
            AddPorts::Pxe | AddPorts::Active => ip.is_some(),
            AddPorts::All | AddPorts::Disabled => true,
        };
        if !loopback && keep {
            valid.push(nic);
        }
    }
    if all.is_empty() {
        return Err(format!(
            "The inventory for node {} is invalid: no valid network interfaces",
            node.uuid
        ));
    }
    if valid.is_empty() {
        return Err(format!(
            "The inventory for node {} is invalid: no network interfaces match the configuration \
             (add_ports={add:?})",
            node.uuid
        ));
    }
    Ok((all, valid))
}

/// The properties inspection sets: `cpu_arch`, `cpus`, `memory_mb` and
/// `local_gb` (the root disk, by the node's root device hints or IPA's
/// smallest disk of at least 4 GiB, in GiB less one for partitioning).
pub fn properties(node: &Node, inventory: &JsonObject) -> Result<JsonObject, String> {
    let mut out = JsonObject::new();
    let cpu = inventory.get("cpu");
    if let Some(arch) = cpu
        .and_then(|c| c.get("architecture"))
        .and_then(Value::as_str)
    {
        out.insert("cpu_arch".into(), json!(arch));
    }
    if let Some(count) = cpu.and_then(|c| c.get("count")).and_then(Value::as_u64) {
        out.insert("cpus".into(), json!(count));
    }
    if let Some(mb) = inventory
        .get("memory")
        .and_then(|m| m.get("physical_mb"))
        .and_then(Value::as_u64)
    {
        out.insert("memory_mb".into(), json!(mb));
    }
    if let Some(size) = root_disk_size(node, inventory)? {
        out.insert("local_gb".into(), json!((size / GIB).saturating_sub(1)));
    }
    Ok(out)
}

fn root_disk_size(node: &Node, inventory: &JsonObject) -> Result<Option<u64>, String> {
    let disks: Vec<ferric_ipa::BlockDevice> = inventory
        .get("disks")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| {
            format!(
                "The inventory for node {} has disks that cannot be read: {e}",
                node.uuid
            )
        })?
        .unwrap_or_default();
    if disks.is_empty() {
        return Ok(None);
    }
    let hints = match node.properties.get("root_device") {
        Some(h) => ferric_ipa::RootDeviceHints::parse(h).map_err(|e| e.to_string())?,
        None => None,
    };
    let chosen = match &hints {
        Some(h) => h.find_first(&disks),
        None => disks
            .iter()
            .filter(|d| d.size >= 4 * GIB)
            .min_by_key(|d| d.size),
    };
    match chosen {
        Some(d) => Ok(Some(d.size)),
        None if hints.is_some() => Err(format!(
            "No disks satisfied root device hints for node {}",
            node.uuid
        )),
        None => Ok(None),
    }
}

/// A port for a NIC of `node`.
fn port_for(node: &Node, nic: &Nic) -> Port {
    let mut extra = JsonObject::new();
    if let Some(id) = &nic.client_id {
        extra.insert("client-id".into(), json!(id));
    }
    Port {
        id: 0,
        uuid: PortUuid::new_random(),
        address: nic.mac.clone(),
        node_uuid: node.uuid,
        portgroup_uuid: None,
        name: None,
        description: None,
        extra,
        internal_info: JsonObject::new(),
        local_link_connection: JsonObject::new(),
        physical_network: None,
        pxe_enabled: nic.pxe,
        is_smartnic: false,
        vendor: None,
        category: None,
        available_for_dynamic_portgroup: true,
        created_at: Utc::now(),
        updated_at: None,
    }
}

#[async_trait]
impl Interface for AgentInspect {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Inspect
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        task.driver.boot.validate(task).await
    }
}

#[async_trait]
impl InspectInterface for AgentInspect {
    /// Boots the ramdisk; its agent reports back by `continue_inspection`.
    async fn inspect_hardware(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let boot = task.driver.boot.clone();
        boot.prepare_ramdisk(task).await?;
        power_action(task, PowerState::Rebooting).await?;
        task.record_event(
            "inspecting",
            "Booting the deploy ramdisk to inspect the node",
        )
        .await;
        Ok(Outcome::Wait)
    }

    async fn abort(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.finish(task).await
    }

    async fn continue_inspection(
        &self,
        task: &mut Task<'_>,
        inventory: &JsonObject,
        plugin_data: &JsonObject,
    ) -> Result<(), DriverError> {
        if let Some(error) = plugin_data.get("error").filter(|e| !e.is_null()) {
            let text = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(DriverError::failed(format!(
                "Ramdisk reported error: {text}"
            )));
        }
        let (_, valid) =
            interfaces(task.node, inventory, self.add_ports).map_err(DriverError::failed)?;
        let props = properties(task.node, inventory).map_err(DriverError::failed)?;
        if self.add_ports != AddPorts::Disabled {
            for nic in &valid {
                if task.ports.iter().any(|p| p.address == nic.mac) {
                    continue;
                }
                let port = port_for(task.node, nic);
                match task.add_port(port).await {
                    Ok(()) => {
                        tracing::info!(node = %task.node.uuid, mac = %nic.mac, "port created from the inventory")
                    }
                    Err(e) => {
                        tracing::warn!(node = %task.node.uuid, mac = %nic.mac, error = %e.chain(), "could not create a port")
                    }
                }
            }
        }
        for (key, value) in props {
            task.node.properties.insert(key, value);
        }
        task.record_event("introspection", "Inventory received and stored")
            .await;
        self.finish(task).await
    }
}

impl AgentInspect {
    /// Powers the node off and undoes the ramdisk's boot set-up.
    async fn finish(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        if !task.node.disable_power_off {
            power_action(task, PowerState::Off).await?;
        }
        let boot = task.driver.boot.clone();
        boot.clean_up_ramdisk(task).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node::enroll(
            ferric_core::NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            Utc::now(),
        )
    }

    fn inventory() -> JsonObject {
        json!({
            "cpu": {"architecture": "x86_64", "count": 4, "model_name": "QEMU"},
            "memory": {"physical_mb": 2048, "total": 2147483648u64},
            "disks": [
                {"name": "/dev/vda", "size": 10737418240u64, "rotational": false, "model": "", "vendor": "0x1af4"},
                {"name": "/dev/vdb", "size": 5368709120u64, "rotational": true, "model": "", "vendor": "0x1af4"},
                {"name": "/dev/sr0", "size": 1073741824u64, "rotational": true, "model": "", "vendor": ""},
            ],
            "interfaces": [
                {"name": "lo", "mac_address": "00:00:00:00:00:00", "ipv4_address": "127.0.0.1"},
                {"name": "eth0", "mac_address": "52:54:00:12:34:56", "ipv4_address": "192.0.2.10"},
                {"name": "eth1", "mac_address": "52:54:00:12:34:57", "ipv4_address": null},
                {"name": "bad", "mac_address": "zz"},
            ],
            "boot": {"current_boot_mode": "bios", "pxe_interface": "52:54:00:12:34:56"},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn properties_come_from_the_inventory() {
        let props = properties(&node(), &inventory()).unwrap();
        assert_eq!(
            Value::Object(props),
            json!({"cpu_arch": "x86_64", "cpus": 4, "memory_mb": 2048, "local_gb": 4})
        );
        let mut hinted = node();
        hinted
            .properties
            .insert("root_device".into(), json!({"name": "/dev/vda"}));
        assert_eq!(properties(&hinted, &inventory()).unwrap()["local_gb"], 9);
        hinted
            .properties
            .insert("root_device".into(), json!({"size": ">= 100"}));
        assert!(properties(&hinted, &inventory()).is_err());
    }

    #[test]
    fn ports_follow_add_ports() {
        let n = node();
        let names = |add| {
            let (_, valid) = interfaces(&n, &inventory(), add).unwrap();
            valid.into_iter().map(|i| i.name).collect::<Vec<_>>()
        };
        assert_eq!(names(AddPorts::Pxe), vec!["eth0"]);
        assert_eq!(names(AddPorts::Active), vec!["eth0"]);
        assert_eq!(names(AddPorts::All), vec!["eth0", "eth1"]);
        let mut no_boot = inventory();
        no_boot.remove("boot");
        let (_, valid) = interfaces(&n, &no_boot, AddPorts::Pxe).unwrap();
        assert_eq!(valid.len(), 1, "without a boot NIC, those with an address");
        assert!(!valid[0].pxe);
        let empty = json!({"interfaces": [{"name": "x", "mac_address": "nope"}]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(interfaces(&n, &empty, AddPorts::All).is_err());
    }
}
