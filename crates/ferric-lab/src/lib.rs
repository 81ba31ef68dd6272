//! A lab of machines for Ferric: a virtual BMC that answers IPMI and
//! Redfish for machines described in a TOML file (`ferric lab bmc`).
//!
//! Each machine is simulated: power on, reset or cycle is a boot that
//! takes the boot override, else the boot order; booting PXE runs
//! `ferric-agent` with the machine's disk file and MAC, booting the disk
//! (a file holding a boot signature) stands for the installed OS. The
//! agent's exit says what the OS did: 0 powered off, 10 rebooted.
//!
//! - [`config`]: the machines file (a stable interface);
//! - [`machine`]: the BMC's view of a machine and the boot decision, no I/O;
//! - [`state`]: power and boot settings kept across restarts;
//! - [`agent`] and [`sim`]: the agent process and the task owning a machine;
//! - [`firmware`] and [`ipxe`]: booting PXE from a `boot_url` as iPXE would
//!   (the boot config, its kernel and initrds);
//! - [`vm`]: machines that are qemu VMs, driven through QMP;
//! - [`faults`]: packet loss, delay, session limits, login lockout;
//! - [`redfish`], [`lab_api`]: the HTTP listener (Redfish and `/lab`);
//! - [`ipmi`]: the UDP listeners (IPMI v2.0 / RMCP+ over `ferric-ipmi`);
//! - [`up`]: `ferric lab up`/`down`, a lab of VMs in a network namespace;
//! - [`bmc`]: the command line and the entry point;
//! - [`build`]: the VM lab's deploy ramdisk and test images, from Debian's
//!   packages.
//!
//! `docs/lab-bmc.md` tells how to run it.

pub mod agent;
pub mod bmc;
pub mod build;
pub mod config;
pub mod faults;
pub mod firmware;
pub mod ipmi;
pub mod ipxe;
pub mod lab;
pub mod lab_api;
pub mod machine;
pub mod redfish;
pub mod sim;
pub mod state;
pub mod up;
pub mod vm;
