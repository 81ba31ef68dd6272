//! The tokio drivers over the sans-IO cores: [`target`] serves logical units on a
//! TCP listener; [`initiator`] logs in to a target and reads and writes its blocks.

pub mod initiator;
pub mod target;
