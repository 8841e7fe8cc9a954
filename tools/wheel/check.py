"""Check a built ktorch wheel: tag, size, contents, and what its extension asks of the system.

    python tools/wheel/check.py dist/ktorch-*.whl

The wheel must install wherever torch 2.11.0's own wheel does (manylinux_2_28, x86_64): its
extension may ask for no newer glibc/libstdc++/libgcc symbol versions than that policy allows,
may leave no system-library symbol unversioned (zig's glibc 2.28 stubs leave a symbol that
glibc 2.28 lacks undefined and unversioned, and it would fail to load there), and must link
torch's libraries from the installed torch package rather than carry copies of them.
Prints a report; exits 1 listing the problems, if any.
"""

import os
import re
import subprocess
import sys
import tempfile
import zipfile

# manylinux_2_28's newest symbol versions (auditwheel's policy), per versioned library family
FLOOR = {"GLIBC": (2, 28), "GLIBCXX": (3, 4, 24), "CXXABI": (1, 3, 11), "GCC": (7, 0, 0)}
TAG = re.compile(r"-cp311-abi3-manylinux_2_(\d+)_x86_64\.whl$")
# libraries the extension may need: the policy's system libraries, and torch's own (from the
# installed torch package, through the rpath $ORIGIN/../torch/lib or because torch is loaded)
SYSTEM = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2"}
SYSTEM |= {"libstdc++.so.6", "libgcc_s.so.1"}
TORCH = {"libtorch.so", "libtorch_cpu.so", "libtorch_python.so", "libc10.so", "libtorch_cuda.so", "libc10_cuda.so"}
RPATH = "$ORIGIN/../torch/lib"
MAX_MB = 10
FORBIDDEN = re.compile(r"(^|/)(libtorch|libc10|libcu|libnv|libcaffe2|libgomp)[^/]*\.so|\.libs/")


def _objdump(path, flag):
    return subprocess.run(["objdump", flag, path], check=True, capture_output=True, text=True).stdout


def _version(v):
    return tuple(int(x) for x in v.split("."))


def system_exports():
    """Names the build machine's C and C++ runtime libraries export (to spot unversioned ones)."""
    names = set()
    for lib in ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1"):
        path = subprocess.run(["gcc", f"-print-file-name={lib}"], check=True, capture_output=True, text=True)
        for line in _objdump(os.path.realpath(path.stdout.strip()), "-T").splitlines():
            if " DF " in line or " DO " in line:
                if "*UND*" not in line:
                    names.add(line.split()[-1])
    return names


def inspect(wheel):
    """What the wheel holds and what its extension needs, as a dict."""
    info = {"wheel": os.path.basename(wheel), "mb": os.path.getsize(wheel) / 2**20}
    m = TAG.search(wheel)
    info["manylinux_minor"] = int(m.group(1)) if m else None
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        info["files"] = z.namelist()
        sos = [n for n in info["files"] if n.endswith(".so") or ".so." in n]
        info["libraries"] = sos
        z.extract("ktorch/_ktorch.abi3.so", tmp)
        ext = os.path.join(tmp, "ktorch", "_ktorch.abi3.so")
        dyn = _objdump(ext, "-p")
        dynsym = _objdump(ext, "-T")
    info["needed"] = re.findall(r"^\s*NEEDED\s+(\S+)", dyn, re.M)
    info["runpath"] = re.findall(r"^\s*(?:RUNPATH|RPATH)\s+(\S+)", dyn, re.M)
    newest = {}
    unversioned = []
    for line in dynsym.splitlines():
        if "*UND*" not in line:
            continue
        v = re.search(r"\((GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)\)", line)
        if v:
            fam, ver = v.group(1), _version(v.group(2))
            newest[fam] = max(newest.get(fam, ver), ver)
        elif " w " not in line[:20]:  # a weak reference may stay absent at run time
            unversioned.append(line.split()[-1])
    info["newest"] = {k: ".".join(map(str, v)) for k, v in sorted(newest.items())}
    exports = system_exports()
    info["unversioned_system"] = sorted(s for s in unversioned if s in exports)
    return info


def problems(info):
    """Everything that keeps the wheel from being a torch-linked manylinux_2_28 abi3 wheel."""
    out = []
    if info["manylinux_minor"] is None or info["manylinux_minor"] > 28:
        out.append(f"tag: {info['wheel']} is not cp311-abi3-manylinux_2_28_x86_64 or older")
    if info["mb"] > MAX_MB:
        out.append(f"size: {info['mb']:.1f} MB > {MAX_MB} MB")
    if info["libraries"] != ["ktorch/_ktorch.abi3.so"]:
        out.append(f"libraries: {info['libraries']} (only ktorch/_ktorch.abi3.so belongs in the wheel)")
    out += [f"carries {n}" for n in info["files"] if FORBIDDEN.search(n)]
    for fam, ver in info["newest"].items():
        if _version(ver) > FLOOR[fam]:
            out.append(f"symbols: {fam}_{ver} > {fam}_{'.'.join(map(str, FLOOR[fam]))}")
    if info["unversioned_system"]:
        out.append(f"symbols the glibc 2.28 floor lacks, left unversioned: {info['unversioned_system']}")
    unknown = [n for n in info["needed"] if n not in SYSTEM | TORCH]
    if unknown:
        out.append(f"needs libraries outside the policy and torch: {unknown}")
    if info["runpath"] != [RPATH]:
        out.append(f"runpath {info['runpath']}, expected [{RPATH}]")
    return out


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    info = inspect(argv[1])
    print(f"{info['wheel']}: {info['mb']:.2f} MB, {len(info['files'])} files")
    print(f"  needs {' '.join(info['needed'])}; runpath {' '.join(info['runpath'])}")
    print(f"  newest symbol versions: {', '.join(f'{k}_{v}' for k, v in info['newest'].items())}")
    bad = problems(info)
    for p in bad:
        print(f"  PROBLEM: {p}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv)
