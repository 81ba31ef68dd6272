//! The node's disk as the conductor sees it during an `iscsi` deploy: an
//! iSCSI LUN behind `ferric-iscsi`'s initiator, written by `ferric-image`'s
//! pipeline as if it were a local block device.
//!
//! A whole-disk image is streamed onto the LUN, then the config drive gets
//! a partition of its own (IPA's `create_config_drive_partition`). A
//! partition image is deployed as IPA's `work_on_disk` (and Ironic's old
//! iSCSI deploy on the conductor) does it: metadata destroyed, the new
//! table, the EFI system partition, the config drive, the image streamed
//! into the root partition, swap and ephemeral; the conductor then knows
//! the root file system's UUID itself.
//!
//! The pipeline's writer and the partition code run on blocking threads;
//! [`RemoteDisk`] hands each write to the async session, which keeps
//! `queue_depth` WRITEs in flight, so memory is bounded by the queue,
//! whatever the image's size. Writes that do not start or end on a block
//! boundary read the blocks first and write them whole; every read first
//! waits for the writes in flight (a flush), so it sees them.

use std::sync::Arc;

use ferric_image::configdrive::{self, ConfigDriveImage, ConfigDriveSource, MAX_CONFIG_DRIVE_SIZE};
use ferric_image::partition::deploy::{deploy_partition_image_on, DeployError};
use ferric_image::partition::{self, Disk};
use ferric_image::writer::SharedDevice;
use ferric_image::{BlockDevice, DiskWriter, Fetcher, ImageError, Progress, Target, WriteReport};
use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::initiator::{Capacity, InitiatorConfig, Session};
use tokio::runtime::Handle;

use super::iscsi::{secs, WritePlan, DEPLOY_LUN, INITIATOR_NAME};

/// Reads are split into commands of at most this many bytes.
const READ_CHUNK: u64 = 1024 * 1024;

/// What the conductor wrote, and the ids it found on the disk afterwards.
#[derive(Debug, Clone)]
pub struct Written {
    pub report: WriteReport,
    /// IPA's `root uuid`: the root file system's UUID (its PARTUUID if it
    /// has none) of a partition image, the disk identifier of a whole disk.
    pub root_uuid: Option<String>,
    /// The EFI system partition's FAT serial (partition images in UEFI mode).
    pub efi_system_partition_uuid: Option<String>,
    /// Whether a config drive was written.
    pub config_drive: bool,
}

/// Connects, logs in, writes the image (and the partitions, config drive),
/// flushes and logs out. The error says which of those failed. `written` is
/// told the outcome before the logout: the agent heartbeats when the session
/// ends, and the conductor must know by then.
pub async fn write_image(
    plan: &WritePlan,
    progress: &Progress,
    written_hook: impl FnOnce(&Result<Written, String>),
) -> Result<Written, String> {
    let session = Arc::new(connect(plan).await?);
    let capacity = session
        .read_capacity()
        .await
        .map_err(|e| format!("reading the disk's capacity failed: {e}"))?;
    let lun = Lun {
        session: session.clone(),
        runtime: Handle::current(),
        capacity,
        name: format!("{} LUN {DEPLOY_LUN} at {}", plan.iqn, plan.portal),
    };
    let written = match (check_block_size(&capacity), &plan.partition) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(spec)) => write_partition_image(plan, spec, &lun, progress).await,
        (Ok(()), None) => write_whole_disk(plan, &lun, progress).await,
    };
    drop(lun);
    written_hook(&written);
    log_out(session, &plan.iqn).await;
    written
}

/// Every offset is split into blocks of this size: it must make sense.
fn check_block_size(capacity: &Capacity) -> Result<(), String> {
    let size = capacity.block_size;
    if size < 512 || !size.is_power_of_two() || size > 65536 {
        return Err(format!(
            "the disk reports {size}-byte blocks: only powers of two from 512 to 65536 bytes are written"
        ));
    }
    Ok(())
}

/// Logs out once nothing else holds the session.
async fn log_out(session: Arc<Session>, iqn: &str) {
    match Arc::try_unwrap(session) {
        Ok(session) => {
            if let Err(e) = session.logout().await {
                tracing::warn!(target = %iqn, error = %e, "iSCSI logout failed after the write");
            }
        }
        Err(_) => {
            tracing::warn!(target = %iqn, "iSCSI session still shared after the write; not logging out")
        }
    }
}

/// What every [`RemoteDisk`] of one write shares.
struct Lun {
    session: Arc<Session>,
    runtime: Handle,
    capacity: Capacity,
    name: String,
}

impl Lun {
    fn disk(&self) -> RemoteDisk {
        RemoteDisk {
            session: self.session.clone(),
            runtime: self.runtime.clone(),
            capacity: self.capacity,
            name: self.name.clone(),
            dirty: false,
        }
    }

    /// The partition code's view of the LUN, 512-byte sectors as the agent's.
    fn partition_disk(&self) -> Result<Disk, String> {
        Disk::on_device(SharedDevice::new(Box::new(self.disk())), 512).map_err(|e| e.to_string())
    }
}

/// The image onto the whole LUN; then the config drive and the disk identifier.
async fn write_whole_disk(
    plan: &WritePlan,
    lun: &Lun,
    progress: &Progress,
) -> Result<Written, String> {
    let configdrive = match &plan.configdrive {
        Some(value) => Some(config_drive_image(value.expose()).await?),
        None => None,
    };
    let writer = DiskWriter::on_device(Box::new(lun.disk()), &Target::whole(""), progress.clone())
        .map_err(|e| e.to_string())?;
    let fetcher = Fetcher::shared().map_err(|e| e.to_string())?;
    let report = fetcher
        .write_image_with(&plan.source, writer, progress)
        .await
        .map_err(|e| image_error_text(&e))?;
    let disk = lun.partition_disk()?;
    let config_drive = configdrive.is_some();
    let root_uuid = blocking(move || {
        if let Some(image) = &configdrive {
            partition::create_config_drive_partition_on(&disk, image)
                .map_err(|e| format!("Failed to create config drive: {e}"))?;
        }
        Ok(partition::disk_identifier_on(&disk)
            .map_err(|e| tracing::warn!(error = %e, "cannot read the disk identifier"))
            .ok())
    })
    .await?;
    Ok(Written {
        report,
        root_uuid,
        efi_system_partition_uuid: None,
        config_drive,
    })
}

/// The partition image, its table and file systems, onto the LUN.
async fn write_partition_image(
    plan: &WritePlan,
    spec: &partition::deploy::PartitionDeploySpec,
    lun: &Lun,
    progress: &Progress,
) -> Result<Written, String> {
    let mut spec = spec.clone();
    if lun.capacity.block_size == 4096 {
        spec.sector_size = 4096;
    }
    spec.configdrive = match &plan.configdrive {
        Some(value) => Some(
            configdrive::decode(value.expose())
                .map_err(|e| format!("Failed to create config drive: {e}"))?,
        ),
        None => None,
    };
    let device = SharedDevice::new(Box::new(lun.disk()));
    let deployed = deploy_partition_image_on(&plan.source, device, &spec, progress)
        .await
        .map_err(|e| match e {
            DeployError::Image(e) => image_error_text(&e),
            other => format!(
                "Failed to deploy the partition image onto {}: {other}",
                lun.name
            ),
        })?;
    Ok(Written {
        report: deployed.image,
        root_uuid: Some(deployed.uuids.root_uuid),
        efi_system_partition_uuid: deployed.uuids.efi_system_partition_uuid,
        config_drive: spec.configdrive.is_some(),
    })
}

/// Decodes (or downloads) a config drive as IPA's `get_configdrive`.
async fn config_drive_image(value: &str) -> Result<ConfigDriveImage, String> {
    let fail = |e: &dyn std::fmt::Display| format!("Failed to create config drive: {e}");
    match configdrive::decode(value).map_err(|e| fail(&e))? {
        ConfigDriveSource::Image(image) => Ok(image),
        ConfigDriveSource::Url(url) => {
            // Room for base64 of the largest gzip allowed.
            let max = MAX_CONFIG_DRIVE_SIZE / 3 * 4 + 1024 * 1024;
            let bytes = ferric_image::fetch_bytes(&url, max)
                .await
                .map_err(|e| fail(&e))?;
            ConfigDriveImage::from_downloaded(bytes).map_err(|e| fail(&e))
        }
    }
}

/// Runs partition work on a blocking thread: [`RemoteDisk`] waits on the runtime there.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the disk work stopped unexpectedly: {e}"))?
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

/// A LUN as a [`BlockDevice`] for the pipeline's and the partition code's
/// blocking threads.
struct RemoteDisk {
    session: Arc<Session>,
    runtime: Handle,
    capacity: Capacity,
    name: String,
    /// Writes were submitted since the last flush: a read must wait for them.
    dirty: bool,
}

impl RemoteDisk {
    fn block(&self) -> u64 {
        u64::from(self.capacity.block_size)
    }

    /// Waits until every submitted write is done, so that a read sees it.
    fn settle(&mut self) -> Result<(), String> {
        if self.dirty {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let session = self.session.clone();
        self.runtime
            .block_on(async move { session.flush().await })
            .map_err(|e| format!("flushing the disk failed: {e}"))?;
        self.dirty = false;
        Ok(())
    }

    /// Reads the blocks around an unaligned write, lays the bytes over them and
    /// writes them whole.
    fn write_unaligned(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        let block = self.block();
        let first = offset / block;
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or("write past the end of the disk")?;
        let last = end.div_ceil(block);
        let span = usize::try_from((last - first) * block).map_err(|_| "write too large")?;
        let mut buf = vec![0u8; span];
        self.read_at(&mut buf, first * block)?;
        let at = (offset - first * block) as usize;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.submit(first, buf)
    }

    fn submit(&mut self, lba: u64, data: Vec<u8>) -> Result<(), String> {
        let session = self.session.clone();
        self.dirty = true;
        self.runtime
            .block_on(async move { session.submit_write(lba, data).await })
            .map_err(|e| e.to_string())
    }

    /// Reads `count` blocks at `lba`.
    fn read_blocks(&self, lba: u64, count: u64) -> Result<Vec<u8>, String> {
        let blocks = u32::try_from(count).map_err(|_| "read too large".to_owned())?;
        let session = self.session.clone();
        let data = self
            .runtime
            .block_on(async move { session.read(lba, blocks).await })
            .map_err(|e| format!("reading blocks {lba}..{} failed: {e}", lba + count))?;
        if (data.len() as u64) < count * self.block() {
            return Err(format!(
                "the target returned {} bytes for {count} blocks at {lba}",
                data.len()
            ));
        }
        Ok(data)
    }
}

impl BlockDevice for RemoteDisk {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> u64 {
        self.capacity.blocks.saturating_mul(self.block())
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.size())
            .ok_or_else(|| format!("read of {} bytes at {offset} is past the end", buf.len()))?;
        if buf.is_empty() {
            return Ok(());
        }
        self.settle()?;
        let block = self.block();
        let per_read = (READ_CHUNK / block).max(1);
        let mut lba = offset / block;
        let last = end.div_ceil(block);
        while lba < last {
            let count = (last - lba).min(per_read);
            let data = self.read_blocks(lba, count)?;
            let start = lba * block;
            let from = offset.max(start);
            let to = end.min(start + count * block);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
            lba += count;
        }
        Ok(())
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
        let block = self.block();
        if !offset.is_multiple_of(block) || !(bytes.len() as u64).is_multiple_of(block) {
            return self.write_unaligned(bytes, offset);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.submit(offset / block, bytes.to_vec())
    }

    /// Unmaps the whole disk when the target says unmapped blocks read as zeros.
    fn zero_all(&mut self) -> Result<bool, String> {
        if !(self.capacity.thin && self.capacity.reads_zeros) {
            return Ok(false);
        }
        self.settle()?;
        let session = self.session.clone();
        let blocks = self.capacity.blocks;
        self.runtime
            .block_on(async move { session.unmap(0, blocks).await })
            .map_err(|e| format!("unmapping the disk failed: {e}"))?;
        Ok(true)
    }

    fn sync(&mut self) -> Result<(), String> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    use ferric_image::partition::deploy::{
        deploy_partition_image, PartitionDeploySpec, Reproducible,
    };
    use ferric_image::partition::{DiskLabel, PartitionImageSpec, PartitionRole};
    use ferric_image::ImageSource;
    use ferric_ipa::Secret;
    use ferric_iscsi::net::target::{TargetConfig, TargetServer};
    use ferric_iscsi::scsi::{self, FileBacking, Identity, LogicalUnits};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::agent::iscsi::DeployCredentials;
    use crate::config::IscsiConfig;

    const MIB: u64 = 1024 * 1024;
    const IQN: &str = "iqn.2010-10.org.openstack:test-node";
    const USER: &str = "ferric-test";
    const SECRET: &str = "a-chap-secret-of-24-char";

    /// `disk` served as LUN 1 of [`IQN`] on 127.0.0.1, behind CHAP.
    async fn target(disk: &Path, block_size: u32) -> TargetServer {
        let backing = FileBacking::open(disk, false).unwrap();
        let lun = scsi::Disk::new(backing, Identity::new("test"), block_size, false);
        let mut luns = LogicalUnits::new();
        luns.add(DEPLOY_LUN, lun).unwrap();
        let mut config = TargetConfig::new(IQN);
        config.chap = Some(ChapCredentials::new(USER, SECRET.as_bytes()).unwrap());
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        TargetServer::bind(addr, config, luns).await.unwrap()
    }

    /// Serves `body` to every GET (headers only to a HEAD); returns its URL.
    async fn serve(body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    if request.starts_with(b"GET") {
                        let _ = conn.write_all(&body).await;
                    }
                });
            }
        });
        format!("http://{addr}/image.raw")
    }

    fn plan(portal: SocketAddr, url: String) -> WritePlan {
        WritePlan {
            portal,
            iqn: IQN.into(),
            credentials: DeployCredentials {
                user: USER.into(),
                secret: Secret::new(SECRET),
                mutual_user: None,
                mutual_secret: None,
            },
            source: ImageSource {
                urls: vec![url],
                checksum: None,
                disk_format: Some("raw".into()),
            },
            config: IscsiConfig {
                login_timeout: 10,
                command_timeout: 20,
                ..IscsiConfig::default()
            },
            partition: None,
            configdrive: None,
        }
    }

    fn sparse_file(path: &Path, size: u64) {
        std::fs::File::create(path).unwrap().set_len(size).unwrap();
    }

    fn config_drive_text() -> String {
        configdrive::build_configdrive(
            &serde_json::json!({"meta_data": {"hostname": "iscsi-1"}}),
            "node-uuid",
            Some("iscsi-1"),
            1_700_000_000,
        )
        .unwrap()
    }

    /// A 4 MiB whole-disk image: an MBR (signature 0x5eed1234) with one
    /// Linux partition from sector 2048, the rest a pattern.
    fn mbr_image() -> Vec<u8> {
        let mut image: Vec<u8> = (0..4 * MIB as usize).map(|i| (i % 249) as u8).collect();
        image[..512].fill(0);
        image[440..444].copy_from_slice(&0x5eed_1234u32.to_le_bytes());
        let entry = &mut image[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&4096u32.to_le_bytes());
        image[510] = 0x55;
        image[511] = 0xaa;
        image
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partition_image_over_iscsi_leaves_the_disk_a_local_deploy_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..3 * MIB as usize).map(|i| (i % 251) as u8 + 1).collect();
        let url = serve(image.clone()).await;
        let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
            root_mb: 16,
            swap_mb: 8,
            disk_label: Some(DiskLabel::Msdos),
            ..Default::default()
        });
        spec.reproducible = Some(Reproducible {
            seed: 5,
            timestamp: 1_700_000_000,
        });
        let remote = dir.path().join("remote.img");
        sparse_file(&remote, 96 * MIB);
        let server = target(&remote, 512).await;
        let mut plan = plan(server.local_addr(), url);
        plan.partition = Some(spec.clone());
        plan.configdrive = Some(Secret::new(config_drive_text()));
        let written = write_image(&plan, &Progress::default(), |_| {})
            .await
            .unwrap();
        server.shutdown().await.unwrap();

        let local = dir.path().join("local.img");
        sparse_file(&local, 96 * MIB);
        spec.configdrive = Some(configdrive::decode(&config_drive_text()).unwrap());
        let uuids = deploy_partition_image(&plan.source, &local, &spec, &Progress::default())
            .await
            .unwrap();
        assert_eq!(written.root_uuid.as_deref(), Some(uuids.root_uuid.as_str()));
        assert_eq!(
            uuids.root_uuid,
            format!("{:08x}-03", uuids.layout.mbr_signature)
        );
        assert!(written.config_drive);
        assert_eq!(written.report.written, image.len() as u64);
        assert!(std::fs::read(&remote).unwrap() == std::fs::read(&local).unwrap());
        let root = uuids.layout.get(PartitionRole::Root).unwrap();
        let mut got = vec![0u8; image.len()];
        std::fs::File::open(&remote)
            .unwrap()
            .read_exact_at(&mut got, root.offset)
            .unwrap();
        assert!(got == image, "the root partition holds the image");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_disk_image_over_iscsi_gets_its_config_drive_partition() {
        let dir = tempfile::tempdir().unwrap();
        let image = mbr_image();
        let url = serve(image.clone()).await;
        let remote = dir.path().join("remote.img");
        sparse_file(&remote, 200 * MIB);
        let server = target(&remote, 512).await;
        let mut plan = plan(server.local_addr(), url);
        plan.configdrive = Some(Secret::new(config_drive_text()));
        let written = write_image(&plan, &Progress::default(), |_| {})
            .await
            .unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(written.root_uuid.as_deref(), Some("0x5eed1234"));
        assert!(written.config_drive);

        let local = dir.path().join("local.img");
        sparse_file(&local, 200 * MIB);
        std::fs::File::options()
            .write(true)
            .open(&local)
            .unwrap()
            .write_all_at(&image, 0)
            .unwrap();
        let ConfigDriveSource::Image(drive) = configdrive::decode(&config_drive_text()).unwrap()
        else {
            panic!("not an image")
        };
        let placement = partition::create_config_drive_partition(&local, &drive).unwrap();
        assert_eq!(placement.partition.number, 2);
        assert!(std::fs::read(&remote).unwrap() == std::fs::read(&local).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn odd_writes_and_reads_on_4k_blocks_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.img");
        sparse_file(&remote, 8 * MIB);
        let server = target(&remote, 4096).await;
        let plan = plan(server.local_addr(), String::new());
        let session = Arc::new(connect(&plan).await.unwrap());
        let lun = Lun {
            capacity: session.read_capacity().await.unwrap(),
            session: session.clone(),
            runtime: Handle::current(),
            name: "test LUN".into(),
        };
        let mut disk = lun.disk();
        let got = tokio::task::spawn_blocking(move || {
            disk.write_at(&[7; 100], 4000).unwrap();
            disk.write_at(&[9; 3], 4098).unwrap();
            disk.write_at(&[1; 2 * 4096], 8192).unwrap();
            let mut buf = vec![0u8; 200];
            disk.read_at(&mut buf, 3990).unwrap();
            let past = disk.read_at(&mut [0u8; 2], 8 * MIB - 1).unwrap_err();
            disk.sync().unwrap();
            (buf, past)
        })
        .await
        .unwrap();
        let (buf, past) = got;
        let mut want = vec![0u8; 200];
        want[10..110].fill(7);
        want[108..111].fill(9);
        assert_eq!(buf, want);
        assert!(past.contains("past the end"), "{past}");
        drop(lun);
        log_out(session, IQN).await;
        server.shutdown().await.unwrap();
        let file = std::fs::read(&remote).unwrap();
        assert_eq!(&file[3990..4190], &want[..]);
        assert!(file[8192..16384].iter().all(|b| *b == 1));
    }
}
