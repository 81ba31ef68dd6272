//! `ferric lab up` and `ferric lab down`: the VM lab's command line.

use anyhow::{Context, Result};

/// Brings the lab up and prints how to use it.
pub fn up(args: ferric_lab::up::UpArgs) -> Result<()> {
    let record = ferric_lab::up::up(&args).context("ferric lab up")?;
    let kernel = args.deploy_kernel.as_deref().unwrap_or("DEPLOY_KERNEL");
    let ramdisk = args.deploy_ramdisk.as_deref().unwrap_or("DEPLOY_RAMDISK");
    let ns = &record.netns;
    let ip = record.host_ip;
    println!(
        "lab up: {} VMs ({}) on {} ({ip}/24) in the network namespace {ns}; BMC pid {}",
        record.vms.len(),
        record.accel,
        record.bridge,
        record.bmc_pid
    );
    println!(
        "state and serial logs: {}",
        args.dir.join("state").display()
    );
    println!("\nserve Ferric in the lab's namespace:");
    println!(
        "  ip netns exec {ns} ferric serve --listen {ip}:6385 --dhcp-interface {} --dhcp-range {},{} --tftp-listen {ip}:69 --http-listen {ip}:8080",
        record.bridge, record.dhcp_range.0, record.dhcp_range.1
    );
    for driver in ["ipmi", "redfish"] {
        let script = args.dir.join(format!("enrol-{driver}.sh"));
        let lines = ferric_lab::up::enrolment(&record, driver, kernel, ramdisk);
        std::fs::write(
            &script,
            format!("#!/bin/sh\nset -e\n{}\n", lines.join("\n")),
        )
        .with_context(|| format!("writing {}", script.display()))?;
    }
    println!(
        "\nenrol the VMs with the openstack CLI (OS_AUTH_TYPE=none OS_ENDPOINT=http://{ip}:6385), \
         with ipmi (or redfish: {}):",
        args.dir.join("enrol-redfish.sh").display()
    );
    // The BMC password stays in the scripts and the machines file.
    let masked = ferric_lab::up::enrolment(&record, "ipmi", kernel, ramdisk);
    for line in masked {
        let mut line = line;
        for vm in &record.vms {
            line = line.replace(&vm.password, "***");
        }
        println!("  {line}");
    }
    println!(
        "(with the password: {})",
        args.dir.join("enrol-ipmi.sh").display()
    );
    println!(
        "\nremove everything: ferric lab down --dir {}",
        args.dir.display()
    );
    Ok(())
}

/// Removes the lab.
pub fn down(args: ferric_lab::up::DownArgs) -> Result<()> {
    let done = ferric_lab::up::down(&args).context("ferric lab down")?;
    if done.is_empty() {
        println!("lab down: nothing to remove");
    }
    for line in done {
        println!("lab down: {line}");
    }
    Ok(())
}
