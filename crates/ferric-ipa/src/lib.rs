//! The ironic-python-agent (IPA) protocol, as types shared by Ferric's
//! agent (`ferric-agent`) and its conductor.
//!
//! Every type here serializes to the exact JSON field names that IPA and
//! Ironic use on the wire, and each module's tests round-trip JSON written
//! from IPA's and Ironic's sources (or captured from them).
//!
//! | module | what it covers |
//! |---|---|
//! | [`version`] | `GET /` version discovery and the API microversions that gate fields |
//! | [`mac`] | MAC addresses as lookup sends them, and PXELINUX's `BOOTIF=01-…` |
//! | [`secret`] | [`AgentToken`] and [`Secret`]: values that never print |
//! | [`lookup`] | `GET /v1/lookup` query and answer (`node` + `config`) |
//! | [`heartbeat`] | `POST /v1/heartbeat/{node}` body, per microversion |
//! | [`fault`] | error bodies: Ironic's `error_message` and the agent's `faultstring` |
//! | [`error`] | IPA's serialized exceptions (`type`, `code`, `message`, `details`) |
//! | [`command`] | the agent's command API: requests, query, results, status |
//! | [`commands`] | the typed commands (`clean.*`, `deploy.*`, `standby.*`, `image.*`, `log.*`) |
//! | [`steps`] | clean/deploy step descriptions and the `execute_*_step` params and results |
//! | [`image_info`] | `image_info` as Ironic's `write_image` sends it, and `get_partition_uuids` |
//! | [`inventory`] | the hardware inventory IPA reports (CPU, memory, disks, NICs, …) |
//! | [`hints`] | root device hints: parsing and matching as IPA's `device_hints.py` |
//! | [`query`] | URL query strings (percent-decoding), without I/O |
//!
//! Architecture invariant: imports no other Ferric crate and does no I/O.

#![warn(missing_docs)]

pub mod command;
pub mod commands;
pub mod error;
pub mod fault;
pub mod heartbeat;
pub mod hints;
pub mod image_info;
pub mod inventory;
pub mod lookup;
pub mod mac;
pub mod query;
pub mod secret;
pub mod steps;
pub mod version;

pub use command::{CommandList, CommandQuery, CommandRequest, CommandResult, CommandStatus};
pub use commands::Command;
pub use error::{ErrorKind, RestError};
pub use fault::{AgentFault, IronicError};
pub use heartbeat::{AgentStatus, HeartbeatRequest};
pub use hints::{HintError, RootDeviceHints};
pub use image_info::{ImageInfo, PartitionUuids};
pub use inventory::{BlockDevice, Inventory};
pub use lookup::{LookupConfig, LookupQuery, LookupResponse, Node};
pub use mac::MacAddress;
pub use secret::{AgentToken, Secret};
pub use version::ApiVersion;
