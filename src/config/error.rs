//! What can be wrong with a config, said so that the person who wrote it can
//! fix it: every error names where (the JSON path, with the file, or the
//! environment variable) and why.

use std::fmt;
use std::path::PathBuf;

/// A position in the JSON document: `interfaces[1].ip`, `disks[0]`,
/// `sysctl["net.ipv4.ip_forward"]`. The empty path is the top-level object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    /// The top-level object.
    pub fn root() -> JsonPath {
        JsonPath(String::new())
    }

    /// The member `key` of the object at this path.
    pub fn key(&self, key: &str) -> JsonPath {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let mut s = self.0.clone();
        if plain {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            // Keys that are not identifiers (sysctl names, typos with
            // spaces) are quoted the way JSON would write them.
            s.push('[');
            s.push_str(&serde_json::Value::from(key).to_string());
            s.push(']');
        }
        JsonPath(s)
    }

    /// The element `index` of the array at this path.
    pub fn index(&self, index: usize) -> JsonPath {
        JsonPath(format!("{}[{index}]", self.0))
    }

    /// The path as text; empty for the top level.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the top-level object.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("top level")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Where a bad setting was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In JSON text: the file it was read from (None for a string given to
    /// [`Config::parse_str`](super::Config::parse_str)) and the path in it.
    Json {
        /// The config file, if the JSON came from one.
        file: Option<PathBuf>,
        /// The path of the value in the document.
        path: JsonPath,
    },
    /// In this `LKL_HIJACK_*` environment variable.
    Env(&'static str),
}

impl Location {
    /// The JSON path, if the setting came from JSON.
    pub fn json_path(&self) -> Option<&JsonPath> {
        match self {
            Location::Json { path, .. } => Some(path),
            Location::Env(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Json {
                file: Some(file),
                path,
            } => write!(f, "{}: {path}", file.display()),
            Location::Json { file: None, path } => write!(f, "{path}"),
            Location::Env(var) => write!(f, "{var}"),
        }
    }
}

/// A hint attached to an unknown key or variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suggestion {
    /// The nearest known name (by edit distance, or a known synonym).
    Name(&'static str),
    /// The key exists, but at another level of the document.
    Elsewhere {
        /// The key as written.
        key: String,
        /// Where it belongs, in words ("inside an element of \"interfaces\"").
        place: &'static str,
    },
}

impl fmt::Display for Suggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suggestion::Name(name) => write!(f, "did you mean \"{name}\"?"),
            Suggestion::Elsewhere { key, place } => {
                write!(f, "\"{key}\" is a known key, but it belongs {place}")
            }
        }
    }
}

/// One thing wrong with a config. Each variant's message names the place
/// and the reason; a config's errors come together as [`ConfigErrors`],
/// which the hijack library prints on stderr, one per line, and exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The config file could not be read (missing, unreadable, a directory,
    /// too large, or not UTF-8).
    ReadFile {
        /// The file.
        file: PathBuf,
        /// Why.
        why: String,
    },
    /// The JSON is malformed.
    Syntax {
        /// The config file, if the JSON came from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column (0 when the text ended early on an empty line).
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// A key this config format does not have.
    UnknownKey {
        /// The object that holds it.
        at: Location,
        /// The key as written.
        key: String,
        /// The nearest known key, if one is near.
        suggestion: Option<Suggestion>,
    },
    /// An `LKL_HIJACK_*` environment variable this library does not know.
    UnknownEnv {
        /// The variable.
        var: String,
        /// The nearest known variable, if one is near.
        suggestion: Option<Suggestion>,
    },
    /// The same key twice in one object.
    DuplicateKey {
        /// The second occurrence.
        at: Location,
        /// The key.
        key: String,
    },
    /// A required key is absent.
    MissingKey {
        /// The object (or, for an environment-only interface, the variable
        /// that should have been set).
        at: Location,
        /// The key.
        key: &'static str,
        /// Why it is required.
        why: String,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// The value.
        at: Location,
        /// What was expected ("a string", "an array of objects", ...).
        expected: &'static str,
        /// What was found ("a number", ...).
        found: &'static str,
    },
    /// A number that does not parse or is out of range.
    BadNumber {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// An IP address that does not parse, is of the wrong family, or cannot
    /// be used where it is.
    BadAddress {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// A prefix length out of range, or a CIDR with host bits set.
    BadPrefix {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// A MAC address that does not parse or cannot be an interface address.
    BadMac {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// An MTU out of range.
    BadMtu {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// An offload bitmask with unknown bits or unmet feature dependencies.
    BadOffload {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// Any other malformed value (a backend parameter, a sysctl entry, a
    /// qdisc, a name...).
    BadValue {
        /// The value.
        at: Location,
        /// The value as written.
        value: String,
        /// Why.
        why: String,
    },
    /// A host file the config names is missing or unusable.
    File {
        /// The setting that names it.
        at: Location,
        /// The file, resolved against the current directory.
        file: PathBuf,
        /// Why.
        why: String,
    },
    /// Two interfaces use the same host device, tap, FIFO or fd.
    DuplicateBackend {
        /// The second interface's setting.
        at: Location,
        /// The first interface's setting.
        first: Location,
        /// The shared thing ("tap \"tap0\"").
        what: String,
    },
    /// Settings that contradict each other or miss a partner (an address
    /// without a prefix length, a gateway that is not on any subnet...).
    Conflict {
        /// The setting reported.
        at: Location,
        /// Why.
        why: String,
    },
    /// Something LKL has that this library does not (dpdk, zpoline), or a
    /// feature a backend cannot provide.
    Unsupported {
        /// The setting.
        at: Location,
        /// What is not supported.
        what: String,
        /// Why, and what to use instead.
        why: &'static str,
    },
}

impl ConfigError {
    /// Where the error is, when it is at one setting.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::ReadFile { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::UnknownEnv { .. } => None,
            ConfigError::UnknownKey { at, .. }
            | ConfigError::DuplicateKey { at, .. }
            | ConfigError::MissingKey { at, .. }
            | ConfigError::WrongType { at, .. }
            | ConfigError::BadNumber { at, .. }
            | ConfigError::BadAddress { at, .. }
            | ConfigError::BadPrefix { at, .. }
            | ConfigError::BadMac { at, .. }
            | ConfigError::BadMtu { at, .. }
            | ConfigError::BadOffload { at, .. }
            | ConfigError::BadValue { at, .. }
            | ConfigError::File { at, .. }
            | ConfigError::DuplicateBackend { at, .. }
            | ConfigError::Conflict { at, .. }
            | ConfigError::Unsupported { at, .. } => Some(at),
        }
    }

    /// The JSON path of the error, as text, when it is in JSON.
    pub fn json_path(&self) -> Option<&str> {
        self.location()
            .and_then(Location::json_path)
            .map(JsonPath::as_str)
    }
}

/// Quotes a value for a message the way JSON would, so that empty strings,
/// spaces and control characters stay visible.
fn quoted(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ReadFile { file, why } => {
                write!(f, "cannot read config file {}: {why}", file.display())
            }
            ConfigError::Syntax {
                file,
                line,
                column,
                message,
            } => {
                match file {
                    Some(file) => write!(f, "{}: ", file.display())?,
                    None => f.write_str("config: ")?,
                }
                write!(f, "invalid JSON at line {line}, column {column}: {message}")
            }
            ConfigError::UnknownKey {
                at,
                key,
                suggestion,
            } => {
                write!(f, "{at}: unknown key {}", quoted(key))?;
                match suggestion {
                    Some(s) => write!(f, " ({s})"),
                    None => Ok(()),
                }
            }
            ConfigError::UnknownEnv { var, suggestion } => {
                write!(f, "unknown environment variable {var}")?;
                match suggestion {
                    Some(s) => write!(f, " ({s})"),
                    None => Ok(()),
                }
            }
            ConfigError::DuplicateKey { at, key } => {
                write!(f, "{at}: key {} is given twice", quoted(key))
            }
            ConfigError::MissingKey { at, key, why } => match at {
                Location::Env(var) => write!(f, "{var} is not set, but {why}"),
                Location::Json { .. } => {
                    write!(f, "{at}: required key \"{key}\" is missing ({why})")
                }
            },
            ConfigError::WrongType {
                at,
                expected,
                found,
            } => write!(f, "{at}: expected {expected}, found {found}"),
            ConfigError::BadNumber { at, value, why }
            | ConfigError::BadAddress { at, value, why }
            | ConfigError::BadPrefix { at, value, why }
            | ConfigError::BadMac { at, value, why }
            | ConfigError::BadMtu { at, value, why }
            | ConfigError::BadOffload { at, value, why }
            | ConfigError::BadValue { at, value, why } => {
                write!(f, "{at}: {} {why}", quoted(value))
            }
            ConfigError::File { at, file, why } => {
                write!(f, "{at}: {}: {why}", file.display())
            }
            ConfigError::DuplicateBackend { at, first, what } => {
                write!(f, "{at}: {what} is already used by {first}")
            }
            ConfigError::Conflict { at, why } => write!(f, "{at}: {why}"),
            ConfigError::Unsupported { at, what, why } => {
                write!(f, "{at}: {what} is not supported: {why}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, in the order they were checked (never
/// empty). A file that cannot be read or is not JSON is one error: nothing
/// after it can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The errors; `None` if there are none.
    pub fn new(errors: Vec<ConfigError>) -> Option<ConfigErrors> {
        (!errors.is_empty()).then_some(ConfigErrors(errors))
    }

    /// Every error.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// The first error.
    pub fn first(&self) -> &ConfigError {
        // Never empty: `new` and `From` make it with one at least.
        &self.0[0]
    }

    /// How many errors there are (at least 1).
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The errors, owned.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }

    /// These errors, then `more`.
    pub fn then(mut self, more: ConfigErrors) -> ConfigErrors {
        self.0.extend(more.0);
        self
    }

    /// `earlier` (maybe none), then these errors.
    pub fn after(self, earlier: Vec<ConfigError>) -> ConfigErrors {
        match ConfigErrors::new(earlier) {
            Some(e) => e.then(self),
            None => self,
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// One error per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Something accepted for LKL compatibility that deserves a word on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// `LKL_HIJACK_NET_TAP` was used (LKL marks it obsolete).
    ObsoleteTapVariable,
    /// Interface variables were set, but the config file's `interfaces`
    /// replaced them (LKL's precedence).
    EnvInterfaceReplaced {
        /// The config file.
        file: PathBuf,
        /// The variables that were ignored.
        vars: Vec<&'static str>,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::ObsoleteTapVariable => f.write_str(
                "LKL_HIJACK_NET_TAP is obsolete: use LKL_HIJACK_NET_IFTYPE=tap and \
                 LKL_HIJACK_NET_IFPARAMS=<tap name>",
            ),
            ConfigWarning::EnvInterfaceReplaced { file, vars } => write!(
                f,
                "{} ignored: \"interfaces\" in {} replaces the interface they describe",
                vars.join(", "),
                file.display()
            ),
        }
    }
}
