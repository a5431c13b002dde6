#!/usr/bin/env bash
# LKL ships its launcher as tools/lkl/bin/lkl-hijack.sh; scripts written for
# LKL find ours here. It is bin/lkl-hijack.sh (same arguments, same
# variables; bin/lkl-hijack.sh --help).
exec "$(dirname "$0")/../../../bin/lkl-hijack.sh" "$@"
