//! MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-5 6.13-6.16, SBC-4 6.5): the
//! caching page (WCE changeable), the control page (D_SENSE and SWP changeable)
//! and the informational exceptions control page; no saved pages, no subpages.

use super::cdb::Cdb;
use super::sense::Sense;

/// The changeable mode parameters of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModeState {
    /// Caching page WCE: writes may sit in the volatile cache until a flush.
    pub(crate) write_cache: bool,
    /// Control page D_SENSE: sense data in descriptor format.
    pub(crate) d_sense: bool,
    /// Control page SWP: software write protect.
    pub(crate) swp: bool,
}

impl Default for ModeState {
    fn default() -> Self {
        ModeState {
            write_cache: true,
            d_sense: false,
            swp: false,
        }
    }
}

/// What the mode parameter header and block descriptor describe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) blocks: u64,
    pub(crate) block_size: u32,
    pub(crate) write_protected: bool,
}

const CACHING: u8 = 0x08;
const CONTROL: u8 = 0x0A;
const INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
const ALL_PAGES: u8 = 0x3F;
/// The pages, in the ascending order "all pages" returns them.
const PAGES: [u8; 3] = [CACHING, CONTROL, INFORMATIONAL_EXCEPTIONS];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageControl {
    Current,
    Changeable,
    Default,
}

/// Device-specific parameter (SBC-4 6.5.1): WP, and DPOFUA since DPO and FUA work.
fn device_specific(write_protected: bool) -> u8 {
    let wp = if write_protected { 0x80 } else { 0 };
    wp | 0x10
}

fn page(code: u8, control: PageControl, state: &ModeState) -> Option<Vec<u8>> {
    let state = match control {
        PageControl::Current => *state,
        PageControl::Default => ModeState::default(),
        PageControl::Changeable => {
            return changeable_page(code);
        }
    };
    match code {
        CACHING => {
            let mut page = vec![0u8; 20];
            page[0] = CACHING;
            page[1] = 0x12;
            if state.write_cache {
                page[2] |= 0x04;
            }
            Some(page)
        }
        CONTROL => {
            let mut page = vec![0u8; 12];
            page[0] = CONTROL;
            page[1] = 0x0A;
            page[2] = 0x02; // GLTSD: no log parameters are saved
            if state.d_sense {
                page[2] |= 0x04;
            }
            if state.swp {
                page[4] |= 0x08;
            }
            page[8..10].copy_from_slice(&[0xFF, 0xFF]); // busy timeout: unlimited
            Some(page)
        }
        INFORMATIONAL_EXCEPTIONS => {
            let mut page = vec![0u8; 12];
            page[0] = INFORMATIONAL_EXCEPTIONS;
            page[1] = 0x0A;
            page[2] = 0x08; // DEXCPT: no informational exceptions are reported
            Some(page)
        }
        _ => None,
    }
}

fn changeable_page(code: u8) -> Option<Vec<u8>> {
    let mut mask = page(code, PageControl::Default, &ModeState::default())?;
    mask[2..].fill(0);
    match code {
        CACHING => mask[2] = 0x04,
        CONTROL => {
            mask[2] = 0x04;
            mask[4] = 0x08;
        }
        _ => {}
    }
    Some(mask)
}

/// MODE SENSE(6) (`ten` false) or MODE SENSE(10) parameter data, cut to the CDB's
/// allocation length.
pub(crate) fn mode_sense(
    cdb: Cdb<'_>,
    ten: bool,
    state: &ModeState,
    geometry: &Geometry,
) -> Result<Vec<u8>, Sense> {
    let control = match cdb.byte(2) >> 6 {
        0 => PageControl::Current,
        1 => PageControl::Changeable,
        2 => PageControl::Default,
        _ => return Err(Sense::saving_parameters_not_supported()),
    };
    let codes = requested_pages(cdb.byte(2) & 0x3F, cdb.byte(3))?;
    let long_lba = ten && cdb.bit(1, 0x10);
    let descriptor = if cdb.bit(1, 0x08) {
        Vec::new()
    } else {
        block_descriptor(geometry, long_lba)
    };
    let mut data = header(ten, geometry, long_lba, descriptor.len());
    data.extend_from_slice(&descriptor);
    for code in codes {
        data.extend(page(*code, control, state).unwrap_or_default());
    }
    set_mode_data_length(&mut data, ten);
    let allocation = if ten {
        usize::from(cdb.be16(7))
    } else {
        usize::from(cdb.byte(4))
    };
    data.truncate(allocation);
    Ok(data)
}

fn requested_pages(code: u8, subpage: u8) -> Result<&'static [u8], Sense> {
    if subpage != 0x00 && subpage != 0xFF {
        return Err(Sense::invalid_field_in_cdb(3, None));
    }
    if code == ALL_PAGES {
        return Ok(&PAGES);
    }
    PAGES
        .iter()
        .position(|&p| p == code)
        .map(|at| &PAGES[at..=at])
        .ok_or_else(|| Sense::invalid_field_in_cdb(2, Some(5)))
}

fn header(ten: bool, geometry: &Geometry, long_lba: bool, descriptor_len: usize) -> Vec<u8> {
    let specific = device_specific(geometry.write_protected);
    if ten {
        let [hi, lo] = (descriptor_len as u16).to_be_bytes();
        vec![0, 0, 0, specific, u8::from(long_lba), 0, hi, lo]
    } else {
        vec![0, 0, specific, descriptor_len as u8]
    }
}

fn block_descriptor(geometry: &Geometry, long_lba: bool) -> Vec<u8> {
    let length = geometry.block_size.to_be_bytes();
    if long_lba {
        let mut d = geometry.blocks.to_be_bytes().to_vec();
        d.extend_from_slice(&[0, 0, 0, 0]);
        d.extend_from_slice(&length);
        d
    } else {
        let blocks = u32::try_from(geometry.blocks).unwrap_or(u32::MAX);
        let mut d = blocks.to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&length[1..]);
        d
    }
}

fn set_mode_data_length(data: &mut [u8], ten: bool) {
    if ten {
        let len = u16::try_from(data.len() - 2).unwrap_or(u16::MAX);
        data[..2].copy_from_slice(&len.to_be_bytes());
    } else {
        data[0] = u8::try_from(data.len() - 1).unwrap_or(u8::MAX);
    }
}

/// Apply a MODE SELECT(6) (`ten` false) or MODE SELECT(10) parameter list: every page
/// is checked (only changeable bits may differ from the current values) before any
/// change takes effect.
pub(crate) fn mode_select(
    cdb: Cdb<'_>,
    ten: bool,
    data_out: &[u8],
    state: &mut ModeState,
    geometry: &Geometry,
) -> Result<(), Sense> {
    if cdb.bit(1, 0x01) {
        return Err(Sense::invalid_field_in_cdb(1, Some(0))); // SP: nothing is saved
    }
    if !cdb.bit(1, 0x10) {
        return Err(Sense::invalid_field_in_cdb(1, Some(4))); // PF=0: vendor format
    }
    let length = if ten {
        usize::from(cdb.be16(7))
    } else {
        usize::from(cdb.byte(4))
    };
    if length == 0 {
        return Ok(());
    }
    let list = &data_out[..length.min(data_out.len())];
    let header_len = if ten { 8 } else { 4 };
    if list.len() < header_len {
        return Err(Sense::parameter_list_length_error());
    }
    let medium_type_at = if ten { 2 } else { 1 };
    if list[medium_type_at] != 0 {
        return Err(Sense::invalid_field_in_parameters(medium_type_at, None));
    }
    let (descriptor_len, long_lba) = if ten {
        (
            usize::from(u16::from_be_bytes([list[6], list[7]])),
            list[4] & 0x01 != 0,
        )
    } else {
        (usize::from(list[3]), false)
    };
    let pages_at = header_len + descriptor_len;
    let descriptors = list
        .get(header_len..pages_at)
        .ok_or_else(Sense::parameter_list_length_error)?;
    check_block_descriptors(descriptors, long_lba, header_len, geometry, ten)?;
    let mut next = *state;
    let mut at = pages_at;
    while at < list.len() {
        at = select_page(list, at, state, &mut next)?;
    }
    *state = next;
    Ok(())
}

fn check_block_descriptors(
    descriptors: &[u8],
    long_lba: bool,
    offset: usize,
    geometry: &Geometry,
    ten: bool,
) -> Result<(), Sense> {
    let size = if long_lba { 16 } else { 8 };
    if !descriptors.len().is_multiple_of(size) {
        let length_at = if ten { 6 } else { 3 };
        return Err(Sense::invalid_field_in_parameters(length_at, None));
    }
    for (i, d) in descriptors.chunks_exact(size).enumerate() {
        let at = offset + i * size;
        let (blocks, length, length_at) = if long_lba {
            let blocks = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            (
                blocks,
                u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
                at + 12,
            )
        } else {
            let blocks = u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            (blocks, u32::from_be_bytes([0, d[5], d[6], d[7]]), at + 5)
        };
        // Zero, the capacity, or (short descriptor) all ones leave the capacity as is.
        let capacity = if long_lba {
            geometry.blocks
        } else {
            geometry.blocks.min(u64::from(u32::MAX))
        };
        let keeps = blocks == 0 || blocks == capacity || (!long_lba && blocks == 0xFFFF_FFFF);
        if !keeps {
            return Err(Sense::invalid_field_in_parameters(at, None));
        }
        if length != geometry.block_size {
            return Err(Sense::invalid_field_in_parameters(length_at, None));
        }
    }
    Ok(())
}

/// Check the page at `at`, record its changes in `next`, return where the next begins.
fn select_page(
    list: &[u8],
    at: usize,
    current: &ModeState,
    next: &mut ModeState,
) -> Result<usize, Sense> {
    let first = list[at];
    if first & 0x80 != 0 {
        return Err(Sense::invalid_field_in_parameters(at, Some(7))); // PS is reserved
    }
    if first & 0x40 != 0 {
        return Err(Sense::invalid_field_in_parameters(at, Some(6))); // no subpages
    }
    let code = first & 0x3F;
    let page_len = *list
        .get(at + 1)
        .ok_or_else(Sense::parameter_list_length_error)?;
    let end = at + 2 + usize::from(page_len);
    let new = list
        .get(at..end)
        .ok_or_else(Sense::parameter_list_length_error)?;
    let (Some(old), Some(mask)) = (
        page(code, PageControl::Current, current),
        changeable_page(code),
    ) else {
        return Err(Sense::invalid_field_in_parameters(at, Some(5)));
    };
    if new.len() != old.len() {
        return Err(Sense::invalid_field_in_parameters(at + 1, None));
    }
    for i in 2..old.len() {
        if (new[i] ^ old[i]) & !mask[i] != 0 {
            return Err(Sense::invalid_field_in_parameters(at + i, None));
        }
    }
    match code {
        CACHING => next.write_cache = new[2] & 0x04 != 0,
        CONTROL => {
            next.d_sense = new[2] & 0x04 != 0;
            next.swp = new[4] & 0x08 != 0;
        }
        _ => {}
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEOMETRY: Geometry = Geometry {
        blocks: 0x1000,
        block_size: 512,
        write_protected: false,
    };

    fn sense6(page: u8, dbd: bool, alloc: u8, state: &ModeState) -> Result<Vec<u8>, Sense> {
        let cdb = [0x1A, if dbd { 0x08 } else { 0 }, page, 0, alloc, 0];
        mode_sense(Cdb::new(&cdb), false, state, &GEOMETRY)
    }

    #[test]
    fn caching_page_with_block_descriptor() {
        let data = sense6(CACHING, false, 255, &ModeState::default()).unwrap();
        let mut expected = vec![31, 0, 0x10, 8, 0, 0, 0x10, 0x00, 0, 0, 0x02, 0x00];
        let mut caching = vec![0u8; 20];
        caching[..3].copy_from_slice(&[0x08, 0x12, 0x04]);
        expected.extend(caching);
        assert_eq!(data, expected);
    }

    #[test]
    fn control_page_current_and_changeable() {
        let state = ModeState {
            d_sense: true,
            ..ModeState::default()
        };
        let data = sense6(CONTROL, true, 255, &state).unwrap();
        assert_eq!(
            data,
            [15, 0, 0x10, 0, 0x0A, 0x0A, 0x06, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0]
        );
        let data = sense6(0x40 | CONTROL, true, 255, &state).unwrap();
        assert_eq!(
            data,
            [15, 0, 0x10, 0, 0x0A, 0x0A, 0x04, 0, 0x08, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn all_pages_and_truncation() {
        let data = sense6(ALL_PAGES, false, 255, &ModeState::default()).unwrap();
        assert_eq!(data.len(), 4 + 8 + 20 + 12 + 12);
        assert_eq!(data[0] as usize, data.len() - 1);
        assert_eq!(data[12], CACHING);
        assert_eq!(data[32], CONTROL);
        assert_eq!(data[44], INFORMATIONAL_EXCEPTIONS);
        let data = sense6(ALL_PAGES, false, 4, &ModeState::default()).unwrap();
        assert_eq!(data, [55, 0, 0x10, 8]);
    }

    #[test]
    fn write_protect_bit_and_long_descriptor() {
        let geometry = Geometry {
            write_protected: true,
            blocks: 1 << 33,
            ..GEOMETRY
        };
        let cdb = [0x5A, 0x10, CACHING, 0, 0, 0, 0, 0, 255, 0];
        let data = mode_sense(Cdb::new(&cdb), true, &ModeState::default(), &geometry).unwrap();
        assert_eq!(&data[..8], &[0, 42, 0, 0x90, 0x01, 0, 0, 16]);
        assert_eq!(
            &data[8..24],
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]
        );
        // Short descriptor saturates the block count.
        let cdb = [0x1A, 0, CACHING, 0, 255, 0];
        let data = mode_sense(Cdb::new(&cdb), false, &ModeState::default(), &geometry).unwrap();
        assert_eq!(&data[4..12], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x02, 0]);
    }

    #[test]
    fn mode_sense_refusals() {
        let state = ModeState::default();
        assert_eq!(
            sense6(0xC0 | CACHING, false, 255, &state).unwrap_err(),
            Sense::saving_parameters_not_supported()
        );
        assert_eq!(
            sense6(0x19, false, 255, &state).unwrap_err(),
            Sense::invalid_field_in_cdb(2, Some(5))
        );
        let cdb = [0x1A, 0, CONTROL, 0x01, 255, 0];
        assert_eq!(
            mode_sense(Cdb::new(&cdb), false, &state, &GEOMETRY).unwrap_err(),
            Sense::invalid_field_in_cdb(3, None)
        );
        let cdb = [0x1A, 0, ALL_PAGES, 0xFF, 255, 0];
        assert!(mode_sense(Cdb::new(&cdb), false, &state, &GEOMETRY).is_ok());
    }

    fn select6(list: &[u8], state: &mut ModeState) -> Result<(), Sense> {
        let cdb = [0x15, 0x10, 0, 0, list.len() as u8, 0];
        mode_select(Cdb::new(&cdb), false, list, state, &GEOMETRY)
    }

    #[test]
    fn select_sets_swp_and_d_sense_like_libiscsi() {
        let mut state = ModeState::default();
        // What libiscsi's set_swp sends: a zero header and the control page, SWP on.
        let mut list = vec![0, 0, 0, 0];
        list.extend_from_slice(&[0x0A, 0x0A, 0x02, 0, 0x08, 0, 0, 0, 0xFF, 0xFF, 0, 0]);
        select6(&list, &mut state).unwrap();
        assert!(state.swp);
        list[6] |= 0x04;
        list[8] = 0;
        select6(&list, &mut state).unwrap();
        assert_eq!(
            state,
            ModeState {
                write_cache: true,
                d_sense: true,
                swp: false
            }
        );
    }

    #[test]
    fn select_refuses_unchangeable_bits_without_partial_effect() {
        let mut state = ModeState::default();
        let mut list = vec![0, 0, 0, 0];
        list.extend_from_slice(&[0x08, 0x12, 0x00]);
        list.extend_from_slice(&[0u8; 17]);
        list.extend_from_slice(&[0x0A, 0x0A, 0x02, 0x01, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0]);
        assert_eq!(
            select6(&list, &mut state).unwrap_err(),
            Sense::invalid_field_in_parameters(24 + 3, None)
        );
        assert_eq!(state, ModeState::default(), "WCE change must not apply");
        // Cache off alone is fine.
        select6(&list[..24], &mut state).unwrap();
        assert!(!state.write_cache);
    }

    #[test]
    fn select_parameter_list_errors() {
        let mut state = ModeState::default();
        assert_eq!(
            select6(&[0, 0, 0], &mut state).unwrap_err(),
            Sense::parameter_list_length_error()
        );
        assert_eq!(
            select6(&[0, 0, 0, 0, 0x0A, 0x0A, 0x02], &mut state).unwrap_err(),
            Sense::parameter_list_length_error()
        );
        assert_eq!(
            select6(&[0, 0, 0, 0, 0x19, 0x02, 0, 0], &mut state).unwrap_err(),
            Sense::invalid_field_in_parameters(4, Some(5))
        );
        assert_eq!(
            select6(&[0, 0, 0, 0, 0x8A, 0x0A], &mut state).unwrap_err(),
            Sense::invalid_field_in_parameters(4, Some(7))
        );
        // A block descriptor with the wrong block length.
        let list = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0];
        assert_eq!(
            select6(&list, &mut state).unwrap_err(),
            Sense::invalid_field_in_parameters(9, None)
        );
        let list = [0, 0, 0, 8, 0, 0, 0x10, 0, 0, 0, 0x02, 0];
        assert!(select6(&list, &mut state).is_ok());
        let cdb = [0x15, 0x11, 0, 0, 4, 0];
        assert_eq!(
            mode_select(Cdb::new(&cdb), false, &[0; 4], &mut state, &GEOMETRY).unwrap_err(),
            Sense::invalid_field_in_cdb(1, Some(0))
        );
    }

    #[test]
    fn select10_header() {
        let mut state = ModeState::default();
        let mut list = vec![0u8; 8];
        list.extend_from_slice(&[0x08, 0x12, 0x00]);
        list.extend_from_slice(&[0u8; 17]);
        let cdb = [0x55, 0x10, 0, 0, 0, 0, 0, 0, list.len() as u8, 0];
        mode_select(Cdb::new(&cdb), true, &list, &mut state, &GEOMETRY).unwrap();
        assert!(!state.write_cache);
    }
}
