#!/bin/bash
# ftsim kernel lab: runs the project's scenario files on a real kernel under QEMU (TCG) and writes
# data/kernel/observed-<uname -r>.jsonl, then the agreement with the model (lab/compare.py).
#
#   lab/kernel-lab.sh [KERNEL]         a Debian kernel named in lab/kernels.txt (default: its first line)
#   lab/kernel-lab.sh --all            every kernel of lab/kernels.txt, one after the other
#   KDIR=TREE [IMAGE=BZIMAGE] lab/kernel-lab.sh    your own kernel: a prepared build tree (or a headers tree)
#                                      and its bzImage (default TREE/arch/x86/boot/bzImage)
# Environment: KERNEL, KDIR, IMAGE, CC (own kernel), LAB_FILES (scenario files), LAB_OUT (output; @REL@ =
# release), LAB_SET ("FIELD=VALUE ..." model overrides) and LAB_MODEL ("line; line": model header lines such
# as "function F error_injection=no"), both passed to the model as they are; LAB_MIRROR (Debian mirror),
# LAB_BUILD (build directory, default lab/build), LAB_PVH=1 (boot vmlinux through PVH), LAB_APT_UPDATE=1.
#
# Idempotent: lab/build/ holds the lab's own apt lists (apt/), one debootstrap chroot per suite that needs one
# (chroot/SUITE/), one directory per kernel (k/NAME/: image, vmlinux, headers, modules, BPF, initramfs,
# boots) and what all kernels share (common/).  Something is rebuilt only when its inputs change; a kernel
# whose release differs from k/NAME/release starts from an empty k/NAME/.
set -euo pipefail
LAB=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$LAB")
B=${LAB_BUILD:-$LAB/build}
TABLE=${LAB_KERNELS:-$LAB/kernels.txt}
t0=$(date +%s)
TAG=kernel-lab
say() { echo "$TAG: $*"; }
die() { echo "$TAG: ERROR: $*" >&2; exit 1; }
newer() { local t=$1; shift; [ ! -e "$t" ] && return 0; for s in "$@"; do [ "$s" -nt "$t" ] && return 0; done; return 1; }
names() { awk '!/^#/ && NF { printf "%s%s", sep, $1; sep = " " }' "$TABLE"; }

# ---------------------------------------------------------------- --all: every kernel, one after the other
if [ "${1:-}" = --all ]; then
	[ -z "${KDIR:-}" ] || die "--all runs the Debian kernels of lab/kernels.txt; KDIR is for one kernel of your own"
	failed=""; summary=""
	for n in $(names); do
		t1=$(date +%s)
		if KERNEL=$n bash "$0"; then r=ok; else r=FAILED; failed="$failed $n"; fi
		summary="$summary\n  $n: $r in $(( $(date +%s) - t1 )) s"
	done
	say "all kernels in $(( $(date +%s) - t0 )) s:$(printf "$summary")"
	du -sh "$B" 2>/dev/null | awk '{print "kernel-lab: lab disk: " $1}'
	[ -z "$failed" ] || die "failed:$failed"
	exit 0
fi

# ---------------------------------------------------------------- what to run (checked before any long work)
KERNEL=${KERNEL:-${1:-}}
if [ -n "${KDIR:-}" ]; then
	[ -z "$KERNEL" ] || die "give KERNEL=NAME (a Debian kernel) or KDIR=TREE (your own), not both"
	MODE=own
	KDIR=$(cd "$KDIR" 2>/dev/null && pwd) || die "KDIR=$KDIR: no such directory (expected a prepared kernel tree)"
	for f in Makefile .config include/config/kernel.release include/generated/autoconf.h Module.symvers; do
		[ -e "$KDIR/$f" ] || die "KDIR=$KDIR is not a prepared kernel tree: no $f (expected a tree after 'make' or 'make modules_prepare' + Module.symvers, or a linux-headers tree)"
	done
	[ -x "$KDIR/scripts/mod/modpost" ] || [ -e "$KDIR/scripts" ] || die "KDIR=$KDIR is not prepared: no scripts/mod/modpost (run 'make modules_prepare')"
	REL=$(cat "$KDIR/include/config/kernel.release")
	IMAGE=${IMAGE:-$KDIR/arch/x86/boot/bzImage}
	[ -f "$IMAGE" ] || die "IMAGE=$IMAGE: no such file (expected the bzImage of the kernel in KDIR)"
	IREL=$(python3 "$LAB/tools/extract_vmlinux.py" --release "$IMAGE" 2>&1) || die "IMAGE=$IMAGE: $IREL"
	[ "$IREL" = "$REL" ] || die "IMAGE=$IMAGE is release $IREL but KDIR=$KDIR is $REL (expected the image built from that tree)"
	NAME=own-$REL; SUITE=""; IMGPKGS=-; HDRPKGS=-; BUILD=host
	# the compiler: the tree's CC (Debian headers: .kernelvariables), checked against CONFIG_CC_VERSION_TEXT
	if [ -z "${CC:-}" ]; then
		CC=gcc
		[ -f "$KDIR/.kernelvariables" ] && CC=$(sed -n 's/^CC = .*)\(gcc-[0-9]*\)$/\1/p' "$KDIR/.kernelvariables" | head -1)
		CC=${CC:-gcc}
	fi
	want=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="[^ ]* \(.*\)"$/\1/p' "$KDIR/.config")
	have=$("$CC" --version 2>/dev/null | head -1 | cut -d' ' -f2-) || have=""
	[ -n "$have" ] || die "CC=$CC not found (expected the compiler that built KDIR: $want)"
	[ -z "$want" ] || [ "$want" = "$have" ] || die "KDIR was built with '$want', CC=$CC is '$have' (set CC= to the compiler that built the tree)"
	STAMPV="$REL $KDIR $IMAGE $(stat -c %Y "$IMAGE") $(stat -c %Y "$KDIR/Module.symvers")"
else
	MODE=debian
	KERNEL=${KERNEL:-$(names | cut -d' ' -f1)}
	row=$(awk -v n="$KERNEL" '!/^#/ && $1 == n' "$TABLE")
	[ -n "$row" ] || die "unknown KERNEL=$KERNEL (expected one of: $(names); or KDIR=/path/to/your/tree)"
	read -r NAME REL SUITE IMGPKGS HDRPKGS CC BUILD <<<"$row"
	STAMPV="$REL"
fi
TAG="kernel-lab[$NAME]"
KB=$B/k/$NAME
mkdir -p "$KB"
# the kernel-release stamp: products of another kernel (vmlinux, modules, initramfs) never survive
if [ -f "$KB/release" ] && [ "$(cat "$KB/release")" != "$STAMPV" ]; then
	say "kernel changed ($(cut -d' ' -f1 "$KB/release") -> $REL): clearing $KB"
	find "$KB" -mindepth 1 -delete
fi
[ -f "$KB/release" ] || echo "$STAMPV" > "$KB/release"
say "kernel $REL ($MODE${SUITE:+, $SUITE}); build dir ${KB#$ROOT/}"

# ---------------------------------------------------------------- host packages (bookworm's own; nothing else)
PKGS="qemu-system-x86 busybox-static clang llvm libbpf-dev bpftool libelf-dev build-essential zlib1g-dev cpio xz-utils zstd kmod python3"
[ "$BUILD" = host ] && [ "$MODE" = debian ] && PKGS="$PKGS $CC"
[ "$BUILD" = host ] && PKGS="$PKGS dwarves"    # pahole: kbuild adds BTF to modules of a CONFIG_DEBUG_INFO_BTF_MODULES kernel (6.12)
case "$BUILD" in chroot:*) PKGS="$PKGS debootstrap" ;; esac
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	command -v apt-get >/dev/null || die "missing host packages:$missing (expected a Debian bookworm host)"
	[ "$(id -u)" = 0 ] || die "missing host packages:$missing (run as root so that apt-get can install them)"
	say "installing host packages:$missing"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } \
		>"$B/host-apt.log" 2>&1 || die "apt-get install of$missing failed (no network to the Debian mirror? see ${B#$ROOT/}/host-apt.log)"
fi

# ---------------------------------------------------------------- the lab's own apt (never the host's sources)
# All suites of the table, for `apt-cache show` and `apt-get download` only: nothing is installed from them
# on the host, so the host stays bookworm whatever the suites' priorities.
MIRROR=${LAB_MIRROR:-$(sed -n 's|^URIs: *\(https\?://[^ ]*/debian\)/\?$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${MIRROR%/debian}/debian-security
A=$B/apt
apt_setup() {
	mkdir -p "$A/lists/partial" "$A/archives/partial" "$A/cache" "$A/sources.d" "$A/prefs.d"
	cat > "$A/sources.d/lab.sources" <<-EOF
	Types: deb
	URIs: $MIRROR
	Suites: bookworm bookworm-backports trixie sid experimental
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	Types: deb
	URIs: $SECMIRROR
	Suites: bookworm-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	cat > "$A/apt.conf" <<-EOF
	Dir::Etc::SourceList "/dev/null";
	Dir::Etc::SourceParts "$A/sources.d";
	Dir::Etc::Preferences "/dev/null";
	Dir::Etc::PreferencesParts "$A/prefs.d";
	Dir::State::Lists "$A/lists";
	Dir::State::Status "/var/lib/dpkg/status";
	Dir::Cache "$A/cache";
	Dir::Cache::Archives "$A/archives";
	APT::Sandbox::User "root";
	Acquire::Languages "none";
	Acquire::Check-Valid-Until "false";
	EOF
}
lapt() { APT_CONFIG=$A/apt.conf "$@"; }
apt_update() {
	say "apt-get update of the lab's suites ($MIRROR)"
	lapt apt-get update -qq >"$A/update.log" 2>&1 || true
	# apt-get update exits 0 when a mirror cannot be reached: its warnings say so
	if grep -Eq "Failed to fetch|Could not (connect|resolve)|Temporary failure resolving|Unable to connect" "$A/update.log" \
		|| [ -z "$(ls "$A/lists" | grep -v -e partial -e lock)" ]; then
		die "apt-get update of the lab's suites failed: no network to $MIRROR? ($(grep -m1 -E '^(W|E):' "$A/update.log" | cut -c1-160))"
	fi
	touch "$A/updated"
}
need_pkgs() {  # every package of this kernel must be in its suite: checked before anything is downloaded
	local p args="" bad=""
	for p in ${IMGPKGS//,/ } ${HDRPKGS//,/ }; do args="$args $p/$SUITE"; done
	local out; out=$(lapt apt-get download --print-uris $args 2>&1 >/dev/null || true)
	for p in ${IMGPKGS//,/ } ${HDRPKGS//,/ }; do
		echo "$out" | grep -q "'$p'\|package $p\$\|package $p/" && bad="$bad $p"
	done
	echo "$bad"
}

if [ "$MODE" = debian ]; then
	fetch=""   # is anything of this kernel still to download?
	[ -s "$KB/img/vmlinuz" ] || fetch=1
	[ "$BUILD" = host ] && { [ -f "$KB/hdr/.done" ] || fetch=1; }
	[ "$BUILD" != host ] && { [ -f "$B/chroot/${BUILD#chroot:}/.ftsim-hdr-$REL" ] || fetch=1; }
	if [ -n "$fetch" ]; then
		apt_setup
		[ -f "$A/updated" ] && [ "${LAB_APT_UPDATE:-0}" != 1 ] || apt_update
		bad=$(need_pkgs)
		if [ -n "$bad" ] && [ $(( $(date +%s) - $(stat -c %Y "$A/updated") )) -gt 60 ]; then apt_update; bad=$(need_pkgs); fi
		[ -z "$bad" ] || die "package(s)$bad not in $SUITE at $MIRROR (expected by lab/kernels.txt for $NAME; has Debian replaced $REL?)"
	fi
fi
download() {  # dest-dir package... : the .debs of those packages from $SUITE, into dest-dir
	local d=$1; shift
	mkdir -p "$d"
	local p args=""
	for p in "$@"; do args="$args $p/$SUITE"; done
	(cd "$d" && lapt apt-get download -qq $args >"$d/download.log" 2>&1) || die "apt-get download of $* failed (see ${d#$ROOT/}/download.log)"
}

# ---------------------------------------------------------------- kernel image, config, vmlinux
K=$KB/img
if [ "$MODE" = own ]; then
	mkdir -p "$K"
	ln -sf "$IMAGE" "$K/vmlinuz"; ln -sf "$KDIR/.config" "$K/config"
	if [ -f "$KDIR/vmlinux" ] && ! [ -e "$KB/vmlinux" ]; then ln -sf "$KDIR/vmlinux" "$KB/vmlinux"; fi
elif [ ! -s "$K/vmlinuz" ]; then
	say "downloading the image: ${IMGPKGS//,/ }"
	rm -rf "$K"; download "$K/deb" ${IMGPKGS//,/ }
	mkdir -p "$K/x"
	for d in "$K"/deb/*.deb; do    # only the image and its config, not the modules
		dpkg-deb --fsys-tarfile "$d" | tar -C "$K/x" -x --wildcards './boot/vmlinuz-*' './boot/config-*' \
			'./usr/lib/modules/*/vmlinuz' './usr/lib/modules/*/config' 2>/dev/null || true
	done
	v=""; c=""
	for x in "$K/x/boot/vmlinuz-$REL" "$K/x/usr/lib/modules/$REL/vmlinuz"; do [ -f "$x" ] && v=$x; done
	for x in "$K/x/boot/config-$REL" "$K/x/usr/lib/modules/$REL/config"; do [ -f "$x" ] && c=$x; done
	[ -n "$v" ] && [ -n "$c" ] || die "${IMGPKGS//,/ } hold no vmlinuz/config for $REL (expected /boot/ or /usr/lib/modules/$REL/)"
	mv "$v" "$K/vmlinuz.tmp"; mv "$c" "$K/config"; rm -rf "$K/x" "$K/deb"; mv "$K/vmlinuz.tmp" "$K/vmlinuz"
fi
CONFIG=$K/config
cfg() { grep -q "^CONFIG_$1=y" "$CONFIG"; }
cfg FUNCTION_TRACER && cfg DYNAMIC_FTRACE || die "$REL has no CONFIG_DYNAMIC_FTRACE/CONFIG_FUNCTION_TRACER: nothing for the lab to observe"
if cfg LIVEPATCH && ! cfg HAVE_RELIABLE_STACKTRACE; then
	say "warning: $REL has no reliable stack trace (CONFIG_UNWINDER_ORC): every livepatch transition waits for tasks to be signalled, up to 20 s each"
fi
if newer "$KB/vmlinux" "$K/vmlinuz"; then
	say "extracting vmlinux (for BTF)"
	rm -f "$KB/vmlinux"
	python3 "$LAB/tools/extract_vmlinux.py" "$K/vmlinuz" "$KB/vmlinux.tmp" || die "could not unpack vmlinux from $K/vmlinuz"
	mv "$KB/vmlinux.tmp" "$KB/vmlinux"
fi
# what this kernel lacks, for the guest (lab/guest/lib.sh: NOTBUILT_<consumer>)
{
	cfg LIVEPATCH || echo 'NOTBUILT_livepatch="CONFIG_LIVEPATCH is off"'
	cfg KPROBES || for c in kprobe kprobe_post kretprobe; do echo "NOTBUILT_$c=\"CONFIG_KPROBES is off\""; done
	cfg DYNAMIC_FTRACE_WITH_DIRECT_CALLS || echo 'NOTBUILT_direct="CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS is off"'
	cfg FUNCTION_GRAPH_TRACER || echo 'NOTBUILT_function_graph="CONFIG_FUNCTION_GRAPH_TRACER is off"'
	cfg FPROBE || for c in fprobe fprobe_exit; do echo "NOTBUILT_$c=\"CONFIG_FPROBE is off\""; done
	cfg FAIL_FUNCTION || echo 'NOTBUILT_fail_function="CONFIG_FAIL_FUNCTION is off (needs CONFIG_FUNCTION_ERROR_INJECTION): no fail_function in debugfs"'
	cfg BPF_KPROBE_OVERRIDE || echo 'NOTBUILT_bpf_override_return="CONFIG_BPF_KPROBE_OVERRIDE is off (needs CONFIG_FUNCTION_ERROR_INJECTION): bpf_override_return() is refused"'
	cfg DEBUG_INFO_BTF && cfg BPF_SYSCALL || for c in bpf_fentry bpf_fexit bpf_fmod_ret bpf_fmod_ret_pass; do echo "NOTBUILT_$c=\"no BPF_SYSCALL with DEBUG_INFO_BTF\""; done
} > "$KB/caps.sh.tmp"
cmp -s "$KB/caps.sh.tmp" "$KB/caps.sh" 2>/dev/null && rm "$KB/caps.sh.tmp" || mv "$KB/caps.sh.tmp" "$KB/caps.sh"

# ---------------------------------------------------------------- headers and the compiler
case "$MODE:$BUILD" in
own:host)
	HDR=$KDIR; MAKEWRAP="" ;;
debian:host)
	H=$KB/hdr
	if [ ! -f "$H/.done" ]; then
		say "unpacking headers: ${HDRPKGS//,/ }"
		rm -rf "$H"; download "$H/deb" ${HDRPKGS//,/ }
		for d in "$H"/deb/*.deb; do dpkg -x "$d" "$H/x"; done
		# the arch headers include the common ones by absolute path
		sed -i "s|^include /usr/src/|include $H/x/usr/src/|" "$H/x/usr/src/linux-headers-$REL/Makefile"
		rm -rf "$H/deb"; touch "$H/.done"
	fi
	command -v "$CC" >/dev/null || die "$CC missing on the host (package $CC)"
	HDR=$H/x/usr/src/linux-headers-$REL; MAKEWRAP="" ;;
debian:chroot:*)
	CS=${BUILD#chroot:}; CH=$B/chroot/$CS
	# run a command in the chroot with /proc mounted (objtool and dpkg read it), in a mount namespace of its
	# own so that nothing stays mounted on the host
	inchroot() { unshare --mount --fork -- sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$CH" "$@"; }
	if [ ! -f "$CH/.ftsim-ready" ]; then
		say "debootstrap $CS (minbase) into ${CH#$ROOT/} (once; about a minute)"
		rm -rf "$CH"; mkdir -p "$CH"
		debootstrap --variant=minbase --components=main "$CS" "$CH" "$MIRROR" >"$B/debootstrap-$CS.log" 2>&1 \
			|| die "debootstrap $CS failed (see ${B#$ROOT/}/debootstrap-$CS.log)"
		# sid's chroot also builds for experimental's kernels
		echo "deb $MIRROR $CS main" > "$CH/etc/apt/sources.list"
		if [ "$CS" = sid ]; then echo "deb $MIRROR experimental main" >> "$CH/etc/apt/sources.list"; fi
		printf 'Acquire::Check-Valid-Until "false";\nAcquire::Languages "none";\nAPT::Install-Recommends "false";\n' > "$CH/etc/apt/apt.conf.d/99ftsim-lab"
		inchroot apt-get update -qq >"$B/chroot-$CS.log" 2>&1 || die "apt-get update in the $CS chroot failed (see ${B#$ROOT/}/chroot-$CS.log)"
		touch "$CH/.ftsim-ready"
	fi
	KBUILD_PKG=${HDRPKGS##*,}
	if [ ! -f "$CH/.ftsim-hdr-$REL" ]; then
		say "$CS chroot: installing $CC, make, $KBUILD_PKG; unpacking the headers"
		inchroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$CC" make "$KBUILD_PKG/$SUITE" \
			>>"$B/chroot-$CS.log" 2>&1 || die "installing $CC make $KBUILD_PKG in the $CS chroot failed (see ${B#$ROOT/}/chroot-$CS.log)"
		H=$KB/hdr; rm -rf "$H"
		hp=${HDRPKGS%,*}; download "$H/deb" ${hp//,/ }
		for d in "$H"/deb/*.deb; do dpkg -x "$d" "$CH"; done
		rm -rf "$H"; inchroot apt-get clean; touch "$CH/.ftsim-hdr-$REL"
	fi
	HDR=/usr/src/linux-headers-$REL; MAKEWRAP=inchroot ;;
esac

# ---------------------------------------------------------------- modules
M=$KB/mod
if newer "$M/.built" "$LAB"/src/mod/* "$KB/release"; then
	say "building the lab's modules ($CC${CH:+, in the ${CS} chroot})"
	if [ -n "$MAKEWRAP" ]; then W=$CH/build/lab-mod-$NAME; WM=/build/lab-mod-$NAME; else W=$M; WM=$M; fi
	rm -rf "$W" "$M"; mkdir -p "$W" "$M"; cp "$LAB"/src/mod/* "$W/"
	ccarg=""; [ "$MODE" = own ] && ccarg="CC=$CC"
	$MAKEWRAP make -C "$HDR" M="$WM" $ccarg -j"$(nproc)" modules >"$KB/mod.log" 2>&1 \
		|| { tail -20 "$KB/mod.log"; die "module build failed (see ${KB#$ROOT/}/mod.log)"; }
	[ "$W" = "$M" ] || { cp "$W"/*.ko "$M/"; rm -rf "$W"; }
	vm=$(modinfo -F vermagic "$M/lab_fops.ko" | cut -d' ' -f1)
	[ "$vm" = "$REL" ] || die "the modules were built for $vm, not $REL (stale headers?)"
	grep -i "warning" "$KB/mod.log" | grep -v "Skipping BTF" | head -5 || true
	touch "$M/.built"
fi

# ---------------------------------------------------------------- BPF programs, loader, trigger
P=$KB/bpf; C=$B/common
mkdir -p "$P" "$C"
if newer "$P/vmlinux.h" "$KB/vmlinux"; then
	say "vmlinux.h from BTF"
	bpftool btf dump file "$KB/vmlinux" format c > "$P/vmlinux.h.tmp" || die "bpftool btf dump of ${KB#$ROOT/}/vmlinux failed (no .BTF? CONFIG_DEBUG_INFO_BTF)"
	mv "$P/vmlinux.h.tmp" "$P/vmlinux.h"
fi
if newer "$P/progs.bpf.o" "$LAB/src/bpf/progs.bpf.c" "$P/vmlinux.h"; then
	say "building the BPF programs"
	clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -I"$P" -c "$LAB/src/bpf/progs.bpf.c" -o "$P/progs.bpf.o" 2>"$P/clang.log" \
		|| { cat "$P/clang.log"; die "clang -target bpf failed"; }
fi
if newer "$C/bpfl" "$LAB/src/bpf/loader.c"; then
	say "building the BPF loader (static)"
	gcc -O2 -static -Wno-discarded-qualifiers "$LAB/src/bpf/loader.c" -o "$C/bpfl" -lbpf -lelf -lz || die "loader build failed"
fi
if newer "$C/trig" "$LAB/src/bpf/trig.c"; then
	gcc -O2 -static "$LAB/src/bpf/trig.c" -o "$C/trig" || die "trig build failed"
fi

# ---------------------------------------------------------------- initramfs
I=$KB/initramfs.cpio.gz
if newer "$I" "$LAB"/guest/* "$M"/.built "$KB/caps.sh" "$C/bpfl" "$P/progs.bpf.o" "$C/trig" /bin/busybox; then
	say "building the initramfs"
	R=$KB/root; rm -rf "$R"
	mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,lab/mod,lab/bpf}
	cp /bin/busybox "$R/bin/busybox"
	for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
	cp "$LAB/guest/init" "$R/init"; chmod +x "$R/init"
	cp "$LAB/guest/lib.sh" "$R/lab/lib.sh"; cp "$KB/caps.sh" "$R/lab/caps.sh"
	cp "$M"/*.ko "$R/lab/mod/"
	cp "$C/bpfl" "$P/progs.bpf.o" "$R/lab/bpf/"
	cp "$C/trig" "$R/lab/trig"
	(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$I.tmp" && mv "$I.tmp" "$I"
	rm -rf "$R"
fi

# ---------------------------------------------------------------- run
BOOTK=$K/vmlinuz
# LAB_PVH=1: QEMU boots the unpacked vmlinux through its PVH entry point (CONFIG_PVH): no option ROM loading
# the bzImage and no decompression under TCG, about 2.5 s less per boot.  Not the default: on 6.1 the known
# crashers thread-song and thread-rostedt (a use-after-free) then ran on without panicking (lab/README.md).
if [ "${LAB_PVH:-0}" = 1 ] && cfg PVH && readelf -n "$KB/vmlinux" 2>/dev/null | grep -q "(0x00000012)"; then
	BOOTK=$KB/vmlinux
fi
FILES=${LAB_FILES:-$(ls "$ROOT"/data/scenarios/lab/*.fts "$ROOT"/data/scenarios/*.fts)}
[ -n "$FILES" ] || die "no scenario files"
OUT=${LAB_OUT:-$ROOT/data/kernel/observed-@REL@.jsonl}
PY=python3; [ -x "$ROOT/.venv/bin/python" ] && PY=$ROOT/.venv/bin/python
say "running $(echo $FILES | wc -w) scenario files on $REL under QEMU (TCG); $(( $(date +%s) - t0 )) s of setup"
rm -rf "$KB/boots"
VER=$NAME; [ "$MODE" = own ] && VER=$REL
"$PY" "$LAB/run.py" --kernel "$BOOTK" --initrd "$I" --build "$KB/boots" --tag "$TAG" --kernel-version "$VER" \
	--model-set "${LAB_SET:-}" --model-lines "${LAB_MODEL:-}" --out "$OUT" $FILES
OUTF=${OUT//@REL@/$REL}
if [ -x "$ROOT/.venv/bin/python" ] && [ "${LAB_NO_REPORT:-0}" != 1 ]; then
	"$ROOT/.venv/bin/python" "$LAB/compare.py" --summary "$OUTF" || say "the agreement report failed (see above)"
fi
say "done in $(( $(date +%s) - t0 )) s; lab disk for $NAME: $(du -sh "$KB" | cut -f1)"
