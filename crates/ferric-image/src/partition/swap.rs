//! Linux swap signatures, as `mkswap` writes them: the first page cleared,
//! a version 1 header at byte 1024 (last page, no bad pages, UUID, label)
//! and `SWAPSPACE2` in the last ten bytes of the first page.

use uuid::Uuid;

use super::disk::Disk;
use super::PartitionError;

/// mkswap refuses areas smaller than this many pages.
const MIN_PAGES: u64 = 10;
const LABEL_BYTES: usize = 16;

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapOptions {
    /// Memory page size of the machine that will use the swap area.
    pub page_size: u64,
    pub uuid: Uuid,
    /// At most 16 bytes (IPA uses `swap1`).
    pub label: String,
}

impl SwapOptions {
    /// Options with a random UUID, 4 KiB pages and `label`.
    pub fn new(label: &str) -> Self {
        SwapOptions {
            page_size: 4096,
            uuid: Uuid::new_v4(),
            label: label.to_string(),
        }
    }
}

/// The first page of a swap area of `length` bytes.
pub fn header_page(length: u64, options: &SwapOptions) -> Result<Vec<u8>, PartitionError> {
    let page = options.page_size;
    if !page.is_power_of_two() || !(4096..=65536).contains(&page) {
        return Err(PartitionError::InvalidSpec(format!(
            "swap page size {page} is not a power of two between 4096 and 65536"
        )));
    }
    if options.label.len() > LABEL_BYTES {
        return Err(PartitionError::InvalidSpec(format!(
            "swap label {:?} is longer than {LABEL_BYTES} bytes",
            options.label
        )));
    }
    let pages = length / page;
    if pages < MIN_PAGES {
        return Err(PartitionError::InvalidSpec(format!(
            "a swap area of {length} bytes is smaller than {MIN_PAGES} pages"
        )));
    }
    let last_page = u32::try_from(pages - 1).map_err(|_| {
        PartitionError::InvalidSpec(format!("a swap area of {length} bytes is too large"))
    })?;
    let mut out = vec![0u8; page as usize];
    out[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    out[1028..1032].copy_from_slice(&last_page.to_le_bytes());
    out[1036..1052].copy_from_slice(options.uuid.as_bytes());
    out[1052..1052 + options.label.len()].copy_from_slice(options.label.as_bytes());
    let magic = page as usize - 10;
    out[magic..].copy_from_slice(b"SWAPSPACE2");
    Ok(out)
}

/// Writes a swap signature over the area at `offset` (`length` bytes).
pub fn write_swap(
    disk: &Disk,
    offset: u64,
    length: u64,
    options: &SwapOptions,
) -> Result<(), PartitionError> {
    let page = header_page(length, options)?;
    disk.write_at(offset, &page)?;
    disk.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_mkswap_fields() {
        let options = SwapOptions {
            page_size: 4096,
            uuid: Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            label: "swap1".to_string(),
        };
        let page = header_page(64 * 1024 * 1024, &options).unwrap();
        assert_eq!(&page[4086..], b"SWAPSPACE2");
        assert_eq!(
            u32::from_le_bytes(page[1028..1032].try_into().unwrap()),
            16383
        );
        assert_eq!(&page[1036..1040], &[1, 2, 3, 4]);
        assert_eq!(&page[1052..1057], b"swap1");
        let info = super::super::probe::probe(&page).unwrap();
        assert_eq!(info.fs_type, "swap");
        assert_eq!(info.label.as_deref(), Some("swap1"));
        assert_eq!(
            info.uuid.as_deref(),
            Some("01020304-0506-0708-090a-0b0c0d0e0f10")
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let ok = SwapOptions::new("swap1");
        assert!(header_page(4096 * 9, &ok).is_err());
        let long = SwapOptions::new("a-label-that-is-too-long");
        assert!(header_page(1 << 30, &long).is_err());
        let odd = SwapOptions {
            page_size: 5000,
            ..ok.clone()
        };
        assert!(header_page(1 << 30, &odd).is_err());
        assert!(header_page(u64::MAX, &ok).is_err());
    }
}
