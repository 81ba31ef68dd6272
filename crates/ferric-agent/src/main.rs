//! `ferric-agent`: the deploy ramdisk's agent.

fn main() {}
