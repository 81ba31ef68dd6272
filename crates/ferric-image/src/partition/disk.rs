//! A disk (a block device, an image file, or any [`BlockDevice`] such as a
//! LUN over iSCSI) opened for positioned I/O, with every access checked
//! against its size.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::PartitionError;
use crate::writer::{BlockDevice, SharedDevice};

/// Zeroes are written in pieces of this size.
const ZERO_CHUNK: usize = 1024 * 1024;

/// What a [`Disk`] reads and writes: a local file (its I/O errors kept as
/// they are) or a shared [`BlockDevice`].
trait DiskIo: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    fn sync(&self) -> io::Result<()>;
}

impl DiskIo for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }
}

impl DiskIo for SharedDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.lock().read_at(buf, offset).map_err(io::Error::other)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.lock().write_at(data, offset).map_err(io::Error::other)
    }

    fn sync(&self) -> io::Result<()> {
        self.lock().sync().map_err(io::Error::other)
    }
}

/// An open disk and its geometry.
pub struct Disk {
    io: Arc<dyn DiskIo>,
    path: PathBuf,
    size: u64,
    sector_size: u64,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("sector_size", &self.sector_size)
            .finish_non_exhaustive()
    }
}

impl Disk {
    /// Opens `path` for reading and writing, with 512-byte logical sectors.
    pub fn open(path: &Path) -> Result<Self, PartitionError> {
        Self::open_with(path, true, 512)
    }

    /// Opens `path` read-only, with 512-byte logical sectors.
    pub fn open_read_only(path: &Path) -> Result<Self, PartitionError> {
        Self::open_with(path, false, 512)
    }

    /// Opens `path` with the given logical sector size (512 or 4096).
    pub fn open_with(
        path: &Path,
        writable: bool,
        sector_size: u64,
    ) -> Result<Self, PartitionError> {
        check_sector_size(sector_size)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| PartitionError::io("open", path, e))?;
        // A block device's length is only known by seeking to its end.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| PartitionError::io("find the size of", path, e))?;
        Ok(Disk {
            io: Arc::new(file),
            path: path.to_path_buf(),
            size,
            sector_size,
        })
    }

    /// The disk behind `device` (a remote LUN, a device in memory), named
    /// after it in errors, with the given logical sector size (512 or 4096).
    pub fn on_device(device: SharedDevice, sector_size: u64) -> Result<Self, PartitionError> {
        check_sector_size(sector_size)?;
        Ok(Disk {
            path: PathBuf::from(device.name()),
            size: device.size(),
            io: Arc::new(device),
            sector_size,
        })
    }

    /// The path the disk was opened from (a device's name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Logical sector size in bytes.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// Number of whole logical sectors.
    pub fn sectors(&self) -> u64 {
        self.size / self.sector_size
    }

    /// The same disk seen with another logical sector size.
    pub(crate) fn with_sector_size(&self, sector_size: u64) -> Result<Self, PartitionError> {
        Ok(Disk {
            io: self.io.clone(),
            path: self.path.clone(),
            size: self.size,
            sector_size,
        })
    }

    fn check_range(
        &self,
        offset: u64,
        len: u64,
        action: &'static str,
    ) -> Result<(), PartitionError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(PartitionError::OutOfRange {
                action,
                path: self.path.clone(),
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Reads `len` bytes at `offset`.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, PartitionError> {
        self.check_range(offset, len as u64, "read")?;
        let mut buf = vec![0u8; len];
        self.io
            .read_at(&mut buf, offset)
            .map_err(|e| PartitionError::io("read", &self.path, e))?;
        Ok(buf)
    }

    /// Reads up to `len` bytes at `offset`, fewer at the end of the disk.
    pub fn read_up_to(&self, offset: u64, len: usize) -> Result<Vec<u8>, PartitionError> {
        let available = self.size.saturating_sub(offset).min(len as u64) as usize;
        self.read_at(offset.min(self.size), available)
    }

    /// Reads logical sector `lba` (and `count - 1` more).
    pub fn read_sectors(&self, lba: u64, count: u64) -> Result<Vec<u8>, PartitionError> {
        let (offset, len) = self.sector_span(lba, count)?;
        self.read_at(offset, len as usize)
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), PartitionError> {
        self.check_range(offset, data.len() as u64, "write")?;
        self.io
            .write_at(data, offset)
            .map_err(|e| PartitionError::io("write", &self.path, e))
    }

    /// Writes `data` at logical sector `lba`.
    pub fn write_sectors(&self, lba: u64, data: &[u8]) -> Result<(), PartitionError> {
        let (offset, _) = self.sector_span(lba, 0)?;
        self.write_at(offset, data)
    }

    /// Writes zeroes over `len` bytes at `offset`.
    pub fn zero(&self, offset: u64, len: u64) -> Result<(), PartitionError> {
        self.check_range(offset, len, "zero")?;
        let chunk = vec![0u8; ZERO_CHUNK.min(len as usize)];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.io
                .write_at(&chunk[..n], offset + done)
                .map_err(|e| PartitionError::io("write zeroes to", &self.path, e))?;
            done += n as u64;
        }
        Ok(())
    }

    /// Flushes written data to the device.
    pub fn sync(&self) -> Result<(), PartitionError> {
        self.io
            .sync()
            .map_err(|e| PartitionError::io("flush", &self.path, e))
    }

    fn sector_span(&self, lba: u64, count: u64) -> Result<(u64, u64), PartitionError> {
        let overflow = || PartitionError::OutOfRange {
            action: "address",
            path: self.path.clone(),
            offset: lba,
            len: count,
            size: self.size,
        };
        let offset = lba.checked_mul(self.sector_size).ok_or_else(overflow)?;
        let len = count.checked_mul(self.sector_size).ok_or_else(overflow)?;
        Ok((offset, len))
    }
}

fn check_sector_size(sector_size: u64) -> Result<(), PartitionError> {
    if sector_size != 512 && sector_size != 4096 {
        return Err(PartitionError::InvalidSpec(format!(
            "logical sector size {sector_size} is not supported (512 or 4096)"
        )));
    }
    Ok(())
}
