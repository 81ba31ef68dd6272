//! `image.install_bootloader`, done only where it can be done truthfully,
//! as IPA does without efibootmgr in its ramdisk: a whole-disk image carries
//! its own boot code, so there is nothing to install (in UEFI mode no NVRAM
//! boot entry is written: the firmware boots the disk by its removable-media
//! path, `EFI/BOOT/BOOTX64.EFI`; said so in the result). grub for partition
//! images is not built: refused with a clear error unless Ironic asked to
//! ignore bootloader failures.

use ferric_ipa::commands::InstallBootloaderParams;
use ferric_ipa::{ErrorKind, RestError};

use crate::agent::Agent;

/// Returns the text of the command's result.
pub fn install(agent: &Agent, params: &InstallBootloaderParams) -> Result<String, RestError> {
    let (written, partition_image) = agent
        .standby
        .lock()
        .map(|s| (s.device.clone(), s.partition_image))
        .unwrap_or((None, false));
    let Some(device) = written else {
        return Err(RestError::new(
            ErrorKind::CommandExecution,
            "no image has been written yet: run prepare_image first",
        ));
    };
    let uefi = params.target_boot_mode == "uefi" || params.efi_system_part_uuid.is_some();
    let refusal = partition_image
        .then_some("installing grub for partition images is not supported by ferric-agent");
    match refusal {
        None if uefi => {
            tracing::warn!(%device, "no UEFI boot entry written (ferric-agent does not manage NVRAM, as IPA without efibootmgr): the firmware must boot the disk by its removable-media path");
            Ok(format!(
                "nothing to install: the whole-disk image on {device} carries its own boot code; no UEFI boot entry was written, the firmware boots the disk by its removable-media path (EFI/BOOT/BOOTX64.EFI)"
            ))
        }
        None => Ok(format!(
            "nothing to install: the whole-disk image on {device} boots in BIOS mode with its own boot code"
        )),
        Some(reason) if params.ignore_bootloader_failure == Some(true) => {
            tracing::warn!(reason, "bootloader not installed; ignoring as Ironic asked");
            Ok(format!("bootloader NOT installed on {device} ({reason}); failure ignored as requested"))
        }
        Some(reason) => Err(RestError::new(ErrorKind::CommandExecution, format!("cannot install a bootloader on {device}: {reason}"))),
    }
}
