#!/usr/bin/env python3
"""Unpack vmlinux (ELF, with .BTF) from a bzImage: try every compressed payload magic until one decompresses
to ELF (like the kernel's scripts/extract-vmlinux).  xz and gzip with the stdlib; zstd (CONFIG_KERNEL_ZSTD,
Debian's 6.12 and 7.x) with the `zstd` tool.

    extract_vmlinux.py BZIMAGE OUT     -> 0, or 1 with a one-line reason
    extract_vmlinux.py --release BZIMAGE  -> prints the kernel release stored in the bzImage header
"""
import lzma
import subprocess
import sys
import zlib

MAGICS = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gz"), (b"\x28\xb5\x2f\xfd", "zstd"))


def decompress(kind: str, blob: bytes) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(blob)
    if kind == "gz":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
    # the payload is followed by other data: zstd complains about it after writing the first frame
    p = subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True)
    return p.stdout


def release(data: bytes) -> str | None:
    """The release of a bzImage: boot protocol header (Documentation/arch/x86/boot.rst), kernel_version
    at 0x20e is an offset (minus 0x200) of 'RELEASE (builder) #...'."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    off = int.from_bytes(data[0x20e:0x210], "little") + 0x200
    s = data[off:off + 256].split(b"\0", 1)[0].decode(errors="replace")
    return s.split(" ", 1)[0] or None


def main(argv):
    if argv[1] == "--release":
        r = release(open(argv[2], "rb").read())
        if not r:
            print(f"extract_vmlinux: {argv[2]} is not a bzImage (no HdrS boot header)", file=sys.stderr)
            return 1
        print(r)
        return 0
    src, dst = argv[1], argv[2]
    data = open(src, "rb").read()
    for magic, kind in MAGICS:
        pos = data.find(magic)
        while pos >= 0:
            try:
                out = decompress(kind, data[pos:])
                if out[:4] == b"\x7fELF":
                    with open(dst, "wb") as f:
                        f.write(out)
                    return 0
            except (OSError, lzma.LZMAError, zlib.error, EOFError):
                pass
            pos = data.find(magic, pos + 1)
    print(f"extract_vmlinux: no ELF payload (xz, gzip or zstd) found in {src}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
