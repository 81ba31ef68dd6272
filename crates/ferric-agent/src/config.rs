//! The agent's configuration: IPA's kernel command line parameters
//! (`/proc/cmdline`, names from IPA's `config.py`) overlaid by flags.
//! Flags win over the command line; the command line wins over defaults.
//!
//! The flag set is a stable interface for scripts outside the repository.
//!
//! | kernel parameter | flag | meaning |
//! |---|---|---|
//! | `ipa-api-url` | `--api-url` | Ironic API URL(s), comma-separated |
//! | `ipa-insecure` | `--insecure` | do not verify Ironic's certificate |
//! | `ipa-global-request-id` | `--global-request-id` | `X-OpenStack-Request-ID` |
//! | `ipa-lookup-timeout` (600) | `--lookup-timeout` | seconds of lookup retries, then exit 1 |
//! | `ipa-lookup-interval` (1) | `--lookup-interval` | first retry delay, doubling up to 60 s |
//! | `ipa-listen-host`/`ipa-listen-port` (`::`, 9999) | `--listen ADDR:PORT` | command API address; port 0 works |
//! | `ipa-advertise-host`/`ipa-advertise-port` | `--advertise-host`/`--advertise-port` | callback URL host/port |
//! | `ipa-ironic-api-version` | `--ironic-api-version` | skip version discovery |
//! | `ipa-agent-token` | | pre-shared token |
//! | `ipa-enable-auto-tls=0` | `--no-tls` | never serve TLS |
//! | `ipa-debug` | `--debug` | debug logging |
//! | `BOOTIF` | | PXE MAC, reported as `boot.pxe_interface` |
//! | | `--disk PATH` | file(s) standing in for the disks |
//! | | `--mac MAC` | MAC(s) to look up with |
//! | | `--proc-root`/`--sys-root`/`--dev-root` | fake trees |
//! | `ipa-min-heartbeat-interval` (Ferric only) | `--min-heartbeat-interval` (5) | minimum seconds between heartbeats |
//! | | `--power-off-mode auto\|exit\|system` | what `power_off`/`run_image` do; `exit` ends with code 0 for power off, 10 for reboot |
//! | | `--allow-block-devices` | let disk commands write real devices |
//! | | `--print-inventory` | print the inventory JSON and exit |
//!
//! `ferric-agent iscsi-target --disk FILE --listen ADDR:PORT --iqn IQN
//! [--lun N] [--chap-user U --chap-secret-file F] [--read-only]` exports a
//! file or block device as an iSCSI target on its own, until SIGINT or
//! SIGTERM (see [`IscsiTargetFlags`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use ferric_ipa::MacAddress;

/// IPA's default command API port.
pub const DEFAULT_PORT: u16 = 9999;

/// Command-line flags.
#[derive(Debug, Clone, Parser, Default)]
#[command(
    name = "ferric-agent",
    version,
    about = "Ferric's deploy ramdisk agent (ironic-python-agent protocol)"
)]
pub struct Flags {
    /// Ironic API URL(s), comma-separated (kernel: ipa-api-url).
    #[arg(long)]
    pub api_url: Option<String>,
    /// A file that stands in for the machine's disks (size = its length);
    /// repeat for several disks.
    #[arg(long = "disk")]
    pub disks: Vec<PathBuf>,
    /// MAC address to look up with, instead of the interfaces' (repeatable).
    #[arg(long = "mac")]
    pub macs: Vec<String>,
    /// Address and port of the command API (kernel: ipa-listen-host,
    /// ipa-listen-port); port 0 picks a free port, which is advertised.
    #[arg(long)]
    pub listen: Option<String>,
    /// Host advertised in the callback URL (kernel: ipa-advertise-host).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Port advertised in the callback URL (kernel: ipa-advertise-port).
    #[arg(long)]
    pub advertise_port: Option<u16>,
    /// Where /proc is (for tests: a fake tree).
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Where /sys is.
    #[arg(long, default_value = "/sys")]
    pub sys_root: PathBuf,
    /// Where /dev is.
    #[arg(long, default_value = "/dev")]
    pub dev_root: PathBuf,
    /// The kernel command line file (default: PROC_ROOT/cmdline).
    #[arg(long)]
    pub cmdline: Option<PathBuf>,
    /// Seconds to keep retrying lookup (kernel: ipa-lookup-timeout).
    #[arg(long)]
    pub lookup_timeout: Option<f64>,
    /// First retry interval of lookup, doubled up to 60 s (kernel: ipa-lookup-interval).
    #[arg(long)]
    pub lookup_interval: Option<f64>,
    /// Minimum seconds between heartbeats, and the base of the error
    /// back-off (IPA: 5).
    #[arg(long)]
    pub min_heartbeat_interval: Option<f64>,
    /// Do not verify the Ironic API's TLS certificate (kernel: ipa-insecure).
    #[arg(long)]
    pub insecure: bool,
    /// X-OpenStack-Request-ID for Ironic calls (kernel: ipa-global-request-id).
    #[arg(long)]
    pub global_request_id: Option<String>,
    /// Force the Ironic API version instead of discovering it (kernel: ipa-ironic-api-version).
    #[arg(long)]
    pub ironic_api_version: Option<String>,
    /// Never serve the command API over TLS, even when Ironic supports it.
    #[arg(long)]
    pub no_tls: bool,
    /// What standby.power_off / run_image do: `exit` ends the process
    /// (exit code 0 for power off, 10 for reboot), `system` powers off or
    /// reboots the machine; `auto` exits when --disk or a fake /proc is given.
    #[arg(long, default_value = "auto")]
    pub power_off_mode: String,
    /// Where to post the inventory before lookup (kernel:
    /// ipa-inspection-callback-url); default: API_URL/v1/continue_inspection
    #[arg(long)]
    pub inspection_callback_url: Option<String>,
    /// Let disk commands write real block devices found under --dev-root
    /// (without it only --disk files are ever written).
    #[arg(long)]
    pub allow_block_devices: bool,
    /// Print the inventory as JSON and exit.
    #[arg(long)]
    pub print_inventory: bool,
    /// Log at debug level (kernel: ipa-debug).
    #[arg(long)]
    pub debug: bool,
    /// A tool instead of the agent.
    #[command(subcommand)]
    pub tool: Option<Tool>,
}

/// The agent binary's tools.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Export a file or block device as an iSCSI target until interrupted.
    IscsiTarget(IscsiTargetFlags),
}

/// `ferric-agent iscsi-target`: a stable interface for scripts.
#[derive(Debug, Clone, clap::Args)]
pub struct IscsiTargetFlags {
    /// The file or block device to export.
    #[arg(long)]
    pub disk: PathBuf,
    /// Address and port of the portal.
    #[arg(long, default_value = "0.0.0.0:3260")]
    pub listen: SocketAddr,
    /// The target's name.
    #[arg(long)]
    pub iqn: String,
    /// The LUN the disk is exported as (Ironic's: 1).
    #[arg(long, default_value_t = 1)]
    pub lun: u64,
    /// Require CHAP from initiators: the user name...
    #[arg(long, requires = "chap_secret_file")]
    pub chap_user: Option<String>,
    /// ...and a file holding the secret (kept off the command line).
    #[arg(long, requires = "chap_user")]
    pub chap_secret_file: Option<PathBuf>,
    /// Refuse writes.
    #[arg(long)]
    pub read_only: bool,
    /// Logical block size in bytes (512 or 4096).
    #[arg(long, default_value_t = 512)]
    pub block_size: u32,
}

/// What standby.power_off does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOffMode {
    /// End the process (a disk file stands in for the machine).
    Exit,
    /// Power the machine off (or reboot it).
    System,
}

/// The merged configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ironic API base URLs, trailing `/` removed; empty means standalone.
    pub api_urls: Vec<String>,
    /// Disk files given with --disk.
    pub disk_files: Vec<PathBuf>,
    /// MACs forced by --mac.
    pub macs: Vec<MacAddress>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Advertised host (None: the route source towards the API).
    pub advertise_host: Option<String>,
    /// Advertised port (None: the port actually bound).
    pub advertise_port: Option<u16>,
    /// Fake-able roots.
    pub proc_root: PathBuf,
    /// /sys.
    pub sys_root: PathBuf,
    /// /dev.
    pub dev_root: PathBuf,
    /// Lookup deadline.
    pub lookup_timeout: Duration,
    /// First lookup retry delay.
    pub lookup_interval: Duration,
    /// Minimum heartbeat spacing.
    pub min_heartbeat_interval: Duration,
    /// Skip TLS verification towards Ironic.
    pub insecure: bool,
    /// X-OpenStack-Request-ID.
    pub global_request_id: Option<String>,
    /// Forced API version.
    pub ironic_api_version: Option<ferric_ipa::ApiVersion>,
    /// Pre-shared token (ipa-agent-token).
    pub agent_token: Option<String>,
    /// Serve TLS when Ironic supports it.
    pub auto_tls: bool,
    /// The `BOOTIF` value, as given.
    pub bootif: Option<String>,
    /// What power_off does.
    pub power_off_mode: PowerOffMode,
    /// Real block devices may be written.
    pub allow_block_devices: bool,
    /// Debug logging.
    pub debug: bool,
    /// Where the inventory is posted before lookup (IPA's
    /// `ipa-inspection-callback-url`); `None`: the first API URL's
    /// `/v1/continue_inspection`.
    pub inspection_callback_url: Option<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A bad value.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The flag or kernel parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// The command line file could not be read.
    #[error("cannot read kernel command line {path}: {source}")]
    Cmdline {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Kernel parameters as IPA reads them: whitespace-separated `key=value`
/// words; words without `=` are ignored; a later word wins.
pub fn parse_cmdline(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn bool(&self, key: &str) -> bool {
        self.get(key)
            .and_then(ferric_ipa::hints::parse_bool)
            .unwrap_or(false)
    }

    fn seconds(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| invalid(key, format!("{v:?} is not a number")))
            })
            .transpose()
    }
}

fn duration(name: &str, seconds: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| invalid(name, format!("{seconds} is not a duration")))
}

impl Config {
    /// Merges flags over the kernel command line (read from `--cmdline` or
    /// `PROC_ROOT/cmdline`; a missing file counts as empty).
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let path = flags
            .cmdline
            .clone()
            .unwrap_or_else(|| flags.proc_root.join("cmdline"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Cmdline { path, source }),
        };
        Self::from_parts(flags, &text)
    }

    /// Merges flags over the given kernel command line text.
    pub fn from_parts(flags: &Flags, cmdline: &str) -> Result<Self, ConfigError> {
        let params = Params(parse_cmdline(cmdline));
        let api_url = flags
            .api_url
            .clone()
            .or_else(|| params.get("ipa-api-url").map(str::to_owned));
        let api_urls = parse_api_urls(api_url.as_deref())?;
        let listen = listen_address(flags, &params)?;
        let seconds =
            |flag: Option<f64>, key: &str, default: f64| -> Result<Duration, ConfigError> {
                let value = match flag {
                    Some(v) => v,
                    None => params.seconds(key)?.unwrap_or(default),
                };
                duration(key, value)
            };
        let macs = flags
            .macs
            .iter()
            .map(|m| {
                m.parse()
                    .map_err(|e: ferric_ipa::mac::MacError| invalid("--mac", e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let advertise_port = match flags.advertise_port {
            Some(p) => Some(p),
            None => params
                .get("ipa-advertise-port")
                .map(|p| parse_port("ipa-advertise-port", p))
                .transpose()?,
        };
        let version = flags
            .ironic_api_version
            .clone()
            .or_else(|| params.get("ipa-ironic-api-version").map(str::to_owned));
        let ironic_api_version = version
            .map(|v| {
                v.parse().map_err(|e: ferric_ipa::version::VersionError| {
                    invalid("ironic API version", e.to_string())
                })
            })
            .transpose()?;
        let fake_proc = flags.proc_root != Path::new("/proc");
        let power_off_mode = match flags.power_off_mode.as_str() {
            "exit" => PowerOffMode::Exit,
            "system" => PowerOffMode::System,
            "auto" | "" if !flags.disks.is_empty() || fake_proc => PowerOffMode::Exit,
            "auto" | "" => PowerOffMode::System,
            other => {
                return Err(invalid(
                    "--power-off-mode",
                    format!("{other:?}: expected auto, exit or system"),
                ))
            }
        };
        Ok(Self {
            api_urls,
            disk_files: flags.disks.clone(),
            macs,
            listen,
            advertise_host: flags
                .advertise_host
                .clone()
                .or_else(|| params.get("ipa-advertise-host").map(str::to_owned)),
            advertise_port,
            proc_root: flags.proc_root.clone(),
            sys_root: flags.sys_root.clone(),
            dev_root: flags.dev_root.clone(),
            lookup_timeout: seconds(flags.lookup_timeout, "ipa-lookup-timeout", 600.0)?,
            lookup_interval: seconds(flags.lookup_interval, "ipa-lookup-interval", 1.0)?,
            min_heartbeat_interval: seconds(
                flags.min_heartbeat_interval,
                "ipa-min-heartbeat-interval",
                5.0,
            )?,
            insecure: flags.insecure || params.bool("ipa-insecure"),
            global_request_id: flags
                .global_request_id
                .clone()
                .or_else(|| params.get("ipa-global-request-id").map(str::to_owned)),
            ironic_api_version,
            agent_token: params.get("ipa-agent-token").map(str::to_owned),
            auto_tls: !flags.no_tls
                && params
                    .get("ipa-enable-auto-tls")
                    .is_none_or(|v| ferric_ipa::hints::parse_bool(v) != Some(false)),
            bootif: params.get("BOOTIF").map(str::to_owned),
            power_off_mode,
            allow_block_devices: flags.allow_block_devices,
            debug: flags.debug || params.bool("ipa-debug"),
            inspection_callback_url: flags
                .inspection_callback_url
                .clone()
                .or_else(|| params.get("ipa-inspection-callback-url").map(str::to_owned))
                .filter(|u| !u.is_empty()),
        })
    }
}

fn parse_api_urls(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if value == "mdns" {
        return Err(invalid(
            "ipa-api-url",
            "mDNS discovery is not supported by ferric-agent; give the URL",
        ));
    }
    value
        .split(',')
        .filter(|u| !u.is_empty())
        .map(|u| {
            if u.starts_with("http://") || u.starts_with("https://") {
                Ok(u.trim_end_matches('/').to_owned())
            } else {
                Err(invalid(
                    "ipa-api-url",
                    format!("{u:?} must start with http:// or https://"),
                ))
            }
        })
        .collect()
}

fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a port")))
}

fn listen_address(flags: &Flags, params: &Params) -> Result<SocketAddr, ConfigError> {
    if let Some(listen) = &flags.listen {
        return listen
            .parse()
            .map_err(|_| invalid("--listen", format!("{listen:?} is not ADDR:PORT")));
    }
    let host = params.get("ipa-listen-host").unwrap_or("::");
    let port = params
        .get("ipa-listen-port")
        .map(|p| parse_port("ipa-listen-port", p))
        .transpose()?
        .unwrap_or(DEFAULT_PORT);
    let ip = host
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| invalid("ipa-listen-host", format!("{host:?} is not an IP address")))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("ferric-agent").chain(args.iter().copied())).unwrap()
    }

    const CMDLINE: &str =
        "BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://10.0.0.1:6385/ ipa-insecure=1 \
        BOOTIF=01-52-54-00-12-34-56 ipa-global-request-id=req-abc ipa-lookup-timeout=30 \
        ipa-advertise-host=10.0.0.9 ipa-listen-port=9998 ipa-debug=true";

    #[test]
    fn reads_ipa_kernel_parameters() {
        let c = Config::from_parts(&flags(&[]), CMDLINE).unwrap();
        assert_eq!(c.api_urls, ["http://10.0.0.1:6385"]);
        assert!(c.insecure);
        assert_eq!(c.bootif.as_deref(), Some("01-52-54-00-12-34-56"));
        assert_eq!(c.global_request_id.as_deref(), Some("req-abc"));
        assert_eq!(c.lookup_timeout, Duration::from_secs(30));
        assert_eq!(c.advertise_host.as_deref(), Some("10.0.0.9"));
        assert_eq!(c.listen, "[::]:9998".parse().unwrap());
        assert!(c.debug);
        assert_eq!(c.power_off_mode, PowerOffMode::System);
        assert!(c.auto_tls);
    }

    #[test]
    fn flags_win() {
        let f = flags(&[
            "--api-url",
            "http://127.0.0.1:1/",
            "--listen",
            "127.0.0.1:0",
            "--advertise-host",
            "127.0.0.1",
            "--lookup-timeout",
            "2.5",
            "--disk",
            "/tmp/disk.img",
            "--mac",
            "52:54:00:AA:BB:CC",
            "--no-tls",
        ]);
        let c = Config::from_parts(&f, CMDLINE).unwrap();
        assert_eq!(c.api_urls, ["http://127.0.0.1:1"]);
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.advertise_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.lookup_timeout, Duration::from_millis(2500));
        assert_eq!(c.macs[0].to_string(), "52:54:00:aa:bb:cc");
        assert_eq!(c.power_off_mode, PowerOffMode::Exit);
        assert!(!c.auto_tls);
    }

    #[test]
    fn several_api_urls_and_defaults() {
        let c =
            Config::from_parts(&flags(&[]), "ipa-api-url=http://a:6385,https://b:6385/").unwrap();
        assert_eq!(c.api_urls, ["http://a:6385", "https://b:6385"]);
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.lookup_interval, Duration::from_secs(1));
        assert_eq!(c.min_heartbeat_interval, Duration::from_secs(5));
        let none = Config::from_parts(&flags(&[]), "").unwrap();
        assert!(none.api_urls.is_empty());
    }

    #[test]
    fn rejects_bad_values() {
        for cmdline in [
            "ipa-api-url=ftp://x",
            "ipa-api-url=mdns",
            "ipa-lookup-timeout=soon",
            "ipa-listen-port=99999",
            "ipa-listen-host=nothost",
        ] {
            assert!(
                Config::from_parts(&flags(&[]), cmdline).is_err(),
                "{cmdline}"
            );
        }
        assert!(Config::from_parts(&flags(&["--mac", "nope"]), "").is_err());
        assert!(Config::from_parts(&flags(&["--lookup-timeout=-1"]), "").is_err());
        assert!(Config::from_parts(&flags(&["--power-off-mode", "maybe"]), "").is_err());
    }

    #[test]
    fn cmdline_words_without_equals_are_ignored() {
        let p = parse_cmdline("ro quiet a=1 b==2 a=3");
        assert_eq!(
            p,
            [
                ("a".into(), "1".into()),
                ("b".into(), "=2".into()),
                ("a".into(), "3".into())
            ]
        );
    }
}
