//! qcow2 (versions 2 and 3) read as the raw disk it describes, sans-IO: feed the file's bytes
//! in file order to a [`StreamReader`] and it emits guest writes and zero runs to a [`Sink`].
//!
//! Tables and clusters are recognised by their file offset as the stream passes them: the
//! header names the L1 table, the L1 table names the L2 tables, the L2 tables name the data
//! clusters. Anything that the stream passed before the reader knew what it was (a data
//! cluster stored before its L2 table) is remembered as a range to fetch again: after the
//! sequential pass the I/O driver asks [`StreamReader::next_fetch`] for those ranges and feeds
//! them the same way. Memory stays bounded: no table is kept whole, and the number of
//! tables and clusters tracked at once is capped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::error::ImageError;

/// The first four bytes of every qcow file.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

const V2_HEADER_LEN: usize = 72;
const V3_MIN_HEADER_LEN: usize = 104;
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// qemu refuses L1 tables larger than 32 MiB.
const MAX_L1_ENTRIES: u64 = 32 * 1024 * 1024 / 8;
/// Tables and clusters remembered at once (pending or to fetch again).
const MAX_TRACKED: usize = 1 << 18;
/// L2 tables remembered (for overlap checks).
const MAX_L2_TABLES: usize = 1 << 19;
/// A fetch-again range merges items closer than this.
const FETCH_MERGE_GAP: u64 = 64 * 1024;
const FETCH_MAX_LEN: u64 = 8 * 1024 * 1024;
const MAX_ZSTD_WINDOW: u64 = 8 * 1024 * 1024;
/// Tables and clusters that may share one file byte. qemu's images share at most a sector
/// between two neighbouring compressed clusters; more is a crafted file (work and memory
/// would grow with every extra reference).
const MAX_OVERLAPPING: usize = 64;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;

const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1E_RESERVED_MASK: u64 = 0x7f00_0000_0000_01ff;
const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_STD_RESERVED_MASK: u64 = 0x3f00_0000_0000_01fe;
const L2E_COMPRESSED: u64 = 1 << 62;
const L2E_ZERO: u64 = 1;

/// How compressed clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Deflate,
    Zstd,
}

/// The parts of a qcow2 header this reader uses, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub virtual_size: u64,
    pub l1_size: u64,
    pub l1_table_offset: u64,
    pub compression: Compression,
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Guest bytes one L2 table maps.
    fn l2_coverage(&self) -> u64 {
        self.cluster_size() * (self.cluster_size() / 8)
    }

    fn l1_bytes(&self) -> u64 {
        self.l1_size * 8
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(raw)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(raw)
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::Qcow2(msg.into())
}

/// How many leading bytes the header needs, once the first 8 are known (`None`: fewer).
pub fn header_len_needed(head: &[u8]) -> Option<usize> {
    if head.len() < 8 {
        return None;
    }
    match be_u32(head, 4) {
        3 if head.len() >= V3_MIN_HEADER_LEN => {
            let declared = be_u32(head, 100) as usize;
            Some(if declared > V3_MIN_HEADER_LEN {
                V3_MIN_HEADER_LEN + 1
            } else {
                V3_MIN_HEADER_LEN
            })
        }
        3 => Some(V3_MIN_HEADER_LEN),
        _ => Some(V2_HEADER_LEN),
    }
}

/// Parses and checks a header; refuses every feature this reader cannot honour.
pub fn parse_header(b: &[u8]) -> Result<Header, ImageError> {
    if b.len() < 8 || b[..4] != MAGIC {
        return Err(bad("not a qcow2 file (bad magic)"));
    }
    let version = be_u32(b, 4);
    if version != 2 && version != 3 {
        return Err(bad(format!(
            "version {version} is not supported (2 and 3 are)"
        )));
    }
    let needed = header_len_needed(b).unwrap_or(V2_HEADER_LEN);
    if b.len() < needed {
        return Err(bad(format!(
            "header truncated: {} of {needed} bytes",
            b.len()
        )));
    }
    let cluster_bits = be_u32(b, 20);
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return Err(bad(format!(
            "cluster_bits {cluster_bits} is outside 9..=21"
        )));
    }
    if be_u64(b, 8) != 0 || be_u32(b, 16) != 0 {
        return Err(bad("images with a backing file are not supported"));
    }
    let crypt = be_u32(b, 32);
    if crypt != 0 {
        return Err(bad(format!(
            "encrypted images are not supported (crypt_method {crypt})"
        )));
    }
    let compression = if version == 3 {
        check_v3_features(b, cluster_bits)?
    } else {
        Compression::Deflate
    };
    let header = Header {
        version,
        cluster_bits,
        virtual_size: be_u64(b, 24),
        l1_size: u64::from(be_u32(b, 36)),
        l1_table_offset: be_u64(b, 40),
        compression,
    };
    check_l1(&header)?;
    Ok(header)
}

fn check_v3_features(b: &[u8], cluster_bits: u32) -> Result<Compression, ImageError> {
    let incompatible = be_u64(b, 72);
    if incompatible & INCOMPAT_CORRUPT != 0 {
        return Err(bad("the image is marked corrupt"));
    }
    if incompatible & INCOMPAT_DATA_FILE != 0 {
        return Err(bad("images with an external data file are not supported"));
    }
    if incompatible & INCOMPAT_EXTL2 != 0 {
        return Err(bad("images with extended L2 entries are not supported"));
    }
    let known = INCOMPAT_DIRTY
        | INCOMPAT_CORRUPT
        | INCOMPAT_DATA_FILE
        | INCOMPAT_COMPRESSION
        | INCOMPAT_EXTL2;
    if incompatible & !known != 0 {
        return Err(bad(format!(
            "unknown incompatible features {:#x}",
            incompatible & !known
        )));
    }
    let refcount_order = be_u32(b, 96);
    if refcount_order > 6 {
        return Err(bad(format!("refcount_order {refcount_order} is over 6")));
    }
    let header_length = be_u32(b, 100);
    if (header_length as usize) < V3_MIN_HEADER_LEN
        || !header_length.is_multiple_of(8)
        || u64::from(header_length) > 1 << cluster_bits
    {
        return Err(bad(format!("header_length {header_length} is invalid")));
    }
    let compression_type = if header_length as usize > V3_MIN_HEADER_LEN {
        b[104]
    } else {
        0
    };
    match (compression_type, incompatible & INCOMPAT_COMPRESSION != 0) {
        (0, _) => Ok(Compression::Deflate),
        (1, true) => Ok(Compression::Zstd),
        (1, false) => Err(bad(
            "zstd compression type without the compression-type feature bit",
        )),
        (other, _) => Err(bad(format!("unknown compression type {other}"))),
    }
}

fn check_l1(h: &Header) -> Result<(), ImageError> {
    let needed = h.virtual_size.div_ceil(h.l2_coverage());
    if h.l1_size < needed {
        return Err(bad(format!(
            "L1 table of {} entries is too small for a virtual size of {} bytes",
            h.l1_size, h.virtual_size
        )));
    }
    if h.l1_size > MAX_L1_ENTRIES {
        return Err(bad(format!(
            "L1 table of {} entries is absurdly large",
            h.l1_size
        )));
    }
    if h.l1_size > 0
        && (h.l1_table_offset == 0 || !h.l1_table_offset.is_multiple_of(h.cluster_size()))
    {
        return Err(bad(format!(
            "L1 table offset {:#x} is not a valid cluster offset",
            h.l1_table_offset
        )));
    }
    if h.l1_table_offset
        .checked_add(h.l1_bytes())
        .is_none_or(|end| end > 1 << 56)
    {
        return Err(bad("L1 table lies outside any possible file"));
    }
    Ok(())
}

/// Where the reader sends the disk it reads. Events come in no particular guest order, each
/// guest byte below the virtual size exactly once (data or zeros), after `header`.
pub trait Sink {
    /// The header was read; nothing else has been emitted yet.
    fn header(&mut self, header: &Header) -> Result<(), ImageError>;
    /// `bytes` belong at `guest_offset` of the raw disk.
    fn data(&mut self, guest_offset: u64, bytes: &[u8]) -> Result<(), ImageError>;
    /// `len` bytes of zeros belong at `guest_offset`.
    fn zeros(&mut self, guest_offset: u64, len: u64) -> Result<(), ImageError>;
}

#[derive(Debug)]
enum Kind {
    L1,
    L2 { guest_base: u64 },
    Data { guest: u64 },
    Compressed { guest: u64, buf: Vec<u8> },
}

/// A table or cluster at a file range. Table entries that straddle two feeds are carried.
#[derive(Debug)]
struct Item {
    start: u64,
    len: u64,
    kind: Kind,
    carry: Vec<u8>,
}

impl Item {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

type Key = (u64, u64);

/// The streaming qcow2 → raw reader. See the module doc for how to drive it.
pub struct StreamReader {
    head: Vec<u8>,
    header: Option<Header>,
    /// File offset of the next byte fed.
    pos: u64,
    /// Known after the sequential pass.
    file_len: Option<u64>,
    /// End of the range being fed again, in the fetch phase.
    fetch_end: Option<u64>,
    pending: BTreeMap<Key, Item>,
    deferred: BTreeMap<Key, Item>,
    seq: u64,
    last_data: Option<Key>,
    l2_tables: BTreeSet<u64>,
    zero_run: Option<(u64, u64)>,
    cluster_buf: Vec<u8>,
    /// Bytes held by compressed clusters being gathered.
    compressed_held: u64,
}

impl Default for StreamReader {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamReader {
    pub fn new() -> Self {
        StreamReader {
            head: Vec::new(),
            header: None,
            pos: 0,
            file_len: None,
            fetch_end: None,
            pending: BTreeMap::new(),
            deferred: BTreeMap::new(),
            seq: 0,
            last_data: None,
            l2_tables: BTreeSet::new(),
            zero_run: None,
            cluster_buf: Vec::new(),
            compressed_held: 0,
        }
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// File offset of the next byte `feed` expects.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds the next bytes of the file (or of the range returned by `next_fetch`).
    pub fn feed<S: Sink>(&mut self, mut chunk: &[u8], sink: &mut S) -> Result<(), ImageError> {
        if self.header.is_none() {
            chunk = self.feed_header(chunk, sink)?;
            if self.header.is_none() {
                return Ok(());
            }
        }
        if let Some(end) = self.fetch_end {
            if self.pos + chunk.len() as u64 > end {
                return Err(bad("more bytes fed than the range asked for"));
            }
        }
        let chunk_start = self.pos;
        let chunk_end = chunk_start + chunk.len() as u64;
        let mut cursor = chunk_start;
        while cursor < chunk_end {
            let next = self.next_boundary(cursor, chunk_end);
            let segment = &chunk[(cursor - chunk_start) as usize..(next - chunk_start) as usize];
            self.consume_segment(cursor, next, segment, sink)?;
            cursor = next;
            self.pos = cursor;
        }
        self.pos = chunk_end;
        Ok(())
    }

    /// Buffers the header; returns the rest of the chunk once it is parsed.
    fn feed_header<'a, S: Sink>(
        &mut self,
        chunk: &'a [u8],
        sink: &mut S,
    ) -> Result<&'a [u8], ImageError> {
        let want = header_len_needed(&self.head).unwrap_or(8).max(8);
        let take = want.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..take]);
        self.pos += take as u64;
        let rest = &chunk[take..];
        if self.head.len() >= 4 && self.head[..4] != MAGIC {
            return Err(bad("not a qcow2 file (bad magic)"));
        }
        match header_len_needed(&self.head) {
            Some(needed) if self.head.len() >= needed => {
                let header = parse_header(&self.head)?;
                sink.header(&header)?;
                self.start_tables(header, sink)?;
                Ok(rest)
            }
            _ if rest.is_empty() => Ok(rest),
            _ => self.feed_header(rest, sink),
        }
    }

    fn start_tables<S: Sink>(&mut self, header: Header, sink: &mut S) -> Result<(), ImageError> {
        let l1 = Item {
            start: header.l1_table_offset,
            len: header.l1_bytes(),
            kind: Kind::L1,
            carry: Vec::new(),
        };
        let empty = l1.len == 0;
        let virtual_size = header.virtual_size;
        self.header = Some(header);
        if empty {
            self.emit_zeros(0, virtual_size, sink)
        } else {
            self.track(l1).map(drop)
        }
    }

    /// The end of the next run of bytes over which the set of active items does not change.
    fn next_boundary(&self, cursor: u64, chunk_end: u64) -> u64 {
        let mut next = chunk_end;
        let active = self
            .pending
            .range(..(cursor, u64::MAX))
            .take(MAX_OVERLAPPING + 1);
        for item in active.map(|(_, i)| i) {
            next = next.min(item.end());
        }
        if let Some(((start, _), _)) = self.pending.range((cursor + 1, 0)..).next() {
            next = next.min(*start);
        }
        next
    }

    fn consume_segment<S: Sink>(
        &mut self,
        from: u64,
        to: u64,
        bytes: &[u8],
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let active: Vec<Key> = self
            .pending
            .range(..(from, u64::MAX))
            .map(|(k, _)| *k)
            .take(MAX_OVERLAPPING + 1)
            .collect();
        if active.len() > MAX_OVERLAPPING {
            return Err(bad(format!(
                "more than {MAX_OVERLAPPING} clusters use the file byte at {from:#x}"
            )));
        }
        for key in active {
            let Some(mut item) = self.pending.remove(&key) else {
                continue;
            };
            let local = from - item.start;
            self.consume_item(&mut item, local, bytes, to, sink)?;
            if item.end() > to {
                self.pending.insert(key, item);
            } else {
                self.complete(key, item, sink)?;
            }
        }
        Ok(())
    }

    fn consume_item<S: Sink>(
        &mut self,
        item: &mut Item,
        local: u64,
        bytes: &[u8],
        seg_end: u64,
        sink: &mut S,
    ) -> Result<(), ImageError> {
        match &mut item.kind {
            Kind::Data { guest } => self.emit_data(*guest + local, bytes, sink),
            Kind::Compressed { buf, .. } => {
                if buf.is_empty() {
                    self.compressed_held += item.len;
                    let cluster_size = self.header_ref()?.cluster_size();
                    if self.compressed_held > (4 * cluster_size).max(1 << 20) {
                        return Err(bad("too many overlapping compressed clusters"));
                    }
                }
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Kind::L1 | Kind::L2 { .. } => {
                let first_entry = (local - item.carry.len() as u64) / 8;
                let mut entries = std::mem::take(&mut item.carry);
                entries.extend_from_slice(bytes);
                let whole = entries.len() / 8 * 8;
                item.carry = entries[whole..].to_vec();
                for (i, raw) in entries[..whole].chunks_exact(8).enumerate() {
                    let entry = be_u64(raw, 0);
                    let index = first_entry + i as u64;
                    match item.kind {
                        Kind::L1 => self.l1_entry(index, entry, seg_end, sink)?,
                        Kind::L2 { guest_base } => {
                            self.l2_entry(guest_base, index, entry, seg_end, sink)?
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }

    fn complete<S: Sink>(&mut self, key: Key, item: Item, sink: &mut S) -> Result<(), ImageError> {
        if self.last_data == Some(key) {
            self.last_data = None;
        }
        match item.kind {
            Kind::Compressed { guest, buf } => {
                if !buf.is_empty() {
                    self.compressed_held = self.compressed_held.saturating_sub(item.len);
                }
                self.decompress(guest, &buf, sink)
            }
            _ => Ok(()),
        }
    }

    fn header_ref(&self) -> Result<&Header, ImageError> {
        self.header.as_ref().ok_or_else(|| bad("no header yet"))
    }

    fn l1_entry<S: Sink>(
        &mut self,
        index: u64,
        entry: u64,
        seg_end: u64,
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let h = self.header_ref()?;
        let (coverage, virtual_size, cluster_size) =
            (h.l2_coverage(), h.virtual_size, h.cluster_size());
        let (l1_start, l1_end) = (h.l1_table_offset, h.l1_table_offset + h.l1_bytes());
        let guest_base = index * coverage;
        if guest_base >= virtual_size {
            return Ok(());
        }
        if entry & L1E_RESERVED_MASK != 0 {
            return Err(bad(format!(
                "L1 entry {index} has reserved bits set ({entry:#x})"
            )));
        }
        let offset = entry & L1E_OFFSET_MASK;
        if offset == 0 {
            return self.emit_zeros(guest_base, coverage, sink);
        }
        if !offset.is_multiple_of(cluster_size) {
            return Err(bad(format!(
                "L2 table offset {offset:#x} is not cluster aligned"
            )));
        }
        if offset < l1_end && offset + cluster_size > l1_start {
            return Err(bad(format!(
                "L2 table at {offset:#x} overlaps the L1 table"
            )));
        }
        if !self.l2_tables.insert(offset) {
            return Err(bad(format!("L2 table at {offset:#x} is used twice")));
        }
        if self.l2_tables.len() > MAX_L2_TABLES {
            return Err(bad("too many L2 tables"));
        }
        let item = Item {
            start: offset,
            len: cluster_size,
            kind: Kind::L2 { guest_base },
            carry: Vec::new(),
        };
        self.place(item, seg_end).map(drop)
    }

    fn l2_entry<S: Sink>(
        &mut self,
        guest_base: u64,
        index: u64,
        entry: u64,
        seg_end: u64,
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let h = self.header_ref()?;
        let (cluster_size, cluster_bits, version, virtual_size) =
            (h.cluster_size(), h.cluster_bits, h.version, h.virtual_size);
        let guest = guest_base + index * cluster_size;
        if guest >= virtual_size {
            return Ok(());
        }
        if entry & L2E_COMPRESSED != 0 {
            return self.compressed_entry(guest, entry, cluster_bits, seg_end);
        }
        if entry & L2E_STD_RESERVED_MASK != 0 {
            return Err(bad(format!(
                "L2 entry for guest offset {guest:#x} has reserved bits set ({entry:#x})"
            )));
        }
        let offset = entry & L2E_OFFSET_MASK;
        if entry & L2E_ZERO != 0 {
            if version < 3 {
                return Err(bad(format!(
                    "zero flag in a version 2 L2 entry (guest offset {guest:#x})"
                )));
            }
            return self.emit_zeros(guest, cluster_size, sink);
        }
        if offset == 0 {
            return self.emit_zeros(guest, cluster_size, sink);
        }
        if !offset.is_multiple_of(cluster_size) {
            return Err(bad(format!(
                "data cluster offset {offset:#x} is not cluster aligned"
            )));
        }
        self.check_not_metadata(offset, cluster_size)?;
        self.place_data(offset, cluster_size, guest, seg_end)
    }

    fn compressed_entry(
        &mut self,
        guest: u64,
        entry: u64,
        cluster_bits: u32,
        seg_end: u64,
    ) -> Result<(), ImageError> {
        let x = 62 - (cluster_bits - 8);
        let offset = entry & ((1u64 << x) - 1);
        let sectors = ((entry & ((1u64 << 62) - 1)) >> x) + 1;
        let end = (offset & !511) + sectors * 512;
        let cluster_size = 1u64 << cluster_bits;
        if offset < cluster_size {
            return Err(bad(format!(
                "compressed cluster at {offset:#x} overlaps the header"
            )));
        }
        if end - offset > 2 * cluster_size {
            return Err(bad(format!(
                "compressed cluster at {offset:#x} claims an absurd size of {} bytes",
                end - offset
            )));
        }
        self.check_not_metadata(offset, end - offset)?;
        let kind = Kind::Compressed {
            guest,
            buf: Vec::new(),
        };
        self.place(
            Item {
                start: offset,
                len: end - offset,
                kind,
                carry: Vec::new(),
            },
            seg_end,
        )
        .map(drop)
    }

    fn check_not_metadata(&self, offset: u64, len: u64) -> Result<(), ImageError> {
        let h = self.header_ref()?;
        let (l1_start, l1_end, cluster_size) = (
            h.l1_table_offset,
            h.l1_table_offset + h.l1_bytes(),
            h.cluster_size(),
        );
        if offset < cluster_size || (offset < l1_end && offset + len > l1_start) {
            return Err(bad(format!(
                "cluster at {offset:#x} overlaps the header or the L1 table"
            )));
        }
        let first_table = offset.saturating_sub(cluster_size - 1);
        if self
            .l2_tables
            .range(first_table..offset + len)
            .next()
            .is_some()
        {
            return Err(bad(format!("cluster at {offset:#x} overlaps an L2 table")));
        }
        Ok(())
    }

    /// A data cluster: merged into the previous one when both file and guest are contiguous.
    fn place_data(
        &mut self,
        offset: u64,
        len: u64,
        guest: u64,
        seg_end: u64,
    ) -> Result<(), ImageError> {
        if let Some(key) = self.last_data {
            let may_wait =
                offset >= seg_end && self.fetch_end.is_none_or(|end| offset + len <= end);
            let prev = match self.pending.get_mut(&key) {
                Some(prev) if may_wait => Some(prev),
                Some(_) => None,
                None => self.deferred.get_mut(&key),
            };
            if let Some(prev) = prev {
                if let Kind::Data { guest: prev_guest } = prev.kind {
                    if prev.end() == offset
                        && prev_guest + prev.len == guest
                        && prev.len < FETCH_MAX_LEN
                    {
                        prev.len += len;
                        return Ok(());
                    }
                }
            }
        }
        let key = self.place(
            Item {
                start: offset,
                len,
                kind: Kind::Data { guest },
                carry: Vec::new(),
            },
            seg_end,
        )?;
        self.last_data = Some(key);
        Ok(())
    }

    /// Tracks an item: ahead of the stream it waits; behind it, it is fetched again later.
    fn place(&mut self, item: Item, seg_end: u64) -> Result<Key, ImageError> {
        if let Some(len) = self.file_len {
            let may_overrun = matches!(item.kind, Kind::Compressed { .. });
            if item.start >= len || (item.end() > len && !may_overrun) {
                return Err(bad(format!(
                    "{} at {:#x} lies outside the file ({len} bytes)",
                    item.kind.name(),
                    item.start
                )));
            }
        }
        let ahead = item.start >= seg_end;
        let in_range = self.fetch_end.is_none_or(|end| item.end() <= end);
        if ahead && in_range {
            self.track(item)
        } else {
            self.defer(item)
        }
    }

    fn key(&mut self, item: &Item) -> Key {
        self.seq += 1;
        (item.start, self.seq)
    }

    fn track(&mut self, item: Item) -> Result<Key, ImageError> {
        self.check_budget()?;
        let key = self.key(&item);
        self.pending.insert(key, item);
        Ok(key)
    }

    fn defer(&mut self, item: Item) -> Result<Key, ImageError> {
        self.check_budget()?;
        let key = self.key(&item);
        self.deferred.insert(key, item);
        Ok(key)
    }

    fn check_budget(&self) -> Result<(), ImageError> {
        if self.pending.len() + self.deferred.len() >= MAX_TRACKED {
            return Err(bad(format!(
                "layout needs more than {MAX_TRACKED} out-of-order tables or clusters"
            )));
        }
        Ok(())
    }

    fn emit_data<S: Sink>(
        &mut self,
        guest: u64,
        bytes: &[u8],
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let virtual_size = self.header_ref()?.virtual_size;
        if guest >= virtual_size {
            return Ok(());
        }
        let keep = (virtual_size - guest).min(bytes.len() as u64) as usize;
        self.flush_zeros(sink)?;
        sink.data(guest, &bytes[..keep])
    }

    fn emit_zeros<S: Sink>(
        &mut self,
        guest: u64,
        len: u64,
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let virtual_size = self.header_ref()?.virtual_size;
        let len = len.min(virtual_size.saturating_sub(guest));
        if len == 0 {
            return Ok(());
        }
        match self.zero_run {
            Some((start, run)) if start + run == guest => self.zero_run = Some((start, run + len)),
            _ => {
                self.flush_zeros(sink)?;
                self.zero_run = Some((guest, len));
            }
        }
        Ok(())
    }

    fn flush_zeros<S: Sink>(&mut self, sink: &mut S) -> Result<(), ImageError> {
        match self.zero_run.take() {
            Some((start, len)) => sink.zeros(start, len),
            None => Ok(()),
        }
    }

    fn decompress<S: Sink>(
        &mut self,
        guest: u64,
        input: &[u8],
        sink: &mut S,
    ) -> Result<(), ImageError> {
        let h = self.header_ref()?;
        let (cluster_size, compression) = (h.cluster_size() as usize, h.compression);
        let mut out = std::mem::take(&mut self.cluster_buf);
        out.clear();
        out.resize(cluster_size, 0);
        let result = match compression {
            Compression::Deflate => inflate_cluster(input, &mut out),
            Compression::Zstd => unzstd_cluster(input, &mut out),
        };
        let result = result
            .map_err(|e| {
                bad(format!(
                    "compressed cluster for guest offset {guest:#x}: {e}"
                ))
            })
            .and_then(|()| self.emit_data(guest, &out, sink));
        self.cluster_buf = out;
        result
    }

    /// Ends the sequential pass at the file's end. Tables or clusters that lie beyond it are
    /// an error (a compressed cluster's last sector may run past it).
    pub fn finish_stream<S: Sink>(&mut self, sink: &mut S) -> Result<(), ImageError> {
        if self.header.is_none() {
            return Err(bad(format!(
                "file of {} bytes is too short for a qcow2 header",
                self.pos
            )));
        }
        let file_len = self.pos;
        self.file_len = Some(file_len);
        self.finish_partial_compressed(sink)?;
        if let Some(item) = self.pending.values().next() {
            return Err(bad(format!(
                "{} at {:#x} lies outside the file ({file_len} bytes)",
                item.kind.name(),
                item.start
            )));
        }
        self.flush_zeros(sink)
    }

    fn finish_partial_compressed<S: Sink>(&mut self, sink: &mut S) -> Result<(), ImageError> {
        let keys: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, i)| matches!(i.kind, Kind::Compressed { .. }) && i.start < self.pos)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if let Some(item) = self.pending.remove(&key) {
                self.complete(key, item, sink)?;
            }
        }
        Ok(())
    }

    /// The next file range to fetch and feed again, `[start, end)`; `None` when all is done.
    /// Call after `finish_stream`, and `finish_fetch` after feeding each range.
    pub fn next_fetch(&mut self) -> Option<(u64, u64)> {
        let file_len = self.file_len?;
        let (&first_key, first) = self.deferred.iter().next()?;
        let start = first.start;
        let mut end = first.end();
        let mut keys = vec![first_key];
        for (key, item) in self.deferred.range((first_key.0, first_key.1 + 1)..) {
            if item.start > end + FETCH_MERGE_GAP || item.end().max(end) - start > FETCH_MAX_LEN {
                break;
            }
            end = end.max(item.end());
            keys.push(*key);
        }
        for key in keys {
            if let Some(item) = self.deferred.remove(&key) {
                self.pending.insert(key, item);
            }
        }
        let end = end.min(file_len);
        self.pos = start;
        self.fetch_end = Some(end);
        self.last_data = None;
        Some((start, end))
    }

    /// Ends the feeding of a range from `next_fetch`: it must have been fed whole.
    pub fn finish_fetch<S: Sink>(&mut self, sink: &mut S) -> Result<(), ImageError> {
        let Some(end) = self.fetch_end.take() else {
            return Ok(());
        };
        if self.pos != end {
            return Err(bad(format!(
                "range fetched again ended at {:#x}, expected {end:#x}",
                self.pos
            )));
        }
        self.finish_partial_compressed(sink)?;
        let left: Vec<Key> = self.pending.keys().copied().collect();
        for key in left {
            if let Some(item) = self.pending.remove(&key) {
                self.deferred.insert(key, item);
            }
        }
        self.last_data = None;
        self.flush_zeros(sink)
    }

    /// Whether everything has been emitted (after `finish_stream`, no range left to fetch).
    pub fn is_done(&self) -> bool {
        self.file_len.is_some()
            && self.pending.is_empty()
            && self.deferred.is_empty()
            && self.zero_run.is_none()
    }
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::L1 => "L1 table",
            Kind::L2 { .. } => "L2 table",
            Kind::Data { .. } => "data cluster",
            Kind::Compressed { .. } => "compressed cluster",
        }
    }
}

fn inflate_cluster(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut inflater = flate2::Decompress::new(false);
    inflater
        .decompress(input, out, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("deflate: {e}"))?;
    let produced = inflater.total_out();
    if produced == out.len() as u64 {
        Ok(())
    } else {
        Err(format!("deflate gave {produced} of {} bytes", out.len()))
    }
}

fn unzstd_cluster(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let (frame, _) = ruzstd::frame::read_frame_header(input).map_err(|e| format!("zstd: {e}"))?;
    let window = frame
        .header
        .window_size()
        .map_err(|e| format!("zstd: {e}"))?;
    if window > MAX_ZSTD_WINDOW {
        return Err(format!("zstd window of {window} bytes is too large"));
    }
    let mut decoder = ruzstd::StreamingDecoder::new(input).map_err(|e| format!("zstd: {e}"))?;
    decoder.read_exact(out).map_err(|e| format!("zstd: {e}"))
}

/// Runs the reader over a whole file held in memory, fetching ranges again from the same
/// bytes, and checks what the sink receives. The fuzz target and its corpus test use it.
#[doc(hidden)]
pub fn fuzz_entry(data: &[u8]) {
    let chunk = 1 + data.last().map_or(0, |b| usize::from(*b)) * 37;
    let mut sink = CheckingSink::default();
    let mut reader = StreamReader::new();
    if run_in_memory(&mut reader, data, chunk, &mut sink).is_ok() {
        assert!(reader.is_done(), "reader not done after a successful run");
        let size = sink.virtual_size.unwrap_or(0);
        assert_eq!(
            sink.covered, size,
            "guest bytes emitted differ from the virtual size"
        );
    }
}

/// Feeds `data` in chunks of `chunk` bytes, then the ranges to fetch again.
#[doc(hidden)]
pub fn run_in_memory<S: Sink>(
    reader: &mut StreamReader,
    data: &[u8],
    chunk: usize,
    sink: &mut S,
) -> Result<(), ImageError> {
    for piece in data.chunks(chunk.max(1)) {
        reader.feed(piece, sink)?;
    }
    reader.finish_stream(sink)?;
    while let Some((start, end)) = reader.next_fetch() {
        let range = data
            .get(start as usize..end as usize)
            .ok_or_else(|| bad("range outside data"))?;
        for piece in range.chunks(chunk.max(1)) {
            reader.feed(piece, sink)?;
        }
        reader.finish_fetch(sink)?;
    }
    Ok(())
}

/// A sink that checks every event lies inside the virtual size and counts the bytes.
#[doc(hidden)]
#[derive(Default)]
pub struct CheckingSink {
    pub virtual_size: Option<u64>,
    pub covered: u64,
}

impl Sink for CheckingSink {
    fn header(&mut self, header: &Header) -> Result<(), ImageError> {
        assert!(self.virtual_size.is_none(), "header emitted twice");
        self.virtual_size = Some(header.virtual_size);
        Ok(())
    }
    fn data(&mut self, guest_offset: u64, bytes: &[u8]) -> Result<(), ImageError> {
        self.check(guest_offset, bytes.len() as u64);
        Ok(())
    }
    fn zeros(&mut self, guest_offset: u64, len: u64) -> Result<(), ImageError> {
        self.check(guest_offset, len);
        Ok(())
    }
}

impl CheckingSink {
    fn check(&mut self, offset: u64, len: u64) {
        let size = self.virtual_size.unwrap_or(0);
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= size),
            "event past the virtual size"
        );
        self.covered += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Collects the raw disk in memory, checking each guest byte is emitted once.
    #[derive(Default)]
    struct RawSink {
        disk: Vec<u8>,
        seen: Vec<bool>,
        headers: usize,
    }

    impl RawSink {
        fn mark(&mut self, offset: u64, len: usize) {
            for s in &mut self.seen[offset as usize..offset as usize + len] {
                assert!(!*s, "guest byte emitted twice");
                *s = true;
            }
        }
    }

    impl Sink for RawSink {
        fn header(&mut self, h: &Header) -> Result<(), ImageError> {
            self.headers += 1;
            self.disk = vec![0xee; h.virtual_size as usize];
            self.seen = vec![false; h.virtual_size as usize];
            Ok(())
        }
        fn data(&mut self, off: u64, bytes: &[u8]) -> Result<(), ImageError> {
            self.mark(off, bytes.len());
            self.disk[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
        fn zeros(&mut self, off: u64, len: u64) -> Result<(), ImageError> {
            self.mark(off, len as usize);
            self.disk[off as usize..(off + len) as usize].fill(0);
            Ok(())
        }
    }

    fn run(cmd: &mut Command) {
        let out = cmd.output().expect("tool runs");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn qemu_image(
        dir: &Path,
        create: &[&str],
        io: &[&str],
        convert: Option<&[&str]>,
    ) -> (Vec<u8>, Vec<u8>) {
        let base = dir.join("base.qcow2");
        let mut c = Command::new("qemu-img");
        c.args(["create", "-q", "-f", "qcow2"])
            .args(create)
            .arg(&base)
            .arg("5M");
        run(&mut c);
        for op in io {
            run(Command::new("qemu-io").args(["-c", op]).arg(&base));
        }
        let image = match convert {
            Some(args) => {
                let out = dir.join("converted.qcow2");
                run(Command::new("qemu-img")
                    .args(["convert", "-O", "qcow2"])
                    .args(args)
                    .arg(&base)
                    .arg(&out));
                out
            }
            None => base,
        };
        let raw = dir.join("raw");
        run(Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&image)
            .arg(&raw));
        (std::fs::read(&image).unwrap(), std::fs::read(&raw).unwrap())
    }

    const PATTERN: &[&str] = &[
        "write -P 0xab 0 1M",
        "write -z 2M 512k",
        "write -P 0x11 3M 100k",
        "write -P 0x22 4194304 1k",
    ];

    fn check_all_chunkings(image: &[u8], raw: &[u8]) {
        for chunk in [7, 512, 65536, 1 << 20, image.len()] {
            let mut sink = RawSink::default();
            let mut reader = StreamReader::new();
            run_in_memory(&mut reader, image, chunk, &mut sink).unwrap();
            assert!(reader.is_done());
            assert_eq!(sink.headers, 1);
            assert!(
                sink.seen.iter().all(|s| *s),
                "every guest byte emitted (chunk {chunk})"
            );
            assert!(
                sink.disk == raw,
                "raw differs from qemu-img's (chunk {chunk})"
            );
        }
    }

    #[test]
    fn qemu_images_read_as_qemu_img_converts_them() {
        let cases: &[(&[&str], Option<&[&str]>)] = &[
            (&["-o", "compat=0.10"], None),
            (&["-o", "compat=1.1"], None),
            (&["-o", "compat=1.1,cluster_size=512"], None),
            (&["-o", "compat=1.1,cluster_size=2M"], None),
            (&["-o", "compat=0.10"], Some(&["-c", "-o", "compat=0.10"])),
            (
                &["-o", "compat=1.1"],
                Some(&["-c", "-o", "compat=1.1,cluster_size=4096"]),
            ),
            (&[], Some(&["-c", "-o", "compression_type=zstd"])),
            (&[], Some(&["-o", "preallocation=metadata"])),
        ];
        for (create, convert) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (image, raw) = qemu_image(dir.path(), create, PATTERN, *convert);
            check_all_chunkings(&image, &raw);
        }
    }

    fn v3_header() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = qemu_image(dir.path(), &["-o", "compat=1.1"], &[], None);
        image
    }

    fn refused(image: &[u8]) -> String {
        let mut reader = StreamReader::new();
        let mut sink = RawSink::default();
        run_in_memory(&mut reader, image, 4096, &mut sink)
            .unwrap_err()
            .to_string()
    }

    fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn put_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let good = v3_header();
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|b| put_u64(b, 8, 0x10000)), "backing file"),
            (Box::new(|b| put_u32(b, 32, 1)), "encrypted"),
            (Box::new(|b| put_u64(b, 72, 1 << 2)), "external data file"),
            (Box::new(|b| put_u64(b, 72, 1 << 4)), "extended L2"),
            (Box::new(|b| put_u64(b, 72, 1 << 1)), "marked corrupt"),
            (Box::new(|b| put_u64(b, 72, 1 << 9)), "unknown incompatible"),
            (Box::new(|b| put_u32(b, 20, 8)), "cluster_bits 8"),
            (Box::new(|b| put_u32(b, 20, 22)), "cluster_bits 22"),
            (Box::new(|b| put_u32(b, 4, 1)), "version 1"),
            (Box::new(|b| put_u32(b, 36, 0)), "too small"),
            (Box::new(|b| put_u64(b, 24, u64::MAX)), "too small"),
            (Box::new(|b| put_u64(b, 40, 0x10001)), "L1 table offset"),
            (Box::new(|b| put_u64(b, 40, 1 << 60)), "outside"),
            (Box::new(|b| put_u32(b, 100, 100)), "header_length"),
            (Box::new(|b| b.truncate(50)), "too short"),
            (Box::new(|b| b[0] = b'X'), "bad magic"),
        ];
        for (mutate, want) in cases {
            let mut image = good.clone();
            mutate(&mut image);
            let err = refused(&image);
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }

    #[test]
    fn tables_pointing_outside_or_overlapping_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = qemu_image(
            dir.path(),
            &["-o", "compat=1.1"],
            &["write -P 1 0 64k", "write -P 2 1M 64k"],
            None,
        );
        let l1 = be_u64(&image, 40) as usize;
        let l2 = (be_u64(&image, l1) & L1E_OFFSET_MASK) as usize;
        let mut beyond = image.clone();
        put_u64(&mut beyond, l1, (1 << 63) | 0x1000_0000);
        assert!(refused(&beyond).contains("outside the file"));
        let mut on_l1 = image.clone();
        put_u64(&mut on_l1, l1, (1 << 63) | l1 as u64);
        assert!(refused(&on_l1).contains("overlaps the L1 table"));
        let mut data_on_l2 = image.clone();
        put_u64(&mut data_on_l2, l2, (1 << 63) | l2 as u64);
        assert!(refused(&data_on_l2).contains("overlaps an L2 table"));
        let mut data_beyond = image.clone();
        put_u64(&mut data_beyond, l2, (1 << 63) | 0x4000_0000);
        assert!(refused(&data_beyond).contains("outside the file"));
        let mut unaligned = image.clone();
        put_u64(&mut unaligned, l2, (1 << 63) | 0x30200);
        assert!(refused(&unaligned).contains("not cluster aligned"));
        let mut reserved = image.clone();
        put_u64(&mut reserved, l2, (1 << 63) | 0x30000 | 0x2);
        assert!(refused(&reserved).contains("reserved bits"));
        let mut truncated = image.clone();
        truncated.truncate(truncated.len() - 1000);
        assert!(refused(&truncated).contains("outside the file"));
    }

    #[test]
    fn a_cluster_shared_by_too_many_entries_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let io = ["write -P 1 0 64k", "write -P 2 64k 64k"];
        let (image, raw) = qemu_image(dir.path(), &["-o", "compat=1.1"], &io, None);
        let l1 = be_u64(&image, 40) as usize;
        let l2 = (be_u64(&image, l1) & L1E_OFFSET_MASK) as usize;
        let first = be_u64(&image, l2);
        let shared = |copies: usize| {
            let mut img = image.clone();
            for i in 0..copies {
                put_u64(&mut img, l2 + 8 * i, first);
            }
            img
        };
        let mut want = raw.clone();
        want.copy_within(0..65536, 65536);
        check_all_chunkings(&shared(2), &want);
        assert!(refused(&shared(65)).contains("more than 64 clusters use the file byte"));
    }

    #[test]
    fn corrupt_compressed_clusters_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut image, _) = qemu_image(dir.path(), &[], &["write -P 0xab 0 64k"], Some(&["-c"]));
        let l1 = be_u64(&image, 40) as usize;
        let l2 = (be_u64(&image, l1) & L1E_OFFSET_MASK) as usize;
        let entry = be_u64(&image, l2);
        assert!(entry & L2E_COMPRESSED != 0);
        let data = (entry & ((1 << 54) - 1)) as usize;
        image[data..data + 16].fill(0xff);
        assert!(refused(&image).contains("compressed cluster for guest offset 0x0"));
    }

    #[test]
    fn the_fuzz_corpus_runs_clean() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/qcow2");
        let mut count = 0;
        for entry in std::fs::read_dir(&corpus).expect("corpus directory") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            fuzz_entry(&bytes);
            for cut in [0, 1, 8, 72, 104, bytes.len() / 2] {
                fuzz_entry(&bytes[..cut.min(bytes.len())]);
            }
            count += 1;
        }
        assert!(count >= 4, "corpus has {count} files");
    }
}
