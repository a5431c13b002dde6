//! `cptofs`: copy host files into a file-system image (`lkl_tools::cp`; the
//! same code is `cpfromfs` under that name).

fn main() {
    std::process::exit(lkl_tools::cp::main());
}
