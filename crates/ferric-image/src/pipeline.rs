//! The pipeline from an image URL to verified bytes on a target: the async side downloads
//! and hashes; a blocking thread detects the format, converts qcow2 as it streams and
//! writes. They talk over bounded channels, so memory stays bounded whatever the image.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::info;

use crate::checksum::{self, Algorithm, ExpectedChecksum, Hasher};
use crate::error::ImageError;
use crate::fetch::{Download, Fetcher};
use crate::qcow2::{self, Header, Sink, StreamReader};
use crate::writer::{DiskWriter, Target, WriteStats};

/// Downloaded bytes are handed to the writer in pieces of at most this size.
const FEED_CHUNK: usize = 1024 * 1024;
/// Pieces in flight between the download and the writer.
const FEED_DEPTH: usize = 4;
/// Bytes looked at to tell the format.
const SNIFF_LEN: usize = 512;
/// Largest checksum file accepted.
const CHECKSUM_FILE_MAX: u64 = 1024 * 1024;

/// Where an image comes from and what it must be.
#[derive(Debug, Clone, Default)]
pub struct ImageSource {
    pub urls: Vec<String>,
    pub checksum: Option<ExpectedChecksum>,
    /// Ironic's `disk_format`: `raw`, `qcow2`, `iso`, or none.
    pub disk_format: Option<String>,
}

/// The format found in the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// What `write_image` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    pub format: ImageFormat,
    /// Size of the raw disk the image describes.
    pub virtual_size: u64,
    /// Bytes fetched over the network (second fetches included).
    pub downloaded: u64,
    pub written: u64,
    pub zeros_skipped: u64,
    pub verified: Option<Algorithm>,
}

#[derive(Debug, Default)]
struct Counters {
    downloaded: AtomicU64,
    download_total: AtomicU64,
    written: AtomicU64,
    image_size: AtomicU64,
}

/// Live counters of a write, readable from another task.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Counters>,
}

/// One reading of a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    pub downloaded: u64,
    /// The server's Content-Length, when it gave one.
    pub download_total: Option<u64>,
    pub written: u64,
    /// The raw disk's size, once known (qcow2 header, or raw Content-Length).
    pub image_size: Option<u64>,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        let known = |v: u64| (v != u64::MAX && v != 0).then_some(v);
        ProgressSnapshot {
            downloaded: self.inner.downloaded.load(Ordering::Relaxed),
            download_total: known(self.inner.download_total.load(Ordering::Relaxed)),
            written: self.inner.written.load(Ordering::Relaxed),
            image_size: known(self.inner.image_size.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn add_downloaded(&self, n: u64) {
        self.inner.downloaded.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_written(&self, n: u64) {
        self.inner.written.fetch_add(n, Ordering::Relaxed);
    }

    fn set_download_total(&self, n: u64) {
        self.inner.download_total.store(n, Ordering::Relaxed);
    }

    fn set_image_size(&self, n: u64) {
        self.inner.image_size.store(n, Ordering::Relaxed);
    }
}

/// Downloads, verifies and writes an image with the shared default [`Fetcher`].
pub async fn write_image(
    source: &ImageSource,
    target: &Target,
    progress: &Progress,
) -> Result<WriteReport, ImageError> {
    Fetcher::shared()?
        .write_image(source, target, progress)
        .await
}

/// Small downloads (a config drive by URL, a checksum file), capped at `max` bytes.
pub async fn fetch_bytes(url: &str, max: u64) -> Result<Vec<u8>, ImageError> {
    Fetcher::shared()?.bytes(url, max).await
}

/// The `disk_format` values this pipeline writes, and what content each allows.
fn allowed_content(disk_format: Option<&str>) -> Result<Option<ImageFormat>, ImageError> {
    match disk_format.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("unknown") => Ok(None),
        Some("raw") | Some("iso") => Ok(Some(ImageFormat::Raw)),
        Some("qcow2") => Ok(Some(ImageFormat::Qcow2)),
        Some(other) => Err(ImageError::Format(format!(
            "disk_format {other} is not supported (raw, qcow2 and iso are)"
        ))),
    }
}

/// Tells the format from the first bytes; refuses formats that would be written wrongly.
pub fn detect_format(head: &[u8]) -> Result<ImageFormat, ImageError> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    let other = if starts(b"KDMV") || starts(b"# Disk DescriptorFile") {
        Some("vmdk")
    } else if starts(b"vhdxfile") {
        Some("vhdx")
    } else if starts(b"conectix") {
        Some("vhd")
    } else if starts(b"LUKS\xba\xbe") {
        Some("luks")
    } else if head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe]) {
        Some("vdi")
    } else {
        None
    };
    match other {
        Some(name) => Err(ImageError::Format(format!(
            "the image is {name}, which is not supported"
        ))),
        None if starts(&qcow2::MAGIC) => Ok(ImageFormat::Qcow2),
        None => Ok(ImageFormat::Raw),
    }
}

fn check_claim(
    claimed: Option<&str>,
    allowed: Option<ImageFormat>,
    found: ImageFormat,
) -> Result<(), ImageError> {
    match allowed {
        Some(want) if want != found => Err(ImageError::Format(format!(
            "expected format was {}, but the image is actually {}",
            claimed.unwrap_or(want.name()),
            found.name()
        ))),
        _ => Ok(()),
    }
}

impl Fetcher {
    /// Downloads, verifies and writes an image with this fetcher's client and options.
    pub async fn write_image(
        &self,
        source: &ImageSource,
        target: &Target,
        progress: &Progress,
    ) -> Result<WriteReport, ImageError> {
        allowed_content(source.disk_format.as_deref())?;
        let writer = DiskWriter::open(target, progress.clone())?;
        self.write_image_with(source, writer, progress).await
    }

    /// Downloads, verifies and writes an image through an open writer (onto any
    /// [`crate::BlockDevice`], a remote disk included).
    pub async fn write_image_with(
        &self,
        source: &ImageSource,
        writer: DiskWriter,
        progress: &Progress,
    ) -> Result<WriteReport, ImageError> {
        let allowed = allowed_content(source.disk_format.as_deref())?;
        let expected = self.resolve_checksum(source).await?;
        let hasher = expected.as_ref().map(|(a, _)| Hasher::new(*a));
        let mut download = self.open(&source.urls, hasher).await?;
        let total = download.total_len();
        if let Some(total) = total {
            progress.set_download_total(total);
        }
        let plan = WritePlan {
            claimed: source.disk_format.clone(),
            allowed,
            content_length: total,
            progress: progress.clone(),
        };
        let (to_writer, from_pump) = mpsc::channel(FEED_DEPTH);
        let (to_pump, mut from_writer) = mpsc::channel(1);
        let worker =
            tokio::task::spawn_blocking(move || run_writer(writer, plan, from_pump, to_pump));
        let pumped = self
            .pump_all(
                &mut download,
                &to_writer,
                &mut from_writer,
                expected,
                progress,
            )
            .await;
        drop(to_writer);
        let outcome = worker
            .await
            .map_err(|e| ImageError::Download(format!("writer thread failed: {e}")));
        let verified = match (pumped, outcome) {
            // What the writer found wrong with the image itself (too large,
            // a bad header) is the cause, even if the download ended (and
            // was verified) before the writer said so.
            (_, Ok(Err(e))) if e.is_about_the_image() => return Err(e),
            (Err(PumpError::Image(e)), _) => return Err(e),
            (_, Err(e)) | (_, Ok(Err(e))) => return Err(e),
            (Err(PumpError::WriterGone), Ok(Ok(_))) => {
                return Err(ImageError::Download("the writer stopped early".into()))
            }
            (Ok(verified), Ok(Ok(outcome))) => (verified, outcome),
        };
        let (verified, outcome) = verified;
        info!(
            format = outcome.format.name(),
            written = outcome.stats.written,
            "image written"
        );
        Ok(WriteReport {
            format: outcome.format,
            virtual_size: outcome.virtual_size,
            downloaded: progress.snapshot().downloaded,
            written: outcome.stats.written,
            zeros_skipped: outcome.stats.zeros_skipped,
            verified,
        })
    }

    /// The algorithm and value to verify against, fetching a checksum file when given one.
    async fn resolve_checksum(
        &self,
        source: &ImageSource,
    ) -> Result<Option<(Algorithm, String)>, ImageError> {
        match &source.checksum {
            None => Ok(None),
            Some(ExpectedChecksum::Hash { algorithm, hex }) => {
                Ok(Some((*algorithm, hex.to_ascii_lowercase())))
            }
            Some(ExpectedChecksum::FileUrl { url, algorithm }) => {
                let body = self.bytes(url, CHECKSUM_FILE_MAX).await?;
                let text = String::from_utf8_lossy(&body);
                let name = source
                    .urls
                    .first()
                    .map_or("", |u| checksum::file_name_of_url(u));
                let file_error = |reason: String| ImageError::ChecksumFile {
                    url: crate::fetch::redact_url(url),
                    reason,
                };
                let hex = checksum::parse_checksum_file(&text, name).map_err(file_error)?;
                let found = Algorithm::from_hex_len(hex.len());
                match (algorithm, found) {
                    (Some(a), _) if a.hex_len() == hex.len() => Ok(Some((*a, hex))),
                    (Some(a), _) => Err(file_error(format!(
                        "its value for {name} is not a {a} digest"
                    ))),
                    (None, Some(found)) => Ok(Some((found, hex))),
                    (None, None) => Err(file_error("no checksum of a known length".into())),
                }
            }
        }
    }

    /// Streams the file to the writer, verifies it, then serves the writer's second fetches.
    async fn pump_all(
        &self,
        download: &mut Download<'_>,
        to_writer: &mpsc::Sender<ToWriter>,
        from_writer: &mut mpsc::Receiver<FromWriter>,
        expected: Option<(Algorithm, String)>,
        progress: &Progress,
    ) -> Result<Option<Algorithm>, PumpError> {
        pump(download, to_writer, progress).await?;
        send(to_writer, ToWriter::StreamEnd).await?;
        let verified = match (expected, download.take_hasher()) {
            (Some((_, hex)), Some(hasher)) => Some(checksum::verify(hasher, &hex)?),
            _ => None,
        };
        let (url, validator) = (download.url().to_string(), download.validator().cloned());
        loop {
            match from_writer.recv().await {
                Some(FromWriter::Done) => return Ok(verified),
                Some(FromWriter::Fetch(start, end)) => {
                    info!(start, end, "fetching a range again");
                    let mut range = self
                        .open_range(&url, validator.as_ref(), start, end)
                        .await?;
                    pump(&mut range, to_writer, progress).await?;
                    send(to_writer, ToWriter::RangeEnd).await?;
                }
                None => return Err(PumpError::WriterGone),
            }
        }
    }
}

enum PumpError {
    Image(ImageError),
    WriterGone,
}

impl From<ImageError> for PumpError {
    fn from(e: ImageError) -> Self {
        PumpError::Image(e)
    }
}

async fn send(to_writer: &mpsc::Sender<ToWriter>, msg: ToWriter) -> Result<(), PumpError> {
    to_writer.send(msg).await.map_err(|_| PumpError::WriterGone)
}

/// Moves one download's bytes to the writer in pieces of about `FEED_CHUNK`.
async fn pump(
    download: &mut Download<'_>,
    to_writer: &mpsc::Sender<ToWriter>,
    progress: &Progress,
) -> Result<(), PumpError> {
    let mut piece = Vec::with_capacity(FEED_CHUNK);
    while let Some(chunk) = download.next_chunk().await? {
        progress.add_downloaded(chunk.len() as u64);
        if piece.len() + chunk.len() > FEED_CHUNK && !piece.is_empty() {
            send(
                to_writer,
                ToWriter::Feed(std::mem::replace(
                    &mut piece,
                    Vec::with_capacity(FEED_CHUNK),
                )),
            )
            .await?;
        }
        piece.extend_from_slice(&chunk);
    }
    if !piece.is_empty() {
        send(to_writer, ToWriter::Feed(piece)).await?;
    }
    Ok(())
}

enum ToWriter {
    Feed(Vec<u8>),
    StreamEnd,
    RangeEnd,
}

enum FromWriter {
    Fetch(u64, u64),
    Done,
}

struct WritePlan {
    claimed: Option<String>,
    allowed: Option<ImageFormat>,
    content_length: Option<u64>,
    progress: Progress,
}

struct WriterOutcome {
    format: ImageFormat,
    virtual_size: u64,
    stats: WriteStats,
}

/// The writer's side of a qcow2 stream: the header decides whether the image fits.
struct TargetSink {
    writer: DiskWriter,
    progress: Progress,
    virtual_size: u64,
}

impl Sink for TargetSink {
    fn header(&mut self, header: &Header) -> Result<(), ImageError> {
        self.virtual_size = header.virtual_size;
        self.progress.set_image_size(header.virtual_size);
        self.writer.prepare(Some(header.virtual_size))
    }
    fn data(&mut self, guest_offset: u64, bytes: &[u8]) -> Result<(), ImageError> {
        self.writer.write_at(guest_offset, bytes)
    }
    fn zeros(&mut self, guest_offset: u64, len: u64) -> Result<(), ImageError> {
        self.writer.zeros(guest_offset, len)
    }
}

enum Stage {
    Sniffing(Vec<u8>),
    Raw { written_to: u64 },
    Qcow2(Box<StreamReader>),
}

struct Worker {
    sink: TargetSink,
    plan: WritePlan,
    stage: Stage,
}

/// The blocking side: format detection, conversion and writes.
fn run_writer(
    writer: DiskWriter,
    plan: WritePlan,
    mut rx: mpsc::Receiver<ToWriter>,
    tx: mpsc::Sender<FromWriter>,
) -> Result<WriterOutcome, ImageError> {
    let sink = TargetSink {
        writer,
        progress: plan.progress.clone(),
        virtual_size: 0,
    };
    let mut worker = Worker {
        sink,
        plan,
        stage: Stage::Sniffing(Vec::new()),
    };
    while let Some(msg) = rx.blocking_recv() {
        let reply = match msg {
            ToWriter::Feed(bytes) => {
                worker.feed(&bytes)?;
                continue;
            }
            ToWriter::StreamEnd => worker.stream_end()?,
            ToWriter::RangeEnd => worker.range_end()?,
        };
        let done = matches!(reply, FromWriter::Done);
        if tx.blocking_send(reply).is_err() {
            break;
        }
        if done {
            return worker.finish();
        }
    }
    Err(ImageError::Download(
        "the download stopped before the image was complete".into(),
    ))
}

impl Worker {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        match &mut self.stage {
            Stage::Sniffing(head) => {
                head.extend_from_slice(bytes);
                if head.len() >= SNIFF_LEN {
                    self.start()?;
                }
                Ok(())
            }
            Stage::Raw { written_to } => {
                let at = *written_to;
                *written_to += bytes.len() as u64;
                self.sink.writer.write_at(at, bytes)
            }
            Stage::Qcow2(reader) => reader.feed(bytes, &mut self.sink),
        }
    }

    /// Decides the format from the sniffed bytes, checks the size, and feeds them on.
    fn start(&mut self) -> Result<(), ImageError> {
        let Stage::Sniffing(head) =
            std::mem::replace(&mut self.stage, Stage::Raw { written_to: 0 })
        else {
            return Ok(());
        };
        let format = detect_format(&head)?;
        check_claim(self.plan.claimed.as_deref(), self.plan.allowed, format)?;
        match format {
            ImageFormat::Raw => {
                let size = self.plan.content_length;
                self.sink.virtual_size = size.unwrap_or(0);
                if let Some(size) = size {
                    self.plan.progress.set_image_size(size);
                }
                self.sink.writer.prepare(size)?;
            }
            ImageFormat::Qcow2 => self.stage = Stage::Qcow2(Box::default()),
        }
        self.feed(&head)
    }

    fn stream_end(&mut self) -> Result<FromWriter, ImageError> {
        if matches!(self.stage, Stage::Sniffing(_)) {
            self.start()?;
        }
        match &mut self.stage {
            Stage::Qcow2(reader) => {
                reader.finish_stream(&mut self.sink)?;
                Ok(next_fetch(reader))
            }
            Stage::Raw { written_to } => {
                self.sink.virtual_size = *written_to;
                Ok(FromWriter::Done)
            }
            Stage::Sniffing(_) => Ok(FromWriter::Done),
        }
    }

    fn range_end(&mut self) -> Result<FromWriter, ImageError> {
        match &mut self.stage {
            Stage::Qcow2(reader) => {
                reader.finish_fetch(&mut self.sink)?;
                Ok(next_fetch(reader))
            }
            _ => Ok(FromWriter::Done),
        }
    }

    fn finish(self) -> Result<WriterOutcome, ImageError> {
        let format = match self.stage {
            Stage::Qcow2(_) => ImageFormat::Qcow2,
            _ => ImageFormat::Raw,
        };
        let virtual_size = self.sink.virtual_size;
        let stats = self.sink.writer.finish()?;
        Ok(WriterOutcome {
            format,
            virtual_size,
            stats,
        })
    }
}

fn next_fetch(reader: &mut StreamReader) -> FromWriter {
    match reader.next_fetch() {
        Some((start, end)) => FromWriter::Fetch(start, end),
        None => FromWriter::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_from_content() {
        assert_eq!(
            detect_format(b"QFI\xfb\0\0\0\x03").unwrap(),
            ImageFormat::Qcow2
        );
        assert_eq!(detect_format(&[0u8; 512]).unwrap(), ImageFormat::Raw);
        assert_eq!(detect_format(b"").unwrap(), ImageFormat::Raw);
        assert!(detect_format(b"KDMV....")
            .unwrap_err()
            .to_string()
            .contains("vmdk"));
        assert!(detect_format(b"vhdxfile")
            .unwrap_err()
            .to_string()
            .contains("vhdx"));
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert!(detect_format(&vdi).unwrap_err().to_string().contains("vdi"));
    }

    #[test]
    fn claims_must_match_content() {
        assert_eq!(
            allowed_content(Some("ISO")).unwrap(),
            Some(ImageFormat::Raw)
        );
        assert_eq!(allowed_content(None).unwrap(), None);
        assert!(allowed_content(Some("vmdk"))
            .unwrap_err()
            .to_string()
            .contains("vmdk"));
        let err = check_claim(Some("raw"), Some(ImageFormat::Raw), ImageFormat::Qcow2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image format: expected format was raw, but the image is actually qcow2"
        );
        assert!(check_claim(None, None, ImageFormat::Qcow2).is_ok());
    }

    #[test]
    fn progress_is_shared_between_clones() {
        let p = Progress::default();
        let q = p.clone();
        q.add_downloaded(5);
        q.add_written(3);
        q.set_download_total(10);
        let s = p.snapshot();
        assert_eq!(
            (s.downloaded, s.written, s.download_total, s.image_size),
            (5, 3, Some(10), None)
        );
    }
}
