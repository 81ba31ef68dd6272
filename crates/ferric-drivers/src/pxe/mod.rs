//! Ironic's `pxe` and `ipxe` boot interfaces: the node network-boots the
//! agent's ramdisk (deploy, cleaning, inspection, rescue) and, with
//! netboot, its instance.
//!
//! For each boot the interface fetches the kernel and ramdisk into the
//! node's directory under the boot root (HTTP root for `ipxe`, TFTP root
//! for `pxe`; see [`cache`]), renders the node's boot config there
//! ([`render`]), and writes DHCP options that send the node's MACs to it
//! ([`dnsmasq`]). Cleaning up removes all three. Per-node layout, as
//! Ironic's:
//!
//! ```text
//! <root>/<node uuid>/config            iPXE script, PXELINUX or GRUB config
//! <root>/<node uuid>/deploy_kernel     deploy_ramdisk, rescue_*, kernel, ramdisk
//! <tftp root>/pxelinux.cfg/01-<mac>    -> ../<node uuid>/config   (pxe, BIOS)
//! <tftp root>/grub.cfg-01-<mac>        -> <node uuid>/config      (pxe, UEFI)
//! <http root>/pxelinux.cfg/<mac>       -> ../<node uuid>/config   (ipxe)
//! ```

pub mod cache;
pub mod config;
pub mod dnsmasq;
pub mod files;
pub mod render;

use std::path::PathBuf;

use async_trait::async_trait;
use ferric_core::{BootDevice, InterfaceKind, Node, ProvisionState as S};
use serde_json::Value;

use crate::error::DriverError;
use crate::interface::{BootInterface, Interface, Task};
use dnsmasq::DhcpOption;
use render::{Render, Target};

pub use config::{DhcpProviderConfig, DnsmasqConfig, PxeConfig};

/// `pxe` (PXELINUX or GRUB over TFTP) or `ipxe` (iPXE over HTTP).
#[derive(Debug, Clone, Copy)]
pub struct PxeBoot {
    ipxe: bool,
}

impl PxeBoot {
    pub fn pxe() -> PxeBoot {
        PxeBoot { ipxe: false }
    }

    pub fn ipxe() -> PxeBoot {
        PxeBoot { ipxe: true }
    }
}

/// Ironic's `rescue_or_deploy_mode`: which kernel and ramdisk pair.
fn mode(node: &Node) -> &'static str {
    match node.provision_state {
        S::Rescuing | S::RescueWait | S::RescueFailed | S::Unrescuing | S::UnrescueFailed => {
            "rescue"
        }
        _ => "deploy",
    }
}

/// `instance_info.capabilities.boot_option`: `local` (the default) or
/// `netboot`.
fn boot_option(node: &Node) -> Result<String, DriverError> {
    let option = crate::boot_mode::instance_capability(node, "boot_option")
        .unwrap_or_else(|| "local".to_owned());
    match option.as_str() {
        "local" | "netboot" => Ok(option),
        other => Err(DriverError::InvalidParameter(format!(
            "Invalid boot_option \"{other}\" in instance_info capabilities; valid are local, netboot"
        ))),
    }
}

fn is_whole_disk(node: &Node) -> bool {
    match node.driver_internal_info.get("is_whole_disk_image") {
        Some(Value::Bool(whole)) => *whole,
        _ => node.instance_info.get("kernel").is_none_or(Value::is_null),
    }
}

fn info_str<'a>(map: &'a ferric_core::JsonObject, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What one boot interface call works with: the roots and URLs, resolved.
struct Place<'a> {
    root: PathBuf,
    /// How the node's files are named in its config: an HTTP URL prefix
    /// (`ipxe`) or the TFTP root's own path (`pxe`, as Ironic writes it).
    base: String,
    task_config: &'a crate::config::DriverConfig,
}

impl Place<'_> {
    fn node_dir(&self, node: &Node) -> PathBuf {
        self.root.join(node.uuid.to_string())
    }

    fn file_ref(&self, node: &Node, name: &str) -> String {
        format!("{}/{}/{name}", self.base.trim_end_matches('/'), node.uuid)
    }
}

impl PxeBoot {
    fn place<'a>(&self, config: &'a crate::config::DriverConfig) -> Result<Place<'a>, DriverError> {
        if self.ipxe {
            let (url, root) = (&config.deploy.http_url, &config.deploy.http_root);
            if url.is_empty() || root.as_os_str().is_empty() {
                return Err(DriverError::MissingParameter(
                    "iPXE boot is enabled but no HTTP URL or HTTP root was specified".into(),
                ));
            }
            return Ok(Place {
                root: root.clone(),
                base: url.clone(),
                task_config: config,
            });
        }
        let root = &config.pxe.tftp_root;
        if root.as_os_str().is_empty() {
            return Err(DriverError::MissingParameter(
                "PXE boot is enabled but no TFTP root ([pxe] tftp_root) was specified".into(),
            ));
        }
        Ok(Place {
            root: root.clone(),
            base: root.display().to_string(),
            task_config: config,
        })
    }

    /// Ironic's `parse_driver_info`: the agent's kernel and ramdisk.
    fn agent_images(node: &Node, mode: &str) -> Result<(String, String), DriverError> {
        let kernel_key = format!("{mode}_kernel");
        let ramdisk_key = format!("{mode}_ramdisk");
        let kernel = info_str(&node.driver_info, &kernel_key);
        let ramdisk = info_str(&node.driver_info, &ramdisk_key);
        match (kernel, ramdisk) {
            (Some(k), Some(r)) => Ok((k.to_owned(), r.to_owned())),
            _ => {
                let missing: Vec<String> = [(kernel, kernel_key), (ramdisk, ramdisk_key)]
                    .into_iter()
                    .filter(|(v, _)| v.is_none())
                    .map(|(_, k)| format!("'{k}'"))
                    .collect();
                Err(DriverError::MissingParameter(format!(
                    "Cannot validate PXE bootloader. Some parameters were missing in node's \
                     driver_info and configuration. Missing are: [{}]",
                    missing.join(", ")
                )))
            }
        }
    }

    /// The kernel parameters: `[pxe] kernel_append_params`, the node's own
    /// (`driver_info.kernel_append_params`), then the agent's.
    fn kernel_params(task: &Task<'_>) -> Result<String, DriverError> {
        let config = task.config;
        if config.api_url.is_empty() {
            return Err(DriverError::MissingParameter(
                "No API URL for the agent: set [conductor] api_url".into(),
            ));
        }
        let base = info_str(&task.node.driver_info, "kernel_append_params")
            .unwrap_or(&config.pxe.kernel_append_params);
        check_kernel_params(base)?;
        Ok(format!("{base} ipa-api-url={}", config.api_url)
            .trim()
            .to_owned())
    }

    /// First-stage loader for the node's boot mode, as Ironic picks it.
    fn loader(&self, config: &PxeConfig, uefi: bool) -> String {
        match (self.ipxe, uefi) {
            (true, true) => config.uefi_ipxe_bootfile_name.clone(),
            (true, false) => config.ipxe_bootfile_name.clone(),
            (false, true) => config.uefi_pxe_bootfile_name.clone(),
            (false, false) => config.pxe_bootfile_name.clone(),
        }
    }

    /// Ironic's `dhcp_options_for_instance` (by number: 67 boot file, 66
    /// and 150 TFTP server, 255 dnsmasq's `server-ip-address`), plus options keyed on the
    /// client's architecture (tags `bios`, `efi-x86_64`) that win over the
    /// boot-mode ones where the DHCP server sets those tags (Ferric's does;
    /// a dnsmasq does with `dhcp-match=set:efi-x86_64,option:client-arch,7`).
    fn dhcp_options(&self, place: &Place<'_>, node: &Node) -> Vec<DhcpOption> {
        let pxe = &place.task_config.pxe;
        let uefi = crate::boot_mode::requested(node) == "uefi";
        let mut options = Vec::new();
        if self.ipxe {
            options.push(DhcpOption::new("tag:!ipxe,67", self.loader(pxe, uefi)));
            options.push(DhcpOption::new(
                "tag:!ipxe,tag:bios,67",
                self.loader(pxe, false),
            ));
            options.push(DhcpOption::new(
                "tag:!ipxe,tag:efi-x86_64,67",
                self.loader(pxe, true),
            ));
            // UEFI HTTP boot firmware loads iPXE itself over HTTP.
            let http_loader = format!(
                "{}/{}",
                place.base.trim_end_matches('/'),
                pxe.uefi_ipxe_bootfile_name
            );
            options.push(DhcpOption::new("tag:!ipxe,tag:httpclient,67", http_loader));
            options.push(DhcpOption::new(
                "tag:ipxe,67",
                place.file_ref(node, "config"),
            ));
        } else {
            options.push(DhcpOption::new("67", self.loader(pxe, uefi)));
            options.push(DhcpOption::new("tag:bios,67", self.loader(pxe, false)));
            options.push(DhcpOption::new("tag:efi-x86_64,67", self.loader(pxe, true)));
        }
        if !pxe.tftp_server.is_empty() {
            options.push(DhcpOption::new("66", pxe.tftp_server.clone()));
            options.push(DhcpOption::new("150", pxe.tftp_server.clone()));
            options.push(DhcpOption::new("255", pxe.tftp_server.clone()));
        }
        options
    }

    fn dhcp_dirs(config: &crate::config::DriverConfig) -> Option<dnsmasq::Dirs<'_>> {
        (config.dhcp.dhcp_provider == "dnsmasq").then_some(dnsmasq::Dirs {
            hosts: &config.dnsmasq.dhcp_hostsdir,
            opts: &config.dnsmasq.dhcp_optsdir,
        })
    }

    /// Renders `target` into the node's config and links its MACs to it.
    fn write_config(
        &self,
        place: &Place<'_>,
        task: &Task<'_>,
        target: &Target,
    ) -> Result<(), DriverError> {
        let params = Self::kernel_params(task)?;
        let r = Render {
            node: &task.node.uuid.to_string(),
            target,
            params: &params,
            ipxe_timeout_ms: task.config.pxe.ipxe_timeout * 1000,
        };
        let text = if self.ipxe {
            render::ipxe_script(&r)
        } else if crate::boot_mode::requested(task.node) == "uefi" {
            let mac = task
                .ports
                .iter()
                .find(|p| p.pxe_enabled)
                .map(|p| p.address.to_string())
                .unwrap_or_default();
            render::grub_config(&r, &mac)
        } else {
            render::pxelinux_config(&r)
        };
        let config_path = place.node_dir(task.node).join("config");
        files::write_atomically(&config_path, &text)?;
        for link in self.mac_links(place, task) {
            files::relink(&link, &config_path)?;
        }
        Ok(())
    }

    fn mac_links(&self, place: &Place<'_>, task: &Task<'_>) -> Vec<PathBuf> {
        let mut links = Vec::new();
        for port in task.ports.iter().filter(|p| p.pxe_enabled) {
            let hyphens = port.address.as_str().to_ascii_lowercase().replace(':', "-");
            if self.ipxe {
                links.push(place.root.join("pxelinux.cfg").join(&hyphens));
            } else {
                links.push(
                    place
                        .root
                        .join("pxelinux.cfg")
                        .join(format!("01-{hyphens}")),
                );
                links.push(place.root.join(format!("grub.cfg-01-{hyphens}")));
            }
        }
        links
    }

    async fn fetch(
        place: &Place<'_>,
        node: &Node,
        href: &str,
        name: &str,
    ) -> Result<String, DriverError> {
        let cache = cache::ImageCache::new(place.root.join("master_images"));
        cache
            .link_into(href, &place.node_dir(node).join(name))
            .await?;
        Ok(place.file_ref(node, name))
    }

    /// Removes the node's config, its MAC links, the named files and the
    /// DHCP options.
    fn clean_up(&self, task: &mut Task<'_>, files: &[&str]) -> Result<(), DriverError> {
        let Ok(place) = self.place(task.config) else {
            return Ok(());
        };
        for link in self.mac_links(&place, task) {
            files::remove_if_present(&link)?;
        }
        let dir = place.node_dir(task.node);
        for name in files.iter().chain(&["config"]) {
            files::remove_if_present(&dir.join(name))?;
        }
        let _ = std::fs::remove_dir(&dir);
        if let Some(dirs) = Self::dhcp_dirs(task.config) {
            dnsmasq::clean(&dirs, task.node, task.ports)?;
        }
        Ok(())
    }

    fn update_dhcp(&self, place: &Place<'_>, task: &mut Task<'_>) -> Result<(), DriverError> {
        let Some(dirs) = Self::dhcp_dirs(task.config) else {
            return Ok(());
        };
        let options = self.dhcp_options(place, task.node);
        dnsmasq::update(&dirs, task.node, task.ports, &options)
    }

    /// Netboot of a partition image: the instance's kernel and ramdisk from
    /// `instance_info`, the root from the deploy.
    async fn prepare_netboot(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let place = self.place(task.config)?;
        let target = if is_whole_disk(task.node) {
            Target::WholeDisk
        } else {
            let kernel_href = info_str(&task.node.instance_info, "kernel").map(str::to_owned);
            let ramdisk_href = info_str(&task.node.instance_info, "ramdisk").map(str::to_owned);
            let root = info_str(&task.node.driver_internal_info, "root_uuid_or_disk_id")
                .map(str::to_owned);
            let (Some(kernel_href), Some(ramdisk_href), Some(root)) =
                (kernel_href, ramdisk_href, root)
            else {
                return Err(DriverError::MissingParameter(
                    "Netboot needs instance_info kernel and ramdisk and the root partition's UUID \
                     from the deploy"
                        .into(),
                ));
            };
            Target::Partition {
                kernel: Self::fetch(&place, task.node, &kernel_href, "kernel").await?,
                ramdisk: Self::fetch(&place, task.node, &ramdisk_href, "ramdisk").await?,
                root: format!("UUID={root}"),
            }
        };
        self.write_config(&place, task, &target)?;
        self.update_dhcp(&place, task)
    }
}

/// Kernel parameters go on one line of a boot config: a line break would
/// let them add commands to it.
fn check_kernel_params(params: &str) -> Result<(), DriverError> {
    if params.chars().any(char::is_control) {
        return Err(DriverError::InvalidParameter(
            "kernel_append_params must be one line without control characters".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl Interface for PxeBoot {
    fn name(&self) -> &'static str {
        if self.ipxe {
            "ipxe"
        } else {
            "pxe"
        }
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Boot
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("deploy_kernel", "UUID (from Glance) of the deployment kernel. Required."),
            ("deploy_ramdisk", "UUID (from Glance) of the ramdisk with agent that is used at deploy time. Required."),
            ("rescue_kernel", "UUID (from Glance) of the rescue kernel. This value is required for rescue mode."),
            ("rescue_ramdisk", "UUID (from Glance) of the rescue ramdisk with agent that is used at node rescue time. This value is required for rescue mode."),
            ("kernel_append_params", "Additional kernel parameters to pass down to instance kernel. These parameters can be consumed by the kernel or by the applications by reading /proc/cmdline. Mind severe cmdline size limit. Overrides [pxe]/kernel_append_params ironic option."),
        ]
    }

    /// Ironic's checks: a port to boot from, the roots, the agent's kernel
    /// and ramdisk, and a valid boot option.
    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        if task.ports.is_empty() {
            return Err(DriverError::MissingParameter(format!(
                "Node {} does not have any port associated with it",
                task.node.uuid
            )));
        }
        self.place(task.config)?;
        boot_option(task.node)?;
        if let Some(params) = info_str(&task.node.driver_info, "kernel_append_params") {
            check_kernel_params(params)?;
        }
        Self::agent_images(task.node, "deploy").map(drop)
    }
}

#[async_trait]
impl BootInterface for PxeBoot {
    async fn prepare_ramdisk(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let place = self.place(task.config)?;
        let mode = mode(task.node);
        let (kernel_href, ramdisk_href) = Self::agent_images(task.node, mode)?;
        let kernel =
            Self::fetch(&place, task.node, &kernel_href, &format!("{mode}_kernel")).await?;
        let ramdisk =
            Self::fetch(&place, task.node, &ramdisk_href, &format!("{mode}_ramdisk")).await?;
        self.write_config(&place, task, &Target::Ramdisk { kernel, ramdisk })?;
        self.update_dhcp(&place, task)?;
        let management = task.driver.management.clone();
        management
            .set_boot_device(task, BootDevice::Pxe, false)
            .await?;
        tracing::info!(node = %task.node.uuid, interface = self.name(), mode, "ramdisk boot prepared");
        Ok(())
    }

    async fn clean_up_ramdisk(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let mode = mode(task.node);
        let kernel = format!("{mode}_kernel");
        let ramdisk = format!("{mode}_ramdisk");
        self.clean_up(task, &[&kernel, &ramdisk])
    }

    /// Local boot: the ramdisk's config and DHCP options go (or, with
    /// `enable_netboot_fallback`, a config that boots the disk stays) and
    /// the node boots from its disk. Netboot: the instance's config, and
    /// the node boots from the network on every boot.
    async fn prepare_instance(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let option = boot_option(task.node)?;
        let takeover = matches!(task.node.provision_state, S::Active | S::Adopting);
        let device = if option == "netboot" {
            self.prepare_netboot(task).await?;
            BootDevice::Pxe
        } else if task.config.pxe.enable_netboot_fallback {
            let place = self.place(task.config)?;
            self.write_config(&place, task, &Target::WholeDisk)?;
            BootDevice::Disk
        } else {
            self.clean_up(task, &["deploy_kernel", "deploy_ramdisk"])?;
            BootDevice::Disk
        };
        if !takeover {
            let management = task.driver.management.clone();
            management.set_boot_device(task, device, true).await?;
        }
        Ok(())
    }

    async fn clean_up_instance(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.clean_up(task, &["kernel", "ramdisk"])
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use ferric_core::{Node, Port};

    use chrono::Utc;
    use ferric_core::{JsonObject, NodeUuid, PortUuid};

    pub fn node_with_ports(macs: &[&str]) -> (Node, Vec<Port>) {
        let node = Node::enroll(
            NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            Utc::now(),
        );
        let ports = macs
            .iter()
            .map(|mac| Port {
                id: 0,
                uuid: PortUuid::new_random(),
                address: mac.parse().expect("mac"),
                node_uuid: node.uuid,
                portgroup_uuid: None,
                name: None,
                description: None,
                extra: JsonObject::new(),
                internal_info: JsonObject::new(),
                local_link_connection: JsonObject::new(),
                physical_network: None,
                pxe_enabled: true,
                is_smartnic: false,
                vendor: None,
                category: None,
                available_for_dynamic_portgroup: true,
                created_at: Utc::now(),
                updated_at: None,
            })
            .collect();
        (node, ports)
    }

    pub fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_params_cannot_add_lines_to_a_boot_config() {
        assert!(check_kernel_params("console=ttyS0 nofb").is_ok());
        for bad in ["a\n:deploy\nchain http://x", "a\rb", "a\u{0}b", "tab\there"] {
            assert!(check_kernel_params(bad).is_err(), "{bad:?}");
        }
    }
}
