//! Hardware type `ipmi`: the `ipmitool` power and management interfaces,
//! speaking IPMI v2.0 natively through `ferric-ipmi` (Ironic's names, no
//! ipmitool process).

pub mod info;
