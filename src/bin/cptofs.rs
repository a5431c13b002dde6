//! `cptofs`: copy host files into a file-system image (see `src/tools/cp.rs`;
//! the same code is `cpfromfs` under that name).

#[path = "../tools/cp.rs"]
mod cp;

fn main() {
    std::process::exit(cp::main());
}
