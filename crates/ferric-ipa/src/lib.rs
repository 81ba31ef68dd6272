//! The ironic-python-agent (IPA) protocol, as types shared by Ferric's
//! agent and its conductor.
//!
//! Architecture invariant: imports no other Ferric crate and does no I/O.
