//! CPU and memory from /proc/cpuinfo, /proc/meminfo and sysfs, giving what
//! IPA gets from lscpu, psutil and lshw.

use std::collections::BTreeSet;

use ferric_ipa::inventory::{Cpu, Memory};

use super::{read_trimmed, Roots};

/// The CPU summary: model, frequency (max if known, in MHz), logical CPU
/// count, architecture, flags and socket count.
pub fn read_cpu(roots: &Roots) -> Cpu {
    let text = std::fs::read_to_string(roots.proc.join("cpuinfo")).unwrap_or_default();
    let sections: Vec<Vec<(String, String)>> = text
        .split("\n\n")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                .collect::<Vec<_>>()
        })
        .filter(|s| s.iter().any(|(k, _)| k == "processor"))
        .collect();
    let first = sections.first().cloned().unwrap_or_default();
    let get = |key: &str| first.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let sockets: BTreeSet<String> = sections
        .iter()
        .filter_map(|s| {
            s.iter()
                .find(|(k, _)| k == "physical id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    let max_khz = read_trimmed(
        &roots
            .sys
            .join("devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"),
    )
    .and_then(|v| v.parse::<u64>().ok());
    let frequency = match max_khz {
        Some(khz) => format!("{:.4}", khz as f64 / 1000.0),
        None => get("cpu mhz").unwrap_or_default(),
    };
    Cpu {
        model_name: get("model name").unwrap_or_default(),
        frequency,
        count: sections.len() as u64,
        architecture: read_trimmed(&roots.proc.join("sys/kernel/arch"))
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        flags: get("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        socket_count: Some(sockets.len().max(usize::from(!sections.is_empty())) as u64),
    }
}

/// Memory: `total` is MemTotal in bytes; `physical_mb` counts the online
/// memory blocks in /sys/devices/system/memory (what lshw sums from DMI),
/// falling back to MemTotal rounded up to a GiB multiple of 128 MiB.
pub fn read_memory(roots: &Roots) -> Memory {
    let meminfo = std::fs::read_to_string(roots.proc.join("meminfo")).unwrap_or_default();
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let physical_mb =
        memory_blocks_mb(roots).or_else(|| total.map(|t| t.div_ceil(128 << 20) * 128));
    Memory { total, physical_mb }
}

fn memory_blocks_mb(roots: &Roots) -> Option<u64> {
    let dir = roots.sys.join("devices/system/memory");
    let block = read_trimmed(&dir.join("block_size_bytes"))?;
    let block = u64::from_str_radix(block.trim_start_matches("0x"), 16).ok()?;
    let online = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("memory"))
        .filter(|e| read_trimmed(&e.path().join("state")).as_deref() == Some("online"))
        .count() as u64;
    (online > 0).then(|| online * block / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::super::testtree::write;
    use super::*;

    fn roots(dir: &std::path::Path) -> Roots {
        Roots {
            proc: dir.join("proc"),
            sys: dir.join("sys"),
            dev: dir.join("dev"),
        }
    }

    #[test]
    fn reads_cpuinfo() {
        let dir = tempfile::tempdir().unwrap();
        let core = |n: u32, socket: u32| {
            format!("processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\ncpu MHz\t\t: 2200.000\nphysical id\t: {socket}\nflags\t\t: fpu vme sse2\n\n")
        };
        write(
            dir.path(),
            "proc/cpuinfo",
            &(core(0, 0) + &core(1, 0) + &core(2, 1) + &core(3, 1)),
        );
        write(dir.path(), "proc/sys/kernel/arch", "x86_64\n");
        let cpu = read_cpu(&roots(dir.path()));
        assert_eq!(cpu.count, 4);
        assert_eq!(cpu.socket_count, Some(2));
        assert_eq!(cpu.model_name, "Intel(R) Xeon(R) CPU @ 2.20GHz");
        assert_eq!(cpu.frequency, "2200.000");
        assert_eq!(cpu.flags, ["fpu", "vme", "sse2"]);
        write(
            dir.path(),
            "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
            "3400000\n",
        );
        assert_eq!(read_cpu(&roots(dir.path())).frequency, "3400.0000");
    }

    #[test]
    fn reads_memory() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "proc/meminfo",
            "MemTotal:        1517584 kB\nMemFree:  1 kB\n",
        );
        let m = read_memory(&roots(dir.path()));
        assert_eq!(m.total, Some(1517584 * 1024));
        assert_eq!(m.physical_mb, Some(1536));
        write(
            dir.path(),
            "sys/devices/system/memory/block_size_bytes",
            "8000000\n",
        );
        for i in 0..12 {
            write(
                dir.path(),
                &format!("sys/devices/system/memory/memory{i}/state"),
                "online\n",
            );
        }
        write(
            dir.path(),
            "sys/devices/system/memory/memory12/state",
            "offline\n",
        );
        assert_eq!(read_memory(&roots(dir.path())).physical_mb, Some(12 * 128));
    }

    #[test]
    fn survives_an_empty_tree() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = read_cpu(&roots(dir.path()));
        assert_eq!(cpu.count, 0);
        assert_eq!(read_memory(&roots(dir.path())).total, None);
    }
}
