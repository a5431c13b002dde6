//! JSON values to Rust values: objects' members, arrays, strings, numbers
//! (LKL's strings or JSON numbers, in LKL's bases), booleans, and LKL's
//! separated lists.

use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::{Node, Number};

/// A scalar value, whatever JSON type carried it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar<'n> {
    Str(&'n str),
    Num(Number),
    Bool(bool),
}

impl Scalar<'_> {
    pub(super) fn text(&self) -> String {
        match self {
            Scalar::Str(s) => (*s).to_string(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// How a number in a string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Radix {
    /// strtol base 0: `0x` hex, leading `0` octal, else decimal.
    Auto,
    Decimal,
}

impl Validator<'_> {
    pub(super) fn array<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        expected: &'static str,
    ) -> Result<&'n [Node], ConfigError> {
        match node {
            Node::Array(items) => Ok(items),
            other => Err(self.wrong_type(other, ctx, expected)),
        }
    }

    /// A string without NUL bytes (they would cut the C strings it becomes).
    pub(super) fn string<'n>(&self, node: &'n Node, ctx: &Ctx) -> Result<&'n str, ConfigError> {
        match node {
            Node::String(s) => self.no_nul(s, ctx).map(|()| s.as_str()),
            other => Err(self.wrong_type(other, ctx, "a string")),
        }
    }

    pub(super) fn no_nul(&self, s: &str, ctx: &Ctx) -> Result<(), ConfigError> {
        if s.contains('\0') {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: s.into(),
                why: "contains a NUL character".into(),
            });
        }
        Ok(())
    }

    /// A string, number or boolean (as `expected` says which are allowed).
    pub(super) fn scalar<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        bool_ok: bool,
        expected: &'static str,
    ) -> Result<Scalar<'n>, ConfigError> {
        match node {
            Node::String(s) => {
                self.no_nul(s, ctx)?;
                Ok(Scalar::Str(s))
            }
            Node::Number(n) => Ok(Scalar::Num(*n)),
            Node::Bool(b) if bool_ok => Ok(Scalar::Bool(*b)),
            other => Err(self.wrong_type(other, ctx, expected)),
        }
    }

    /// An unsigned number from a string or a JSON number. The error says
    /// why; the caller picks the variant.
    pub(super) fn unsigned(value: Scalar<'_>, radix: Radix) -> Result<u64, String> {
        match value {
            Scalar::Num(Number::Unsigned(n)) => Ok(n),
            Scalar::Num(Number::Signed(_)) => Err("is negative".into()),
            Scalar::Num(Number::Float(_)) => Err("is not a whole number".into()),
            Scalar::Bool(b) => Ok(u64::from(b)),
            Scalar::Str(s) => parse_unsigned(s.trim(), radix),
        }
    }

    pub(super) fn number(
        &self,
        node: &Node,
        ctx: &Ctx,
        radix: Radix,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a string holding one")?;
        let n = Validator::unsigned(value, radix).map_err(|why| ConfigError::BadNumber {
            at: self.at(ctx),
            value: value.text(),
            why,
        })?;
        if n > max {
            return Err(ConfigError::BadNumber {
                at: self.at(ctx),
                value: value.text(),
                why: format!("is too large (at most {max})"),
            });
        }
        Ok(n)
    }

    pub(super) fn boolean(&self, node: &Node, ctx: &Ctx) -> Result<bool, ConfigError> {
        let value = self.scalar(node, ctx, true, "a boolean")?;
        let b = match value {
            Scalar::Bool(b) => Some(b),
            Scalar::Num(Number::Unsigned(0)) => Some(false),
            Scalar::Num(Number::Unsigned(1)) => Some(true),
            Scalar::Str(s) => match s.trim() {
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" => Some(false),
                _ => None,
            },
            Scalar::Num(_) => None,
        };
        b.ok_or_else(|| ConfigError::BadValue {
            at: self.at(ctx),
            value: value.text(),
            why: "is not a boolean (true, false, 1 or 0)".into(),
        })
    }

    /// A list written LKL's way (one string, items separated by `seps`,
    /// empty items skipped as strtok does) or as a JSON array of strings.
    /// An element that is not a string is an `Err` in its place, for the
    /// caller to report in order with the others' errors.
    pub(super) fn list<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        seps: &[char],
    ) -> Vec<Result<(&'n str, Ctx), ConfigError>> {
        match node {
            Node::String(s) => match self.no_nul(s, ctx) {
                Ok(()) => s
                    .split(seps)
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Ok((item, ctx.clone())))
                    .collect(),
                Err(e) => vec![Err(e)],
            },
            Node::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let c = ctx.index(i);
                    self.string(item, &c).map(|s| (s.trim(), c))
                })
                .collect(),
            other => vec![Err(self.wrong_type(
                other,
                ctx,
                "a string or an array of strings",
            ))],
        }
    }
}

/// Parses an unsigned integer; trailing junk, signs and empty text are
/// errors (LKL's atoi/strtol would take "1500abc" as 1500).
pub(super) fn parse_unsigned(s: &str, radix: Radix) -> Result<u64, String> {
    if s.is_empty() {
        return Err("is empty; a number is needed".into());
    }
    if s.starts_with('-') {
        return Err("is negative".into());
    }
    let (digits, base, base_name) = match radix {
        Radix::Auto => {
            if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                (hex, 16, "hexadecimal")
            } else if s.len() > 1 && s.starts_with('0') {
                (&s[1..], 8, "octal (it starts with 0)")
            } else {
                (s, 10, "decimal")
            }
        }
        Radix::Decimal => (s, 10, "decimal"),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(format!("is not a {base_name} number"));
    }
    u64::from_str_radix(digits, base).map_err(|_| "is too large".into())
}
