//! Kernels and ramdisks named by nodes (`deploy_kernel`, `kernel`, ...),
//! fetched once into a master cache under the boot root and linked into
//! each node's directory.
//!
//! A master file is named by the SHA-256 of its content, so identical
//! images are stored once whatever their URL. A small record per source
//! (`sources/<sha256 of href>.json`) says which content it had and how to
//! tell whether it changed: size and modification time for local files;
//! `ETag`, `Last-Modified` and length for HTTP, checked with a `HEAD`.
//! Unused master files are not evicted yet.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DriverError;
use crate::pxe::files::{io_error, remove_if_present, write_atomically};

/// One fetch at a time per process, so two nodes asking for the same
/// kernel download it once.
static FETCHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SourceRecord {
    href: String,
    sha256: String,
    size: u64,
    /// Local files: modification time, as nanoseconds since the epoch.
    mtime_ns: Option<i128>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A master cache in `dir` (e.g. `<http_root>/master_images`).
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
}

impl ImageCache {
    pub fn new(dir: PathBuf) -> ImageCache {
        ImageCache { dir }
    }

    /// Makes `dest` a copy of the image at `href` (an `http(s)://` URL, a
    /// `file://` URL or an absolute path), fetching it only if the cache
    /// does not hold its current content.
    pub async fn link_into(&self, href: &str, dest: &Path) -> Result<(), DriverError> {
        let master = {
            let _one = FETCHING.lock().await;
            self.master_for(href).await?
        };
        link_or_copy(&master, dest)
    }

    async fn master_for(&self, href: &str) -> Result<PathBuf, DriverError> {
        let record_path = self.record_path(href);
        let known = read_record(&record_path);
        let source = Source::parse(href)?;
        let current = source.validators().await?;
        if let Some(record) = known.filter(|r| current.matches(r)) {
            let master = self.dir.join(&record.sha256);
            if master.is_file() {
                tracing::debug!(href, sha256 = %record.sha256, "image cache hit");
                return Ok(master);
            }
        }
        let (sha256, size) = self.download(&source).await?;
        let record = SourceRecord {
            href: href.to_owned(),
            sha256: sha256.clone(),
            size,
            mtime_ns: current.mtime_ns,
            etag: current.etag,
            last_modified: current.last_modified,
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| DriverError::failed(format!("cannot record {href}: {e}")))?;
        write_atomically(&record_path, &text)?;
        tracing::info!(href, sha256 = %sha256, size, "image cached");
        Ok(self.dir.join(sha256))
    }

    fn record_path(&self, href: &str) -> PathBuf {
        let key = hex(&Sha256::digest(href.as_bytes()));
        self.dir.join("sources").join(format!("{key}.json"))
    }

    /// Streams the source into a temporary file while hashing it, then
    /// renames it to its hash.
    async fn download(&self, source: &Source) -> Result<(String, u64), DriverError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        let temp = self
            .dir
            .join(format!(".download.{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = source.copy_into(&temp).await;
        let (sha256, size) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        let master = self.dir.join(&sha256);
        std::fs::rename(&temp, &master).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io_error("rename into", &master, e)
        })?;
        Ok((sha256, size))
    }
}

fn read_record(path: &Path) -> Option<SourceRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// What says whether a source changed since it was cached.
#[derive(Debug, Default)]
struct Validators {
    size: Option<u64>,
    mtime_ns: Option<i128>,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validators {
    fn matches(&self, record: &SourceRecord) -> bool {
        if self.size.is_some_and(|s| s != record.size) {
            return false;
        }
        if self.mtime_ns.is_some() || record.mtime_ns.is_some() {
            return self.mtime_ns == record.mtime_ns;
        }
        if self.etag.is_some() || record.etag.is_some() {
            return self.etag == record.etag;
        }
        self.last_modified == record.last_modified
    }
}

enum Source {
    File(PathBuf),
    Http(String),
}

impl Source {
    fn parse(href: &str) -> Result<Source, DriverError> {
        if href.starts_with("http://") || href.starts_with("https://") {
            return Ok(Source::Http(href.to_owned()));
        }
        let path = href.strip_prefix("file://").unwrap_or(href);
        if path.starts_with('/') {
            return Ok(Source::File(PathBuf::from(path)));
        }
        Err(DriverError::InvalidParameter(format!(
            "Image {href} is neither an http(s):// URL, a file:// URL nor an absolute path"
        )))
    }

    async fn validators(&self) -> Result<Validators, DriverError> {
        match self {
            Source::File(path) => {
                let meta = std::fs::metadata(path).map_err(|e| {
                    DriverError::failed(format!("Image {} cannot be read: {e}", path.display()))
                })?;
                if !meta.is_file() {
                    return Err(DriverError::failed(format!(
                        "Image {} is not a regular file",
                        path.display()
                    )));
                }
                let mtime_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as i128);
                Ok(Validators {
                    size: Some(meta.len()),
                    mtime_ns,
                    ..Validators::default()
                })
            }
            Source::Http(url) => {
                let response = http_client()?
                    .head(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| {
                        DriverError::failed(format!("Image {url} cannot be reached: {e}"))
                    })?;
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                Ok(Validators {
                    size: header("content-length").and_then(|l| l.parse().ok()),
                    mtime_ns: None,
                    etag: header("etag"),
                    last_modified: header("last-modified"),
                })
            }
        }
    }

    async fn copy_into(&self, temp: &Path) -> Result<(String, u64), DriverError> {
        let mut out = std::fs::File::create(temp).map_err(|e| io_error("create", temp, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut put = |chunk: &[u8]| -> Result<(), DriverError> {
            hasher.update(chunk);
            size += chunk.len() as u64;
            out.write_all(chunk).map_err(|e| io_error("write", temp, e))
        };
        match self {
            Source::File(path) => {
                let mut input = std::fs::File::open(path).map_err(|e| {
                    DriverError::failed(format!("Image {} cannot be read: {e}", path.display()))
                })?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = std::io::Read::read(&mut input, &mut buf)
                        .map_err(|e| io_error("read", path, e))?;
                    if n == 0 {
                        break;
                    }
                    put(&buf[..n])?;
                }
            }
            Source::Http(url) => {
                let mut response = http_client()?
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| {
                        DriverError::failed(format!("Image {url} cannot be downloaded: {e}"))
                    })?;
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| DriverError::failed(format!("Image {url} download failed: {e}")))?
                {
                    put(&chunk)?;
                }
            }
        }
        out.sync_all().map_err(|e| io_error("flush", temp, e))?;
        Ok((hex(&hasher.finalize()), size))
    }
}

fn http_client() -> Result<reqwest::Client, DriverError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| DriverError::failed(format!("cannot make an HTTP client: {e}")))
}

/// Hard-links `master` at `dest` (same file system), else copies it.
fn link_or_copy(master: &Path, dest: &Path) -> Result<(), DriverError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    }
    remove_if_present(dest)?;
    if std::fs::hard_link(master, dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(master, dest)
        .map(drop)
        .map_err(|e| io_error("copy into", dest, e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn local_images_are_copied_once_and_again_when_they_change() {
        let dir = tempfile::tempdir().expect("dir");
        let source = dir.path().join("kernel");
        std::fs::write(&source, b"kernel one").expect("write");
        let cache = ImageCache::new(dir.path().join("root/master_images"));
        let a = dir.path().join("root/n1/deploy_kernel");
        let b = dir.path().join("root/n2/deploy_kernel");
        let href = format!("file://{}", source.display());
        cache.link_into(&href, &a).await.expect("first");
        cache
            .link_into(source.to_str().expect("utf8"), &b)
            .await
            .expect("second");
        assert_eq!(std::fs::read(&a).expect("a"), b"kernel one");
        assert_eq!(std::fs::read(&b).expect("b"), b"kernel one");
        let masters = std::fs::read_dir(dir.path().join("root/master_images"))
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .count();
        assert_eq!(masters, 1, "one content, one master file");

        std::fs::write(&source, b"kernel two, longer").expect("rewrite");
        cache.link_into(&href, &a).await.expect("changed");
        assert_eq!(std::fs::read(&a).expect("a"), b"kernel two, longer");
        assert_eq!(
            std::fs::read(&b).expect("b"),
            b"kernel one",
            "others keep theirs"
        );
    }

    #[tokio::test]
    async fn bad_sources_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = ImageCache::new(dir.path().join("m"));
        let err = cache
            .link_into("relative/kernel", &dir.path().join("x"))
            .await
            .expect_err("relative");
        assert!(err.to_string().contains("relative/kernel"), "{err}");
        let err = cache
            .link_into("/nonexistent/kernel", &dir.path().join("x"))
            .await
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/kernel"), "{err}");
    }

    /// A minimal HTTP server counting GETs; HEAD and GET carry an ETag.
    async fn serve_image(body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let gets = Arc::new(AtomicUsize::new(0));
        let counter = gets.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                if request.starts_with("GET") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(body).await;
                }
            }
        });
        (format!("http://{addr}/deploy.kernel"), gets)
    }

    #[tokio::test]
    async fn http_images_are_downloaded_once() {
        let (url, gets) = serve_image(b"an http kernel").await;
        let dir = tempfile::tempdir().expect("dir");
        let cache = ImageCache::new(dir.path().join("m"));
        for node in ["n1", "n2", "n3"] {
            let dest = dir.path().join(node).join("deploy_kernel");
            cache.link_into(&url, &dest).await.expect("fetch");
            assert_eq!(std::fs::read(&dest).expect("read"), b"an http kernel");
        }
        assert_eq!(gets.load(Ordering::SeqCst), 1);
    }
}
