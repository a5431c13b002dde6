//! Every key, every kind of bad input, the environment and the precedence:
//! one file per part ([`full`] accepted configs, [`document`] syntax and
//! keys, [`interfaces`], [`settings`] (the rest of the document and host
//! files), [`env`] variables and precedence, [`pieces`]); the helpers they
//! share are here.

mod at_once;
mod document;
mod env;
mod full;
mod interfaces;
mod pieces;
mod settings;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
pub(super) use std::time::Duration;

pub(super) use super::suggest::{distance, nearest};
pub(super) use super::*;

const FULL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/hijack/configs/full.json"
));

/// A directory of its own for each test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lkl-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// The host files full.json names.
    fn with_full_files() -> TempDir {
        let dir = TempDir::new();
        dir.file("rx.fifo", "");
        dir.file("tx.fifo", "");
        dir.file("disk.img", "");
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Parses with relative paths against a directory where nothing exists.
fn parse(json: &str) -> Result<Config, ConfigErrors> {
    Config::parse_str_in(json, Path::new("/nonexistent-lkl-config-test"))
}

/// Every error in `json`.
fn errs(json: &str) -> Vec<ConfigError> {
    match parse(json) {
        Ok(cfg) => panic!("accepted: {json}\n{cfg:#?}"),
        Err(e) => e.into_vec(),
    }
}

/// The one error in `json` (a config with one mistake has one error: no
/// error follows from another).
fn err(json: &str) -> ConfigError {
    one(errs(json), json)
}

/// The one error of a config that has one mistake.
fn only(e: ConfigErrors) -> ConfigError {
    one(e.into_vec(), "")
}

fn one(mut errors: Vec<ConfigError>, what: &str) -> ConfigError {
    assert_eq!(errors.len(), 1, "{what}: {errors:#?}");
    errors.remove(0)
}

fn path_of(e: &ConfigError) -> &str {
    e.json_path()
        .unwrap_or_else(|| panic!("no JSON path in {e:?}"))
}

fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    list.iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// One interface with a tap backend plus `extra` members.
fn iface(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"interfaces": [{{"type": "tap", "param": "tap0"{sep}{extra}}}]}}"#)
}
