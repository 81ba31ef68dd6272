//! Ironic's `[pxe]`, `[dhcp]` and `[dnsmasq]` options, with Ironic's names.
//! Paths left empty are filled in by the server from its data directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[pxe]`: where boot files go and what the boot configs say.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PxeConfig {
    /// The TFTP server's root: boot loaders, and per-node directories of
    /// the `pxe` interface.
    pub tftp_root: PathBuf,
    /// The address nodes load TFTP files from (DHCP's next-server).
    pub tftp_server: String,
    /// Kernel parameters of every ramdisk boot, before the agent's.
    pub kernel_append_params: String,
    /// First-stage loaders the `pxe` interface names in DHCP, by boot mode.
    pub pxe_bootfile_name: String,
    pub uefi_pxe_bootfile_name: String,
    /// First-stage loaders the `ipxe` interface names in DHCP, by boot mode.
    pub ipxe_bootfile_name: String,
    pub uefi_ipxe_bootfile_name: String,
    /// Seconds iPXE waits for a kernel or ramdisk download; 0 for iPXE's
    /// own default.
    pub ipxe_timeout: u64,
    /// Leave a boot config that boots the disk when an actively deployed
    /// node network-boots (hardware that forgets a persistent boot device).
    pub enable_netboot_fallback: bool,
    /// Where the loaders copied into the roots are looked for, in order
    /// (Debian's `ipxe` package puts them in /usr/lib/ipxe).
    pub loader_dirs: Vec<PathBuf>,
}

impl Default for PxeConfig {
    fn default() -> Self {
        PxeConfig {
            tftp_root: PathBuf::new(),
            tftp_server: String::new(),
            kernel_append_params: "nofb vga=normal".into(),
            pxe_bootfile_name: "pxelinux.0".into(),
            uefi_pxe_bootfile_name: "bootx64.efi".into(),
            ipxe_bootfile_name: "undionly.kpxe".into(),
            uefi_ipxe_bootfile_name: "snponly.efi".into(),
            ipxe_timeout: 0,
            enable_netboot_fallback: false,
            loader_dirs: vec![
                PathBuf::from("/usr/lib/ipxe"),
                PathBuf::from("/usr/lib/PXELINUX"),
                PathBuf::from("/usr/lib/syslinux/modules/bios"),
            ],
        }
    }
}

/// `[dhcp]`: who answers nodes' DHCP with their boot options.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpProviderConfig {
    /// `dnsmasq`: host and option files in dnsmasq's format (read by
    /// Ferric's own DHCP server, or by a dnsmasq pointed at them);
    /// `none`: nothing is written, DHCP is someone else's business.
    pub dhcp_provider: String,
}

impl Default for DhcpProviderConfig {
    fn default() -> Self {
        DhcpProviderConfig {
            dhcp_provider: "dnsmasq".into(),
        }
    }
}

/// `[dnsmasq]`: where the `dnsmasq` provider writes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DnsmasqConfig {
    /// One file per MAC (dnsmasq's `--dhcp-hostsdir`).
    pub dhcp_hostsdir: PathBuf,
    /// One file of options per node (dnsmasq's `--dhcp-optsdir`).
    pub dhcp_optsdir: PathBuf,
    /// The lease file addresses are read from.
    pub dhcp_leasefile: PathBuf,
}
