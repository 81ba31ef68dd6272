//! The newc ("070701") cpio format the kernel unpacks an initramfs from,
//! written entry by entry: directories, files, symlinks and device nodes,
//! all owned by root, so no root privilege (or `mknod`) is needed to make
//! an initramfs with `/dev/console`.

use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// A newc archive being written to `out`; [`CpioWriter::finish`] writes
/// the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
}

impl<W: Write> CpioWriter<W> {
    /// An archive written to `out`.
    pub fn new(out: W) -> Self {
        CpioWriter { out, next_inode: 1 }
    }

    /// A directory (`mode`: permission bits such as `0o755`).
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (mode & 0o7777), &[], (0, 0))
    }

    /// A regular file with its contents.
    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (mode & 0o7777), contents, (0, 0))
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes(), (0, 0))
    }

    /// A character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | (mode & 0o7777), &[], (major, minor))
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {path:?}"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{path}: over 4 GiB"))
        })?;
        let name_size = u32::try_from(name.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?;
        let inode = self.next_inode;
        self.next_inode += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            inode, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0,
        ];
        let mut header = String::with_capacity(110 + name.len());
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08X}"));
        }
        header.push_str(name);
        header.push('\0');
        self.out.write_all(header.as_bytes())?;
        self.pad(header.len())?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, len: usize) -> io::Result<()> {
        let zeros = [0u8; 3];
        self.out.write_all(&zeros[..(4 - len % 4) % 4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("/init", 0o755, b"#!/bin/sh\n").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let bytes = archive();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let tail = String::from_utf8_lossy(&bytes[bytes.len() - 128..]).into_owned();
        assert!(tail.contains("TRAILER!!!"));
    }

    #[test]
    fn gnu_cpio_lists_what_was_written() {
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: no cpio");
            return;
        };
        child.stdin.take().unwrap().write_all(&archive()).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"));
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].ends_with(" init"));
        assert!(lines[2].starts_with("lrwxrwxrwx") && lines[2].ends_with("bin/sh -> busybox"));
        assert!(lines[3].starts_with("crw-------") && lines[3].contains("5,"));
    }

    #[test]
    fn empty_names_are_refused() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/", 0o644, b"").is_err());
    }
}
