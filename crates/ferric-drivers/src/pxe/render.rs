//! A node's boot configuration as text: an iPXE script, a PXELINUX config
//! (BIOS) or a GRUB config (UEFI). Each holds every way the node can boot,
//! under Ironic's label names, and starts the one asked for.

/// What the node boots next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The deploy (or rescue) ramdisk running the agent.
    Ramdisk { kernel: String, ramdisk: String },
    /// Netboot: the instance's own kernel and ramdisk, root on the disk.
    Partition {
        kernel: String,
        ramdisk: String,
        root: String,
    },
    /// The instance from its disk.
    WholeDisk,
}

impl Target {
    fn label(&self) -> &'static str {
        match self {
            Target::Ramdisk { .. } => "deploy",
            Target::Partition { .. } => "boot_partition",
            Target::WholeDisk => "boot_whole_disk",
        }
    }
}

/// Everything a config is rendered from.
#[derive(Debug, Clone)]
pub struct Render<'a> {
    pub node: &'a str,
    pub target: &'a Target,
    /// Kernel parameters: `[pxe] kernel_append_params` and the agent's.
    pub params: &'a str,
    /// iPXE's `--timeout` for downloads, in milliseconds; 0 for none.
    pub ipxe_timeout_ms: u64,
}

/// The iPXE script: retries the ramdisk download ten times with a growing
/// pause, then powers the machine off rather than loop.
pub fn ipxe_script(r: &Render<'_>) -> String {
    let timeout = match r.ipxe_timeout_ms {
        0 => String::new(),
        ms => format!("--timeout {ms} "),
    };
    let mut out = format!(
        "#!ipxe\n# Ferric: boot config of node {}\n\nset attempts:int32 10\nset i:int32 0\n\ngoto {}\n",
        r.node,
        r.target.label()
    );
    match r.target {
        Target::Ramdisk { kernel, ramdisk } => {
            let initrd = file_name(ramdisk);
            out.push_str(&format!(
                "\n:deploy\nimgfree\nkernel {timeout}{kernel} selinux=0 troubleshoot=0 text {params} \
                 BOOTIF=${{mac}} initrd={initrd} || goto retry\ninitrd {timeout}{ramdisk} || goto retry\nboot\n\n\
                 :retry\niseq ${{i}} ${{attempts}} && goto fail ||\ninc i\n\
                 echo No response, retrying in ${{i}} seconds.\nsleep ${{i}}\ngoto deploy\n\n\
                 :fail\necho Failed to get a response after ${{attempts}} attempts\n\
                 echo Powering off in 30 seconds.\nsleep 30\npoweroff\n",
                params = r.params
            ));
        }
        Target::Partition {
            kernel,
            ramdisk,
            root,
        } => {
            let initrd = file_name(ramdisk);
            out.push_str(&format!(
                "\n:boot_partition\nimgfree\nkernel {timeout}{kernel} root={root} ro text {params} \
                 initrd={initrd} || goto boot_partition\ninitrd {timeout}{ramdisk} || goto boot_partition\nboot\n",
                params = r.params
            ));
        }
        Target::WholeDisk => {}
    }
    out.push_str("\n:boot_whole_disk\nsanboot --no-describe || exit 0\n");
    out
}

/// The PXELINUX config (BIOS machines with the `pxe` interface).
pub fn pxelinux_config(r: &Render<'_>) -> String {
    let mut out = format!(
        "# Ferric: boot config of node {}\ndefault {}\n",
        r.node,
        r.target.label()
    );
    match r.target {
        Target::Ramdisk { kernel, ramdisk } => out.push_str(&format!(
            "\nlabel deploy\nkernel {kernel}\nappend initrd={ramdisk} selinux=0 troubleshoot=0 text {}\nipappend 2\n",
            r.params
        )),
        Target::Partition {
            kernel,
            ramdisk,
            root,
        } => out.push_str(&format!(
            "\nlabel boot_partition\nkernel {kernel}\nappend initrd={ramdisk} root={root} ro text {}\nipappend 2\n",
            r.params
        )),
        Target::WholeDisk => {}
    }
    out.push_str("\nlabel boot_whole_disk\nlocalboot 0\n");
    out
}

/// The GRUB config (UEFI machines with the `pxe` interface). GRUB has no
/// BOOTIF of its own; `mac` is the port the node boots from.
pub fn grub_config(r: &Render<'_>, mac: &str) -> String {
    let bootif = format!("BOOTIF=01-{}", mac.replace(':', "-").to_ascii_lowercase());
    let mut out = format!(
        "# Ferric: boot config of node {}\nset default={}\nset timeout=5\nset hidden_timeout_quiet=false\n",
        r.node,
        r.target.label()
    );
    match r.target {
        Target::Ramdisk { kernel, ramdisk } => out.push_str(&format!(
            "\nmenuentry \"deploy\" {{\n    linux {kernel} selinux=0 troubleshoot=0 text {} {bootif}\n    initrd {ramdisk}\n}}\n",
            r.params
        )),
        Target::Partition {
            kernel,
            ramdisk,
            root,
        } => out.push_str(&format!(
            "\nmenuentry \"boot_partition\" {{\n    linux {kernel} root={root} ro text {} {bootif}\n    initrd {ramdisk}\n}}\n",
            r.params
        )),
        Target::WholeDisk => {}
    }
    out.push_str("\nmenuentry \"boot_whole_disk\" {\n    exit\n}\n");
    out
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramdisk() -> Target {
        Target::Ramdisk {
            kernel: "http://10.0.0.1:8080/n1/deploy_kernel".into(),
            ramdisk: "http://10.0.0.1:8080/n1/deploy_ramdisk".into(),
        }
    }

    fn render(target: &Target) -> Render<'_> {
        Render {
            node: "n1",
            target,
            params: "nofb vga=normal ipa-api-url=http://10.0.0.1:6385",
            ipxe_timeout_ms: 0,
        }
    }

    #[test]
    fn ipxe_ramdisk_script_boots_the_agent_with_bootif_and_retries() {
        let target = ramdisk();
        let script = ipxe_script(&render(&target));
        assert!(script.starts_with("#!ipxe\n"));
        assert!(script.contains("\ngoto deploy\n"));
        assert!(script.contains(
            "kernel http://10.0.0.1:8080/n1/deploy_kernel selinux=0 troubleshoot=0 text nofb vga=normal \
             ipa-api-url=http://10.0.0.1:6385 BOOTIF=${mac} initrd=deploy_ramdisk || goto retry\n"
        ));
        assert!(
            script.contains("initrd http://10.0.0.1:8080/n1/deploy_ramdisk || goto retry\nboot\n")
        );
        assert!(script.contains("poweroff\n"));
        assert!(script.ends_with(":boot_whole_disk\nsanboot --no-describe || exit 0\n"));
    }

    #[test]
    fn ipxe_timeout_is_given_to_both_downloads() {
        let target = ramdisk();
        let mut r = render(&target);
        r.ipxe_timeout_ms = 60_000;
        let script = ipxe_script(&r);
        assert!(script.contains("kernel --timeout 60000 http://"));
        assert!(script.contains("initrd --timeout 60000 http://"));
    }

    #[test]
    fn netboot_configs_put_the_root_on_the_command_line() {
        let target = Target::Partition {
            kernel: "/srv/tftp/n1/kernel".into(),
            ramdisk: "/srv/tftp/n1/ramdisk".into(),
            root: "UUID=1be8-4a".into(),
        };
        let r = render(&target);
        assert!(ipxe_script(&r).contains("root=UUID=1be8-4a ro text"));
        let pxelinux = pxelinux_config(&r);
        assert!(pxelinux.contains("default boot_partition\n"));
        assert!(pxelinux.contains(
            "append initrd=/srv/tftp/n1/ramdisk root=UUID=1be8-4a ro text nofb vga=normal"
        ));
        let grub = grub_config(&r, "52:54:00:AA:00:01");
        assert!(grub.contains("set default=boot_partition\n"));
        assert!(grub.contains("BOOTIF=01-52-54-00-aa-00-01"));
    }

    #[test]
    fn whole_disk_boots_the_disk() {
        let r = render(&Target::WholeDisk);
        assert!(ipxe_script(&r).contains("goto boot_whole_disk\n"));
        assert!(pxelinux_config(&r).contains("default boot_whole_disk\n"));
        assert!(pxelinux_config(&r).contains("localboot 0"));
        assert!(grub_config(&r, "52:54:00:aa:00:01").contains("set default=boot_whole_disk\n"));
    }
}
