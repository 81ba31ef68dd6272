//! A small ISO 9660 image writer, for config drives.
//!
//! It writes what `genisoimage -J -r -l -allow-lowercase -allow-multidot`
//! writes for a small tree of directories and files: a primary volume
//! descriptor whose names are relaxed ISO 9660 names (`meta_data.json;1`),
//! Rock Ridge entries (RRIP 1.10: `PX`, `NM`, `TF`, with `SP` and `ER` on
//! the root) carrying the real POSIX names, and a Joliet tree (UCS-2 names)
//! for readers without Rock Ridge. Modes are those of `-r`: directories
//! `0555`, files `0444`, owner and group 0.
//!
//! The writer is pure: the same tree, options and timestamp give the same
//! bytes. Inputs are checked (name length and characters, nesting depth,
//! file count, image size) and refused with an [`IsoError`] naming what is
//! wrong.

use std::collections::BTreeMap;

/// ISO 9660 logical block size; every structure here is aligned to it.
pub const SECTOR: usize = 2048;

const SYSTEM_AREA_SECTORS: usize = 16;
const MAX_NAME_BYTES: usize = 100;
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 10_000;
const PRIMARY_NAME_CHARS: usize = 31;
const JOLIET_NAME_CHARS: usize = 64;
const MODE_DIR: u32 = 0o040_555;
const MODE_FILE: u32 = 0o100_444;

const ER_ID: &str = "RRIP_1991A";
const ER_DESCRIPTOR: &str =
    "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SOURCE: &str = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER \
                         IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// What can go wrong while building an image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsoError {
    #[error("ISO 9660 path {path:?} is not valid: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("ISO 9660 path {0:?} is added twice")]
    Duplicate(String),
    #[error("ISO 9660 path {0:?} needs a directory where a file already is")]
    FileInTheWay(String),
    #[error("ISO 9660 {field} {value:?} is not valid: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("ISO 9660 image would hold {count} files and directories; the limit is {limit}")]
    TooManyEntries { count: usize, limit: usize },
    #[error("ISO 9660 image would be {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

/// Volume-level settings of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoOptions {
    /// Volume id, at most 32 ASCII characters (`config-2` for config drives).
    pub volume_id: String,
    /// Publisher id, at most 128 ASCII characters.
    pub publisher: String,
    /// System id, at most 32 ASCII characters.
    pub system_id: String,
    /// Application id, at most 128 ASCII characters.
    pub application_id: String,
    /// Creation and modification time of the volume and of every entry, in
    /// seconds since the Unix epoch (UTC). Part of the input, so output is
    /// deterministic.
    pub timestamp: i64,
    /// Largest image `build` may produce, in bytes.
    pub max_size: u64,
}

impl IsoOptions {
    /// Options with the given volume id and timestamp, and Ferric's ids.
    pub fn new(volume_id: &str, timestamp: i64) -> Self {
        IsoOptions {
            volume_id: volume_id.to_string(),
            publisher: "ferric".to_string(),
            system_id: "LINUX".to_string(),
            application_id: "FERRIC ISO 9660 WRITER".to_string(),
            timestamp,
            max_size: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Dir(BTreeMap<String, Node>),
    File(Vec<u8>),
}

/// A tree of directories and files to be written as an ISO 9660 image.
#[derive(Debug, Clone)]
pub struct IsoBuilder {
    options: IsoOptions,
    root: BTreeMap<String, Node>,
    entries: usize,
}

impl IsoBuilder {
    /// An empty tree; fails if an option is not valid.
    pub fn new(options: IsoOptions) -> Result<Self, IsoError> {
        check_ascii_field("volume id", &options.volume_id, 32)?;
        if options.volume_id.is_empty() {
            return Err(IsoError::InvalidField {
                field: "volume id",
                value: String::new(),
                reason: "it is empty",
            });
        }
        check_ascii_field("publisher id", &options.publisher, 128)?;
        check_ascii_field("system id", &options.system_id, 32)?;
        check_ascii_field("application id", &options.application_id, 128)?;
        if options.max_size > u64::from(u32::MAX) {
            return Err(IsoError::InvalidField {
                field: "maximum size",
                value: options.max_size.to_string(),
                reason: "ISO 9660 sizes must fit in 32 bits",
            });
        }
        if !(0..=DateTime::MAX_UNIX).contains(&options.timestamp) {
            return Err(IsoError::InvalidField {
                field: "timestamp",
                value: options.timestamp.to_string(),
                reason: "it must lie between 1970 and 2155",
            });
        }
        Ok(IsoBuilder {
            options,
            root: BTreeMap::new(),
            entries: 0,
        })
    }

    /// Adds a file at `path` (`/`-separated, relative to the root),
    /// creating the directories above it.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), IsoError> {
        let (parents, name) = split_path(path)?;
        let limit = self.options.max_size;
        if data.len() as u64 > limit {
            return Err(IsoError::TooLarge {
                size: data.len() as u64,
                limit,
            });
        }
        let added = self.reserve(&parents)? + 1;
        let dir = walk_create(&mut self.root, &parents, path)?;
        if dir.contains_key(name) {
            return Err(IsoError::Duplicate(path.to_string()));
        }
        dir.insert(name.to_string(), Node::File(data));
        self.entries += added;
        Ok(())
    }

    /// Adds an (empty) directory at `path`, with the directories above it.
    pub fn add_dir(&mut self, path: &str) -> Result<(), IsoError> {
        let (mut parents, name) = split_path(path)?;
        parents.push(name);
        let added = self.reserve(&parents)?;
        walk_create(&mut self.root, &parents, path)?;
        self.entries += added;
        Ok(())
    }

    /// Writes the image.
    pub fn build(&self) -> Result<Vec<u8>, IsoError> {
        let layout = Layout::plan(&self.root, &self.options)?;
        Ok(layout.write(&self.options))
    }

    /// How many directories of `dirs` (plus one entry) are missing, checked
    /// against the entry limit.
    fn reserve(&self, dirs: &[&str]) -> Result<usize, IsoError> {
        let mut level = Some(&self.root);
        let mut missing = 0;
        for part in dirs {
            level = match level.and_then(|l| l.get(*part)) {
                Some(Node::Dir(children)) => Some(children),
                _ => {
                    missing += 1;
                    None
                }
            };
        }
        let count = self.entries + missing + 1;
        if count > MAX_ENTRIES {
            return Err(IsoError::TooManyEntries {
                count,
                limit: MAX_ENTRIES,
            });
        }
        Ok(missing)
    }
}

fn check_ascii_field(field: &'static str, value: &str, max: usize) -> Result<(), IsoError> {
    let reason = if value.len() > max {
        "it is too long"
    } else if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        "only printable ASCII is allowed"
    } else {
        return Ok(());
    };
    Err(IsoError::InvalidField {
        field,
        value: value.chars().take(140).collect(),
        reason,
    })
}

fn split_path(path: &str) -> Result<(Vec<&str>, &str), IsoError> {
    let invalid = |reason| IsoError::InvalidPath {
        path: path.chars().take(300).collect(),
        reason,
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if parts.len() > MAX_DEPTH {
        return Err(invalid("it is nested more than 8 levels deep"));
    }
    for part in &parts {
        check_name(part).map_err(invalid)?;
    }
    let (name, parents) = parts.split_last().ok_or_else(|| invalid("it is empty"))?;
    Ok((parents.to_vec(), name))
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it has an empty component");
    }
    if name == "." || name == ".." {
        return Err("it has a . or .. component");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("a component is longer than 100 bytes");
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return Err("a component holds a control character or a backslash");
    }
    if name.chars().any(|c| c as u32 > 0xffff) {
        return Err("a component holds a character outside the Basic Multilingual Plane");
    }
    Ok(())
}

fn walk_create<'a>(
    mut dir: &'a mut BTreeMap<String, Node>,
    parts: &[&str],
    path: &str,
) -> Result<&'a mut BTreeMap<String, Node>, IsoError> {
    for part in parts {
        let node = dir
            .entry(part.to_string())
            .or_insert_with(|| Node::Dir(BTreeMap::new()));
        dir = match node {
            Node::Dir(children) => children,
            Node::File(_) => return Err(IsoError::FileInTheWay(path.to_string())),
        };
    }
    Ok(dir)
}

/// A calendar time in UTC, as ISO 9660 records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DateTime {
    /// 2155-12-31 23:59:59, the last second a directory record can hold.
    const MAX_UNIX: i64 = 5_869_583_999;

    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The 7-byte form used in directory records and Rock Ridge `TF`.
    fn short(&self) -> [u8; 7] {
        [
            (self.year - 1900) as u8,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0,
        ]
    }

    /// The 17-byte form used in volume descriptors.
    fn long(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(&text.as_bytes()[..16]);
        out
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One entry of a directory as it appears in one tree (primary or Joliet).
#[derive(Debug, Clone)]
struct Entry {
    /// File identifier bytes as recorded.
    ident: Vec<u8>,
    /// The real name (for Rock Ridge `NM`).
    name: String,
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Dir(usize),
    File(usize),
}

/// A directory of one tree, in path-table order.
#[derive(Debug, Clone)]
struct DirInfo {
    ident: Vec<u8>,
    parent: usize,
    entries: Vec<Entry>,
    subdirs: u32,
    sector: usize,
    sectors: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Primary,
    Joliet,
}

/// Flattened source tree: directories (index 0 is the root) and files.
struct Flat<'a> {
    /// For each directory: its name and its children (name, target).
    dirs: Vec<(String, Vec<(String, Target)>)>,
    files: Vec<&'a [u8]>,
}

fn flatten(root: &BTreeMap<String, Node>) -> Flat<'_> {
    let mut flat = Flat {
        dirs: vec![(String::new(), Vec::new())],
        files: Vec::new(),
    };
    let mut queue = vec![(0usize, root)];
    let mut head = 0;
    while head < queue.len() {
        let (index, children) = queue[head];
        head += 1;
        for (name, node) in children {
            let target = match node {
                Node::Dir(grand) => {
                    flat.dirs.push((name.clone(), Vec::new()));
                    let child = flat.dirs.len() - 1;
                    queue.push((child, grand));
                    Target::Dir(child)
                }
                Node::File(data) => {
                    flat.files.push(data);
                    Target::File(flat.files.len() - 1)
                }
            };
            flat.dirs[index].1.push((name.clone(), target));
        }
    }
    flat
}

/// Every sector assignment of an image, planned before anything is written.
struct Layout<'a> {
    files: Vec<&'a [u8]>,
    file_sectors: Vec<usize>,
    primary: Vec<DirInfo>,
    joliet: Vec<DirInfo>,
    ce_sector: usize,
    path_tables: [(usize, Vec<u8>); 4],
    total_sectors: usize,
}

impl<'a> Layout<'a> {
    fn plan(root: &'a BTreeMap<String, Node>, options: &IsoOptions) -> Result<Self, IsoError> {
        let flat = flatten(root);
        let mut primary = tree_dirs(&flat, Tree::Primary);
        let mut joliet = tree_dirs(&flat, Tree::Joliet);
        let ce_sector = SYSTEM_AREA_SECTORS + 3;
        let mut next = ce_sector + 1;
        // Path tables need extents, extents need path table sizes: sizes
        // come first (they do not depend on locations).
        let table_sizes = [
            path_table(&primary, false).len(),
            path_table(&primary, true).len(),
            path_table(&joliet, false).len(),
            path_table(&joliet, true).len(),
        ];
        let mut table_sectors = [0usize; 4];
        for (slot, size) in table_sizes.iter().enumerate() {
            table_sectors[slot] = next;
            next += size.div_ceil(SECTOR);
        }
        for (tree, dirs) in [(Tree::Primary, &mut primary), (Tree::Joliet, &mut joliet)] {
            for index in 0..dirs.len() {
                let sectors = dir_sectors(dirs, index, tree);
                dirs[index].sector = next;
                dirs[index].sectors = sectors;
                next += sectors;
            }
        }
        let mut file_sectors = Vec::with_capacity(flat.files.len());
        for data in &flat.files {
            file_sectors.push(next);
            next += data.len().div_ceil(SECTOR);
        }
        let size = (next * SECTOR) as u64;
        if size > options.max_size {
            return Err(IsoError::TooLarge {
                size,
                limit: options.max_size,
            });
        }
        let path_tables = [
            (table_sectors[0], path_table(&primary, false)),
            (table_sectors[1], path_table(&primary, true)),
            (table_sectors[2], path_table(&joliet, false)),
            (table_sectors[3], path_table(&joliet, true)),
        ];
        Ok(Layout {
            files: flat.files,
            file_sectors,
            primary,
            joliet,
            ce_sector,
            path_tables,
            total_sectors: next,
        })
    }

    fn write(&self, options: &IsoOptions) -> Vec<u8> {
        let mut image = vec![0u8; self.total_sectors * SECTOR];
        let when = DateTime::from_unix(options.timestamp);
        self.write_descriptors(&mut image, options, when);
        write_er(&mut image[self.ce_sector * SECTOR..][..SECTOR]);
        for (sector, table) in &self.path_tables {
            image[sector * SECTOR..][..table.len()].copy_from_slice(table);
        }
        for (tree, dirs) in [(Tree::Primary, &self.primary), (Tree::Joliet, &self.joliet)] {
            for index in 0..dirs.len() {
                self.write_dir(&mut image, dirs, index, tree, when);
            }
        }
        for (data, sector) in self.files.iter().zip(&self.file_sectors) {
            image[sector * SECTOR..][..data.len()].copy_from_slice(data);
        }
        image
    }

    fn write_descriptors(&self, image: &mut [u8], options: &IsoOptions, when: DateTime) {
        for (slot, tree) in [(0, Tree::Primary), (1, Tree::Joliet)] {
            let start = (SYSTEM_AREA_SECTORS + slot) * SECTOR;
            let desc = &mut image[start..start + SECTOR];
            self.write_volume_descriptor(desc, options, when, tree);
        }
        let end = (SYSTEM_AREA_SECTORS + 2) * SECTOR;
        image[end] = 255;
        image[end + 1..end + 6].copy_from_slice(b"CD001");
        image[end + 6] = 1;
    }

    fn write_volume_descriptor(
        &self,
        desc: &mut [u8],
        options: &IsoOptions,
        when: DateTime,
        tree: Tree,
    ) {
        let (dirs, tables) = match tree {
            Tree::Primary => (&self.primary, &self.path_tables[0..2]),
            Tree::Joliet => (&self.joliet, &self.path_tables[2..4]),
        };
        desc[0] = if tree == Tree::Primary { 1 } else { 2 };
        desc[1..6].copy_from_slice(b"CD001");
        desc[6] = 1;
        put_text(&mut desc[8..40], &options.system_id, tree);
        put_text(&mut desc[40..72], &options.volume_id, tree);
        both32(&mut desc[80..88], self.total_sectors as u32);
        if tree == Tree::Joliet {
            desc[88..91].copy_from_slice(b"%/E");
        }
        both16(&mut desc[120..124], 1);
        both16(&mut desc[124..128], 1);
        both16(&mut desc[128..132], SECTOR as u16);
        both32(&mut desc[132..140], tables[0].1.len() as u32);
        desc[140..144].copy_from_slice(&(tables[0].0 as u32).to_le_bytes());
        desc[148..152].copy_from_slice(&(tables[1].0 as u32).to_be_bytes());
        let root = &dirs[0];
        let record = dir_record(&[0], root.sector, root.sectors * SECTOR, true, when, &[]);
        desc[156..190].copy_from_slice(&record);
        put_text(&mut desc[190..318], "", tree);
        put_text(&mut desc[318..446], &options.publisher, tree);
        put_text(&mut desc[446..574], "", tree);
        put_text(&mut desc[574..702], &options.application_id, tree);
        put_text(&mut desc[702..739], "", tree);
        put_text(&mut desc[739..776], "", tree);
        put_text(&mut desc[776..813], "", tree);
        desc[813..830].copy_from_slice(&when.long());
        desc[830..847].copy_from_slice(&when.long());
        desc[847..863].copy_from_slice(b"0000000000000000");
        desc[864..881].copy_from_slice(&when.long());
        desc[881] = 1;
    }

    fn write_dir(
        &self,
        image: &mut [u8],
        dirs: &[DirInfo],
        index: usize,
        tree: Tree,
        when: DateTime,
    ) {
        let records = self.dir_records(dirs, index, tree, when);
        let mut pos = dirs[index].sector * SECTOR;
        let mut used = 0;
        for record in records {
            if used + record.len() > SECTOR {
                pos += SECTOR - used;
                used = 0;
            }
            image[pos..pos + record.len()].copy_from_slice(&record);
            pos += record.len();
            used += record.len();
        }
    }

    fn dir_records(
        &self,
        dirs: &[DirInfo],
        index: usize,
        tree: Tree,
        when: DateTime,
    ) -> Vec<Vec<u8>> {
        let dir = &dirs[index];
        let parent = &dirs[dir.parent];
        let rr = tree == Tree::Primary;
        let mut out = Vec::with_capacity(dir.entries.len() + 2);
        let dot_su = if rr {
            let mut su = Vec::new();
            if index == 0 {
                su.extend_from_slice(&[b'S', b'P', 7, 1, 0xbe, 0xef, 0]);
            }
            su.extend(rr_entries(None, MODE_DIR, 2 + dir.subdirs, when));
            if index == 0 {
                su.extend(ce_entry(self.ce_sector, er_len()));
            }
            su
        } else {
            Vec::new()
        };
        out.push(dir_record(
            &[0],
            dir.sector,
            dir.sectors * SECTOR,
            true,
            when,
            &dot_su,
        ));
        let dotdot_su = if rr {
            rr_entries(None, MODE_DIR, 2 + parent.subdirs, when)
        } else {
            Vec::new()
        };
        let parent_len = parent.sectors * SECTOR;
        out.push(dir_record(
            &[1],
            parent.sector,
            parent_len,
            true,
            when,
            &dotdot_su,
        ));
        for entry in &dir.entries {
            out.push(self.entry_record(dirs, entry, rr, when));
        }
        out
    }

    fn entry_record(&self, dirs: &[DirInfo], entry: &Entry, rr: bool, when: DateTime) -> Vec<u8> {
        let (sector, len, is_dir, mode, links) = match entry.target {
            Target::Dir(d) => {
                let info = &dirs[d];
                (
                    info.sector,
                    info.sectors * SECTOR,
                    true,
                    MODE_DIR,
                    2 + info.subdirs,
                )
            }
            Target::File(f) => (
                self.file_sectors[f],
                self.files[f].len(),
                false,
                MODE_FILE,
                1,
            ),
        };
        let su = if rr {
            rr_entries(Some(&entry.name), mode, links, when)
        } else {
            Vec::new()
        };
        dir_record(&entry.ident, sector, len, is_dir, when, &su)
    }
}

/// The directories of one tree in path-table order, with each directory's
/// entries sorted by their identifier in that tree.
fn tree_dirs(flat: &Flat<'_>, tree: Tree) -> Vec<DirInfo> {
    // Order directories breadth first, children by this tree's identifiers,
    // which is the order path tables need.
    let mut order = vec![0usize];
    let mut position = vec![usize::MAX; flat.dirs.len()];
    position[0] = 0;
    let mut parents = vec![0usize];
    let mut entries_of = Vec::new();
    let mut head = 0;
    while head < order.len() {
        let source = order[head];
        let entries = sorted_entries(&flat.dirs[source].1, tree);
        for entry in &entries {
            if let Target::Dir(child) = entry.target {
                position[child] = order.len();
                order.push(child);
                parents.push(head);
            }
        }
        entries_of.push(entries);
        head += 1;
    }
    order
        .iter()
        .zip(entries_of)
        .enumerate()
        .map(|(index, (&source, entries))| {
            let entries: Vec<Entry> = entries
                .into_iter()
                .map(|mut entry| {
                    if let Target::Dir(child) = entry.target {
                        entry.target = Target::Dir(position[child]);
                    }
                    entry
                })
                .collect();
            let subdirs = entries
                .iter()
                .filter(|e| matches!(e.target, Target::Dir(_)))
                .count() as u32;
            DirInfo {
                ident: if index == 0 {
                    vec![0]
                } else {
                    dir_ident(&flat.dirs[source].0, tree)
                },
                parent: parents[index],
                entries,
                subdirs,
                sector: 0,
                sectors: 0,
            }
        })
        .collect()
}

fn sorted_entries(children: &[(String, Target)], tree: Tree) -> Vec<Entry> {
    let mut entries: Vec<Entry> = children
        .iter()
        .map(|(name, target)| Entry {
            ident: match target {
                Target::Dir(_) => dir_ident(name, tree),
                Target::File(_) => file_ident(name, tree),
            },
            name: name.clone(),
            target: *target,
        })
        .collect();
    entries.sort_by(|a, b| a.ident.cmp(&b.ident));
    make_unique(&mut entries, tree);
    entries
}

/// Mangled identifiers can collide (`a-b` and `a_b`); give later ones a
/// numeric tail so that every identifier in a directory is distinct.
fn make_unique(entries: &mut [Entry], tree: Tree) {
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries.iter_mut() {
        let mut counter = 0u32;
        let original = entry.ident.clone();
        while !seen.insert(entry.ident.clone()) {
            counter += 1;
            entry.ident = with_counter(&original, counter, tree);
        }
    }
}

fn with_counter(ident: &[u8], counter: u32, tree: Tree) -> Vec<u8> {
    let tag = format!("~{counter}");
    match tree {
        Tree::Primary => {
            let keep = ident
                .len()
                .saturating_sub(tag.len() + 2)
                .min(PRIMARY_NAME_CHARS);
            let mut out = ident[..keep].to_vec();
            out.extend_from_slice(tag.as_bytes());
            if ident.ends_with(b";1") {
                out.extend_from_slice(b";1");
            }
            out
        }
        Tree::Joliet => {
            let units = ident.len() / 2;
            let keep = units.saturating_sub(tag.len() + 2).min(JOLIET_NAME_CHARS) * 2;
            let mut out = ident[..keep].to_vec();
            out.extend(ucs2(&tag));
            if ident.ends_with(&[0, b';', 0, b'1']) {
                out.extend(ucs2(";1"));
            }
            out
        }
    }
}

fn primary_char(c: char) -> u8 {
    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
        c as u8
    } else {
        b'_'
    }
}

fn dir_ident(name: &str, tree: Tree) -> Vec<u8> {
    match tree {
        Tree::Primary => name
            .chars()
            .take(PRIMARY_NAME_CHARS)
            .map(primary_char)
            .collect(),
        Tree::Joliet => ucs2(&joliet_name(name)),
    }
}

fn file_ident(name: &str, tree: Tree) -> Vec<u8> {
    match tree {
        Tree::Primary => {
            let mut out: Vec<u8> = name
                .chars()
                .take(PRIMARY_NAME_CHARS)
                .map(primary_char)
                .collect();
            if !out.contains(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(b";1");
            out
        }
        Tree::Joliet => ucs2(&format!("{};1", joliet_name(name))),
    }
}

fn joliet_name(name: &str) -> String {
    name.chars()
        .take(JOLIET_NAME_CHARS)
        .map(|c| match c {
            '*' | '/' | ':' | ';' | '?' | '\\' => '_',
            other => other,
        })
        .collect()
}

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn put_text(field: &mut [u8], text: &str, tree: Tree) {
    match tree {
        Tree::Primary => {
            field.fill(b' ');
            field[..text.len()].copy_from_slice(text.as_bytes());
        }
        Tree::Joliet => {
            for pair in field.chunks_mut(2) {
                pair.copy_from_slice(&[0, b' '][..pair.len()]);
            }
            let encoded = ucs2(text);
            let len = encoded.len().min(field.len() / 2 * 2);
            field[..len].copy_from_slice(&encoded[..len]);
        }
    }
}

fn path_table(dirs: &[DirInfo], big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for dir in dirs {
        out.push(dir.ident.len() as u8);
        out.push(0);
        let sector = dir.sector as u32;
        let parent = (dir.parent + 1) as u16;
        if big_endian {
            out.extend_from_slice(&sector.to_be_bytes());
            out.extend_from_slice(&parent.to_be_bytes());
        } else {
            out.extend_from_slice(&sector.to_le_bytes());
            out.extend_from_slice(&parent.to_le_bytes());
        }
        out.extend_from_slice(&dir.ident);
        if dir.ident.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

/// Sectors a directory's records take (records never straddle sectors).
fn dir_sectors(dirs: &[DirInfo], index: usize, tree: Tree) -> usize {
    let rr = tree == Tree::Primary;
    let su_dir = if rr { rr_len(None) } else { 0 };
    let mut lens = vec![record_len(1, su_dir + if index == 0 { 7 + 28 } else { 0 })];
    lens.push(record_len(1, su_dir));
    for entry in &dirs[index].entries {
        let su = if rr { rr_len(Some(&entry.name)) } else { 0 };
        lens.push(record_len(entry.ident.len(), su));
    }
    let mut sectors = 1;
    let mut used = 0;
    for len in lens {
        if used + len > SECTOR {
            sectors += 1;
            used = 0;
        }
        used += len;
    }
    sectors
}

fn record_len(ident_len: usize, su_len: usize) -> usize {
    let base = 33 + ident_len + usize::from(ident_len.is_multiple_of(2));
    let total = base + su_len;
    total + total % 2
}

fn dir_record(
    ident: &[u8],
    sector: usize,
    len: usize,
    is_dir: bool,
    when: DateTime,
    su: &[u8],
) -> Vec<u8> {
    let total = record_len(ident.len(), su.len());
    // Name limits keep every record within the one-byte length.
    debug_assert!(total <= 255, "directory record of {total} bytes");
    let mut rec = vec![0u8; total];
    rec[0] = total as u8;
    both32(&mut rec[2..10], sector as u32);
    both32(&mut rec[10..18], len as u32);
    rec[18..25].copy_from_slice(&when.short());
    rec[25] = if is_dir { 2 } else { 0 };
    both16(&mut rec[28..32], 1);
    rec[32] = ident.len() as u8;
    rec[33..33 + ident.len()].copy_from_slice(ident);
    let su_start = 33 + ident.len() + usize::from(ident.len().is_multiple_of(2));
    rec[su_start..su_start + su.len()].copy_from_slice(su);
    rec
}

fn rr_len(name: Option<&str>) -> usize {
    5 + 36 + 26 + name.map_or(0, |n| 5 + n.len())
}

/// `RR`, `NM` (for named entries), `PX` and `TF` entries of one record.
fn rr_entries(name: Option<&str>, mode: u32, links: u32, when: DateTime) -> Vec<u8> {
    let mut su = Vec::with_capacity(rr_len(name));
    let flags = if name.is_some() { 0x89 } else { 0x81 };
    su.extend_from_slice(&[b'R', b'R', 5, 1, flags]);
    if let Some(name) = name {
        su.extend_from_slice(&[b'N', b'M', (5 + name.len()) as u8, 1, 0]);
        su.extend_from_slice(name.as_bytes());
    }
    let mut px = [0u8; 36];
    px[..4].copy_from_slice(&[b'P', b'X', 36, 1]);
    both32(&mut px[4..12], mode);
    both32(&mut px[12..20], links);
    su.extend_from_slice(&px);
    su.extend_from_slice(&[b'T', b'F', 26, 1, 0x0e]);
    for _ in 0..3 {
        su.extend_from_slice(&when.short());
    }
    su
}

fn er_len() -> usize {
    8 + ER_ID.len() + ER_DESCRIPTOR.len() + ER_SOURCE.len()
}

fn ce_entry(sector: usize, len: usize) -> [u8; 28] {
    let mut ce = [0u8; 28];
    ce[..4].copy_from_slice(&[b'C', b'E', 28, 1]);
    both32(&mut ce[4..12], sector as u32);
    both32(&mut ce[12..20], 0);
    both32(&mut ce[20..28], len as u32);
    ce
}

fn write_er(area: &mut [u8]) {
    let head = [
        b'E',
        b'R',
        er_len() as u8,
        1,
        ER_ID.len() as u8,
        ER_DESCRIPTOR.len() as u8,
        ER_SOURCE.len() as u8,
        1,
    ];
    let body = [ER_ID, ER_DESCRIPTOR, ER_SOURCE].concat();
    area[..8].copy_from_slice(&head);
    area[8..8 + body.len()].copy_from_slice(body.as_bytes());
}

fn both16(field: &mut [u8], value: u16) {
    field[..2].copy_from_slice(&value.to_le_bytes());
    field[2..4].copy_from_slice(&value.to_be_bytes());
}

fn both32(field: &mut [u8], value: u32) {
    field[..4].copy_from_slice(&value.to_le_bytes());
    field[4..8].copy_from_slice(&value.to_be_bytes());
}

/// The volume id of an ISO 9660 image, when `head` (the first 34 KiB or
/// more of a device) holds one.
pub fn volume_id(head: &[u8]) -> Option<String> {
    let pvd = head.get(SYSTEM_AREA_SECTORS * SECTOR..SYSTEM_AREA_SECTORS * SECTOR + 190)?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return None;
    }
    let id = String::from_utf8_lossy(&pvd[40..72]);
    Some(id.trim_end_matches([' ', '\0']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IsoBuilder {
        let mut iso = IsoBuilder::new(IsoOptions::new("config-2", 1_700_000_000)).unwrap();
        iso.add_file("openstack/latest/meta_data.json", b"{}".to_vec())
            .unwrap();
        iso.add_file("openstack/2012-08-10/user_data", b"#!/bin/sh\n".to_vec())
            .unwrap();
        iso
    }

    fn read_u32_le(image: &[u8], at: usize) -> usize {
        u32::from_le_bytes(image[at..at + 4].try_into().unwrap()) as usize
    }

    /// A tiny Rock Ridge reader: (real name, is_dir, extent, size) of every
    /// entry of the directory at `sector`.
    fn list(image: &[u8], sector: usize) -> Vec<(String, bool, usize, usize)> {
        let mut out = Vec::new();
        let mut pos = sector * SECTOR;
        let size = read_u32_le(image, pos + 10);
        let end = pos + size;
        while pos < end {
            let len = image[pos] as usize;
            if len == 0 {
                pos = (pos / SECTOR + 1) * SECTOR;
                continue;
            }
            let rec = &image[pos..pos + len];
            let id_len = rec[32] as usize;
            let mut su = 33 + id_len + usize::from(id_len.is_multiple_of(2));
            let mut name = None;
            while su + 4 <= len {
                let entry_len = rec[su + 2] as usize;
                if &rec[su..su + 2] == b"NM" {
                    name = Some(String::from_utf8(rec[su + 5..su + entry_len].to_vec()).unwrap());
                }
                if entry_len == 0 {
                    break;
                }
                su += entry_len;
            }
            if let Some(name) = name {
                out.push((
                    name,
                    rec[25] & 2 != 0,
                    read_u32_le(rec, 2),
                    read_u32_le(rec, 10),
                ));
            }
            pos += len;
        }
        out
    }

    #[test]
    fn layout_has_descriptors_and_volume_id() {
        let image = sample().build().unwrap();
        assert_eq!(image.len() % SECTOR, 0);
        assert_eq!(&image[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(image[17 * SECTOR], 2);
        assert_eq!(&image[17 * SECTOR + 88..17 * SECTOR + 91], b"%/E");
        assert_eq!(image[18 * SECTOR], 255);
        assert_eq!(volume_id(&image).as_deref(), Some("config-2"));
        let sectors = read_u32_le(&image, 16 * SECTOR + 80);
        assert_eq!(sectors * SECTOR, image.len());
    }

    #[test]
    fn rock_ridge_names_and_contents_round_trip() {
        let image = sample().build().unwrap();
        let root = read_u32_le(&image, 16 * SECTOR + 156 + 2);
        let top = list(&image, root);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, "openstack");
        let versions = list(&image, top[0].2);
        let names: Vec<&str> = versions.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(names, ["2012-08-10", "latest"]);
        let files = list(&image, versions[0].2);
        assert_eq!(files[0].0, "user_data");
        let (_, is_dir, extent, size) = files[0];
        assert!(!is_dir);
        assert_eq!(
            &image[extent * SECTOR..extent * SECTOR + size],
            b"#!/bin/sh\n"
        );
    }

    #[test]
    fn root_carries_sp_and_continuation_to_er() {
        let image = sample().build().unwrap();
        let root = read_u32_le(&image, 16 * SECTOR + 156 + 2);
        let dot = &image[root * SECTOR..];
        assert_eq!(&dot[34..36], b"SP");
        let ce = (0..dot[0] as usize - 1)
            .find(|&i| &dot[i..i + 2] == b"CE")
            .unwrap();
        let er_sector = read_u32_le(dot, ce + 4);
        assert_eq!(&image[er_sector * SECTOR..er_sector * SECTOR + 2], b"ER");
        assert_eq!(
            &image[er_sector * SECTOR + 8..er_sector * SECTOR + 18],
            ER_ID.as_bytes()
        );
    }

    #[test]
    fn primary_names_are_relaxed_iso_names() {
        assert_eq!(
            file_ident("meta_data.json", Tree::Primary),
            b"meta_data.json;1"
        );
        assert_eq!(file_ident("user_data", Tree::Primary), b"user_data.;1");
        assert_eq!(dir_ident("2012-08-10", Tree::Primary), b"2012_08_10");
        assert_eq!(file_ident("a;b", Tree::Joliet), ucs2("a_b;1"));
    }

    #[test]
    fn colliding_mangled_names_get_distinct_identifiers() {
        let mut iso = IsoBuilder::new(IsoOptions::new("x", 0)).unwrap();
        iso.add_file("a-b", vec![1]).unwrap();
        iso.add_file("a_b", vec![2]).unwrap();
        let flat_root = &iso.root;
        let flat = flatten(flat_root);
        let dirs = tree_dirs(&flat, Tree::Primary);
        let idents: Vec<&[u8]> = dirs[0].entries.iter().map(|e| e.ident.as_slice()).collect();
        assert_eq!(idents.len(), 2);
        assert_ne!(idents[0], idents[1]);
        assert!(iso.build().is_ok());
    }

    #[test]
    fn output_is_deterministic_and_depends_on_the_timestamp() {
        let a = sample().build().unwrap();
        let b = sample().build().unwrap();
        assert_eq!(a, b);
        let mut other = IsoBuilder::new(IsoOptions::new("config-2", 1_700_000_001)).unwrap();
        other
            .add_file("openstack/latest/meta_data.json", b"{}".to_vec())
            .unwrap();
        other
            .add_file("openstack/2012-08-10/user_data", b"#!/bin/sh\n".to_vec())
            .unwrap();
        assert_ne!(a, other.build().unwrap());
    }

    #[test]
    fn large_directories_span_several_sectors() {
        let mut iso = IsoBuilder::new(IsoOptions::new("big", 0)).unwrap();
        for i in 0..200 {
            iso.add_file(&format!("d/file-number-{i:04}.json"), vec![b'x'; i])
                .unwrap();
        }
        let image = iso.build().unwrap();
        let root = read_u32_le(&image, 16 * SECTOR + 156 + 2);
        let d = list(&image, root)[0].2;
        let files = list(&image, d);
        assert_eq!(files.len(), 200);
        let (_, _, extent, size) = files[123];
        assert_eq!(size, 123);
        assert!(image[extent * SECTOR..extent * SECTOR + size]
            .iter()
            .all(|&b| b == b'x'));
    }

    #[test]
    fn absurd_inputs_are_refused() {
        let mut iso = IsoBuilder::new(IsoOptions::new("v", 0)).unwrap();
        let long = "n".repeat(101);
        assert!(matches!(
            iso.add_file(&long, vec![]),
            Err(IsoError::InvalidPath { .. })
        ));
        assert!(matches!(
            iso.add_file("a/b/c/d/e/f/g/h/i", vec![]),
            Err(IsoError::InvalidPath { .. })
        ));
        assert!(iso.add_file("a/../b", vec![]).is_err());
        assert!(iso.add_file("a//b", vec![]).is_err());
        assert!(iso.add_file("", vec![]).is_err());
        assert!(iso.add_file("bad\u{1}name", vec![]).is_err());
        iso.add_file("f", vec![]).unwrap();
        assert_eq!(
            iso.add_file("f", vec![]),
            Err(IsoError::Duplicate("f".to_string()))
        );
        assert!(matches!(
            iso.add_file("f/g", vec![]),
            Err(IsoError::FileInTheWay(_))
        ));
        assert!(IsoBuilder::new(IsoOptions::new("", 0)).is_err());
        assert!(IsoBuilder::new(IsoOptions::new(&"v".repeat(33), 0)).is_err());
        assert!(IsoBuilder::new(IsoOptions::new("é", 0)).is_err());
        assert!(IsoBuilder::new(IsoOptions::new("v", -1)).is_err());
    }

    #[test]
    fn size_and_count_limits_hold() {
        let mut options = IsoOptions::new("v", 0);
        options.max_size = 100 * 1024;
        let mut iso = IsoBuilder::new(options).unwrap();
        iso.add_file("a", vec![0; 60 * 1024]).unwrap();
        iso.add_file("b", vec![0; 60 * 1024]).unwrap();
        assert!(matches!(iso.build(), Err(IsoError::TooLarge { .. })));
        assert!(matches!(
            iso.add_file("c", vec![0; 200 * 1024]),
            Err(IsoError::TooLarge { .. })
        ));
        let mut many = IsoBuilder::new(IsoOptions::new("v", 0)).unwrap();
        let mut result = Ok(());
        for i in 0..=MAX_ENTRIES {
            result = many.add_file(&format!("f{i}"), Vec::new());
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(IsoError::TooManyEntries { .. })));
    }

    #[test]
    fn dates_convert_from_unix_time() {
        let d = DateTime::from_unix(0);
        assert_eq!((d.year, d.month, d.day), (1970, 1, 1));
        let d = DateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
        let d = DateTime::from_unix(1_700_000_000);
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(&d.long()[..16], b"2023111422132000");
        let last = DateTime::from_unix(DateTime::MAX_UNIX);
        assert_eq!((last.year, last.month, last.day), (2155, 12, 31));
    }

    #[test]
    fn volume_id_ignores_other_data() {
        assert_eq!(volume_id(&[0u8; 40_000]), None);
        assert_eq!(volume_id(&[1u8; 100]), None);
    }
}
