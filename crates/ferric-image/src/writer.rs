//! Writing a disk image into a target: a byte range of a file or block device (or of
//! any [`BlockDevice`], such as a remote disk over iSCSI), in large positioned writes,
//! never outside the range, skipping all-zero blocks only where the target is known to
//! read back zeros, and a flush to stable storage at the end.
//!
//! A [`SharedDevice`] lets the partition code and a writer confined to one partition
//! take turns on the same device.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::ImageError;
use crate::pipeline::Progress;

/// Writes are gathered into buffers of this size.
pub const WRITE_BUFFER: usize = 2 * 1024 * 1024;
/// The granularity of the all-zero test.
const ZERO_BLOCK: usize = 64 * 1024;

/// Where an image goes: `length` bytes of `path` from `offset` (to its end when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub offset: u64,
    pub length: Option<u64>,
}

impl Target {
    /// A whole file or device.
    pub fn whole(path: impl Into<PathBuf>) -> Self {
        Target {
            path: path.into(),
            offset: 0,
            length: None,
        }
    }
}

/// Where a [`DiskWriter`] puts its bytes: a local file or block device ([`FileDevice`]),
/// or a remote disk. A remote device may complete writes later (it keeps several in
/// flight); `sync` returns once every earlier write is on stable storage, or the first
/// error of any of them, and a read sees every earlier write. Error texts are details;
/// the writer adds the device's name.
pub trait BlockDevice: Send {
    /// Names the device in errors: a path, an iSCSI target and LUN.
    fn name(&self) -> String;
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from byte `offset` (the range inside `size()`).
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String>;
    /// Writes `bytes` at byte `offset` (inside `size()`).
    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String>;
    /// Makes the whole device read as zeros if that is cheap (truncating a file,
    /// unmapping a thin disk); `Ok(false)` when it cannot, and then zeros are written.
    fn zero_all(&mut self) -> Result<bool, String>;
    /// Waits for every write to reach stable storage.
    fn sync(&mut self) -> Result<(), String>;
}

/// A file or a local block device.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    size: u64,
    is_block: bool,
}

impl FileDevice {
    /// Opens a regular file or block device for writing.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ImageError::target(path, format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| ImageError::target(path, format!("cannot stat: {e}")))?;
        let is_block = meta.file_type().is_block_device();
        if !is_block && !meta.file_type().is_file() {
            return Err(ImageError::target(
                path,
                "is neither a regular file nor a block device",
            ));
        }
        let size = if is_block {
            file.seek(SeekFrom::End(0))
                .map_err(|e| ImageError::target(path, format!("cannot find its size: {e}")))?
        } else {
            meta.len()
        };
        Ok(FileDevice {
            file,
            path: path.to_path_buf(),
            size,
            is_block,
        })
    }
}

impl BlockDevice for FileDevice {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| format!("read of {} bytes at byte {offset} failed: {e}", buf.len()))
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        self.file.write_all_at(bytes, offset).map_err(|e| {
            format!(
                "write of {} bytes at byte {offset} failed: {e}",
                bytes.len()
            )
        })
    }

    /// A regular file is truncated and extended back; a block device is not zeroed.
    fn zero_all(&mut self) -> Result<bool, String> {
        if self.is_block {
            return Ok(false);
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.set_len(self.size))
            .map_err(|e| format!("cannot zero by truncation: {e}"))?;
        Ok(true)
    }

    fn sync(&mut self) -> Result<(), String> {
        self.file
            .sync_all()
            .map_err(|e| format!("fsync failed: {e}"))
    }
}

/// One [`BlockDevice`] for several users taking turns (the partition code, then a
/// [`DiskWriter`] confined to a partition, then the partition code again): clones
/// share the device, and each call holds it for its duration.
#[derive(Clone)]
pub struct SharedDevice {
    device: Arc<Mutex<Box<dyn BlockDevice>>>,
    name: String,
    size: u64,
}

impl std::fmt::Debug for SharedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDevice")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl SharedDevice {
    pub fn new(device: Box<dyn BlockDevice>) -> Self {
        SharedDevice {
            name: device.name(),
            size: device.size(),
            device: Arc::new(Mutex::new(device)),
        }
    }

    /// A panic in another user leaves the device as usable as an I/O error would.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Box<dyn BlockDevice>> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlockDevice for SharedDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        self.lock().read_at(buf, offset)
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        self.lock().write_at(bytes, offset)
    }

    fn zero_all(&mut self) -> Result<bool, String> {
        self.lock().zero_all()
    }

    fn sync(&mut self) -> Result<(), String> {
        self.lock().sync()
    }
}

/// What the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub written: u64,
    pub zeros_skipped: u64,
}

/// An open target. Offsets given to it are relative to the target's start.
pub struct DiskWriter {
    device: Box<dyn BlockDevice>,
    path: PathBuf,
    /// Absolute offset of the target's first byte.
    base: u64,
    length: u64,
    whole_device: bool,
    reads_zeros: bool,
    buf: Vec<u8>,
    buf_start: u64,
    zero_buf: Vec<u8>,
    stats: WriteStats,
    progress: Progress,
    no_length_hint: bool,
}

impl std::fmt::Debug for DiskWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWriter")
            .field("device", &self.path)
            .field("base", &self.base)
            .field("length", &self.length)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DiskWriter {
    /// Opens the target and checks its range lies inside the file or device. Writes nothing.
    pub fn open(target: &Target, progress: Progress) -> Result<Self, ImageError> {
        let device = FileDevice::open(&target.path)?;
        Self::on_device(Box::new(device), target, progress)
    }

    /// A writer onto `device`, confined to the range `target` names (its path is only
    /// checked against nothing here: the device is already open).
    pub fn on_device(
        device: Box<dyn BlockDevice>,
        target: &Target,
        progress: Progress,
    ) -> Result<Self, ImageError> {
        let size = device.size();
        let path = PathBuf::from(device.name());
        let length = target_length(&path, target, size)?;
        Ok(DiskWriter {
            device,
            path,
            base: target.offset,
            length,
            whole_device: target.offset == 0 && length == size,
            reads_zeros: false,
            buf: Vec::new(),
            buf_start: 0,
            zero_buf: Vec::new(),
            stats: WriteStats::default(),
            progress,
            no_length_hint: false,
        })
    }

    /// The target's length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Says the image's size was not known in advance (for the error text when it overflows).
    pub fn set_size_unknown(&mut self) {
        self.no_length_hint = true;
    }

    /// Makes the target ready for an image of `size` bytes: refuses one that does not fit;
    /// a whole device that can be zeroed cheaply (a regular file is truncated and
    /// extended back) is, so that zero blocks need no writing. Call before the first write.
    pub fn prepare(&mut self, size: Option<u64>) -> Result<(), ImageError> {
        if let Some(size) = size {
            if size > self.length {
                return Err(ImageError::ImageTooLarge(format!(
                    "the image is {size} bytes, the target {} holds {} bytes",
                    self.path.display(),
                    self.length
                )));
            }
        } else {
            self.no_length_hint = true;
        }
        if self.whole_device {
            self.reads_zeros = self
                .device
                .zero_all()
                .map_err(|e| ImageError::target(&self.path, e))?;
        }
        Ok(())
    }

    /// Whether zero blocks are skipped.
    pub fn reads_zeros(&self) -> bool {
        self.reads_zeros
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), ImageError> {
        let end = offset.checked_add(len);
        if end.is_some_and(|end| end <= self.length) {
            return Ok(());
        }
        let how = if self.no_length_hint {
            "the server gave no length, and the image"
        } else {
            "the image"
        };
        Err(ImageError::ImageTooLarge(format!(
            "{how} goes past the end of the target {} ({} bytes) at byte {}",
            self.path.display(),
            self.length,
            offset.max(self.length)
        )))
    }

    /// Writes `bytes` at `offset`, through the buffer.
    pub fn write_at(&mut self, offset: u64, mut bytes: &[u8]) -> Result<(), ImageError> {
        self.check_range(offset, bytes.len() as u64)?;
        let mut offset = offset;
        if !self.buf.is_empty() && self.buf_start + self.buf.len() as u64 != offset {
            self.flush()?;
        }
        while !bytes.is_empty() {
            if self.buf.is_empty() {
                self.buf_start = offset;
                if self.buf.capacity() < WRITE_BUFFER {
                    self.buf.reserve_exact(WRITE_BUFFER);
                }
            }
            let room = WRITE_BUFFER - self.buf.len();
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            offset += take as u64;
            if self.buf.len() == WRITE_BUFFER {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// `len` zero bytes at `offset`: skipped when the target reads zeros, written otherwise.
    pub fn zeros(&mut self, offset: u64, len: u64) -> Result<(), ImageError> {
        self.check_range(offset, len)?;
        if self.reads_zeros {
            self.stats.zeros_skipped += len;
            return Ok(());
        }
        self.flush()?;
        let zeros = std::mem::take(&mut self.zero_buf);
        let zeros = if zeros.is_empty() {
            vec![0u8; WRITE_BUFFER]
        } else {
            zeros
        };
        let mut done = 0;
        let mut result = Ok(());
        while done < len && result.is_ok() {
            let n = (len - done).min(zeros.len() as u64) as usize;
            result = self.pwrite(offset + done, &zeros[..n]);
            done += n as u64;
        }
        self.zero_buf = zeros;
        result
    }

    /// Writes the buffer out, skipping zero blocks where allowed.
    pub fn flush(&mut self) -> Result<(), ImageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_skipping_zeros(self.buf_start, &buf);
        self.buf = buf;
        self.buf.clear();
        result
    }

    fn write_skipping_zeros(&mut self, start: u64, buf: &[u8]) -> Result<(), ImageError> {
        if !self.reads_zeros {
            return self.pwrite(start, buf);
        }
        let mut run: Option<usize> = None;
        for (i, block) in buf.chunks(ZERO_BLOCK).enumerate() {
            let at = i * ZERO_BLOCK;
            if is_zero(block) {
                if let Some(from) = run.take() {
                    self.pwrite(start + from as u64, &buf[from..at])?;
                }
                self.stats.zeros_skipped += block.len() as u64;
            } else if run.is_none() {
                run = Some(at);
            }
        }
        if let Some(from) = run {
            self.pwrite(start + from as u64, &buf[from..])?;
        }
        Ok(())
    }

    fn pwrite(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ImageError> {
        let absolute = self.base + offset;
        self.device
            .write_at(bytes, absolute)
            .map_err(|e| ImageError::target(&self.path, e))?;
        self.stats.written += bytes.len() as u64;
        self.progress.add_written(bytes.len() as u64);
        Ok(())
    }

    /// Flushes and syncs; the image is on the disk when this returns `Ok`.
    pub fn finish(mut self) -> Result<WriteStats, ImageError> {
        self.flush()?;
        self.device
            .sync()
            .map_err(|e| ImageError::target(&self.path, e))?;
        Ok(self.stats)
    }

    pub fn stats(&self) -> WriteStats {
        self.stats
    }
}

fn target_length(path: &Path, target: &Target, size: u64) -> Result<u64, ImageError> {
    if target.offset > size {
        return Err(ImageError::target(
            path,
            format!("offset {} is past its end ({size} bytes)", target.offset),
        ));
    }
    let room = size - target.offset;
    match target.length {
        None => Ok(room),
        Some(len) if len <= room => Ok(len),
        Some(len) => Err(ImageError::target(
            path,
            format!(
                "range of {len} bytes at offset {} runs past its end ({size} bytes)",
                target.offset
            ),
        )),
    }
}

/// True when every byte is zero (word-wise, stopping at the first non-zero page).
pub fn is_zero(block: &[u8]) -> bool {
    block
        .chunks(4096)
        .all(|page| page.iter().fold(0u8, |acc, b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn sub_range_writes_stay_inside_and_write_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &[0xee; 4096]);
        let target = Target {
            path: path.clone(),
            offset: 1024,
            length: Some(2048),
        };
        let mut w = DiskWriter::open(&target, Progress::default()).unwrap();
        w.prepare(Some(2048)).unwrap();
        assert!(!w.reads_zeros());
        w.write_at(0, &[1; 1000]).unwrap();
        w.zeros(1000, 1048).unwrap();
        let err = w.write_at(2000, &[2; 49]).unwrap_err();
        assert!(err.to_string().contains("at byte 2048"), "{err}");
        let stats = w.finish().unwrap();
        assert_eq!(
            stats,
            WriteStats {
                written: 2048,
                zeros_skipped: 0
            }
        );
        let got = std::fs::read(&path).unwrap();
        assert!(got[..1024].iter().all(|b| *b == 0xee));
        assert!(got[1024..2024].iter().all(|b| *b == 1));
        assert!(got[2024..3072].iter().all(|b| *b == 0));
        assert!(got[3072..].iter().all(|b| *b == 0xee));
    }

    #[test]
    fn whole_file_is_zeroed_and_zero_blocks_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &vec![0xee; 4 * ZERO_BLOCK]);
        let mut w = DiskWriter::open(&Target::whole(&path), Progress::default()).unwrap();
        w.prepare(Some(3 * ZERO_BLOCK as u64)).unwrap();
        assert!(w.reads_zeros());
        let mut image = vec![0u8; 3 * ZERO_BLOCK];
        image[ZERO_BLOCK + 5] = 7;
        w.write_at(0, &image).unwrap();
        let stats = w.finish().unwrap();
        assert_eq!(stats.written, ZERO_BLOCK as u64);
        assert_eq!(stats.zeros_skipped, 2 * ZERO_BLOCK as u64);
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..3 * ZERO_BLOCK], &image[..]);
        assert!(got[3 * ZERO_BLOCK..].iter().all(|b| *b == 0));
    }

    #[test]
    fn too_large_images_and_bad_ranges_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &[0xee; 100]);
        let mut w = DiskWriter::open(&Target::whole(&path), Progress::default()).unwrap();
        let err = w.prepare(Some(101)).unwrap_err();
        assert!(err.to_string().contains("101 bytes"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), vec![0xee; 100]);
        let bad = Target {
            path: path.clone(),
            offset: 50,
            length: Some(51),
        };
        assert!(DiskWriter::open(&bad, Progress::default()).is_err());
        let bad = Target {
            path: path.clone(),
            offset: 101,
            length: None,
        };
        assert!(DiskWriter::open(&bad, Progress::default()).is_err());
        let missing = Target::whole(dir.path().join("missing"));
        assert!(DiskWriter::open(&missing, Progress::default())
            .unwrap_err()
            .to_string()
            .contains("cannot open"));
    }

    #[test]
    fn unknown_size_overflow_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &[0; 10]);
        let mut w = DiskWriter::open(&Target::whole(&path), Progress::default()).unwrap();
        w.prepare(None).unwrap();
        w.write_at(0, &[1; 10]).unwrap();
        let err = w.write_at(10, &[1]).unwrap_err().to_string();
        assert!(
            err.contains("no length") && err.contains("at byte 10"),
            "{err}"
        );
    }

    #[test]
    fn a_file_device_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &[0u8; 8192]);
        let mut device = FileDevice::open(&path).unwrap();
        device.write_at(&[7, 8, 9], 4095).unwrap();
        let mut buf = [0u8; 5];
        device.read_at(&mut buf, 4094).unwrap();
        assert_eq!(buf, [0, 7, 8, 9, 0]);
        let err = device.read_at(&mut buf, 8190).unwrap_err();
        assert!(
            err.starts_with("read of 5 bytes at byte 8190 failed"),
            "{err}"
        );
    }

    #[test]
    fn clones_of_a_shared_device_take_turns_on_one_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir, "disk", &[0xee; 4096]);
        let shared = SharedDevice::new(Box::new(FileDevice::open(&path).unwrap()));
        assert_eq!(shared.size(), 4096);
        assert_eq!(shared.name(), path.display().to_string());
        let target = Target {
            path: PathBuf::from(shared.name()),
            offset: 1024,
            length: Some(1024),
        };
        let mut w =
            DiskWriter::on_device(Box::new(shared.clone()), &target, Progress::default()).unwrap();
        w.prepare(Some(1024)).unwrap();
        assert!(!w.reads_zeros(), "a partition is never truncated");
        w.write_at(0, &[1; 1024]).unwrap();
        assert!(w.write_at(1024, &[1]).is_err());
        w.finish().unwrap();
        let mut other = shared.clone();
        let mut buf = [0u8; 4];
        other.read_at(&mut buf, 1022).unwrap();
        assert_eq!(buf, [0xee, 0xee, 1, 1]);
        other.read_at(&mut buf, 2046).unwrap();
        assert_eq!(buf, [1, 1, 0xee, 0xee]);
    }

    #[test]
    fn zero_test() {
        assert!(is_zero(&[0; 10000]));
        let mut v = vec![0; 10000];
        v[9999] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }
}
