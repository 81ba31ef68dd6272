//! A machine's network boot as iPXE would do it after DHCP, against the
//! machines file's `boot_url`: `GET {boot_url}/pxelinux.cfg/{mac-hyphens}`
//! (the link Ferric's `pxe`/`ipxe` boot interfaces write to a node's
//! config), run the script ([`crate::ipxe`]), download the kernel and the
//! initrds (streamed and counted, not kept), and say what was loaded: a
//! netbooted instance (`root=` on the command line), the agent's ramdisk
//! (`ipa-api-url=` without `root=`), the local disk (`sanboot`), or
//! nothing and why.
//!
//! Each step goes to `NAME.boot.log`. Connection errors are retried for
//! [`CONNECT_RETRY_FOR`] at most; an HTTP error is final. The future is
//! cancel-safe: dropping it (a power request) closes the download.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::config::MacAddress;
use crate::ipxe::{self, Plan};
use crate::machine::{BootConfig, Loaded};

/// How long connection errors (refused, unreachable, timed out) are retried.
pub const CONNECT_RETRY_FOR: Duration = Duration::from_secs(3);

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a server may keep us waiting for headers or the next bytes.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest boot config read (a script is a few hundred bytes).
const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// The firmware's HTTP client and where it boots from.
#[derive(Debug, Clone)]
pub struct Firmware {
    boot_url: String,
    http: reqwest::Client,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the network boot client: {0}")]
pub struct FirmwareError(#[from] reqwest::Error);

/// A machine's boot log, `NAME.boot.log`, appended to.
#[derive(Debug, Clone)]
pub struct BootLog {
    pub path: PathBuf,
}

impl BootLog {
    /// Appends a line; a log that cannot be written is only traced.
    pub fn line(&self, text: &str) {
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut log| writeln!(log, "{text}"));
        if let Err(e) = written {
            tracing::warn!(log = %self.path.display(), error = %e, "cannot write the boot log");
        }
    }
}

impl Firmware {
    /// The firmware of machines booting from `boot_url` (no trailing `/`).
    pub fn new(boot_url: String) -> Result<Self, FirmwareError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("ferric-lab/", env!("CARGO_PKG_VERSION"), " (iPXE)"))
            .build()?;
        Ok(Firmware { boot_url, http })
    }

    /// The boot config URL of a MAC.
    pub fn config_url(&self, mac: &MacAddress) -> String {
        format!("{}/pxelinux.cfg/{}", self.boot_url, mac.hyphenated())
    }

    /// Boots from the network: returns what was loaded (never `Loading`).
    /// `Disk` means the script asked for the local disk; whether it holds
    /// something bootable is the machine's to check.
    pub async fn network_boot(&self, mac: MacAddress, log: BootLog) -> BootConfig {
        let mut record = BootConfig::loading(self.config_url(&mac));
        if let Err(why) = self.follow_config(&mac, &mut record, &log).await {
            record.fail(why);
        }
        match &record.error {
            Some(why) => log.line(&format!("network boot failed: {why}")),
            None => log.line(&format!("network boot loaded: {}", describe(record.loaded))),
        }
        record
    }

    async fn follow_config(
        &self,
        mac: &MacAddress,
        record: &mut BootConfig,
        log: &BootLog,
    ) -> Result<(), String> {
        let config_url = parse_http_url(&record.config_url)?;
        let (_, script) = self.fetch(&config_url, Some(MAX_SCRIPT_BYTES), log).await?;
        let script = String::from_utf8_lossy(&script);
        let plan = ipxe::plan(&script, mac).map_err(|e| format!("boot config: {e}"))?;
        let (kernel, args, initrds) = match plan {
            Plan::LocalDisk => {
                log.line("the script boots the local disk (sanboot)");
                record.loaded = Loaded::Disk;
                return Ok(());
            }
            Plan::Kernel {
                kernel,
                args,
                initrds,
            } => (kernel, args, initrds),
        };
        let kernel = resolve(&config_url, &kernel)?;
        let initrds = initrds
            .iter()
            .map(|initrd| resolve(&config_url, initrd))
            .collect::<Result<Vec<_>, _>>()?;
        record.kernel = Some(kernel.to_string());
        record.initrds = initrds.iter().map(Url::to_string).collect();
        record.cmdline = Some(args.clone());
        let (kernel_bytes, _) = self.fetch(&kernel, None, log).await?;
        record.kernel_bytes = Some(kernel_bytes);
        if kernel_bytes == 0 {
            return Err(format!("{kernel}: an empty kernel"));
        }
        let mut initrd_bytes = 0u64;
        for initrd in &initrds {
            let (bytes, _) = self.fetch(initrd, None, log).await?;
            initrd_bytes = initrd_bytes.saturating_add(bytes);
        }
        record.initrd_bytes = Some(initrd_bytes);
        record.loaded = kernel_kind(&args).ok_or_else(|| {
            "the kernel's command line has neither ipa-api-url= (the agent) nor root= (an instance)"
                .to_string()
        })?;
        Ok(())
    }

    /// GETs a URL and reads its body, counting the bytes and keeping at
    /// most `keep` of them (none: nothing is kept).
    async fn fetch(
        &self,
        url: &Url,
        keep: Option<usize>,
        log: &BootLog,
    ) -> Result<(u64, Vec<u8>), String> {
        let started = Instant::now();
        let mut response = self.get(url).await?;
        let mut count = 0u64;
        let mut kept = Vec::new();
        loop {
            let chunk = tokio::time::timeout(STALL_TIMEOUT, response.chunk())
                .await
                .map_err(|_| format!("GET {url}: no data for {} s", STALL_TIMEOUT.as_secs()))?
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let Some(chunk) = chunk else { break };
            count = count.saturating_add(chunk.len() as u64);
            if let Some(limit) = keep {
                if kept.len() + chunk.len() > limit {
                    return Err(format!("GET {url}: longer than {limit} bytes"));
                }
                kept.extend_from_slice(&chunk);
            }
        }
        log.line(&format!(
            "GET {url}: {count} bytes in {} ms",
            started.elapsed().as_millis()
        ));
        Ok((count, kept))
    }

    /// Sends a GET, retrying connection errors for [`CONNECT_RETRY_FOR`];
    /// anything but a 2xx answer is an error.
    async fn get(&self, url: &Url) -> Result<reqwest::Response, String> {
        let deadline = Instant::now() + CONNECT_RETRY_FOR;
        let mut pause = Duration::from_millis(200);
        loop {
            let sent = tokio::time::timeout(STALL_TIMEOUT, self.http.get(url.clone()).send()).await;
            let error = match sent {
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => return Err(format!("GET {url}: {}", response.status())),
                Err(_) => {
                    return Err(format!(
                        "GET {url}: no answer in {} s",
                        STALL_TIMEOUT.as_secs()
                    ))
                }
                Ok(Err(e)) if !e.is_connect() => {
                    return Err(format!("GET {url}: {}", error_chain(&e)))
                }
                Ok(Err(e)) => e,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "GET {url}: {} (retried for {} s)",
                    error_chain(&error),
                    CONNECT_RETRY_FOR.as_secs()
                ));
            }
            tracing::debug!(%url, error = %error_chain(&error), "cannot connect: retrying");
            tokio::time::sleep(pause.min(left)).await;
            pause = pause.saturating_mul(2);
        }
    }
}

/// What a kernel's command line boots: an instance (`root=`), else the
/// agent's ramdisk (`ipa-api-url=`). `root=` comes first because Ferric,
/// as Ironic, gives an instance's netboot kernel the agent's parameters too.
pub fn kernel_kind(cmdline: &str) -> Option<Loaded> {
    let has = |prefix: &str| cmdline.split_whitespace().any(|w| w.starts_with(prefix));
    if has("root=") {
        Some(Loaded::Instance)
    } else if has("ipa-api-url=") {
        Some(Loaded::Agent)
    } else {
        None
    }
}

fn describe(loaded: Loaded) -> &'static str {
    match loaded {
        Loaded::Agent => "the agent's ramdisk",
        Loaded::Instance => "a netbooted instance",
        Loaded::Disk => "the local disk",
        Loaded::Loading | Loaded::Failed => "nothing",
    }
}

fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?}: not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("{text}: only http:// is simulated"));
    }
    Ok(url)
}

/// A URL of the script, relative to the script's own (as iPXE resolves it).
fn resolve(base: &Url, reference: &str) -> Result<Url, String> {
    let url = base
        .join(reference)
        .map_err(|e| format!("{reference:?}: not a URL: {e}"))?;
    parse_http_url(url.as_str())
}

/// An error with its causes, which say what actually went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_says_what_was_booted() {
        assert_eq!(
            kernel_kind("text ipa-api-url=http://10.0.0.1:6385 BOOTIF=52:54:00:12:34:56"),
            Some(Loaded::Agent)
        );
        assert_eq!(
            kernel_kind("root=UUID=1be8-4a ro text"),
            Some(Loaded::Instance)
        );
        assert_eq!(
            kernel_kind("root=UUID=1be8-4a ro text nofb ipa-api-url=http://10.0.0.1:6385"),
            Some(Loaded::Instance),
            "Ferric's netboot config carries the agent's parameters too"
        );
        assert_eq!(kernel_kind("console=ttyS0 myroot=x rootfstype=ext4"), None);
    }

    #[test]
    fn urls_resolve_against_the_script() {
        let base = Url::parse("http://h:8080/pxelinux.cfg/52-54-00-12-34-56").unwrap();
        assert_eq!(
            resolve(&base, "../n1/kernel").unwrap().as_str(),
            "http://h:8080/n1/kernel"
        );
        assert_eq!(
            resolve(&base, "http://other/k").unwrap().as_str(),
            "http://other/k"
        );
        let e = resolve(&base, "tftp://h/k").unwrap_err();
        assert!(e.contains("only http://"), "{e}");
    }

    #[test]
    fn the_config_url_uses_the_hyphenated_mac() {
        let firmware = Firmware::new("http://127.0.0.1:8080/root".into()).unwrap();
        let mac = MacAddress::parse("52:54:00:AB:CD:EF").unwrap();
        assert_eq!(
            firmware.config_url(&mac),
            "http://127.0.0.1:8080/root/pxelinux.cfg/52-54-00-ab-cd-ef"
        );
    }
}
