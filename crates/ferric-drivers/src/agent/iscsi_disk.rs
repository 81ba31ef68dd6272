//! The node's disk as the conductor sees it during an `iscsi` deploy: an
//! iSCSI LUN behind `ferric-iscsi`'s initiator, written by `ferric-image`'s
//! pipeline as if it were a local block device.
//!
//! The pipeline's writer runs on a blocking thread; [`RemoteDisk`] hands
//! each write to the async session, which keeps `queue_depth` WRITEs in
//! flight, so memory is bounded by the queue, whatever the image's size.
//! Writes that do not start or end on a block boundary (the last piece of
//! an image whose size is not a multiple of the block size) read the
//! block first and write it whole.

use std::sync::Arc;

use ferric_image::{BlockDevice, DiskWriter, Fetcher, ImageError, Progress, Target, WriteReport};
use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::initiator::{Capacity, InitiatorConfig, Session};
use tokio::runtime::Handle;

use super::iscsi::{secs, WritePlan, DEPLOY_LUN, INITIATOR_NAME};

/// Connects, logs in, writes the image, flushes and logs out. The error
/// says which of those failed.
pub async fn write_image(plan: &WritePlan, progress: &Progress) -> Result<WriteReport, String> {
    let session = Arc::new(connect(plan).await?);
    let capacity = session
        .read_capacity()
        .await
        .map_err(|e| format!("reading the disk's capacity failed: {e}"))?;
    let disk = RemoteDisk {
        session: session.clone(),
        runtime: Handle::current(),
        capacity,
        name: format!("{} LUN {DEPLOY_LUN} at {}", plan.iqn, plan.portal),
    };
    let writer = DiskWriter::on_device(Box::new(disk), &Target::whole(""), progress.clone())
        .map_err(|e| e.to_string())?;
    let fetcher = Fetcher::shared().map_err(|e| e.to_string())?;
    let report = fetcher
        .write_image_with(&plan.source, writer, progress)
        .await
        .map_err(|e| image_error_text(&e))?;
    match Arc::try_unwrap(session) {
        Ok(session) => {
            if let Err(e) = session.logout().await {
                tracing::warn!(target = %plan.iqn, error = %e, "iSCSI logout failed after the image was written");
            }
        }
        Err(_) => {
            tracing::warn!(target = %plan.iqn, "iSCSI session still shared after the write; not logging out")
        }
    }
    Ok(report)
}

/// The agent's texts for the same failures (Ironic's), so both deploys read alike.
fn image_error_text(e: &ImageError) -> String {
    match e {
        ImageError::ChecksumMismatch { .. } => {
            format!("Image failed to verify against checksum: {e}")
        }
        ImageError::Target { .. } | ImageError::ImageTooLarge(_) => {
            format!("Writing the image over iSCSI failed: {e}")
        }
        ImageError::Format(_) | ImageError::Qcow2(_) => format!("Invalid image: {e}"),
        other => format!("Download of the image failed: {other}"),
    }
}

async fn connect(plan: &WritePlan) -> Result<Session, String> {
    let creds = &plan.credentials;
    let credentials = |user: &str, secret: &str| {
        ChapCredentials::new(user, secret.as_bytes()).map_err(|e| format!("CHAP credentials: {e}"))
    };
    let chap = credentials(&creds.user, creds.secret.expose())?;
    let mutual = match (&creds.mutual_user, &creds.mutual_secret) {
        (Some(user), Some(secret)) => Some(credentials(user, secret.expose())?),
        _ => None,
    };
    let config = InitiatorConfig {
        lun: DEPLOY_LUN,
        chap: Some(chap),
        mutual_chap: mutual,
        connect_timeout: secs(plan.config.login_timeout),
        command_timeout: secs(plan.config.command_timeout),
        queue_depth: plan.config.queue_depth.max(1),
        ..InitiatorConfig::new(INITIATOR_NAME, plan.iqn.clone())
    };
    Session::connect(plan.portal, config)
        .await
        .map_err(|e| e.to_string())
}

/// A LUN as a [`BlockDevice`] for the pipeline's blocking writer thread.
struct RemoteDisk {
    session: Arc<Session>,
    runtime: Handle,
    capacity: Capacity,
    name: String,
}

impl RemoteDisk {
    fn block(&self) -> u64 {
        u64::from(self.capacity.block_size)
    }

    /// Reads the blocks around an unaligned write, lays the bytes over them and
    /// writes them whole.
    fn write_unaligned(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        let block = self.block();
        let first = offset / block;
        let end = offset + bytes.len() as u64;
        let last = end.div_ceil(block);
        let count = u32::try_from(last - first).map_err(|_| "write too large".to_owned())?;
        let session = self.session.clone();
        let mut buf = self
            .runtime
            .block_on(async move { session.read(first, count).await })
            .map_err(|e| format!("reading back blocks {first}..{last} failed: {e}"))?;
        let at = (offset - first * block) as usize;
        buf.get_mut(at..at + bytes.len())
            .ok_or("the target returned fewer bytes than asked")?
            .copy_from_slice(bytes);
        self.submit(first, buf)
    }

    fn submit(&self, lba: u64, data: Vec<u8>) -> Result<(), String> {
        let session = self.session.clone();
        self.runtime
            .block_on(async move { session.submit_write(lba, data).await })
            .map_err(|e| e.to_string())
    }
}

impl BlockDevice for RemoteDisk {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> u64 {
        self.capacity.blocks.saturating_mul(self.block())
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        let block = self.block();
        if !offset.is_multiple_of(block) || !(bytes.len() as u64).is_multiple_of(block) {
            return self.write_unaligned(bytes, offset);
        }
        self.submit(offset / block, bytes.to_vec())
    }

    /// Unmaps the whole disk when the target says unmapped blocks read as zeros.
    fn zero_all(&mut self) -> Result<bool, String> {
        if !(self.capacity.thin && self.capacity.reads_zeros) {
            return Ok(false);
        }
        let session = self.session.clone();
        let blocks = self.capacity.blocks;
        self.runtime
            .block_on(async move { session.unmap(0, blocks).await })
            .map_err(|e| format!("unmapping the disk failed: {e}"))?;
        Ok(true)
    }

    fn sync(&mut self) -> Result<(), String> {
        let session = self.session.clone();
        self.runtime
            .block_on(async move { session.flush().await })
            .map_err(|e| format!("flushing the disk failed: {e}"))
    }
}
