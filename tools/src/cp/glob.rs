//! Globs in the last component of a source path.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::copy::msg;
use super::world::World;

/// Shell-style match of `name` against `pat`: `*`, `?`, `[...]` (with `!`
/// or `^` negation and ranges), `\` escapes. A leading `.` must be matched
/// explicitly, as in the shell.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
        // Returns (matched, length of the class in pat) or None if unclosed.
        let mut i = 1;
        let negate = matches!(pat.get(1), Some(b'!' | b'^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < pat.len() {
            if pat[i] == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let lo = pat[i];
            if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
                if (lo..=pat[i + 2]).contains(&c) {
                    matched = true;
                }
                i += 3;
            } else {
                if lo == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    // Iterative matcher with backtracking on the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(&pat[p..], name[n]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (name[n] == b'[').then_some(1),
            },
            Some(b'\\') if p + 1 < pat.len() => (pat[p + 1] == name[n]).then_some(2),
            Some(&c) => (c == name[n]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                p += len;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

fn has_glob(s: &[u8]) -> bool {
    s.iter().any(|c| matches!(c, b'*' | b'?' | b'['))
}

/// Expands a glob in the last component of `src` (absolute in `w`).
pub(super) fn expand(w: &dyn World, src: &Path) -> Result<Vec<PathBuf>, String> {
    let Some(last) = src.file_name() else {
        return Ok(vec![src.to_path_buf()]);
    };
    if !has_glob(last.as_bytes()) || w.lstat(src).is_ok() {
        return Ok(vec![src.to_path_buf()]);
    }
    let parent = src.parent().unwrap_or(Path::new("/"));
    let mut names = w
        .list(parent)
        .map_err(|e| format!("cannot list {}: {}", w.show(parent), msg(&e)))?;
    names.retain(|n| glob_match(last.as_bytes(), n.as_bytes()));
    if names.is_empty() {
        return Err(format!("{}: no match", w.show(src)));
    }
    names.sort();
    Ok(names.into_iter().map(|n| parent.join(n)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| glob_match(p.as_bytes(), n.as_bytes());
        assert!(m("*", "abc"));
        assert!(!m("*", ".hidden"));
        assert!(m(".*", ".hidden"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("a?c", "abc"));
        assert!(m("*.txt", "x y.txt"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("f\\*", "f*"));
        assert!(!m("f\\*", "fa"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(m("é*", "école"));
    }
}
