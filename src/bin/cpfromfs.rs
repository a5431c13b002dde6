//! `cpfromfs`: copy files out of a file-system image (the `cptofs` code,
//! `src/tools/cp.rs`, chooses its direction from the program's name).

#[path = "../tools/cp.rs"]
mod cp;

fn main() {
    std::process::exit(cp::main());
}
