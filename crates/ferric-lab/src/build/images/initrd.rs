//! The test images' initramfs: busybox-static, a few kernel modules and an
//! `/init` that prints the instance marker on the console, reports the
//! config drive and then keeps the machine up.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::build::cpio::CpioWriter;
use crate::build::BuildError;

use super::{CONFIG_DRIVE_MARKER, CONFIG_DRIVE_UUID_MARKER, INSTANCE_ERROR, INSTANCE_MARKER};

/// Which `/init` an initramfs runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind<'a> {
    /// The whole-disk image's: the marker token is baked in.
    Disk { token: &'a str },
    /// The netboot partition image's: mounts `root=` read-only and prints
    /// the token in its `/ferric-marker`.
    Partition,
}

/// The inputs of an initramfs.
pub struct InitramfsParts<'a> {
    /// busybox-static's `bin/busybox`.
    pub busybox: &'a Path,
    /// `(name, ELF bytes)` in load order.
    pub modules: &'a [(String, Vec<u8>)],
    pub init: InitKind<'a>,
}

/// Writes the initramfs (an uncompressed newc cpio) to `out`.
pub fn write_initramfs(parts: &InitramfsParts<'_>, out: &Path) -> Result<(), BuildError> {
    let busybox = std::fs::read(parts.busybox).map_err(|e| BuildError::io(parts.busybox, e))?;
    let names: Vec<&str> = parts
        .modules
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let script = init_script(parts.init, &names);
    let file = std::fs::File::create(out).map_err(|e| BuildError::io(out, e))?;
    let write = || -> std::io::Result<()> {
        let mut cpio = CpioWriter::new(BufWriter::new(file));
        for dir in [
            "bin",
            "dev",
            "proc",
            "sys",
            "mnt",
            "root",
            "tmp",
            "lib",
            "lib/modules",
        ] {
            cpio.dir(dir, 0o755)?;
        }
        // The kernel opens /dev/console for init before anything mounts /dev.
        cpio.char_device("dev/console", 0o600, 5, 1)?;
        cpio.file("bin/busybox", 0o755, &busybox)?;
        cpio.symlink("bin/sh", "busybox")?;
        for (name, elf) in parts.modules {
            cpio.file(&format!("lib/modules/{name}.ko"), 0o644, elf)?;
        }
        cpio.file("init", 0o755, script.as_bytes())?;
        cpio.finish()?.flush()
    };
    write().map_err(|e| BuildError::io(out, e))
}

/// The `/init` shell script: `modules` are `insmod`ed in that order from
/// `/lib/modules/NAME.ko`.
pub fn init_script(kind: InitKind<'_>, modules: &[&str]) -> String {
    let main = match kind {
        InitKind::Disk { token } => format!("say \"{INSTANCE_MARKER} {token}\"\n"),
        InitKind::Partition => PARTITION_MAIN.to_owned(),
    };
    format!(
        "#!/bin/busybox sh\n\
         # Ferric test image: prints its marker on the console, then stays up.\n\
         MODULES=\"{modules}\"\n\
         {SETUP}\
         {FUNCTIONS}\
         {main}\
         report_config_drive\n\
         while :; do sleep 3600; done\n",
        modules = modules.join(" "),
    )
    .replace("@INSTANCE_ERROR@", INSTANCE_ERROR)
    .replace("@INSTANCE_MARKER@", INSTANCE_MARKER)
    .replace("@CONFIG_DRIVE_UUID@", CONFIG_DRIVE_UUID_MARKER)
    .replace("@CONFIG_DRIVE@", CONFIG_DRIVE_MARKER)
}

/// What both inits do first.
const SETUP: &str = r#"/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $MODULES; do insmod /lib/modules/$m.ko; done
"#;

/// The shell functions both inits use.
const FUNCTIONS: &str = r#"
# On the console (init's stdout) and in the kernel log.
say() {
    echo "$*"
    echo "<3>$*" > /dev/kmsg 2>/dev/null
}

# The block device of LABEL=x, UUID=x or /dev/x, once it exists.
find_device() {
    case "$1" in
        UUID=*|LABEL=*)
            findfs "$1" 2>/dev/null \
                || blkid | sed -n "s/^\([^:]*\):.* ${1%%=*}=\"${1#*=}\".*/\1/p" | head -n 1 ;;
        /dev/*) [ -b "$1" ] && echo "$1" ;;
    esac
}

# Waits up to $2 half-seconds for find_device $1.
wait_device() {
    tries=$2
    while [ "$tries" -gt 0 ]; do
        dev=$(find_device "$1")
        [ -n "$dev" ] && { echo "$dev"; return 0; }
        sleep 0.5
        tries=$((tries - 1))
    done
    return 1
}

# The "uuid" of openstack/latest/meta_data.json on the config drive $1:
# read through isofs when it mounts, else found in the raw device.
config_drive_uuid() {
    mkdir -p /mnt/config
    if mount -o ro "$1" /mnt/config 2>/dev/null; then
        json=$(cat /mnt/config/openstack/latest/meta_data.json 2>/dev/null)
        umount /mnt/config
    else
        json=$(head -c 16777216 "$1" | strings | grep '"uuid"')
    fi
    echo "$json" | grep -o '"uuid": *"[^"]*"' | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/'
}

report_config_drive() {
    if dev=$(wait_device LABEL=config-2 10); then
        say "@CONFIG_DRIVE@ $dev"
        uuid=$(config_drive_uuid "$dev")
        [ -n "$uuid" ] && say "@CONFIG_DRIVE_UUID@ $uuid"
    else
        say "@CONFIG_DRIVE@ none"
    fi
}
"#;

/// The partition image's main part: its root holds the marker token.
const PARTITION_MAIN: &str = r#"root=
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=*) root="${arg#root=}" ;; esac
done
if [ -z "$root" ]; then
    say "@INSTANCE_ERROR@ no root= on the kernel command line"
elif ! dev=$(wait_device "$root" 60); then
    say "@INSTANCE_ERROR@ root $root did not appear"
elif ! mount -o ro "$dev" /root; then
    say "@INSTANCE_ERROR@ cannot mount $dev (root=$root)"
elif ! read -r token < /root/ferric-marker; then
    say "@INSTANCE_ERROR@ no /ferric-marker on $dev"
else
    say "@INSTANCE_MARKER@ $token"
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_init_bakes_in_its_token_and_modules() {
        let script = init_script(
            InitKind::Disk { token: "abc123" },
            &["virtio", "virtio_blk"],
        );
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("say \"FERRIC-INSTANCE-MARKER abc123\"\n"));
        assert!(script.contains("MODULES=\"virtio virtio_blk\"\n"));
        assert!(script.contains("say \"FERRIC-CONFIG-DRIVE $dev\""));
        assert!(script.trim_end().ends_with("while :; do sleep 3600; done"));
        assert!(!script.contains('@'), "a placeholder was left: {script}");
    }

    #[test]
    fn the_partition_init_reads_root_from_the_command_line() {
        let script = init_script(InitKind::Partition, &[]);
        assert!(script.contains("root=*) root=\"${arg#root=}\""));
        assert!(script.contains("say \"FERRIC-INSTANCE-MARKER $token\""));
        assert!(script.contains("/root/ferric-marker"));
        assert!(!script.contains('@'), "a placeholder was left: {script}");
    }

    #[test]
    fn both_inits_parse_under_busybox_sh() {
        if std::process::Command::new("busybox")
            .arg("true")
            .status()
            .is_err()
        {
            eprintln!("skipped: no busybox on this machine");
            return;
        }
        for kind in [InitKind::Disk { token: "0123abcd" }, InitKind::Partition] {
            let script = init_script(kind, &["virtio", "virtio_blk"]);
            let out = std::process::Command::new("busybox")
                .args(["sh", "-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{kind:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Runs the init's functions under the host's busybox, where there is
    /// one: `find_device` on `/dev/x` and the uuid from a raw "device".
    #[test]
    fn the_shell_functions_run_under_busybox() {
        if std::process::Command::new("busybox")
            .arg("true")
            .status()
            .is_err()
        {
            eprintln!("skipped: no busybox on this machine");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let drive = dir.path().join("drive");
        let mut raw = vec![0u8; 5000];
        raw.extend_from_slice(br#"{"availability_zone": "", "uuid": "5e3c0b0a-1f2e-4d3c-9b8a-7a6b5c4d3e2f", "name": "x"}"#);
        raw.extend_from_slice(&[0u8; 3000]);
        std::fs::write(&drive, raw).unwrap();
        let script = format!(
            "{FUNCTIONS}\nfind_device /dev/null; echo \"[$(find_device /dev/null)]\"\n\
             config_drive_uuid {}\n",
            drive.display()
        );
        let out = std::process::Command::new("busybox")
            .args(["sh", "-c", &script])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // /dev/null is no block device; the uuid comes from the raw bytes.
        assert!(stdout.contains("[]"), "{stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l == "5e3c0b0a-1f2e-4d3c-9b8a-7a6b5c4d3e2f"),
            "{stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_initramfs_holds_init_busybox_and_modules() {
        let dir = tempfile::tempdir().unwrap();
        let busybox = dir.path().join("busybox");
        std::fs::write(&busybox, b"\x7fELF fake").unwrap();
        let out = dir.path().join("initrd");
        let modules = vec![("virtio".to_owned(), b"\x7fELF".to_vec())];
        let parts = InitramfsParts {
            busybox: &busybox,
            modules: &modules,
            init: InitKind::Partition,
        };
        write_initramfs(&parts, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for name in [
            "dev/console",
            "bin/busybox",
            "lib/modules/virtio.ko",
            "init",
            "TRAILER!!!",
        ] {
            assert!(text.contains(&format!("{name}\0")), "no {name}");
        }
    }
}
