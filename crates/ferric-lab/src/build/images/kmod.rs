//! Kernel modules for an initramfs without `depmod`: a Debian kernel
//! package ships no `modules.dep` (its postinst makes it), so each module's
//! dependencies are read from its own `.modinfo` ELF section and the
//! modules are ordered so that `insmod` finds every symbol loaded.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{run, BuildError};

/// What a kernel build has of a driver (`boot/config-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `CONFIG_X=y`: nothing to load.
    Yes,
    /// `CONFIG_X=m`: a module to put in the initramfs.
    Module,
    /// Not set, or absent.
    No,
}

/// How `CONFIG_<symbol>` is set in a kernel config file's text.
pub fn config_setting(config: &str, symbol: &str) -> Builtin {
    let key = format!("CONFIG_{symbol}=");
    let value = config
        .lines()
        .find_map(|line| line.trim().strip_prefix(key.as_str()));
    match value {
        Some("y") => Builtin::Yes,
        Some("m") => Builtin::Module,
        _ => Builtin::No,
    }
}

/// A module's name as the kernel spells it (`-` and `_` are the same).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The modules of one kernel (`lib/modules/VERSION`), by name.
pub struct ModuleTree {
    by_name: BTreeMap<String, PathBuf>,
}

impl ModuleTree {
    /// Indexes every `*.ko` (also `.ko.xz`, `.ko.zst`) under `dir`.
    pub fn scan(dir: &Path) -> Result<Self, BuildError> {
        let mut by_name = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let entries = std::fs::read_dir(&current).map_err(|e| BuildError::io(&current, e))?;
            for entry in entries {
                let path = entry.map_err(|e| BuildError::io(&current, e))?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if let Some(name) = module_name(&path) {
                    by_name.insert(name, path);
                }
            }
        }
        Ok(ModuleTree { by_name })
    }

    /// The file of a module, if the kernel has it.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.by_name.get(&normalize(name)).map(PathBuf::as_path)
    }

    /// `wanted` and everything they depend on, dependencies first.
    pub fn load_order(&self, wanted: &[String]) -> Result<Vec<String>, BuildError> {
        load_order(wanted, |name| {
            let path = self.path(name).ok_or_else(|| {
                BuildError::Missing(format!("kernel module {name} is not in the kernel package"))
            })?;
            let bytes = module_bytes(path)?;
            Ok(dependencies(&bytes))
        })
    }
}

/// `virtio_blk` for `.../virtio_blk.ko` (or `.ko.xz`, `.ko.zst`).
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    Some(normalize(stem))
}

/// A module's ELF bytes, decompressed when the package compressed it
/// (busybox `insmod` loads only plain ELF).
pub fn module_bytes(path: &Path) -> Result<Vec<u8>, BuildError> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return std::fs::read(path).map_err(|e| BuildError::io(path, e));
    };
    run(Command::new(tool).arg("-dc").arg(path))
}

/// Depth-first, dependencies before dependents, each module once; a
/// dependency cycle (which `insmod` could not load either) is cut.
fn load_order(
    wanted: &[String],
    mut depends_of: impl FnMut(&str) -> Result<Vec<String>, BuildError>,
) -> Result<Vec<String>, BuildError> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for root in wanted {
        let root = normalize(root);
        if seen.contains(&root) {
            continue;
        }
        // (module, its dependencies still to visit)
        let mut stack: Vec<(String, Vec<String>)> = Vec::new();
        seen.insert(root.clone());
        let deps = depends_of(&root)?;
        stack.push((root, deps));
        while let Some((module, deps)) = stack.last_mut() {
            match deps.pop() {
                Some(dep) => {
                    let dep = normalize(&dep);
                    if seen.insert(dep.clone()) {
                        let next = depends_of(&dep)?;
                        stack.push((dep, next));
                    }
                }
                None => {
                    order.push(module.clone());
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

/// The `depends=` of a module's `.modinfo` section (empty when it has
/// none, or the file is not a 64-bit little-endian ELF).
pub fn dependencies(elf: &[u8]) -> Vec<String> {
    let Some(modinfo) = elf_section(elf, ".modinfo") else {
        return Vec::new();
    };
    modinfo
        .split(|b| *b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The contents of the named section of an ELF64 little-endian file.
fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(read_u64(elf, 0x28)?).ok()?;
    let shentsize = usize::from(read_u16(elf, 0x3a)?);
    let shnum = usize::from(read_u16(elf, 0x3c)?);
    let shstrndx = usize::from(read_u16(elf, 0x3e)?);
    let header = |index: usize| -> Option<(usize, &'a [u8])> {
        let at = shoff.checked_add(index.checked_mul(shentsize)?)?;
        let name = usize::try_from(read_u32(elf, at)?).ok()?;
        let offset = usize::try_from(read_u64(elf, at + 24)?).ok()?;
        let size = usize::try_from(read_u64(elf, at + 32)?).ok()?;
        Some((name, elf.get(offset..offset.checked_add(size)?)?))
    };
    let (_, names) = header(shstrndx)?;
    (0..shnum).find_map(|index| {
        let (name_at, contents) = header(index)?;
        let name = names.get(name_at..)?.split(|b| *b == 0).next()?;
        (name == wanted.as_bytes()).then_some(contents)
    })
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A minimal ELF64 with a null section, `.shstrtab` and `.modinfo`.
    pub(crate) fn elf_with_modinfo(modinfo: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let names_at = elf.len();
        elf.extend_from_slice(names);
        let modinfo_at = elf.len();
        elf.extend_from_slice(modinfo);
        let shoff = elf.len();
        let section = |name: u32, offset: usize, size: usize| {
            let mut header = vec![0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            header[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            header
        };
        elf.extend(section(0, 0, 0));
        elf.extend(section(1, names_at, names.len()));
        elf.extend(section(11, modinfo_at, modinfo.len()));
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn dependencies_come_from_the_modinfo_section() {
        let elf = elf_with_modinfo(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0");
        assert_eq!(dependencies(&elf), ["virtio", "virtio_ring"]);
        let none = elf_with_modinfo(b"license=GPL\0depends=\0name=virtio\0");
        assert!(dependencies(&none).is_empty());
    }

    #[test]
    fn a_file_that_is_not_elf_has_no_dependencies() {
        assert!(dependencies(b"depends=virtio\0").is_empty());
        let mut cut = elf_with_modinfo(b"depends=virtio\0");
        cut.truncate(100);
        assert!(dependencies(&cut).is_empty());
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let deps: HashMap<&str, Vec<&str>> = HashMap::from([
            (
                "virtio_pci",
                vec!["virtio_ring", "virtio_pci_modern_dev", "virtio"],
            ),
            ("virtio_blk", vec!["virtio", "virtio_ring"]),
            ("virtio", vec!["virtio_ring"]),
            ("virtio_ring", vec![]),
            ("virtio_pci_modern_dev", vec![]),
        ]);
        let wanted = ["virtio_pci".to_owned(), "virtio-blk".to_owned()];
        let order = load_order(&wanted, |name| {
            Ok(deps[name].iter().map(|d| d.to_string()).collect())
        })
        .unwrap();
        assert_eq!(order.len(), 5, "{order:?}");
        let at = |name: &str| order.iter().position(|m| m == name).unwrap();
        assert!(at("virtio_ring") < at("virtio"));
        assert!(at("virtio") < at("virtio_pci"));
        assert!(at("virtio_pci_modern_dev") < at("virtio_pci"));
        assert!(at("virtio") < at("virtio_blk"));
    }

    #[test]
    fn a_cycle_does_not_loop() {
        let order = load_order(&["a".to_owned()], |name| {
            Ok(vec![if name == "a" { "b" } else { "a" }.to_owned()])
        })
        .unwrap();
        assert_eq!(order, ["b", "a"]);
    }

    #[test]
    fn config_settings() {
        let config = "# CONFIG_FOO is not set\nCONFIG_EXT4_FS=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS_SECURITY=y\n";
        assert_eq!(config_setting(config, "EXT4_FS"), Builtin::Yes);
        assert_eq!(config_setting(config, "VIRTIO_BLK"), Builtin::Module);
        assert_eq!(config_setting(config, "FOO"), Builtin::No);
        assert_eq!(config_setting(config, "VIRTIO"), Builtin::No);
    }

    #[test]
    fn modules_are_found_by_either_spelling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kernel/fs/isofs")).unwrap();
        std::fs::write(dir.path().join("kernel/fs/isofs/isofs.ko"), b"").unwrap();
        std::fs::write(dir.path().join("kernel/crc-t10dif.ko.xz"), b"").unwrap();
        std::fs::write(dir.path().join("kernel/modules.order"), b"").unwrap();
        let tree = ModuleTree::scan(dir.path()).unwrap();
        assert!(tree.path("isofs").is_some());
        assert!(tree.path("crc_t10dif").is_some());
        assert!(tree.path("crc-t10dif").is_some());
        assert!(tree.path("modules").is_none());
        assert!(tree.load_order(&["nope".to_owned()]).is_err());
    }
}
