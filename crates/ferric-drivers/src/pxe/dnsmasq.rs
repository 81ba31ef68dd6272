//! Ironic's `dnsmasq` DHCP provider: a host file per MAC that tags the
//! node's requests, and an options file per node keyed by that tag. Ferric's
//! own DHCP server reads the same files, so does a dnsmasq started with
//! `--dhcp-hostsdir` and `--dhcp-optsdir` pointing at them.

use std::path::{Path, PathBuf};

use ferric_core::{Node, Port};
use serde_json::json;

use crate::error::DriverError;
use crate::pxe::files::{remove_if_present, write_atomically};

/// One DHCP option, as Ironic's `dhcp_options_for_instance` lists them:
/// the name may carry tag conditions (`tag:!ipxe,bootfile-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOption {
    pub name: String,
    pub value: String,
}

impl DhcpOption {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> DhcpOption {
        DhcpOption {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Where the files go.
#[derive(Debug, Clone)]
pub struct Dirs<'a> {
    pub hosts: &'a Path,
    pub opts: &'a Path,
}

fn host_file(dirs: &Dirs<'_>, mac: &str) -> PathBuf {
    dirs.hosts.join(format!("ironic-{mac}.conf"))
}

fn opts_file(dirs: &Dirs<'_>, node: &Node) -> PathBuf {
    dirs.opts.join(format!("ironic-{}.conf", node.uuid))
}

fn pxe_macs(ports: &[Port]) -> impl Iterator<Item = String> + '_ {
    ports
        .iter()
        .filter(|p| p.pxe_enabled)
        .map(|p| p.address.as_str().to_ascii_lowercase())
}

/// Writes the node's options and tags its MACs with the node's tag
/// (created on first use and kept in `driver_internal_info.dnsmasq_tag`).
pub fn update(
    dirs: &Dirs<'_>,
    node: &mut Node,
    ports: &[Port],
    options: &[DhcpOption],
) -> Result<(), DriverError> {
    let tag = match node
        .driver_internal_info
        .get("dnsmasq_tag")
        .and_then(|v| v.as_str())
    {
        Some(tag) => tag.to_owned(),
        None => {
            let tag = uuid::Uuid::new_v4().to_string();
            node.driver_internal_info
                .insert("dnsmasq_tag".into(), json!(tag));
            tag
        }
    };
    let mut text = String::new();
    for option in options {
        text.push_str(&format!("tag:{tag},{},{}\n", option.name, option.value));
    }
    write_atomically(&opts_file(dirs, node), &text)?;
    for mac in pxe_macs(ports) {
        write_atomically(
            &host_file(dirs, &mac),
            &format!("{mac},set:{tag},set:ironic\n"),
        )?;
    }
    tracing::debug!(node = %node.uuid, options = options.len(), "DHCP options written");
    Ok(())
}

/// Drops the node's tag, tells DHCP to ignore its MACs, and removes its
/// options.
pub fn clean(dirs: &Dirs<'_>, node: &mut Node, ports: &[Port]) -> Result<(), DriverError> {
    node.driver_internal_info.remove("dnsmasq_tag");
    for mac in pxe_macs(ports) {
        write_atomically(&host_file(dirs, &mac), &format!("{mac},ignore\n"))?;
    }
    remove_if_present(&opts_file(dirs, node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pxe::tests_support::{node_with_ports, read};

    #[test]
    fn writes_ironic_files_and_ignores_the_macs_afterwards() {
        let dir = tempfile::tempdir().expect("dir");
        let (hosts, opts) = (dir.path().join("hosts"), dir.path().join("opts"));
        let dirs = Dirs {
            hosts: &hosts,
            opts: &opts,
        };
        let (mut node, ports) = node_with_ports(&["52:54:00:AA:00:01", "52:54:00:aa:00:02"]);
        let options = [
            DhcpOption::new("tag:!ipxe,67", "undionly.kpxe"),
            DhcpOption::new("255", "10.0.0.1"),
        ];
        update(&dirs, &mut node, &ports, &options).expect("update");
        let tag = node.driver_internal_info["dnsmasq_tag"]
            .as_str()
            .expect("tag")
            .to_owned();
        let opts_path = opts.join(format!("ironic-{}.conf", node.uuid));
        assert_eq!(
            read(&opts_path),
            format!("tag:{tag},tag:!ipxe,67,undionly.kpxe\ntag:{tag},255,10.0.0.1\n")
        );
        assert_eq!(
            read(&hosts.join("ironic-52:54:00:aa:00:01.conf")),
            format!("52:54:00:aa:00:01,set:{tag},set:ironic\n")
        );
        update(&dirs, &mut node, &ports, &options).expect("again");
        assert_eq!(
            node.driver_internal_info["dnsmasq_tag"],
            tag.as_str(),
            "tag kept"
        );

        clean(&dirs, &mut node, &ports).expect("clean");
        assert!(!node.driver_internal_info.contains_key("dnsmasq_tag"));
        assert!(!opts_path.exists());
        assert_eq!(
            read(&hosts.join("ironic-52:54:00:aa:00:02.conf")),
            "52:54:00:aa:00:02,ignore\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&hosts)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left");
    }
}
