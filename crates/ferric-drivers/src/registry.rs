//! Hardware types and the registry that composes a node's driver from its
//! interface names, as Ironic's driver factory does.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferric_core::{InterfaceKind, Interfaces, Node};

use crate::config::DriverConfig;

use crate::fake::*;
use crate::interface::*;
use crate::noop::{Noop, NotSupported, Unavailable};

/// A hardware type: the interface implementations it supports, per kind,
/// in order of preference (the first available one is the default).
#[derive(Debug, Clone)]
pub struct HardwareType {
    pub name: &'static str,
    supported: BTreeMap<InterfaceKind, Vec<&'static str>>,
    /// `fake-hardware` accepts any implementation, for testing mixtures.
    accepts_any: bool,
}

impl HardwareType {
    pub fn supported(&self, kind: InterfaceKind) -> &[&'static str] {
        self.supported.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Why a node's interfaces cannot be composed. Texts are Ironic's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompositionError {
    #[error("Could not find the following driver(s) or hardware type(s): {0}.")]
    DriverNotFound(String),

    #[error(
        "Could not find the following interface in the 'ironic.hardware.interfaces.{kind}' \
         entrypoint: {name}. Valid interfaces are {valid}."
    )]
    InterfaceNotFound {
        kind: InterfaceKind,
        name: String,
        valid: String,
    },

    #[error("{kind} interface implementation '{name}' is not supported by hardware type {hardware_type}.")]
    Incompatible {
        kind: InterfaceKind,
        name: String,
        hardware_type: String,
    },

    #[error(
        "For{node_info} hardware type '{driver}', no default value found for {kind} interface \
         could be determined. Please ensure the interfaces are enabled."
    )]
    NoDefault {
        kind: InterfaceKind,
        driver: String,
        node_info: String,
    },
}

/// A node's driver: one implementation of every interface kind.
#[derive(Clone)]
pub struct Driver {
    pub hardware_type: &'static str,
    pub power: Arc<dyn PowerInterface>,
    pub management: Arc<dyn ManagementInterface>,
    pub boot: Arc<dyn BootInterface>,
    pub deploy: Arc<dyn DeployInterface>,
    pub inspect: Arc<dyn InspectInterface>,
    pub console: Arc<dyn ConsoleInterface>,
    pub rescue: Arc<dyn RescueInterface>,
    pub vendor: Arc<dyn VendorInterface>,
    pub raid: Arc<dyn RaidInterface>,
    pub bios: Arc<dyn BiosInterface>,
    pub network: Arc<dyn NetworkInterface>,
    pub storage: Arc<dyn StorageInterface>,
    pub firmware: Arc<dyn FirmwareInterface>,
}

impl Driver {
    /// The implementation of `kind`, seen through what all kinds share.
    pub fn interface(&self, kind: InterfaceKind) -> &dyn Interface {
        match kind {
            InterfaceKind::Power => self.power.as_ref(),
            InterfaceKind::Management => self.management.as_ref(),
            InterfaceKind::Boot => self.boot.as_ref(),
            InterfaceKind::Deploy => self.deploy.as_ref(),
            InterfaceKind::Inspect => self.inspect.as_ref(),
            InterfaceKind::Console => self.console.as_ref(),
            InterfaceKind::Rescue => self.rescue.as_ref(),
            InterfaceKind::Vendor => self.vendor.as_ref(),
            InterfaceKind::Raid => self.raid.as_ref(),
            InterfaceKind::Bios => self.bios.as_ref(),
            InterfaceKind::Network => self.network.as_ref(),
            InterfaceKind::Storage => self.storage.as_ref(),
            InterfaceKind::Firmware => self.firmware.as_ref(),
        }
    }

    /// Every step of every interface that takes part in `flow` for
    /// `node` (agent steps included, once its agent reported them).
    pub fn steps(&self, flow: StepFlow, node: &Node) -> Vec<StepDef> {
        InterfaceKind::ALL
            .iter()
            .flat_map(|k| self.interface(*k).steps(node))
            .filter(|s| s.flows.contains(&flow))
            .collect()
    }
}

type Table<T> = BTreeMap<&'static str, Arc<T>>;

/// Every interface implementation Ferric has, by kind and name.
#[derive(Default)]
struct Implementations {
    power: Table<dyn PowerInterface>,
    management: Table<dyn ManagementInterface>,
    boot: Table<dyn BootInterface>,
    deploy: Table<dyn DeployInterface>,
    inspect: Table<dyn InspectInterface>,
    console: Table<dyn ConsoleInterface>,
    rescue: Table<dyn RescueInterface>,
    vendor: Table<dyn VendorInterface>,
    raid: Table<dyn RaidInterface>,
    bios: Table<dyn BiosInterface>,
    network: Table<dyn NetworkInterface>,
    storage: Table<dyn StorageInterface>,
    firmware: Table<dyn FirmwareInterface>,
}

impl Implementations {
    fn builtin(config: &DriverConfig) -> Implementations {
        use InterfaceKind as K;
        let delays = config.fake;
        let mut t = Implementations::default();
        t.deploy.insert(
            "direct",
            Arc::new(crate::agent::direct::DirectDeploy::new(&config.deploy)),
        );
        t.deploy.insert(
            "iscsi",
            Arc::new(crate::agent::iscsi::IscsiDeploy::new(
                &config.deploy,
                &config.iscsi,
            )),
        );
        t.management
            .insert("noop", Arc::new(crate::noop::NoopManagement));
        t.inspect.insert(
            "agent",
            Arc::new(crate::agent::inspect::AgentInspect::new(
                config.inspector.add_ports,
            )),
        );
        t.power
            .insert("fake", Arc::new(FakePower::new(delays.power_delay)));
        t.management.insert(
            "fake",
            Arc::new(FakeManagement::new(delays.management_delay)),
        );
        t.boot
            .insert("fake", Arc::new(FakeBoot::new(delays.boot_delay)));
        t.deploy
            .insert("fake", Arc::new(FakeDeploy::new(delays.deploy_delay)));
        t.inspect
            .insert("fake", Arc::new(FakeInspect::new(delays.inspect_delay)));
        t.inspect.insert(
            "no-inspect",
            Arc::new(NotSupported::new(K::Inspect, "no-inspect")),
        );
        t.console
            .insert("fake", Arc::new(FakeConsole::new(DelayRange::default())));
        t.console.insert(
            "no-console",
            Arc::new(NotSupported::new(K::Console, "no-console")),
        );
        t.rescue
            .insert("fake", Arc::new(FakeRescue::new(delays.rescue_delay)));
        t.rescue.insert(
            "no-rescue",
            Arc::new(NotSupported::new(K::Rescue, "no-rescue")),
        );
        t.vendor
            .insert("fake", Arc::new(FakeVendor::new(delays.vendor_delay)));
        t.vendor.insert(
            "no-vendor",
            Arc::new(NotSupported::new(K::Vendor, "no-vendor")),
        );
        t.raid
            .insert("fake", Arc::new(FakeRaid::new(delays.raid_delay)));
        t.raid
            .insert("no-raid", Arc::new(NotSupported::new(K::Raid, "no-raid")));
        t.bios
            .insert("fake", Arc::new(FakeBios::new(delays.bios_delay)));
        t.bios
            .insert("no-bios", Arc::new(NotSupported::new(K::Bios, "no-bios")));
        t.network.insert("noop", Arc::new(Noop::new(K::Network)));
        t.storage.insert("noop", Arc::new(Noop::new(K::Storage)));
        t.firmware
            .insert("fake", Arc::new(FakeFirmware::new(delays.firmware_delay)));
        t.firmware.insert(
            "no-firmware",
            Arc::new(NotSupported::new(K::Firmware, "no-firmware")),
        );
        let ipmi = crate::ipmi::Ipmi::new();
        t.power.insert(
            "ipmitool",
            Arc::new(crate::ipmi::IpmiPower::new(ipmi.clone())),
        );
        t.management
            .insert("ipmitool", Arc::new(crate::ipmi::IpmiManagement::new(ipmi)));
        let redfish = crate::redfish::Redfish::new();
        t.power.insert(
            "redfish",
            Arc::new(crate::redfish::RedfishPower::new(redfish.clone())),
        );
        t.management.insert(
            "redfish",
            Arc::new(crate::redfish::RedfishManagement::new(redfish)),
        );
        t.boot.insert("pxe", Arc::new(crate::pxe::PxeBoot::pxe()));
        t.boot.insert("ipxe", Arc::new(crate::pxe::PxeBoot::ipxe()));
        for (kind, name) in PLANNED {
            t.insert_unavailable(*kind, name);
        }
        t
    }

    fn insert_unavailable(&mut self, kind: InterfaceKind, name: &'static str) {
        let u = Arc::new(Unavailable::new(kind, name));
        match kind {
            InterfaceKind::Power => drop(self.power.insert(name, u)),
            InterfaceKind::Management => drop(self.management.insert(name, u)),
            InterfaceKind::Boot => drop(self.boot.insert(name, u)),
            InterfaceKind::Deploy => drop(self.deploy.insert(name, u)),
            InterfaceKind::Inspect => drop(self.inspect.insert(name, u)),
            InterfaceKind::Console => drop(self.console.insert(name, u)),
            InterfaceKind::Rescue => drop(self.rescue.insert(name, u)),
            InterfaceKind::Vendor => drop(self.vendor.insert(name, u)),
            InterfaceKind::Raid => drop(self.raid.insert(name, u)),
            InterfaceKind::Bios => drop(self.bios.insert(name, u)),
            InterfaceKind::Network => drop(self.network.insert(name, u)),
            InterfaceKind::Storage => drop(self.storage.insert(name, u)),
            InterfaceKind::Firmware => drop(self.firmware.insert(name, u)),
        }
    }

    /// The shared view of one implementation, if it exists.
    fn get(&self, kind: InterfaceKind, name: &str) -> Option<&dyn Interface> {
        macro_rules! view {
            ($table:ident) => {
                self.$table.get(name).map(|i| i.as_ref() as &dyn Interface)
            };
        }
        match kind {
            InterfaceKind::Power => view!(power),
            InterfaceKind::Management => view!(management),
            InterfaceKind::Boot => view!(boot),
            InterfaceKind::Deploy => view!(deploy),
            InterfaceKind::Inspect => view!(inspect),
            InterfaceKind::Console => view!(console),
            InterfaceKind::Rescue => view!(rescue),
            InterfaceKind::Vendor => view!(vendor),
            InterfaceKind::Raid => view!(raid),
            InterfaceKind::Bios => view!(bios),
            InterfaceKind::Network => view!(network),
            InterfaceKind::Storage => view!(storage),
            InterfaceKind::Firmware => view!(firmware),
        }
    }

    fn names(&self, kind: InterfaceKind) -> Vec<&'static str> {
        fn keys<T: ?Sized>(t: &Table<T>) -> Vec<&'static str> {
            t.keys().copied().collect()
        }
        match kind {
            InterfaceKind::Power => keys(&self.power),
            InterfaceKind::Management => keys(&self.management),
            InterfaceKind::Boot => keys(&self.boot),
            InterfaceKind::Deploy => keys(&self.deploy),
            InterfaceKind::Inspect => keys(&self.inspect),
            InterfaceKind::Console => keys(&self.console),
            InterfaceKind::Rescue => keys(&self.rescue),
            InterfaceKind::Vendor => keys(&self.vendor),
            InterfaceKind::Raid => keys(&self.raid),
            InterfaceKind::Bios => keys(&self.bios),
            InterfaceKind::Network => keys(&self.network),
            InterfaceKind::Storage => keys(&self.storage),
            InterfaceKind::Firmware => keys(&self.firmware),
        }
    }
}

/// Interface names later work fills in. Nodes can name them now; they
/// report themselves unavailable until built.
const PLANNED: &[(InterfaceKind, &str)] = &[
    (InterfaceKind::Deploy, "ramdisk"),
    (InterfaceKind::Raid, "agent"),
    (InterfaceKind::Vendor, "ipmitool"),
    (InterfaceKind::Network, "flat"),
];

fn hardware_types() -> Vec<HardwareType> {
    use InterfaceKind as K;
    let table =
        |rows: &[(K, &[&'static str])]| rows.iter().map(|(k, v)| (*k, v.to_vec())).collect();
    let fake = HardwareType {
        name: "fake-hardware",
        accepts_any: true,
        supported: table(&[
            (K::Bios, &["fake", "no-bios"]),
            (K::Boot, &["fake", "pxe", "ipxe"]),
            (K::Console, &["fake", "no-console"]),
            (K::Deploy, &["fake", "direct", "iscsi", "ramdisk"]),
            (K::Firmware, &["fake", "no-firmware"]),
            (K::Inspect, &["fake", "no-inspect", "agent"]),
            (K::Management, &["fake"]),
            (K::Network, &["noop", "flat"]),
            (K::Power, &["fake"]),
            (K::Raid, &["fake", "no-raid", "agent"]),
            (K::Rescue, &["fake", "no-rescue"]),
            (K::Storage, &["noop"]),
            (K::Vendor, &["fake", "no-vendor"]),
        ]),
    };
    let generic = |name, power: &'static str, vendor: &'static [&'static str]| HardwareType {
        name,
        accepts_any: false,
        supported: table(&[
            (K::Bios, &["no-bios"]),
            (K::Boot, &["ipxe", "pxe"]),
            (K::Console, &["no-console"]),
            (K::Deploy, &["direct", "iscsi", "ramdisk"]),
            (K::Firmware, &["no-firmware"]),
            (K::Inspect, &["agent", "no-inspect"]),
            (K::Management, &[power]),
            (K::Network, &["noop", "flat"]),
            (K::Power, &[power]),
            (K::Raid, &["no-raid", "agent"]),
            (K::Rescue, &["no-rescue"]),
            (K::Storage, &["noop"]),
            (K::Vendor, vendor),
        ]),
    };
    // Power and boot devices handled by hand (or by the agent): Ironic's
    // `manual-management`.
    let mut manual = generic("manual-management", "noop", &["no-vendor"]);
    manual.supported.insert(K::Management, vec!["noop", "fake"]);
    manual.supported.insert(K::Power, vec!["fake"]);
    vec![
        fake,
        generic("ipmi", "ipmitool", &["ipmitool", "no-vendor"]),
        generic("redfish", "redfish", &["no-vendor"]),
        manual,
    ]
}

/// All hardware types and interface implementations of this Ferric, and
/// the configuration they were made with.
pub struct Registry {
    types: Vec<HardwareType>,
    impls: Implementations,
    config: Arc<DriverConfig>,
}

impl Registry {
    pub fn builtin(config: DriverConfig) -> Registry {
        Registry {
            types: hardware_types(),
            impls: Implementations::builtin(&config),
            config: Arc::new(config),
        }
    }

    /// The configuration the interfaces read.
    pub fn config(&self) -> &Arc<DriverConfig> {
        &self.config
    }

    /// Adds (or replaces) a deploy interface under `name`; nodes of
    /// `fake-hardware` can then use it. For tests that script what a deploy
    /// interface answers, and for extensions.
    pub fn register_deploy(&mut self, name: &'static str, deploy: Arc<dyn DeployInterface>) {
        self.impls.deploy.insert(name, deploy);
    }

    /// Adds (or replaces) a management interface under `name`, as
    /// [`Registry::register_deploy`] does for deploy interfaces.
    pub fn register_management(
        &mut self,
        name: &'static str,
        management: Arc<dyn ManagementInterface>,
    ) {
        self.impls.management.insert(name, management);
    }

    pub fn hardware_type(&self, name: &str) -> Result<&HardwareType, CompositionError> {
        self.types
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CompositionError::DriverNotFound(name.to_owned()))
    }

    /// Hardware types whose default interfaces all work: the ones `GET
    /// /v1/drivers` lists.
    pub fn available_hardware_types(&self) -> impl Iterator<Item = &HardwareType> {
        self.types.iter().filter(|t| {
            InterfaceKind::ALL
                .iter()
                .all(|k| self.default_interface(t, *k).is_some())
        })
    }

    /// Implementations of `kind` that `hw` supports and that work, in the
    /// hardware type's order.
    pub fn enabled_interfaces(&self, hw: &HardwareType, kind: InterfaceKind) -> Vec<&'static str> {
        hw.supported(kind)
            .iter()
            .copied()
            .filter(|name| self.impls.get(kind, name).is_some_and(|i| i.available()))
            .collect()
    }

    /// The first implementation of `kind` that `hw` supports and that works.
    pub fn default_interface(
        &self,
        hw: &HardwareType,
        kind: InterfaceKind,
    ) -> Option<&'static str> {
        self.enabled_interfaces(hw, kind).first().copied()
    }

    /// The default to store on a new node: the first working one, else the
    /// first known one (so nodes of hardware types still being built can
    /// be enrolled).
    fn enrolment_default(&self, hw: &HardwareType, kind: InterfaceKind) -> Option<&'static str> {
        self.default_interface(hw, kind).or_else(|| {
            hw.supported(kind)
                .iter()
                .copied()
                .find(|name| self.impls.get(kind, name).is_some())
        })
    }

    /// Checks that `name` may serve as `kind` of a node of type `hw`.
    pub fn check_interface(
        &self,
        hw: &HardwareType,
        kind: InterfaceKind,
        name: &str,
    ) -> Result<(), CompositionError> {
        if self.impls.get(kind, name).is_none() {
            let valid: Vec<String> = self
                .impls
                .names(kind)
                .iter()
                .map(|n| format!("'{n}'"))
                .collect();
            return Err(CompositionError::InterfaceNotFound {
                kind,
                name: name.to_owned(),
                valid: format!("[{}]", valid.join(", ")),
            });
        }
        if !hw.accepts_any && !hw.supported(kind).contains(&name) {
            return Err(CompositionError::Incompatible {
                kind,
                name: name.to_owned(),
                hardware_type: hw.name.to_owned(),
            });
        }
        Ok(())
    }

    /// Validates the node's chosen interfaces and fills every empty one with
    /// the hardware type's default.
    pub fn fill_interfaces(&self, node: &mut Node) -> Result<(), CompositionError> {
        let hw = self.hardware_type(&node.driver)?;
        for kind in InterfaceKind::ALL {
            let chosen = node.interfaces.get(*kind).to_owned();
            if chosen.is_empty() {
                let default = self.enrolment_default(hw, *kind).ok_or_else(|| {
                    CompositionError::NoDefault {
                        kind: *kind,
                        driver: node.driver.clone(),
                        node_info: format!(" node {} with", node.uuid),
                    }
                })?;
                node.interfaces.set(*kind, default);
            } else {
                self.check_interface(hw, *kind, &chosen)?;
            }
        }
        Ok(())
    }

    /// Resets every interface to empty so [`Registry::fill_interfaces`]
    /// recomputes the defaults (a driver change with `reset_interfaces`).
    pub fn clear_interfaces(interfaces: &mut Interfaces) {
        for kind in InterfaceKind::ALL {
            interfaces.set(*kind, "");
        }
    }

    /// The node's driver, one implementation per kind.
    pub fn compose(&self, node: &Node) -> Result<Driver, CompositionError> {
        let hw = self.hardware_type(&node.driver)?;
        for (kind, name) in node.interfaces.iter() {
            self.check_interface(hw, kind, name)?;
        }
        let pick = |kind: InterfaceKind| node.interfaces.get(kind);
        let missing = |kind: InterfaceKind| CompositionError::InterfaceNotFound {
            kind,
            name: node.interfaces.get(kind).to_owned(),
            valid: String::new(),
        };
        macro_rules! get {
            ($table:ident, $kind:expr) => {
                self.impls
                    .$table
                    .get(pick($kind))
                    .cloned()
                    .ok_or_else(|| missing($kind))?
            };
        }
        Ok(Driver {
            hardware_type: hw.name,
            power: get!(power, InterfaceKind::Power),
            management: get!(management, InterfaceKind::Management),
            boot: get!(boot, InterfaceKind::Boot),
            deploy: get!(deploy, InterfaceKind::Deploy),
            inspect: get!(inspect, InterfaceKind::Inspect),
            console: get!(console, InterfaceKind::Console),
            rescue: get!(rescue, InterfaceKind::Rescue),
            vendor: get!(vendor, InterfaceKind::Vendor),
            raid: get!(raid, InterfaceKind::Raid),
            bios: get!(bios, InterfaceKind::Bios),
            network: get!(network, InterfaceKind::Network),
            storage: get!(storage, InterfaceKind::Storage),
            firmware: get!(firmware, InterfaceKind::Firmware),
        })
    }

    /// The hardware type's default vendor interface, which driver-level
    /// passthru calls go to.
    pub fn default_vendor(
        &self,
        hw: &HardwareType,
    ) -> Result<Arc<dyn VendorInterface>, CompositionError> {
        self.default_interface(hw, InterfaceKind::Vendor)
            .and_then(|name| self.impls.vendor.get(name).cloned())
            .ok_or_else(|| no_default(hw, InterfaceKind::Vendor))
    }

    /// The hardware type's default RAID interface, which says what logical
    /// disks may hold.
    pub fn default_raid(
        &self,
        hw: &HardwareType,
    ) -> Result<Arc<dyn RaidInterface>, CompositionError> {
        self.default_interface(hw, InterfaceKind::Raid)
            .and_then(|name| self.impls.raid.get(name).cloned())
            .ok_or_else(|| no_default(hw, InterfaceKind::Raid))
    }

    /// Driver properties of the hardware type's default interfaces.
    pub fn properties(&self, hw: &HardwareType) -> BTreeMap<&'static str, &'static str> {
        InterfaceKind::ALL
            .iter()
            .filter_map(|k| {
                self.default_interface(hw, *k)
                    .and_then(|n| self.impls.get(*k, n))
            })
            .flat_map(|i| i.properties())
            .collect()
    }
}

fn no_default(hw: &HardwareType, kind: InterfaceKind) -> CompositionError {
    CompositionError::NoDefault {
        kind,
        driver: hw.name.to_owned(),
        node_info: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use ferric_core::NodeUuid;

    fn registry() -> Registry {
        Registry::builtin(DriverConfig::default())
    }

    fn node(driver: &str) -> Node {
        Node::enroll(
            NodeUuid::new_random(),
            driver.into(),
            Interfaces::default(),
            Utc::now(),
        )
    }

    #[test]
    fn fake_hardware_defaults_to_fake_everywhere_but_network_and_storage() {
        let r = registry();
        let mut n = node("fake-hardware");
        r.fill_interfaces(&mut n).unwrap();
        for (kind, name) in n.interfaces.iter() {
            let want = if matches!(kind, InterfaceKind::Network | InterfaceKind::Storage) {
                "noop"
            } else {
                "fake"
            };
            assert_eq!(name, want, "{kind}");
        }
        let driver = r.compose(&n).unwrap();
        assert_eq!(driver.hardware_type, "fake-hardware");
        assert_eq!(driver.interface(InterfaceKind::Deploy).name(), "fake");
    }

    #[test]
    fn only_working_hardware_types_are_listed() {
        let r = registry();
        let listed: Vec<&str> = r.available_hardware_types().map(|t| t.name).collect();
        assert_eq!(
            listed,
            vec!["fake-hardware", "ipmi", "redfish", "manual-management"]
        );
        let hw = r.hardware_type("fake-hardware").unwrap();
        assert_eq!(
            r.enabled_interfaces(hw, InterfaceKind::Deploy),
            vec!["fake", "direct", "iscsi"]
        );
    }

    #[test]
    fn planned_interfaces_enrol_but_do_not_compose_into_working_ones() {
        let r = registry();
        let mut n = node("ipmi");
        n.interfaces.set(InterfaceKind::Deploy, "ramdisk");
        r.fill_interfaces(&mut n).unwrap();
        let driver = r.compose(&n).unwrap();
        assert!(!driver.interface(InterfaceKind::Deploy).available());
    }

    #[test]
    fn ipmi_nodes_default_to_native_ipmi_ipxe_and_direct() {
        let r = registry();
        let mut n = node("ipmi");
        r.fill_interfaces(&mut n).unwrap();
        assert_eq!(n.interfaces.get(InterfaceKind::Power), "ipmitool");
        assert_eq!(n.interfaces.get(InterfaceKind::Deploy), "direct");
        assert_eq!(n.interfaces.get(InterfaceKind::Boot), "ipxe");
        let driver = r.compose(&n).unwrap();
        assert!(driver.interface(InterfaceKind::Power).available());
        assert!(driver.interface(InterfaceKind::Management).available());
        assert!(driver.interface(InterfaceKind::Boot).available());
    }

    #[test]
    fn bad_names_get_ironic_errors() {
        let r = registry();
        let mut n = node("nope");
        assert_eq!(
            r.fill_interfaces(&mut n).unwrap_err().to_string(),
            "Could not find the following driver(s) or hardware type(s): nope."
        );
        let mut n = node("ipmi");
        n.interfaces.set(InterfaceKind::Deploy, "fake");
        assert_eq!(
            r.fill_interfaces(&mut n).unwrap_err().to_string(),
            "deploy interface implementation 'fake' is not supported by hardware type ipmi."
        );
        let mut n = node("fake-hardware");
        n.interfaces.set(InterfaceKind::Deploy, "bogus");
        let err = r.fill_interfaces(&mut n).unwrap_err().to_string();
        assert!(err.starts_with("Could not find the following interface in the 'ironic.hardware.interfaces.deploy' entrypoint: bogus."), "{err}");
    }
}
