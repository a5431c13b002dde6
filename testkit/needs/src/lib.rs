//! `#[testkit::needs(root, tun)]`: the prerequisites of a test, stated
//! where the test is. Put it above `#[test]`:
//!
//! ```ignore
//! #[testkit::needs(root, tun)]
//! #[test]
//! fn tap_exchanges_frames() { ... }
//! ```
//!
//! What it does to the test:
//! - if a prerequisite was missing when this crate was built (the build
//!   script's probes, testkit-probe) and `CI` was not set, the test gets
//!   `#[ignore = "needs tun: no /dev/net/tun ..."]`: cargo test lists it
//!   as ignored, with the reason, and counts it in "N ignored";
//! - the test's body starts with `testkit::require(&[...])`, which fails
//!   the test if a prerequisite is missing when it runs: under `CI=true`
//!   (nothing is ignored there), or when the machine changed after the
//!   build. A missing prerequisite is never a pass.
//!
//! The names are those of testkit_probe::NEEDS; another name is a compile
//! error.

use proc_macro::{Delimiter, Group, TokenStream, TokenTree};

include!(concat!(env!("OUT_DIR"), "/probed.rs"));

#[proc_macro_attribute]
pub fn needs(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut names = Vec::new();
    for tt in attr {
        match tt {
            TokenTree::Ident(i) => names.push(i.to_string()),
            TokenTree::Punct(p) if p.as_char() == ',' => {}
            other => return error(&format!("needs: expected names, found `{other}`")),
        }
    }
    if names.is_empty() {
        return error("needs: name at least one prerequisite");
    }
    let mut reasons = Vec::new();
    for name in &names {
        match PROBED.iter().find(|(n, _)| n == name) {
            None => {
                let known: Vec<&str> = PROBED.iter().map(|(n, _)| *n).collect();
                return error(&format!(
                    "needs: no prerequisite `{name}` (known: {})",
                    known.join(", ")
                ));
            }
            Some((_, Some(why))) => reasons.push(format!("needs {name}: {why}")),
            Some((_, None)) => {}
        }
    }

    // The item must still carry `#[test]`: above it, this attribute runs
    // first and its `#[ignore]` reaches the test harness; below it, the
    // harness has already taken `#[test]` away.
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let attrs: Vec<String> = tokens
        .windows(2)
        .filter_map(|w| match w {
            [TokenTree::Punct(p), TokenTree::Group(g)]
                if p.as_char() == '#' && g.delimiter() == Delimiter::Bracket =>
            {
                g.stream().into_iter().next().map(|t| t.to_string())
            }
            _ => None,
        })
        .collect();
    if !attrs.iter().any(|a| a == "test") {
        return error("needs: put #[testkit::needs(...)] on a test function, above its #[test]");
    }

    let mut out = TokenStream::new();
    // A test ignored anyway (a long run) keeps its own reason.
    if !CI && !reasons.is_empty() && !attrs.iter().any(|a| a == "ignore") {
        let text = format!("{}; bin/setup.sh installs tools", reasons.join("; "));
        out.extend(parse(&format!("#[ignore = {text:?}]")));
    }
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let guard = parse(&format!("::testkit::require(&[{}]);", list.join(", ")));

    // The body is the item's last brace group: the guard goes first in it.
    let Some(body) = tokens
        .iter()
        .rposition(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
    else {
        return error("needs: put it on a test function");
    };
    if let TokenTree::Group(g) = &tokens[body] {
        let mut inner = guard;
        inner.extend(g.stream());
        let mut new = Group::new(Delimiter::Brace, inner);
        new.set_span(g.span());
        tokens[body] = TokenTree::Group(new);
    }
    out.extend(tokens);
    out
}

fn parse(code: &str) -> TokenStream {
    code.parse()
        .unwrap_or_else(|_| error("needs: internal error"))
}

fn error(msg: &str) -> TokenStream {
    format!("compile_error!({msg:?});")
        .parse()
        .unwrap_or_default()
}
