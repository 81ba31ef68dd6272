//! Shared by the integration tests: a fake BMC with a session service, and sushy-tools'
//! emulator run as a child process.
#![allow(dead_code)] // each test binary uses a part

pub mod emulator;
pub mod fake_bmc;
