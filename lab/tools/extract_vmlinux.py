#!/usr/bin/env python3
"""Unpack vmlinux (ELF, with .BTF) from a bzImage: try every compressed payload magic until one decompresses to ELF."""
import lzma, gzip, sys, zlib

def main(src, dst):
    data = open(src, "rb").read()
    for magic, dec in ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gz")):
        pos = data.find(magic)
        while pos >= 0:
            try:
                if dec == "xz":
                    d = lzma.LZMADecompressor()
                    out = d.decompress(data[pos:])
                else:
                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[pos:])
                if out[:4] == b"\x7fELF":
                    open(dst, "wb").write(out)
                    return 0
            except Exception:
                pass
            pos = data.find(magic, pos + 1)
    print(f"extract_vmlinux: no ELF payload found in {src}", file=sys.stderr)
    return 1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
