#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Generates the kernel half of the C API's headers: the kernel's UAPI
headers renamed into the lkl_ namespace, and lkl/asm/syscalls.h with one
lkl_sys_NAME wrapper per system call of the generic table.

    capi/gen-headers.py UAPI_DIR LINUX_SRC OUT_DIR [ERRNO_RS]

UAPI_DIR is the `usr/include` our kernel build installs (`make headers`),
LINUX_SRC the Linux tree it was built from (for scripts/syscall.tbl and the
prototypes in include/linux/syscalls.h). OUT_DIR receives `lkl/...`; the
optional ERRNO_RS receives the errno table lkl_strerror uses.

Renaming (as LKL's headers do, so programs written for LKL compile):
`__x` becomes `__lkl__x`, `_X` becomes `_LKL_X`, `X` becomes `LKL_X` and
`x` becomes `lkl_x`, for every macro, typedef and enum constant the headers
define and every struct/union/enum tag; `#include <linux/x.h>` becomes
`#include <lkl/linux/x.h>`. docs/c-api.md describes the result.
"""

import os
import re
import sys

# The headers a program of the C API sees (and everything they include).
ROOTS = """
linux/types.h linux/posix_types.h linux/stddef.h linux/errno.h linux/fcntl.h
linux/stat.h linux/fs.h linux/time.h linux/time_types.h linux/timex.h
linux/times.h linux/utsname.h linux/uio.h linux/resource.h linux/sysinfo.h
linux/signal.h linux/wait.h linux/poll.h linux/eventpoll.h linux/eventfd.h
linux/timerfd.h linux/signalfd.h linux/inotify.h linux/mman.h linux/mount.h
linux/xattr.h linux/falloc.h linux/fadvise.h linux/futex.h linux/capability.h
linux/sched.h linux/sched/types.h linux/prctl.h linux/reboot.h linux/openat2.h
linux/aio_abi.h linux/mqueue.h linux/msg.h linux/sem.h linux/shm.h linux/ipc.h
linux/random.h linux/close_range.h linux/socket.h linux/net.h linux/sockios.h
linux/in.h linux/in6.h linux/un.h linux/if.h linux/if_ether.h linux/if_arp.h
linux/if_packet.h linux/if_tun.h linux/if_link.h linux/if_addr.h linux/ip.h
linux/ipv6.h linux/tcp.h linux/udp.h linux/icmp.h linux/icmpv6.h
linux/netlink.h linux/rtnetlink.h linux/neighbour.h linux/route.h
linux/ioctl.h linux/termios.h linux/loop.h linux/magic.h
asm/stat.h asm/statfs.h asm/socket.h asm/ioctls.h asm/termbits.h
asm/siginfo.h asm/signal.h asm/mman.h asm/poll.h asm/fcntl.h
""".split()

# Kernel-internal types of the syscall prototypes, as C types over the
# renamed UAPI ones (LKL offers the same lkl_ names).
KERNEL_TYPES = {
    "size_t": "__lkl__kernel_size_t",
    "ssize_t": "__lkl__kernel_ssize_t",
    "loff_t": "__lkl__kernel_loff_t",
    "off_t": "__lkl__kernel_off_t",
    "umode_t": "unsigned short",
    "mode_t": "__lkl__kernel_mode_t",
    "pid_t": "__lkl__kernel_pid_t",
    "uid_t": "__lkl__kernel_uid32_t",
    "gid_t": "__lkl__kernel_gid32_t",
    "old_uid_t": "__lkl__kernel_old_uid_t",
    "old_gid_t": "__lkl__kernel_old_gid_t",
    "qid_t": "__lkl__kernel_uid32_t",
    "key_serial_t": "__lkl__s32",
    "key_t": "__lkl__kernel_key_t",
    "clockid_t": "__lkl__kernel_clockid_t",
    "timer_t": "__lkl__kernel_timer_t",
    "mqd_t": "__lkl__kernel_mqd_t",
    "time_t": "__lkl__kernel_time_t",
    "rwf_t": "__lkl__kernel_rwf_t",
    "fd_set": "__lkl__kernel_fd_set",
    "u8": "__lkl__u8",
    "u16": "__lkl__u16",
    "u32": "__lkl__u32",
    "u64": "__lkl__u64",
    "s32": "__lkl__s32",
    "s64": "__lkl__s64",
    "uint32_t": "__lkl__u32",
    "int32_t": "__lkl__s32",
    "uint64_t": "__lkl__u64",
}

# Structures the prototypes use that are kernel-internal (not in UAPI); the
# generic-ABI layouts, written here.
SOCKADDR = """
/* struct sockaddr: in the C library's headers, not the kernel's UAPI. */
struct lkl_sockaddr {
	__lkl__kernel_sa_family_t sa_family;
	char sa_data[14];
};
"""

EXTRA_STRUCTS = """
/* getdents64's records (include/linux/dirent.h). */
struct lkl_linux_dirent64 {
	__lkl__u64 d_ino;
	__lkl__s64 d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* sendmsg/recvmsg's header (include/linux/socket.h's user_msghdr). */
struct lkl_user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct lkl_iovec *msg_iov;
	__lkl__kernel_size_t msg_iovlen;
	void *msg_control;
	__lkl__kernel_size_t msg_controllen;
	unsigned int msg_flags;
};

struct lkl_mmsghdr {
	struct lkl_user_msghdr msg_hdr;
	unsigned int msg_len;
};
"""

# Field names the C library defines as macros.
LIBC_FIELD_MACROS = ["st_atime", "st_mtime", "st_ctime", "sa_handler", "sa_sigaction"]

C_TYPE_WORDS = {"int", "long", "char", "short", "unsigned", "signed", "void",
                "const", "volatile"}


def die(msg):
    sys.stderr.write(f"gen-headers: {msg}\n")
    sys.exit(1)


def lkl_name(name):
    """The renamed form of an identifier."""
    if name.startswith("__"):
        return "__lkl__" + name[2:]
    if name.startswith("_"):
        return "_LKL" + name
    if name[0].isupper():
        return "LKL_" + name
    return "lkl_" + name


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def collect_headers(uapi):
    """The root headers and, transitively, the UAPI headers they include."""
    seen, todo = set(), list(ROOTS)
    while todo:
        h = todo.pop()
        if h in seen:
            continue
        path = os.path.join(uapi, h)
        if not os.path.isfile(path):
            if h in ROOTS:
                die(f"{path}: missing (was the kernel built with `make headers`?)")
            continue
        seen.add(h)
        with open(path) as f:
            for inc in INCLUDE_RE.findall(f.read()):
                if os.path.isfile(os.path.join(uapi, inc)):
                    todo.append(inc)
    return sorted(seen)


def typedef_names(text):
    """The names the typedefs in `text` (comments stripped) declare."""
    names = []
    for m in re.finditer(r"\btypedef\b", text):
        depth, i = 0, m.end()
        while i < len(text):
            c = text[i]
            if c in "{(":
                depth += 1
            elif c in "})":
                depth -= 1
            elif c == ";" and depth == 0:
                break
            i += 1
        decl = text[m.end():i]
        fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl)
        if fp:
            names.append(fp.group(1))
            continue
        decl = re.sub(r"__attribute__\s*\(\(.*\)\)", " ", decl, flags=re.S)
        decl = re.sub(r"\[[^\]]*\]\s*$", " ", decl.strip())
        # A function type (`typedef void __signalfn_t(int);`): drop the
        # parameter list.
        decl = re.sub(r"\([^()]*\)\s*$", " ", decl.strip())
        # The declarators after the last closing brace (or the whole).
        tail = decl.rsplit("}", 1)[-1]
        for part in tail.split(","):
            ids = re.findall(r"\w+", part)
            if ids:
                names.append(ids[-1])
    return names


def enum_constants(text):
    out = []
    for m in re.finditer(r"\benum\b\s*\w*\s*\{([^}]*)\}", text):
        body = re.sub(r"^\s*#.*$", " ", m.group(1), flags=re.M)
        for item in body.split(","):
            ident = re.match(r"\s*([A-Za-z_]\w*)", item)
            if ident:
                out.append(ident.group(1))
    return out


def scan(uapi, headers):
    """Every identifier the headers define (macros, typedefs, enum
    constants) and every struct/union/enum tag they name."""
    idents, tags = set(), set()
    for h in headers:
        with open(os.path.join(uapi, h)) as f:
            raw = f.read()
        idents.update(re.findall(r"^\s*#\s*define\s+(\w+)", raw, re.M))
        text = strip_comments(raw)
        idents.update(typedef_names(text))
        idents.update(enum_constants(text))
        tags.update(re.findall(r"\b(?:struct|union|enum)\s+([A-Za-z_]\w*)", text))
    return idents - C_TYPE_WORDS, tags


def rename_text(text, idents, tags):
    def tag(m):
        return f"{m.group(1)} {lkl_name(m.group(2))}"

    text = re.sub(r"\b(struct|union|enum)\s+([A-Za-z_]\w*)", tag, text)

    def word(m):
        w = m.group(0)
        return lkl_name(w) if w in idents else w

    # Words after "struct " were renamed above; the lookbehind keeps an
    # already-renamed tag from being renamed again.
    return re.sub(r"(?<![\w])(?<!struct )(?<!union )(?<!enum )[A-Za-z_]\w*", word, text)


def rewrite_header(uapi, h, idents, tags):
    with open(os.path.join(uapi, h)) as f:
        text = f.read()
    if h == "linux/libc-compat.h":
        # Every UAPI definition is wanted: the renamed ones cannot clash
        # with the C library's.
        defs = sorted(set(re.findall(r"\b(__UAPI_DEF_\w+)", text)))
        body = "".join(f"#define {lkl_name(d)} 1\n" for d in defs)
        return ("/* Generated by capi/gen-headers.py: every UAPI definition is "
                "enabled. */\n#ifndef __LKL__LIBC_COMPAT_H\n#define __LKL__LIBC_COMPAT_H\n"
                + body + "#endif\n")

    def include(m):
        inc = m.group(1)
        if os.path.isfile(os.path.join(uapi, inc)):
            return f"#include <lkl/{inc}>"
        # A C-library header (<sys/socket.h>, <stdint.h>, ...): the renamed
        # headers do not need it.
        return f"/* #include <{inc}> left out: not a kernel header */"

    lines = []
    for line in text.split("\n"):
        if INCLUDE_RE.match(line):
            lines.append(INCLUDE_RE.sub(include, line))
        else:
            lines.append(rename_text(line, idents, tags))
    text = "\n".join(lines)
    # Definitions the kernel hides from glibc programs (S_ISREG, ...): the
    # lkl_ names cannot clash with glibc's, so they are always wanted.
    text = re.sub(r"defined\s*\(\s*__GLIBC__\s*\)", "0", text)
    # glibc makes some field names macros (st_atime, sa_handler); a
    # program that included <sys/stat.h> or <signal.h> first must still
    # be able to include these headers.
    clash = [m for m in LIBC_FIELD_MACROS if re.search(rf"\b{m}\b", text)]
    if clash:
        push = "".join(f'#pragma push_macro("{m}")\n#undef {m}\n' for m in clash)
        pop = "".join(f'#pragma pop_macro("{m}")\n' for m in clash)
        text = push + text + "\n" + pop
    return (f"/* Generated by capi/gen-headers.py from the kernel's UAPI <{h}>. */\n"
            + text)


def syscall_table(src):
    """(number, name, entry) of every system call of our ABI, in order."""
    abis = {"common", "64"}
    mk = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "..", "kernel", "arch", "lkl", "kernel", "Makefile.syscalls")
    if os.path.isfile(mk):
        with open(mk) as f:
            for m in re.finditer(r"syscall_abis_64\s*\+?=\s*(.*)", f.read()):
                abis.update(m.group(1).split())
    out = []
    with open(os.path.join(src, "scripts", "syscall.tbl")) as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[1] not in abis:
                continue
            entry = fields[3] if len(fields) > 3 else "sys_ni_syscall"
            out.append((int(fields[0]), fields[2], entry))
    return out


def prototypes(src):
    """sys_NAME -> its parameter list (the last declaration wins: the
    generic one follows the #ifdef'd variants)."""
    with open(os.path.join(src, "include", "linux", "syscalls.h")) as f:
        text = strip_comments(f.read())
    protos = {}
    for m in re.finditer(r"asmlinkage\s+long\s+(sys_\w+)\s*\(([^;]*?)\)\s*;", text, re.S):
        protos[m.group(1)] = " ".join(m.group(2).split())
    return protos


def split_params(params):
    out, depth, cur = [], 0, ""
    for c in params:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        out.append(cur.strip())
    return [] if out == ["void"] else out


def param_type(param, typedefs, used_tags, where):
    """The C type of one prototype parameter, over the renamed names."""
    toks = re.findall(r"\w+|\*", param.replace("__user", " "))
    # Drop the parameter's name, if it has one.
    if (len(toks) > 1 and re.match(r"\w+$", toks[-1]) and toks[-1] not in C_TYPE_WORDS
            and toks[-2] not in ("struct", "union", "enum")):
        toks = toks[:-1]
    pointer = "*" in toks
    out, i = [], 0
    while i < len(toks):
        t = toks[i]
        if t == "enum" and not pointer:
            out.append("int")
            i += 2
            continue
        if t in ("struct", "union", "enum"):
            name = lkl_name(toks[i + 1])
            used_tags.add(f"{t} {name}")
            out.append(f"{t} {name}")
            i += 2
            continue
        if t == "*" or t in C_TYPE_WORDS:
            out.append(t)
        elif t in typedefs:
            out.append(lkl_name(t))
        elif t in KERNEL_TYPES:
            out.append(KERNEL_TYPES[t])
        elif pointer:
            # A pointer to a kernel-internal type: the address is all
            # the call needs.
            return "void *"
        else:
            die(f"{where}: no C type for '{t}' (add it to KERNEL_TYPES)")
        i += 1
    return " ".join(out).replace(" *", " *").replace("* ", "*")


def socket_constants(src, idents):
    """The socket constants of the C library's <sys/socket.h>, which the
    kernel keeps outside UAPI (include/linux/socket.h and net.h)."""
    out, seen = [], set()

    def define(name, value):
        if name not in seen:
            seen.add(name)
            out.append(f"#define {lkl_name(name)} {value}")

    with open(os.path.join(src, "include", "linux", "socket.h")) as f:
        text = strip_comments(f.read())
    for m in re.finditer(r"^#define\s+((?:AF|PF|SOL|SCM|MSG)_\w+|SOMAXCONN)\s+(\S[^\n]*)$",
                         text, re.M):
        name, value = m.group(1), m.group(2).strip()
        if name in ("MSG_CMSG_COMPAT",) or "(" in name:
            continue
        value = re.sub(r"[A-Za-z_]\w*",
                       lambda w: lkl_name(w.group(0))
                       if re.match(r"(AF|PF|SOL|SCM|MSG)_", w.group(0)) or w.group(0) in idents
                       else w.group(0), value)
        define(name, value)
    with open(os.path.join(src, "include", "linux", "net.h")) as f:
        text = strip_comments(f.read())
    for m in re.finditer(r"\b(SOCK_[A-Z]+)\s*=\s*(\d+)", text):
        define(m.group(1), m.group(2))
    define("SOCK_CLOEXEC", "LKL_O_CLOEXEC")
    define("SOCK_NONBLOCK", "LKL_O_NONBLOCK")
    for i, name in enumerate(("SHUT_RD", "SHUT_WR", "SHUT_RDWR")):
        define(name, str(i))
    return "\n".join(out)


def syscalls_header(src, typedefs, known_tags):
    table = syscall_table(src)
    protos = prototypes(src)
    used_tags = set()
    names = {name for _, name, _ in table}
    nums, wrappers, aliases, missing = [], [], [], []
    for nr, name, entry in table:
        nums.append(f"#define __lkl__NR_{name} {nr}")
        if entry in ("sys_ni_syscall",):
            continue
        if entry not in protos:
            # Arch-specific entries (rt_sigreturn) have no generic prototype.
            missing.append(name)
            continue
        params = split_params(protos[entry])
        if len(params) > 6:
            die(f"{entry} has {len(params)} parameters")
        types = [param_type(p, typedefs, used_tags, entry) for p in params]
        args = ", ".join(f"{t} a{i + 1}" if not t.endswith("*") else f"{t}a{i + 1}"
                         for i, t in enumerate(types)) or "void"
        vals = ", ".join(f"(long)(a{i + 1})" for i in range(len(types)))
        wrappers.append(
            f"static inline long lkl_sys_{name}({args})\n{{\n"
            f"\tlong lkl_params[6] = {{ {vals} }};\n\n"
            f"\treturn lkl_syscall(__lkl__NR_{name}, lkl_params);\n}}\n")
        if entry != f"sys_{name}" and entry[4:] not in names:
            aliases.append(f"#define lkl_{entry} lkl_sys_{name}")
    last = max(nr for nr, _, _ in table)
    forward = "\n".join(sorted(f"{t};" for t in used_tags))
    includes = "\n".join(f"#include <lkl/{h}>" for h in ROOTS)
    return f"""/* Generated by capi/gen-headers.py from the kernel's scripts/syscall.tbl
 * and include/linux/syscalls.h: one wrapper per system call of the generic
 * 64-bit table. Each returns the call's result or a negative LKL_E* errno.
 * Numbers without a wrapper (no generic prototype): {" ".join(missing) or "none"}. */
#ifndef _LKL_ASM_SYSCALLS_H
#define _LKL_ASM_SYSCALLS_H

{includes}

#ifdef __cplusplus
extern "C" {{
#endif

{chr(10).join(nums)}
#define __lkl__NR_syscalls {last + 1}

/* System call `no` with six arguments (unused ones are ignored); the
 * result, or a negative LKL_E* errno. */
long lkl_capi_syscall(long no, long *params);
#define lkl_syscall lkl_capi_syscall

{EXTRA_STRUCTS}
/* Socket constants (the kernel's include/linux/socket.h and net.h). */
{socket_constants(src, known_tags)}
{forward}

{chr(10).join(wrappers)}
/* LKL's names for calls whose kernel entry differs from the table's name. */
{chr(10).join(aliases)}

#ifdef __cplusplus
}}
#endif

#endif
"""


def errno_table(uapi):
    rows = []
    for h in ("asm-generic/errno-base.h", "asm-generic/errno.h"):
        with open(os.path.join(uapi, h)) as f:
            for m in re.finditer(r"#define\s+(E\w+)\s+(\d+)\s*/\*\s*(.*?)\s*\*/", f.read()):
                text = m.group(3).replace("\\", "\\\\").replace('"', '\\"')
                rows.append(f'    ({m.group(2)}, c"{text}"),')
    return ("// Generated by capi/gen-headers.py from the kernel's errno headers.\n"
            "const ERRNO_TEXT: &[(i32, &std::ffi::CStr)] = &[\n" + "\n".join(rows) + "\n];\n")


def main():
    if len(sys.argv) not in (4, 5):
        die("usage: gen-headers.py UAPI_DIR LINUX_SRC OUT_DIR [ERRNO_RS]")
    uapi, src, out = sys.argv[1:4]
    headers = collect_headers(uapi)
    idents, tags = scan(uapi, headers)
    typedefs = set()
    for h in headers:
        with open(os.path.join(uapi, h)) as f:
            typedefs.update(typedef_names(strip_comments(f.read())))
    for h in headers:
        dest = os.path.join(out, "lkl", h)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        text = rewrite_header(uapi, h, idents, tags)
        if h == "linux/socket.h":
            # struct sockaddr is the C library's; linux/if.h needs it.
            cut = text.rindex("#endif")
            text = text[:cut] + SOCKADDR + text[cut:]
        with open(dest + ".tmp", "w") as f:
            f.write(text)
        os.replace(dest + ".tmp", dest)
    dest = os.path.join(out, "lkl", "asm", "syscalls.h")
    with open(dest + ".tmp", "w") as f:
        f.write(syscalls_header(src, typedefs, idents))
    os.replace(dest + ".tmp", dest)
    if len(sys.argv) == 5:
        with open(sys.argv[4], "w") as f:
            f.write(errno_table(uapi))


if __name__ == "__main__":
    main()
