//! The store behind a logical unit: a file or block device ([`FileBacking`]) or
//! memory ([`MemBacking`], for tests and fuzzing).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The store behind a logical unit. Offsets and lengths are bytes, always inside
/// [`size`](Backing::size) (the disk checks every range before it calls in).
pub trait Backing: Send {
    /// Size of the store in bytes (fixed for the life of the disk).
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make every completed write durable.
    fn flush(&mut self) -> io::Result<()>;
    /// After this the range reads as zeros (punch a hole, or write zeros).
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

/// Largest buffer of zeros written at once when a discard falls back to writing.
const ZERO_CHUNK: u64 = 1 << 20;

/// A regular file or a block device.
#[derive(Debug)]
pub struct FileBacking {
    file: File,
    size: u64,
    read_only: bool,
}

impl FileBacking {
    /// Open `path` (read-write unless `read_only`); its size is taken once, here
    /// (by seeking to the end, which also works for block devices).
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileBacking {
            file,
            size,
            read_only,
        })
    }

    /// Whether the file was opened read-only (writes then fail with an I/O error).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        // Both lengths are at most ZERO_CHUNK, so the casts are exact.
        let zeros = vec![0u8; len.min(ZERO_CHUNK) as usize];
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(ZERO_CHUNK) as usize;
            self.file.write_all_at(&zeros[..step], offset + done)?;
            done += step as u64;
        }
        Ok(())
    }
}

/// Deallocates `len` bytes at `offset` so they read back as zeros, if the platform
/// can (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`; on block devices,
/// Linux 4.9+, it zeroes and unmaps); `Ok(false)` means it cannot and the caller
/// writes zeros instead.
fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    use rustix::fs::{fallocate, FallocateFlags};
    use rustix::io::Errno;
    let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    match fallocate(file, flags, offset, len) {
        Ok(()) => Ok(true),
        Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Backing for FileBacking {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if punch_hole(&self.file, offset, len)? {
            return Ok(());
        }
        self.write_zeros(offset, len)
    }
}

/// A store in memory: its size is the vector's length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemBacking(pub Vec<u8>);

impl MemBacking {
    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(len).ok_or_else(out_of_range)?;
        if end > self.0.len() {
            return Err(out_of_range());
        }
        Ok(start..end)
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "range outside the memory store",
    )
}

impl Backing for MemBacking {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let range = self.range(offset, buf.len())?;
        self.0[range].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        let range = self.range(offset, len)?;
        self.0[range].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn mem_backing_reads_writes_discards() {
        let mut mem = MemBacking(vec![0xAA; 16]);
        mem.write_at(&[1, 2, 3], 4).unwrap();
        mem.discard(0, 2).unwrap();
        let mut buf = [0u8; 8];
        mem.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0, 0, 0xAA, 0xAA, 1, 2, 3, 0xAA]);
        assert!(mem.read_at(&mut buf, 9).is_err());
        assert!(mem.write_at(&[0], u64::MAX).is_err());
        assert!(mem.discard(8, u64::MAX).is_err());
    }

    #[test]
    fn file_backing_round_trip_and_discard() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&vec![0x5A; 3 << 20]).unwrap();
        tmp.flush().unwrap();
        let mut file = FileBacking::open(tmp.path(), false).unwrap();
        assert_eq!(file.size(), 3 << 20);
        file.write_at(b"ferric", 100).unwrap();
        // Spans more than one zero chunk and ends unaligned.
        file.discard(512, (2 << 20) + 7).unwrap();
        file.flush().unwrap();
        let mut head = [0u8; 6];
        file.read_at(&mut head, 100).unwrap();
        assert_eq!(&head, b"ferric");
        let mut zeroed = vec![1u8; (2 << 20) + 7];
        file.read_at(&mut zeroed, 512).unwrap();
        assert!(zeroed.iter().all(|&b| b == 0));
        let mut after = [0u8; 2];
        file.read_at(&mut after, 512 + (2 << 20) + 7).unwrap();
        assert_eq!(after, [0x5A, 0x5A]);
    }

    #[test]
    fn read_only_file_refuses_writes() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().set_len(4096).unwrap();
        let mut file = FileBacking::open(tmp.path(), true).unwrap();
        assert!(file.read_only());
        assert!(file.write_at(&[1], 0).is_err());
        assert!(file.flush().is_ok());
    }
}
