//! Root device hints: which disk to deploy onto, parsed and matched as
//! IPA's `device_hints.py` (with oslo.utils' `specs_matcher`) does, so the
//! conductor can validate hints at deploy time and the agent picks the same
//! disk IPA would.
//!
//! Hints (`properties.root_device` / `instance_info.root_device`):
//! `size` (GiB, integer), `rotational` (boolean), and the strings `model`,
//! `vendor`, `serial`, `wwn`, `wwn_with_extension`, `wwn_vendor_extension`,
//! `name`, `hctl`, `by_path`, `tran`. A value may start with an operator:
//! `==`, `!=`, `>=`, `>`, `<=`, `<`, `=` (means >=) for numbers; `s==`,
//! `s!=`, `s>=`, `s>`, `s<=`, `s<`, `<in>` (substring) for strings;
//! `<or> a <or> b`, `<all-in>`, and `<range-in> [ 10 20 )` (size, as Ironic
//! accepts it). Without an operator, `==` (numbers) or `s==` (strings) is
//! meant. Strings compare lower-cased and URL-quoted, as IPA normalizes them.
//!
//! Ferric's differences, each for a hint IPA would silently never match:
//! a `name` without a `/` means `/dev/NAME` (`sda` = `/dev/sda`); `<or>`
//! on `size` compares numbers (IPA compares a float with a string).
//! As in IPA, a device attribute that is missing never matches, except a
//! single-valued string attribute, which IPA compares as the text `none`.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::python_repr;
use crate::inventory::BlockDevice;

/// IPA's default minimum size for a root disk chosen without hints: 4 GiB.
pub const MIN_ROOT_DISK_BYTES: u64 = 4 * 1024 * 1024 * 1024;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A hint's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HintName {
    /// Size in GiB.
    Size,
    /// Model.
    Model,
    /// World wide name.
    Wwn,
    /// Serial number.
    Serial,
    /// Vendor.
    Vendor,
    /// WWN with extension.
    WwnWithExtension,
    /// WWN vendor extension.
    WwnVendorExtension,
    /// Device name (`/dev/sda`).
    Name,
    /// Spinning disk.
    Rotational,
    /// SCSI address.
    Hctl,
    /// `/dev/disk/by-path/...`.
    ByPath,
    /// Transport (`sata`, `nvme`, ...).
    Tran,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HintType {
    Int,
    Str,
    Bool,
}

impl HintName {
    /// Every hint, in IPA's `VALID_ROOT_DEVICE_HINTS` order.
    pub const ALL: [HintName; 12] = [
        Self::Size,
        Self::Model,
        Self::Wwn,
        Self::Serial,
        Self::Vendor,
        Self::WwnWithExtension,
        Self::WwnVendorExtension,
        Self::Name,
        Self::Rotational,
        Self::Hctl,
        Self::ByPath,
        Self::Tran,
    ];

    /// The JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Model => "model",
            Self::Wwn => "wwn",
            Self::Serial => "serial",
            Self::Vendor => "vendor",
            Self::WwnWithExtension => "wwn_with_extension",
            Self::WwnVendorExtension => "wwn_vendor_extension",
            Self::Name => "name",
            Self::Rotational => "rotational",
            Self::Hctl => "hctl",
            Self::ByPath => "by_path",
            Self::Tran => "tran",
        }
    }

    /// The hint for a JSON key.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == key)
    }

    fn hint_type(self) -> HintType {
        match self {
            Self::Size => HintType::Int,
            Self::Rotational => HintType::Bool,
            _ => HintType::Str,
        }
    }
}

/// Why hints are invalid; the texts are IPA's `ValueError` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    /// The hints are not a JSON object.
    #[error("Root device hints must be a JSON object, got: {0}")]
    NotAnObject(String),
    /// Unknown hint names.
    #[error("The hints \"{invalid}\" are invalid. Valid hints are: \"{valid}\"")]
    Unknown {
        /// The unknown names, comma-separated.
        invalid: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// An empty expression.
    #[error("Root device hint {0} expression is empty")]
    Empty(String),
    /// An expression the operator grammar cannot read.
    #[error("Root device hint \"{name}\" cannot be parsed. Hint expression: {expression}")]
    Unparsable {
        /// The hint.
        name: String,
        /// Its expression.
        expression: String,
    },
    /// A string hint given as something else.
    #[error("Root device hint \"{name}\" is not a string value. Hint expression: {expression}")]
    NotAString {
        /// The hint.
        name: String,
        /// Its expression.
        expression: String,
    },
    /// A size that is not an integer.
    #[error("Root device hint \"{name}\" is not an integer value. Current value: {expression}")]
    NotAnInteger {
        /// The hint.
        name: String,
        /// Its expression.
        expression: String,
    },
    /// A size of zero or less.
    #[error(
        "Root device hint \"{name}\" should be a positive integer. Current value: {expression}"
    )]
    NotPositive {
        /// The hint.
        name: String,
        /// Its expression.
        expression: String,
    },
    /// A rotational hint that is not a boolean.
    #[error("Root device hint \"{name}\" is not a Boolean value. Current value: {expression}")]
    NotABoolean {
        /// The hint.
        name: String,
        /// Its expression.
        expression: String,
    },
}

/// Parses a boolean as oslo's `bool_from_string(strict=True)`:
/// `1 t true on y yes` / `0 f false off n no`, any case, trimmed.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// `str(value)` as Python prints a JSON value given as a hint.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

// ---- the specs_matcher grammar -------------------------------------------

/// Unary operators in pyparsing's MatchFirst order.
const UNARY_OPS: [&str; 14] = [
    "==", "=", "!=", "<in>", ">=", "<=", ">", "<", "s==", "s!=", "s<=", "s<", "s>=", "s>",
];
const ALL_IN: &str = "<all-in>";
const OR: &str = "<or>";
const RANGE_IN: &str = "<range-in>";

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        self.pos += rest.len() - trimmed.len();
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn literal(&mut self, lit: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn unary_op(&mut self) -> Option<&'static str> {
        self.skip_ws();
        let op = UNARY_OPS
            .into_iter()
            .find(|op| self.rest().starts_with(op))?;
        self.pos += op.len();
        Some(op)
    }

    fn starts_with_keyword(&self) -> bool {
        let rest = self.rest();
        UNARY_OPS
            .iter()
            .chain(&[ALL_IN, OR, RANGE_IN])
            .any(|k| rest.starts_with(k))
    }

    /// `~(keywords) + Regex(r"\S+")`.
    fn atom(&mut self) -> Option<String> {
        self.skip_ws();
        if self.starts_with_keyword() {
            return None;
        }
        let rest = self.rest();
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(rest[..len].to_owned())
    }
}

/// The tokens pyparsing's `parseString` returns for the specs grammar
/// (`disjunction | nary | range_op | unary | atom`), or `None` where it
/// raises `ParseException`. Trailing text is ignored, as pyparsing does.
fn parse_spec(text: &str) -> Option<Vec<String>> {
    type Alternative = fn(&mut Cursor<'_>) -> Option<Vec<String>>;
    let alternatives: [Alternative; 5] = [disjunction, nary, range_op, unary, |c| {
        c.atom().map(|a| vec![a])
    }];
    alternatives
        .into_iter()
        .find_map(|alt| alt(&mut Cursor { text, pos: 0 }))
}

fn disjunction(c: &mut Cursor<'_>) -> Option<Vec<String>> {
    let mut tokens = vec![OR.to_owned()];
    loop {
        let save = c.pos;
        if !c.literal(OR) {
            break;
        }
        match c.atom() {
            Some(atom) => tokens.push(atom),
            None => {
                c.pos = save;
                break;
            }
        }
    }
    (tokens.len() > 1).then_some(tokens)
}

fn nary(c: &mut Cursor<'_>) -> Option<Vec<String>> {
    if !c.literal(ALL_IN) {
        return None;
    }
    let mut tokens = vec![ALL_IN.to_owned()];
    while let Some(atom) = c.atom() {
        tokens.push(atom);
    }
    (tokens.len() > 1).then_some(tokens)
}

fn range_op(c: &mut Cursor<'_>) -> Option<Vec<String>> {
    if !c.literal(RANGE_IN) {
        return None;
    }
    let mut tokens = vec![RANGE_IN.to_owned()];
    for _ in 0..4 {
        tokens.push(c.atom()?);
    }
    Some(tokens)
}

fn unary(c: &mut Cursor<'_>) -> Option<Vec<String>> {
    let op = c.unary_op()?;
    Some(vec![op.to_owned(), c.atom()?])
}

// ---- IPA's expression helpers --------------------------------------------

/// `_extract_hint_operator_and_values`: the operator ("" for none) and the
/// lower-cased values.
fn extract_op_values(expression: &str, name: &str) -> Result<(String, Vec<String>), HintError> {
    let expr = expression.trim().to_lowercase();
    if expr.is_empty() {
        return Err(HintError::Empty(name.to_owned()));
    }
    let tokens = parse_spec(&expr).ok_or_else(|| HintError::Unparsable {
        name: name.to_owned(),
        expression: expression.to_owned(),
    })?;
    if tokens.len() <= 1 {
        return Ok((String::new(), vec![expr]));
    }
    let op = tokens[0].clone();
    let values = expr
        .split(op.as_str())
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().to_owned())
        .collect();
    Ok((op, values))
}

/// Python's `urllib.parse.quote(text)` (safe characters: `/` and
/// unreserved ones).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn with_dev_prefix(value: String) -> String {
    if value.contains('/') || value.is_empty() {
        value
    } else {
        format!("/dev/{value}")
    }
}

/// `_normalize_hint_expression`: values URL-quoted, the operator kept.
fn normalize(expression: &str, name: HintName) -> Result<String, HintError> {
    let (op, mut values) = extract_op_values(expression, name.as_str())?;
    if name == HintName::Name {
        values = values.into_iter().map(with_dev_prefix).collect();
    }
    let joined = values
        .iter()
        .map(|v| format!(" {} ", quote(v)))
        .collect::<Vec<_>>()
        .join(&op);
    Ok(format!("{op}{joined}").trim().to_owned())
}

/// Python's `int(text)` succeeds (sign, digits, single underscores between
/// digits, surrounding whitespace); returns whether the value is > 0.
fn python_int_is_positive(text: &str) -> Option<bool> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !valid {
        return None;
    }
    let non_zero = digits.bytes().any(|b| (b'1'..=b'9').contains(&b));
    Some(non_zero && !negative)
}

/// A parsed hint: its normalized expression (with an operator) or boolean.
#[derive(Debug, Clone, PartialEq)]
enum ParsedHint {
    Spec(String),
    Bool(bool),
}

/// Validated root device hints.
#[derive(Debug, Clone, PartialEq)]
pub struct RootDeviceHints {
    hints: Vec<(HintName, ParsedHint)>,
}

impl RootDeviceHints {
    /// `parse_root_device_hints`: `Ok(None)` for null or `{}`.
    pub fn parse(value: &Value) -> Result<Option<Self>, HintError> {
        let object = match value {
            Value::Null => return Ok(None),
            Value::Object(o) => o,
            other => return Err(HintError::NotAnObject(python_repr(other))),
        };
        if object.is_empty() {
            return Ok(None);
        }
        let mut invalid: Vec<&str> = object
            .keys()
            .filter(|k| HintName::from_key(k).is_none())
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            invalid.sort_unstable();
            let valid = HintName::ALL.map(HintName::as_str).join(", ");
            return Err(HintError::Unknown {
                invalid: invalid.join(", "),
                valid,
            });
        }
        let mut hints = Vec::with_capacity(object.len());
        for (key, expression) in object {
            if let Some(name) = HintName::from_key(key) {
                hints.push((name, parse_one(name, expression)?));
            }
        }
        Ok(Some(Self { hints }))
    }

    /// The parsed hints as IPA's `parse_root_device_hints` returns them:
    /// `{"size": "== 10", "model": "s== foo%20bar", "rotational": true}`.
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = self
            .hints
            .iter()
            .map(|(name, hint)| {
                let value = match hint {
                    ParsedHint::Spec(s) => Value::String(s.clone()),
                    ParsedHint::Bool(b) => Value::Bool(*b),
                };
                (name.as_str().to_owned(), value)
            })
            .collect();
        Value::Object(map)
    }

    /// True when `device` satisfies every hint.
    pub fn matches<D: HintDevice + ?Sized>(&self, device: &D) -> bool {
        self.hints
            .iter()
            .all(|(name, hint)| hint_matches(*name, hint, device.hint_value(*name)))
    }

    /// Every matching device, in order (`find_devices_by_hints`).
    pub fn find_all<'a, D: HintDevice>(
        &'a self,
        devices: &'a [D],
    ) -> impl Iterator<Item = &'a D> + 'a {
        devices.iter().filter(move |d| self.matches(*d))
    }

    /// The first matching device (`match_root_device_hints`).
    pub fn find_first<'a, D: HintDevice>(&self, devices: &'a [D]) -> Option<&'a D> {
        devices.iter().find(|d| self.matches(*d))
    }
}

fn parse_one(name: HintName, expression: &Value) -> Result<ParsedHint, HintError> {
    let text = python_str(expression);
    let err_fields = || (name.as_str().to_owned(), text.clone());
    let (op, values) = extract_op_values(&text, name.as_str())?;
    match name.hint_type() {
        HintType::Int if op == RANGE_IN => Ok(ParsedHint::Spec(text.clone())),
        HintType::Str => {
            let Value::String(s) = expression else {
                let (name, expression) = err_fields();
                return Err(HintError::NotAString { name, expression });
            };
            let normalized = normalize(s, name)?;
            Ok(ParsedHint::Spec(with_default_op(normalized, "s==")))
        }
        HintType::Int => {
            for v in &values {
                match python_int_is_positive(v) {
                    None => {
                        let (name, expression) = err_fields();
                        return Err(HintError::NotAnInteger { name, expression });
                    }
                    Some(false) => {
                        let (name, expression) = err_fields();
                        return Err(HintError::NotPositive { name, expression });
                    }
                    Some(true) => {}
                }
            }
            Ok(ParsedHint::Spec(with_default_op(text.clone(), "==")))
        }
        HintType::Bool => {
            let parsed = match expression {
                Value::Bool(b) => Some(*b),
                _ => parse_bool(&text),
            };
            parsed.map(ParsedHint::Bool).ok_or_else(|| {
                let (name, expression) = err_fields();
                HintError::NotABoolean { name, expression }
            })
        }
    }
}

/// `_append_operator_to_hints`: an expression without operator gets one.
fn with_default_op(expression: String, op: &str) -> String {
    match parse_spec(&expression) {
        Some(tokens) if tokens.len() > 1 => expression,
        _ => format!("{op} {expression}"),
    }
}

// ---- matching -------------------------------------------------------------

/// A device attribute as the matcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceValue {
    /// No such attribute: never matches.
    Missing,
    /// A single string; `None` compares as `none`, as IPA's `str(None)`.
    Text(Option<String>),
    /// Several candidate strings (IPA's all serials / all WWNs): any may match.
    List(Vec<String>),
    /// A size in bytes.
    Bytes(u64),
    /// A boolean.
    Bool(bool),
}

/// Something root device hints can be matched against.
pub trait HintDevice {
    /// The device's value for `name`.
    fn hint_value(&self, name: HintName) -> DeviceValue;
}

impl HintDevice for BlockDevice {
    fn hint_value(&self, name: HintName) -> DeviceValue {
        let text = |v: &Option<String>| DeviceValue::Text(v.clone());
        // IPA matches against lists of every serial and WWN it found, so a
        // device without any never matches these.
        let list = |v: &Option<String>| DeviceValue::List(v.iter().cloned().collect());
        match name {
            HintName::Size => DeviceValue::Bytes(self.size),
            HintName::Rotational => DeviceValue::Bool(self.rotational),
            HintName::Name => DeviceValue::Text(Some(self.name.clone())),
            HintName::Model => text(&self.model),
            HintName::Vendor => text(&self.vendor),
            HintName::Serial => list(&self.serial),
            HintName::Wwn => list(&self.wwn),
            HintName::WwnWithExtension => text(&self.wwn_with_extension),
            HintName::WwnVendorExtension => text(&self.wwn_vendor_extension),
            HintName::Hctl => text(&self.hctl),
            HintName::ByPath => text(&self.by_path),
            HintName::Tran => text(&self.tran),
        }
    }
}

impl HintDevice for Value {
    /// Devices as dicts, as IPA's `find_devices_by_hints` takes them.
    fn hint_value(&self, name: HintName) -> DeviceValue {
        let Some(v) = self.get(name.as_str()) else {
            return if name.hint_type() == HintType::Str {
                DeviceValue::Text(None)
            } else {
                DeviceValue::Missing
            };
        };
        match (name.hint_type(), v) {
            (HintType::Int, Value::Number(n)) => {
                n.as_u64().map_or(DeviceValue::Missing, DeviceValue::Bytes)
            }
            (HintType::Bool, Value::Bool(b)) => DeviceValue::Bool(*b),
            (HintType::Bool, Value::String(s)) => {
                parse_bool(s).map_or(DeviceValue::Missing, DeviceValue::Bool)
            }
            (HintType::Bool, Value::Number(n)) => {
                parse_bool(&n.to_string()).map_or(DeviceValue::Missing, DeviceValue::Bool)
            }
            (HintType::Str, Value::Array(items)) => DeviceValue::List(
                items
                    .iter()
                    .filter(|i| !i.is_null())
                    .map(python_str)
                    .collect(),
            ),
            (HintType::Str, Value::Null) => DeviceValue::Text(None),
            (HintType::Str, other) => DeviceValue::Text(Some(python_str(other))),
            _ => DeviceValue::Missing,
        }
    }
}

fn hint_matches(name: HintName, hint: &ParsedHint, value: DeviceValue) -> bool {
    match (hint, value) {
        (ParsedHint::Bool(want), DeviceValue::Bool(have)) => *want == have,
        (ParsedHint::Spec(spec), DeviceValue::Bytes(bytes)) => {
            Spec::parse(spec).matches_number(bytes as f64 / GIB)
        }
        (ParsedHint::Spec(spec), DeviceValue::Text(text)) => {
            let raw = text.unwrap_or_else(|| "none".to_owned());
            text_matches(name, spec, &raw)
        }
        (ParsedHint::Spec(spec), DeviceValue::List(items)) => {
            items.iter().any(|item| text_matches(name, spec, item))
        }
        _ => false,
    }
}

fn text_matches(name: HintName, spec: &str, raw: &str) -> bool {
    // A value that cannot be normalized (empty) skips the device, as IPA does.
    match normalize(raw, name) {
        Ok(value) => Spec::parse(spec).matches_text(&value),
        Err(_) => false,
    }
}

/// A spec ready to compare: `specs_matcher.match`'s parse tree.
enum Spec {
    Plain(String),
    Op(String, Vec<String>),
}

impl Spec {
    fn parse(spec: &str) -> Self {
        match parse_spec(spec) {
            Some(mut tokens) if tokens.len() > 1 => {
                let op = tokens.remove(0);
                Self::Op(op, tokens)
            }
            Some(mut tokens) if tokens.len() == 1 => Self::Plain(tokens.remove(0)),
            _ => Self::Plain(spec.to_owned()),
        }
    }

    fn matches_text(&self, value: &str) -> bool {
        let number = || python_float(value);
        match self {
            Self::Plain(p) => p == value,
            Self::Op(op, args) => {
                let first = args.first().map(String::as_str).unwrap_or_default();
                match op.as_str() {
                    "s==" => value == first,
                    "s!=" => value != first,
                    "s<" => value < first,
                    "s<=" => value <= first,
                    "s>" => value > first,
                    "s>=" => value >= first,
                    "<in>" => value.contains(first),
                    "<or>" => args.iter().any(|a| a == value),
                    _ => number().is_some_and(|n| numeric(op, n, args)),
                }
            }
        }
    }

    fn matches_number(&self, value: f64) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Op(op, args) => match op.as_str() {
                // Python: a float never equals a string.
                "s==" => false,
                "s!=" => true,
                "<or>" => args
                    .iter()
                    .filter_map(|a| python_float(a))
                    .any(|a| a == value),
                _ => numeric(op, value, args),
            },
        }
    }
}

fn numeric(op: &str, x: f64, args: &[String]) -> bool {
    if op == RANGE_IN {
        return range_in(x, args);
    }
    let Some(y) = args.first().and_then(|a| python_float(a)) else {
        return false;
    };
    match op {
        "=" | ">=" => x >= y,
        "==" => x == y,
        "!=" => x != y,
        "<=" => x <= y,
        "<" => x < y,
        ">" => x > y,
        _ => false,
    }
}

/// `<range-in> [ LOW HIGH )`: brackets say inclusive `[ ]` or exclusive `( )`.
fn range_in(x: f64, args: &[String]) -> bool {
    let [open, low, high, close] = args else {
        return false;
    };
    let (Some(low), Some(high)) = (python_float(low), python_float(high)) else {
        return false;
    };
    if low > high {
        return false;
    }
    let lower = match open.as_str() {
        "[" => x >= low,
        "(" => x > low,
        _ => return false,
    };
    let upper = match close.as_str() {
        "]" => x <= high,
        ")" => x < high,
        _ => return false,
    };
    lower && upper
}

/// Python's `float(text)` for the texts hints use.
fn python_float(text: &str) -> Option<f64> {
    let t = text.trim().replace('_', "");
    t.parse::<f64>().ok()
}

// ---- choosing the root disk ------------------------------------------------

/// Why no root disk could be chosen; texts are IPA's `DeviceNotFound` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRootDevice(pub String);

impl fmt::Display for NoRootDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoRootDevice {}

/// IPA's `guess_root_disk`: without hints, the smallest disk of at least
/// `min_size` bytes, ties broken by name (never "the first /dev/sdX").
pub fn guess_root_disk(
    devices: &[BlockDevice],
    min_size: u64,
) -> Result<&BlockDevice, NoRootDevice> {
    let mut sorted: Vec<&BlockDevice> = devices.iter().collect();
    sorted.sort_by(|a, b| (a.size, &a.name).cmp(&(b.size, &b.name)));
    sorted.into_iter().find(|d| d.size >= min_size).ok_or_else(|| {
        NoRootDevice(format!(
            "No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than {min_size}B."
        ))
    })
}

/// IPA's `get_os_install_device` choice: by hints when given, else
/// [`guess_root_disk`] with the 4 GiB minimum.
pub fn choose_root_device<'a>(
    devices: &'a [BlockDevice],
    hints: Option<&Value>,
) -> Result<&'a BlockDevice, NoRootDevice> {
    let hints_text = || hints.map(python_repr).unwrap_or_else(|| "None".into());
    let parsed = match hints {
        None => None,
        Some(value) => RootDeviceHints::parse(value).map_err(|e| {
            NoRootDevice(format!(
                "No devices could be found using the root device hints {} because they failed to validate. Error: {e}",
                hints_text()
            ))
        })?,
    };
    match parsed {
        None => guess_root_disk(devices, MIN_ROOT_DISK_BYTES),
        Some(parsed) => parsed.find_first(devices).ok_or_else(|| {
            NoRootDevice(format!(
                "No suitable device was found for deployment using these hints {}",
                hints_text()
            ))
        }),
    }
}

#[cfg(test)]
mod tests;
