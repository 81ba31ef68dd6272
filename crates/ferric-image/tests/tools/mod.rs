//! Running the real tools (sfdisk, sgdisk, blkid, ...) that the image
//! tests check Ferric's output with.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const MIB: u64 = 1024 * 1024;

/// Runs `program` (in the C locale, mtools' geometry check off), feeding
/// it `stdin`; panics if it cannot be started.
pub fn output(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("stdin written");
    drop(input);
    child.wait_with_output().expect("the tool ends")
}

/// Its standard output; it must succeed.
pub fn run(program: &str, args: &[&str]) -> String {
    run_with_input(program, args, None)
}

pub fn run_with_input(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = output(program, args, stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Makes `path` `size` bytes long (sparse), creating it if needed.
pub fn sized(path: &Path, size: u64) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .expect("the file opens");
    file.set_len(size).expect("the file is sized");
}
