//! One `ferric serve` per data directory: a second one on the same
//! directory refuses to start, saying why, and leaves the first alone.

mod common;

use std::process::Command;

use common::Server;

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let first = Server::start("");
    let node = first.create_node("n1");
    let out = Command::new(env!("CARGO_BIN_EXE_ferric"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(first.data_dir())
        .env("FERRIC_LOG", "warn")
        .output()
        .expect("run a second ferric");
    assert!(!out.status.success(), "the second server started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another ferric serve")
            && stderr.contains(&format!("(pid {})", first.pid())),
        "{stderr}"
    );
    // The first one carries on, its data untouched.
    let again = first.get(&format!(
        "/v1/nodes/{}",
        node["uuid"].as_str().expect("uuid")
    ));
    assert_eq!(again["name"], "n1");
}
