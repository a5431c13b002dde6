//! `cpfromfs`: copy files out of a file-system image (`lkl_tools::cp`, which
//! chooses its direction from the program's name).

fn main() {
    std::process::exit(lkl_tools::cp::main());
}
