//! What a simulated machine's firmware makes of an iPXE script, without
//! I/O: the kernel to download with its arguments and initrds, or the local
//! disk (`sanboot`).
//!
//! The script runs as iPXE runs it, for what matters here: `#!ipxe` first;
//! lines one after the other, `goto LABEL` jumps, a `:label` line does
//! nothing (so a section without `boot` runs on into the next, as in iPXE);
//! `kernel [OPTIONS] URL ARGS...` and `initrd [OPTIONS] URL` load,
//! `imgfree` unloads, `boot` boots what is loaded, `sanboot` without a URI
//! boots the local disk; `exit`, `poweroff`, `reboot` and `shell` end the
//! script without a boot. A command's `|| ...` or `&& ...` tail is ignored:
//! a download that fails is a failed boot, not a retry. Other commands
//! (`set`, `echo`, `sleep`, ...) are ignored. `${mac}` (also `${net0/mac}`)
//! is replaced by the MAC with colons, `${mac:hexhyp}` with hyphens.

use std::collections::HashMap;

use crate::config::MacAddress;

/// More jumps than this is a script that loops without booting.
const MAX_JUMPS: usize = 64;

/// What the script boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `boot` after `kernel` (and `initrd`): download them, run the kernel.
    Kernel {
        /// The kernel's URL as written (possibly relative to the script's).
        kernel: String,
        /// The kernel's command line: the words after its URL.
        args: String,
        /// The initrds' URLs, in load order.
        initrds: Vec<String>,
    },
    /// `sanboot` without a URI: the local disk.
    LocalDisk,
}

/// A script that boots nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("not an iPXE script (the first line is not #!ipxe)")]
    NotIpxe,
    #[error("line {line}: goto {label}: no such label")]
    NoSuchLabel { line: usize, label: String },
    #[error("line {line}: {command} without an argument")]
    MissingArgument { line: usize, command: String },
    #[error("line {line}: boot with no kernel loaded")]
    BootWithoutKernel { line: usize },
    #[error("line {line}: sanboot {uri}: only the local disk is simulated")]
    SanUri { line: usize, uri: String },
    #[error("line {line}: the script ran {command} without booting")]
    Ended { line: usize, command: String },
    #[error("the script ends without booting")]
    NoBoot,
    #[error("the script loops without booting (more than {MAX_JUMPS} gotos)")]
    Loops,
}

/// What is loaded while the script runs.
#[derive(Default)]
struct Loaded {
    kernel: Option<(String, String)>,
    initrds: Vec<String>,
}

/// Runs a script for a machine with `mac`; returns what it boots.
pub fn plan(script: &str, mac: &MacAddress) -> Result<Plan, ScriptError> {
    let lines: Vec<&str> = script.lines().collect();
    if !lines.first().is_some_and(|l| l.starts_with("#!ipxe")) {
        return Err(ScriptError::NotIpxe);
    }
    let labels = labels(&lines);
    let mut loaded = Loaded::default();
    let mut jumps = 0;
    let mut at = 1;
    while let Some(line) = lines.get(at) {
        let number = at + 1;
        at += 1;
        let words = command_words(line, mac);
        let Some((command, args)) = words.split_first() else {
            continue;
        };
        let missing = || ScriptError::MissingArgument {
            line: number,
            command: command.clone(),
        };
        match command.as_str() {
            "goto" => {
                let label = args.first().ok_or_else(missing)?;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(ScriptError::Loops);
                }
                at = *labels
                    .get(label.as_str())
                    .ok_or_else(|| ScriptError::NoSuchLabel {
                        line: number,
                        label: label.clone(),
                    })?;
            }
            "kernel" => {
                let (url, rest) = split_url(args).ok_or_else(missing)?;
                loaded.kernel = Some((url.to_string(), rest.join(" ")));
            }
            "initrd" | "module" => {
                let (url, _) = split_url(args).ok_or_else(missing)?;
                loaded.initrds.push(url.to_string());
            }
            "imgfree" => loaded = Loaded::default(),
            "boot" => {
                let (kernel, args) = loaded
                    .kernel
                    .ok_or(ScriptError::BootWithoutKernel { line: number })?;
                return Ok(Plan::Kernel {
                    kernel,
                    args,
                    initrds: loaded.initrds,
                });
            }
            "sanboot" => return sanboot(number, args),
            "exit" | "poweroff" | "reboot" | "shell" => {
                return Err(ScriptError::Ended {
                    line: number,
                    command: command.clone(),
                })
            }
            _ => {}
        }
    }
    Err(ScriptError::NoBoot)
}

/// Each label's line index (the first of a name wins, as in iPXE).
fn labels<'a>(lines: &[&'a str]) -> HashMap<&'a str, usize> {
    let mut labels = HashMap::new();
    for (index, line) in lines.iter().enumerate() {
        if let Some(label) = line.trim().strip_prefix(':') {
            labels.entry(label.trim()).or_insert(index);
        }
    }
    labels
}

/// The words of a line's command, `${mac}` expanded, without its `||` or
/// `&&` tail; none for a blank line, a comment or a label.
fn command_words(line: &str, mac: &MacAddress) -> Vec<String> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') || trimmed.starts_with(':') {
        return Vec::new();
    }
    trimmed
        .split_whitespace()
        .take_while(|word| *word != "||" && *word != "&&")
        .map(|word| expand(word, mac))
        .collect()
}

fn expand(word: &str, mac: &MacAddress) -> String {
    if !word.contains("${") {
        return word.to_string();
    }
    let colons = mac.to_string();
    let hyphens = mac.hyphenated();
    word.replace("${mac}", &colons)
        .replace("${net0/mac}", &colons)
        .replace("${mac:hexhyp}", &hyphens)
        .replace("${net0/mac:hexhyp}", &hyphens)
}

/// An image command's URL and the words after it, past its options
/// (`--timeout MS`, `--name NAME`, `--autofree`, `--replace`, ...).
fn split_url(args: &[String]) -> Option<(&str, &[String])> {
    let mut rest = args;
    loop {
        let (first, tail) = rest.split_first()?;
        match first.as_str() {
            "--timeout" | "-t" | "--name" | "-n" => rest = tail.get(1..)?,
            option if option.starts_with('-') => rest = tail,
            url => return Some((url, tail)),
        }
    }
}

/// `sanboot` boots the local disk unless given a URI (`--drive N`,
/// `--filename F` and the other options are ignored).
fn sanboot(line: usize, args: &[String]) -> Result<Plan, ScriptError> {
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "--drive" | "-d" | "--filename" | "-f" | "--extra" | "-e" | "--label" | "-l"
            | "--uuid" | "-u" => rest = tail.get(1..).unwrap_or_default(),
            option if option.starts_with('-') => rest = tail,
            uri => {
                return Err(ScriptError::SanUri {
                    line,
                    uri: uri.to_string(),
                })
            }
        }
    }
    Ok(Plan::LocalDisk)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: &str = "http://10.0.0.1:8080/1be2";

    fn mac() -> MacAddress {
        MacAddress::parse("52:54:00:12:34:56").unwrap()
    }

    /// The script Ferric's `ipxe` boot interface writes to boot the agent
    /// (crates/ferric-drivers/src/pxe/render.rs), `timeout` as rendered.
    fn deploy_script(timeout: &str) -> String {
        format!(
            "#!ipxe\n# Ferric: boot config of node 1be2\n\nset attempts:int32 10\nset i:int32 0\n\ngoto deploy\n\n\
             :deploy\nimgfree\nkernel {timeout}{N1}/deploy_kernel selinux=0 troubleshoot=0 text nofb vga=normal \
             ipa-api-url=http://10.0.0.1:6385 BOOTIF=${{mac}} initrd=deploy_ramdisk || goto retry\n\
             initrd {timeout}{N1}/deploy_ramdisk || goto retry\nboot\n\n\
             :retry\niseq ${{i}} ${{attempts}} && goto fail ||\ninc i\n\
             echo No response, retrying in ${{i}} seconds.\nsleep ${{i}}\ngoto deploy\n\n\
             :fail\necho Failed to get a response after ${{attempts}} attempts\n\
             echo Powering off in 30 seconds.\nsleep 30\npoweroff\n\n\
             :boot_whole_disk\nsanboot --no-describe || exit 0\n"
        )
    }

    fn whole_disk_script() -> String {
        "#!ipxe\n# Ferric: boot config of node 1be2\n\nset attempts:int32 10\nset i:int32 0\n\n\
         goto boot_whole_disk\n\n:boot_whole_disk\nsanboot --no-describe || exit 0\n"
            .to_string()
    }

    fn partition_script() -> String {
        format!(
            "#!ipxe\n# Ferric: boot config of node 1be2\n\nset attempts:int32 10\nset i:int32 0\n\n\
             goto boot_partition\n\n:boot_partition\nimgfree\nkernel {N1}/kernel root=UUID=1be8-4a ro text \
             nofb vga=normal initrd=ramdisk || goto boot_partition\ninitrd {N1}/ramdisk || goto boot_partition\n\
             boot\n\n:boot_whole_disk\nsanboot --no-describe || exit 0\n"
        )
    }

    #[test]
    fn the_deploy_script_boots_the_agent_with_the_mac_as_bootif() {
        let expected = Plan::Kernel {
            kernel: format!("{N1}/deploy_kernel"),
            args: "selinux=0 troubleshoot=0 text nofb vga=normal ipa-api-url=http://10.0.0.1:6385 \
                   BOOTIF=52:54:00:12:34:56 initrd=deploy_ramdisk"
                .into(),
            initrds: vec![format!("{N1}/deploy_ramdisk")],
        };
        assert_eq!(plan(&deploy_script(""), &mac()), Ok(expected.clone()));
        assert_eq!(
            plan(&deploy_script("--timeout 60000 "), &mac()),
            Ok(expected),
            "--timeout is an option, not the URL"
        );
    }

    #[test]
    fn the_other_ferric_scripts() {
        assert_eq!(plan(&whole_disk_script(), &mac()), Ok(Plan::LocalDisk));
        let Ok(Plan::Kernel { kernel, args, .. }) = plan(&partition_script(), &mac()) else {
            panic!("not a kernel");
        };
        assert_eq!(kernel, format!("{N1}/kernel"));
        assert!(args.starts_with("root=UUID=1be8-4a ro text"), "{args}");
        // The deploy script with its goto changed boots the disk.
        let to_disk = deploy_script("").replace("goto deploy\n\n", "goto boot_whole_disk\n\n");
        assert_eq!(plan(&to_disk, &mac()), Ok(Plan::LocalDisk));
    }

    #[test]
    fn scripts_that_boot_nothing_say_why() {
        assert_eq!(plan("kernel x\nboot\n", &mac()), Err(ScriptError::NotIpxe));
        assert_eq!(plan("", &mac()), Err(ScriptError::NotIpxe));
        assert_eq!(
            plan("#!ipxe\ngoto nowhere\n", &mac()),
            Err(ScriptError::NoSuchLabel {
                line: 2,
                label: "nowhere".into()
            })
        );
        assert_eq!(plan("#!ipxe\necho hi\n", &mac()), Err(ScriptError::NoBoot));
        assert_eq!(
            plan("#!ipxe\n:a\ngoto a\n", &mac()),
            Err(ScriptError::Loops)
        );
        assert_eq!(
            plan("#!ipxe\nboot\n", &mac()),
            Err(ScriptError::BootWithoutKernel { line: 2 })
        );
        assert_eq!(
            plan("#!ipxe\nkernel k\nimgfree\nboot\n", &mac()),
            Err(ScriptError::BootWithoutKernel { line: 4 }),
            "imgfree unloads"
        );
        assert_eq!(
            plan("#!ipxe\nkernel --timeout 5\n", &mac()),
            Err(ScriptError::MissingArgument {
                line: 2,
                command: "kernel".into()
            })
        );
        assert_eq!(
            plan("#!ipxe\nsanboot iscsi:10.0.0.1::::iqn.x\n", &mac()),
            Err(ScriptError::SanUri {
                line: 2,
                uri: "iscsi:10.0.0.1::::iqn.x".into()
            })
        );
        assert_eq!(
            plan("#!ipxe\nkernel k\nexit 0\nboot\n", &mac()),
            Err(ScriptError::Ended {
                line: 3,
                command: "exit".into()
            })
        );
    }

    #[test]
    fn scripts_run_as_ipxe_runs_them() {
        // No labels at all; CRLF line ends; two initrds; ${mac:hexhyp}.
        let script = "#!ipxe\r\nkernel -n vmlinuz http://h/k console=ttyS0 id=${mac:hexhyp}\r\n\
                      initrd http://h/a\r\nmodule --name b http://h/b\r\nboot\r\n";
        assert_eq!(
            plan(script, &mac()),
            Ok(Plan::Kernel {
                kernel: "http://h/k".into(),
                args: "console=ttyS0 id=52-54-00-12-34-56".into(),
                initrds: vec!["http://h/a".into(), "http://h/b".into()],
            })
        );
        // A label does not stop execution: a section without `boot` runs on.
        let falls = "#!ipxe\ngoto a\n:a\nkernel http://h/k x=${net0/mac}\n:b\nboot\n";
        assert_eq!(
            plan(falls, &mac()),
            Ok(Plan::Kernel {
                kernel: "http://h/k".into(),
                args: "x=52:54:00:12:34:56".into(),
                initrds: vec![],
            })
        );
        // Only the first goto run counts; lines after it are skipped.
        let skips = "#!ipxe\ngoto b\nsanboot\n:b\n  kernel http://h/k\n  boot\n";
        assert!(matches!(plan(skips, &mac()), Ok(Plan::Kernel { .. })));
        assert_eq!(
            plan("#!ipxe\nsanboot --drive 0x80 --no-describe\n", &mac()),
            Ok(Plan::LocalDisk)
        );
    }
}
