#!/bin/bash
# ftsim kernel lab: make kernel-lab.  Installs the Debian packages it needs, builds a busybox initramfs,
# the lab's kernel modules and BPF programs, boots Debian's 6.1 kernel under QEMU (TCG) and runs the
# scenario files of data/scenarios/lab/ in it; writes data/kernel/observed-<uname -r>.jsonl.
# Idempotent: everything built lives in lab/build/ and is rebuilt only when its sources change.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$LAB")
B=$LAB/build
mkdir -p "$B"
t0=$(date +%s)
say() { echo "kernel-lab: $*"; }
die() { echo "kernel-lab: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
PKGS="qemu-system-x86 busybox-static clang llvm libbpf-dev bpftool libelf-dev build-essential zlib1g-dev cpio xz-utils kmod python3"
KFLAVOUR=${KFLAVOUR:-amd64}
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# the newest linux-image-6.1.0-*-amd64 known to apt (or the one already unpacked)
KPKG=${KPKG:-}
if [ -z "$KPKG" ]; then
	if [ -f "$B/kpkg/name" ]; then KPKG=$(cat "$B/kpkg/name"); fi
fi
if [ -n "$missing" ] || [ -z "$KPKG" ]; then
	command -v apt-get >/dev/null || die "apt-get not found: install$missing by hand"
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root so that apt-get can install them)"
	say "apt-get update"
	apt-get update -qq >/dev/null || die "apt-get update failed"
fi
if [ -z "$KPKG" ]; then
	KPKG=$(apt-cache depends linux-image-$KFLAVOUR 2>/dev/null | sed -n 's/.*Depends: \(linux-image-6\.1\.0-[0-9]*-'$KFLAVOUR'\)$/\1/p' | head -1)
	[ -n "$KPKG" ] || KPKG=$(apt-cache search --names-only "^linux-image-6\.1\.0-[0-9]+-$KFLAVOUR\$" | awk '{print $1}' | sort -V | tail -1)
	[ -n "$KPKG" ] || die "no linux-image-6.1.0-*-$KFLAVOUR package known to apt (is this Debian bookworm?)"
fi
KREL=${KPKG#linux-image-}
dpkg -s "linux-headers-$KREL" >/dev/null 2>&1 || missing="$missing linux-headers-$KREL"
if [ -n "$missing" ]; then
	say "installing:$missing"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >"$B/apt.log" 2>&1 \
		|| die "apt-get install failed for:$missing (see lab/build/apt.log)"
fi
HDR=/usr/src/linux-headers-$KREL
[ -d "$HDR" ] || die "kernel headers $HDR missing (package linux-headers-$KREL)"

# ---------------------------------------------------------------- kernel image (not installed on the host)
K=$B/kpkg
VMLINUZ=$K/x/boot/vmlinuz-$KREL
if [ ! -f "$VMLINUZ" ]; then
	say "downloading $KPKG"
	mkdir -p "$K"; rm -rf "$K/x"
	(cd "$K" && rm -f ./*.deb && apt-get download "$KPKG" >/dev/null 2>&1) || die "apt-get download $KPKG failed"
	dpkg -x "$K"/"$KPKG"_*.deb "$K/x" || die "dpkg -x of $KPKG failed"
	[ -f "$VMLINUZ" ] || die "$KPKG has no /boot/vmlinuz-$KREL"
fi
echo "$KPKG" > "$K/name"
if [ ! -s "$K/vmlinux" ]; then
	say "extracting vmlinux (for BTF)"
	python3 "$LAB/tools/extract_vmlinux.py" "$VMLINUZ" "$K/vmlinux" || die "could not unpack vmlinux from $VMLINUZ"
fi
grep -q "^CONFIG_LIVEPATCH=y" "$K/x/boot/config-$KREL" || die "$KREL has no CONFIG_LIVEPATCH"
# LAB_PVH=1: QEMU boots the unpacked vmlinux through its PVH entry point (CONFIG_PVH, ELF note 18): no
# option ROM loading the bzImage and no xz decompression under TCG, about 2.5 s less per boot.  Not the
# default: the known crashers thread-song and thread-rostedt (a use-after-free) then ran on without
# panicking, 3 of 3 boots, while bzImage boots (with or without nokaslr) panicked 3 of 3.
BOOTK=$VMLINUZ
if [ "${LAB_PVH:-0}" = 1 ] && grep -q "^CONFIG_PVH=y" "$K/x/boot/config-$KREL" \
	&& readelf -n "$K/vmlinux" 2>/dev/null | grep -q "(0x00000012)"; then
	BOOTK=$K/vmlinux
fi

# ---------------------------------------------------------------- modules
newer() { local t=$1; shift; [ ! -e "$t" ] && return 0; for s in "$@"; do [ "$s" -nt "$t" ] && return 0; done; return 1; }
M=$B/mod
if newer "$M/lab_lp_a.ko" "$LAB"/src/mod/* ; then
	say "building kernel modules against $HDR"
	rm -rf "$M"; mkdir -p "$M"; cp "$LAB"/src/mod/* "$M/"
	make -s -C "$HDR" M="$M" -j"$(nproc)" modules >"$B/mod.log" 2>&1 || { tail -20 "$B/mod.log"; die "module build failed (lab/build/mod.log)"; }
fi

# ---------------------------------------------------------------- BPF programs, loader, trigger
P=$B/bpf
mkdir -p "$P"
if newer "$P/vmlinux.h" "$K/vmlinux"; then
	say "vmlinux.h from BTF"
	bpftool btf dump file "$K/vmlinux" format c > "$P/vmlinux.h" || die "bpftool btf dump failed"
fi
if newer "$P/progs.bpf.o" "$LAB/src/bpf/progs.bpf.c" "$P/vmlinux.h"; then
	say "building BPF programs"
	clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -I"$P" -c "$LAB/src/bpf/progs.bpf.c" -o "$P/progs.bpf.o" || die "clang -target bpf failed"
fi
if newer "$P/bpfl" "$LAB/src/bpf/loader.c"; then
	say "building the BPF loader (static)"
	gcc -O2 -static -Wno-discarded-qualifiers "$LAB/src/bpf/loader.c" -o "$P/bpfl" -lbpf -lelf -lz || die "loader build failed"
fi
if newer "$P/trig" "$LAB/src/bpf/trig.c"; then
	gcc -O2 -static "$LAB/src/bpf/trig.c" -o "$P/trig" || die "trig build failed"
fi

# ---------------------------------------------------------------- initramfs
I=$B/initramfs.cpio.gz
if newer "$I" "$LAB"/guest/* "$M"/*.ko "$P/bpfl" "$P/progs.bpf.o" "$P/trig" /bin/busybox; then
	say "building the initramfs"
	R=$B/root; rm -rf "$R"
	mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,lab/mod,lab/bpf}
	cp /bin/busybox "$R/bin/busybox"
	for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
	cp "$LAB/guest/init" "$R/init"; chmod +x "$R/init"
	cp "$LAB/guest/lib.sh" "$R/lab/lib.sh"
	cp "$M"/*.ko "$R/lab/mod/"
	cp "$P/bpfl" "$P/progs.bpf.o" "$R/lab/bpf/"
	cp "$P/trig" "$R/lab/trig"
	(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$I.tmp" && mv "$I.tmp" "$I"
fi

# ---------------------------------------------------------------- run
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (package qemu-system-x86)"
FILES=${LAB_FILES:-$(ls "$ROOT"/data/scenarios/lab/*.fts "$ROOT"/data/scenarios/*.fts)}
[ -n "$FILES" ] || die "no scenario files in data/scenarios/lab/"
say "running scenarios on $KREL under QEMU (TCG)"
rm -rf "$B/boots"
python3 "$LAB/run.py" --kernel "$BOOTK" --initrd "$I" --build "$B/boots" \
	--out "${LAB_OUT:-$ROOT/data/kernel/observed-@REL@.jsonl}" $FILES
say "done in $(( $(date +%s) - t0 )) s"
