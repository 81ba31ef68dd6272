//! Redfish (DMTF DSP0266) for bare metal, client side: what Ferric's `redfish` hardware type
//! needs of a BMC (power, boot override, virtual media), with Ironic's and sushy's rules.
//!
//! - [`model`]: the resources as serde types, parsed leniently where BMCs vary and strictly
//!   where it matters, without I/O.
//! - [`request`]: the bodies and choices Ironic and sushy make (boot PATCH, `If-Match`
//!   fallbacks, reset types, virtual media quirks), as pure functions.
//! - [`client`] (feature `client`): an HTTP client per BMC, with sessions that are created
//!   once, shared by clones and always deleted, and a bounded cache of clients.
#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;
pub mod model;
pub mod request;

#[cfg(feature = "client")]
pub use client::{
    AuthType, Client, Endpoint, Error, Password, RetryPolicy, SessionCache, VerifyCa,
};
pub use model::{
    BootEnabled, BootMode, BootSource, ComputerSystem, Manager, MediaType, PowerState, ResetType,
    VirtualMedia,
};
pub use request::{PowerAction, ResetPlan};
